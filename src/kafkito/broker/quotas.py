"""Client quotas: the configured quotas (persisted), and byte-rate throttling as Kafka does it.

**Configuration** (DescribeClientQuotas / AlterClientQuotas, KIP-546). A quota entity is a set of
(entity type, name) pairs: `user`, `client-id` or both, or `ip`; a null name is the type's
default entity (`<default>` in Kafka's tools). Each entity holds values for the keys its types
allow (Kafka's QuotaConfigs): user and client-id entities `producer_byte_rate`,
`consumer_byte_rate`, `request_percentage`, `controller_mutation_rate`; ip entities
`connection_creation_rate`. The values persist in the metadata log as one record per entity
(`client_quota`, the entity's whole value map; an empty map deletes it), so a restart keeps them.

**Which quota applies** (Kafka's DefaultQuotaCallback, for a connection's user and client id;
the user is the SASL user, or `ANONYMOUS` as Kafka's principal without authentication): the
first entity found in this order, with the metric key it uses (so a default entity gives each
user or client its own budget, and a named one is shared by every connection that matches):

    /users/<u>/clients/<c>          (u, c)
    /users/<u>/clients/<default>    (u, c)
    /users/<u>                      (u, "")
    /users/<default>/clients/<c>    (u, c)
    /users/<default>/clients/<default>  (u, c)
    /users/<default>                (u, "")
    /clients/<c>                    ("", c)
    /clients/<default>              ("", c)

**Enforcement** (ClientQuotaManager with Kafka's `Rate` over a `SampledStat`): each metric key
keeps `quota.window.num` = 11 samples of `quota.window.size.seconds` = 1 s. A Produce records
its request size, a Fetch its response size; if the measured rate is then above the bound, the
throttle time is (rate - bound) / bound x window, the time after which the rate is back at the
bound, capped at the whole window (11 s). The broker settings `quota.window.num` and
`quota.window.size.seconds` (BrokerSettings.extra, as Kafka's) change the window: fewer samples
make the rate smoother (with 11, a client that starts fresh may send 10 s worth of its quota at
once, and gets it again each time that burst leaves the window: Kafka's behaviour too).

The answer carries the throttle time in throttle_time_ms and the connection is *muted* for it:
no further request is read from it until the time has passed (KIP-219; clients from Kafka 2.0
also hold back by themselves, P9). Requests of versions from before KIP-219 (Produce
< v6, Fetch < v8) are answered only after the throttle time, as Kafka delays them. A Fetch over
its quota is answered without data (its bytes are un-recorded), and a Fetch never asks for more
than the quota's window holds (10 x the byte rate), or a consumer with a small quota would be
refused forever.

`request_percentage` is enforced by kafkito.broker.request_quota (the event-loop CPU time of a
client's requests, recorded here under its own sensors; the throttle there is capped at one
window). `controller_mutation_rate` and `connection_creation_rate` are stored and described,
not enforced (docs/broker.md lists the differences).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkito.broker.request_quota import REQUEST, MeteredHandle, charge, mute
from kafkito.errors import ErrorCode, KafkitoError

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore
    from kafkito.broker.dispatch import RequestContext

log = logging.getLogger(__name__)

USER, CLIENT_ID, IP = "user", "client-id", "ip"
ANONYMOUS = "ANONYMOUS"
"""The user name of Kafka's principal for a connection without authentication."""
PRODUCE, FETCH = "producer_byte_rate", "consumer_byte_rate"
CLIENT_KEYS = frozenset({PRODUCE, FETCH, "request_percentage", "controller_mutation_rate"})
"""QuotaConfigs.userConfigs and clientConfigs: the keys of user and client-id entities."""
IP_KEYS = frozenset({"connection_creation_rate"})
DOUBLE_KEYS = frozenset({"request_percentage", "controller_mutation_rate"})
"""Keys of type DOUBLE; the others are LONG and must hold whole numbers."""
QUOTA_WINDOW_NUM = 11
QUOTA_WINDOW_SIZE_MS = 1000
MAX_THROTTLE_MS = QUOTA_WINDOW_NUM * QUOTA_WINDOW_SIZE_MS
MAX_SENSORS = 10_000
"""Metric keys kept at once; the least recently used beyond it are dropped (Kafka expires a
sensor after an hour without use). A dropped key starts again with an empty window."""
MAX_ENTITIES = 100_000
"""Configured quota entities; AlterClientQuotas beyond it is refused (POLICY_VIOLATION)."""
PRODUCE_THROTTLE_FROM_VERSION = 6
FETCH_THROTTLE_FROM_VERSION = 8
"""From these versions the client throttles itself (KIP-219): answer at once, then mute."""

Entity = tuple[tuple[str, str | None], ...]
"""A quota entity: (type, name or None for the default) pairs sorted by type."""


def entity_of(pairs: Any) -> Entity:
    return tuple(sorted((str(t), n) for t, n in pairs))


class QuotaError(KafkitoError):
    """An AlterClientQuotas or DescribeClientQuotas request Kafka refuses, with its error."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class _Sample:
    start_ms: int
    value: float = 0.0


@dataclass(slots=True)
class Rate:
    """Kafka's `Rate` over a `SampledStat`: a sum over up to `samples` windows of `window_ms`,
    divided by the elapsed time, which counts at least samples - 1 whole windows (so that one
    burst right after the start does not measure as an enormous rate)."""

    samples: int = QUOTA_WINDOW_NUM
    window_ms: int = QUOTA_WINDOW_SIZE_MS
    _samples: list[_Sample] = field(default_factory=list)
    _current: int = 0

    def _purge(self, now_ms: int) -> None:
        expire_age = self.samples * self.window_ms
        for sample in self._samples:
            if now_ms - sample.start_ms >= expire_age:
                sample.start_ms, sample.value = now_ms, 0.0

    def record(self, value: float, now_ms: int) -> None:
        if not self._samples:
            self._samples.append(_Sample(now_ms))
            self._current = 0
        sample = self._samples[self._current]
        if now_ms - sample.start_ms >= self.window_ms:
            self._current = (self._current + 1) % self.samples
            if self._current >= len(self._samples):
                self._samples.append(_Sample(now_ms))
            else:
                self._samples[self._current].start_ms = now_ms
                self._samples[self._current].value = 0.0
            sample = self._samples[self._current]
        sample.value += value

    def window_size_ms(self, now_ms: int) -> int:
        self._purge(now_ms)
        oldest = min((s.start_ms for s in self._samples), default=now_ms)
        elapsed = now_ms - oldest
        full = elapsed // self.window_ms
        if full < self.samples - 1:
            elapsed += (self.samples - 1 - full) * self.window_ms
        return max(elapsed, 1)

    def measure(self, now_ms: int) -> float:
        """The rate per second at `now_ms`."""
        size_ms = self.window_size_ms(now_ms)
        return sum(s.value for s in self._samples) / (size_ms / 1000)


def throttle_ms(rate: Rate, bound: float, now_ms: int, max_ms: int = MAX_THROTTLE_MS) -> int:
    """QuotaUtils.throttleTime bounded as ClientQuotaManager does (at most the whole window):
    0 when the rate is within the bound, else the time for it to come back to the bound."""
    measured = rate.measure(now_ms)
    if measured <= bound:
        return 0
    if bound <= 0:
        return max_ms
    delay = (measured - bound) / bound * rate.window_size_ms(now_ms)
    return int(min(max(round(delay), 0), max_ms))


def _positive(extra: dict[str, str], key: str, default: int) -> int:
    """A positive whole broker setting from `extra` (Kafka's quota.window.* keys)."""
    raw = extra.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{key} must be a whole number, not {raw!r}") from None
    if not 1 <= value <= 3600:
        raise ValueError(f"{key} must be between 1 and 3600, not {value}")
    return value


class QuotaManager:
    """The broker's quotas: configured entities (a metadata-log participant) and rate sensors."""

    def __init__(
        self, broker: BrokerCore, *, now_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    ) -> None:
        self.broker = broker
        self.now_ms = now_ms
        self.entities: dict[Entity, dict[str, float]] = {}
        self._altering = asyncio.Lock()
        self._sensors: dict[tuple[str, str, str], Rate] = {}
        extra = broker.settings.extra
        self.samples = _positive(extra, "quota.window.num", QUOTA_WINDOW_NUM)
        self.window_ms = 1000 * _positive(extra, "quota.window.size.seconds", 1)
        self.max_throttle_ms = self.samples * self.window_ms

    # -- metadata-log participant -------------------------------------------------------

    def begin_replay(self) -> None:
        self.entities.clear()

    def replay(self, record: dict[str, Any]) -> bool:
        if record.get("type") != "client_quota":
            return False
        entity = entity_of(record["entity"])
        values = {str(k): float(v) for k, v in record["values"].items()}
        if values:
            self.entities[entity] = values
        else:
            self.entities.pop(entity, None)
        return True

    def finish_replay(self) -> None:
        self._refresh_request_meter()

    def _refresh_request_meter(self) -> None:
        """Meter requests (request_quota) only while some entity has a request_percentage:
        without one, requests pay nothing for the feature."""
        wanted = any(REQUEST in values for values in self.entities.values())
        self.broker.request_meter = MeteredHandle(self) if wanted else None

    def live_records(self) -> Iterator[dict[str, Any]]:
        for entity, values in self.entities.items():
            yield _record(entity, values)

    # -- AlterClientQuotas ------------------------------------------------------------------

    async def alter(
        self, entries: list[tuple[Entity, list[tuple[str, float | None]]]], validate_only: bool
    ) -> list[tuple[ErrorCode, str | None]]:
        """Apply each entry's ops (None value: remove the key), all checked first as Kafka's
        ClientQuotaControlManager does; an (error, message) per entry, in request order.
        Raises OSError if the metadata log cannot be written (nothing is applied). One alter
        at a time: each reads the entities, waits for its record's fsync, then applies."""
        async with self._altering:
            return await self._alter(entries, validate_only)

    async def _alter(
        self, entries: list[tuple[Entity, list[tuple[str, float | None]]]], validate_only: bool
    ) -> list[tuple[ErrorCode, str | None]]:
        results: list[tuple[ErrorCode, str | None]] = []
        changes: dict[Entity, dict[str, float]] = {}
        seen: set[Entity] = set()
        for entity, ops in entries:
            try:
                if entity in seen:
                    raise QuotaError(
                        ErrorCode.invalid_request, f"Ignoring duplicate entity {_show(entity)}"
                    )
                seen.add(entity)
                new = self._altered(entity, ops)
            except QuotaError as exc:
                results.append((exc.code, exc.message))
                continue
            results.append((ErrorCode.none, None))
            if new != self.entities.get(entity, {}):
                changes[entity] = new
        grows = sum(1 for e in changes if e not in self.entities)
        if len(self.entities) + grows > MAX_ENTITIES:
            message = f"more than {MAX_ENTITIES} quota entities"
            return [(ErrorCode.policy_violation, message) for _ in entries]
        if validate_only or not changes:
            return results
        # persisted first (fsync off the loop): a failed append leaves the old quotas in force
        await self.broker.metalog.append_durable([_record(e, v) for e, v in changes.items()])
        for entity, values in changes.items():
            if values:
                self.entities[entity] = values
            else:
                self.entities.pop(entity, None)
            log.info("client quota %s: %s", _show(entity), values or "removed")
        self._refresh_request_meter()
        return results

    def _altered(self, entity: Entity, ops: list[tuple[str, float | None]]) -> dict[str, float]:
        keys = _validate_entity(entity)
        new = dict(self.entities.get(entity, {}))
        alterations: dict[str, float | None] = {}
        for key, value in ops:
            if key in alterations:
                # Kafka records "duplicate key" for the entity, then finds the entity already
                # answered and reports it as a duplicate entity: that is the message clients get
                raise QuotaError(
                    ErrorCode.invalid_request, f"Ignoring duplicate entity {_show(entity)}"
                )
            alterations[key] = value
        for key, value in alterations.items():
            if value is None:
                new.pop(key, None)
                continue
            if key not in keys:
                raise QuotaError(ErrorCode.invalid_request, f"Invalid configuration key {key}")
            if value <= 0:
                raise QuotaError(ErrorCode.invalid_request, f"Quota {key} must be greater than 0")
            if key not in DOUBLE_KEYS and abs(math.floor(value + 1e-6) - value) > 1e-6:
                raise QuotaError(ErrorCode.invalid_request, f"{key} cannot be a fractional value.")
            new[key] = float(value)
        return new

    # -- DescribeClientQuotas ---------------------------------------------------------------

    def describe(
        self, components: list[tuple[str, int, str | None]], strict: bool
    ) -> list[tuple[Entity, dict[str, float]]]:
        """Entities matching the filter (ClientQuotasImage.describe); raises QuotaError.

        A component is (entity type, match type, match): 0 exact name, 1 the default entity,
        2 any entity that has the type. With `strict`, entities with other types are left out.
        """
        exact: dict[str, str | None] = {}
        typed: set[str] = set()
        for entity_type, match_type, match in components:
            if not entity_type:
                raise QuotaError(ErrorCode.invalid_request, "Invalid empty entity type.")
            if entity_type in exact or entity_type in typed:
                raise QuotaError(
                    ErrorCode.invalid_request,
                    f"Entity type {entity_type} cannot appear more than once in the filter.",
                )
            if entity_type not in (USER, CLIENT_ID, IP):
                raise QuotaError(
                    ErrorCode.unsupported_version, f"Unsupported entity type {entity_type}"
                )
            if match_type == 0:
                if match is None:
                    raise QuotaError(
                        ErrorCode.invalid_request,
                        "Request specified MATCH_TYPE_EXACT, but set match string to null.",
                    )
                exact[entity_type] = match
            elif match_type == 1:
                if match is not None:
                    raise QuotaError(
                        ErrorCode.invalid_request,
                        "Request specified MATCH_TYPE_DEFAULT, but also specified a match string.",
                    )
                exact[entity_type] = None
            elif match_type == 2:
                if match is not None:
                    raise QuotaError(
                        ErrorCode.invalid_request,
                        "Request specified MATCH_TYPE_SPECIFIED, but also specified a match "
                        "string.",
                    )
                typed.add(entity_type)
            else:
                raise QuotaError(ErrorCode.invalid_request, f"Unknown match type {match_type}")
        filtered = set(exact) | typed
        if IP in filtered and (USER in filtered or CLIENT_ID in filtered):
            raise QuotaError(
                ErrorCode.invalid_request,
                "Invalid entity filter component combination. IP filter component should not "
                "be used with user or clientId filter component.",
            )
        found = []
        for entity, values in self.entities.items():
            names = dict(entity)
            if strict and len(names) != len(filtered):
                continue
            if any(t not in names or names[t] != n for t, n in exact.items()):
                continue
            if any(t not in names for t in typed):
                continue
            found.append((entity, dict(values)))
        return found

    # -- enforcement --------------------------------------------------------------------------

    def _resolve(self, key: str, user: str, client_id: str) -> tuple[float, tuple[str, str]] | None:
        """The bound for `key` and the metric key it is measured under, or None (no quota)."""
        order: list[tuple[Entity, tuple[str, str]]] = [
            (((CLIENT_ID, client_id), (USER, user)), (user, client_id)),
            (((CLIENT_ID, None), (USER, user)), (user, client_id)),
            (((USER, user),), (user, "")),
            (((CLIENT_ID, client_id), (USER, None)), (user, client_id)),
            (((CLIENT_ID, None), (USER, None)), (user, client_id)),
            (((USER, None),), (user, "")),
            (((CLIENT_ID, client_id),), ("", client_id)),
            (((CLIENT_ID, None),), ("", client_id)),
        ]
        for entity, tags in order:
            values = self.entities.get(entity)
            if values is not None and key in values:
                return values[key], tags
        return None

    def _sensor(self, key: str, tags: tuple[str, str]) -> Rate:
        name = (key, *tags)
        rate = self._sensors.pop(name, None)
        if rate is None:
            rate = Rate(self.samples, self.window_ms)
            if len(self._sensors) >= MAX_SENSORS:
                self._sensors.pop(next(iter(self._sensors)))
        self._sensors[name] = rate  # most recently used last
        return rate

    def record(self, key: str, user: str, client_id: str, value: float) -> int:
        """Record `value` bytes for a client; the throttle time it has earned (0: within)."""
        if not self.entities:
            return 0
        resolved = self._resolve(key, user, client_id)
        if resolved is None:
            return 0
        bound, tags = resolved
        now = self.now_ms()
        rate = self._sensor(key, tags)
        rate.record(value, now)
        return throttle_ms(rate, bound, now, self.max_throttle_ms)

    def request_sensor(self, ctx: RequestContext) -> tuple[float, Rate] | None:
        """The request_percentage bound and sensor of a request's client, or None (no quota)."""
        resolved = self._resolve(REQUEST, *_who(ctx))
        if resolved is None:
            return None
        return resolved[0], self._sensor(REQUEST, resolved[1])

    def record_request(
        self, sensor: tuple[float, Rate], percent: float, *, throttle: bool = True
    ) -> int:
        """Record a request's time (percent-seconds of one thread) in its client's sensor; the
        throttle it has earned, at most one window (Kafka's ClientRequestQuotaManager), or 0."""
        bound, rate = sensor
        now = self.now_ms()
        rate.record(percent, now)
        return throttle_ms(rate, bound, now, self.window_ms) if throttle else 0

    def measured(self, key: str, user: str, client_id: str) -> float | None:
        """The rate a client's quota for `key` sees now (bytes/s, or percent for
        request_percentage), or None when no quota applies: what a test or a tool observes."""
        resolved = self._resolve(key, user, client_id)
        if resolved is None:
            return None
        name = (key, *resolved[1])
        rate = self._sensors.get(name)
        return 0.0 if rate is None else rate.measure(self.now_ms())

    def unrecord(self, key: str, user: str, client_id: str, value: float) -> None:
        """Take back bytes recorded for an answer that was not sent (a throttled Fetch)."""
        resolved = self._resolve(key, user, client_id)
        if resolved is not None:
            self._sensor(key, resolved[1]).record(-value, self.now_ms())

    def max_window_bytes(self, key: str, user: str, client_id: str) -> int | None:
        """ClientQuotaManager.getMaxValueInQuotaWindow: what one answer may carry at most."""
        if not self.entities:
            return None
        resolved = self._resolve(key, user, client_id)
        if resolved is None:
            return None
        window_s = max(self.samples - 1, 1) * self.window_ms / 1000
        return max(int(resolved[0] * window_s), 1)


def _validate_entity(entity: Entity) -> frozenset[str]:
    """The keys the entity may hold; QuotaError as ClientQuotaControlManager's checks."""
    if not entity:
        raise QuotaError(ErrorCode.invalid_request, "Invalid empty client quota entity")
    types = [t for t, _ in entity]
    for entity_type, name in entity:
        if types.count(entity_type) > 1:
            raise QuotaError(
                ErrorCode.invalid_request,
                f"Invalid empty client quota entity, duplicate entity entry {entity_type}",
            )
        if entity_type not in (USER, CLIENT_ID, IP):
            raise QuotaError(
                ErrorCode.invalid_request, f"Unhandled client quota entity type: {entity_type}"
            )
        if name is not None and not name:
            raise QuotaError(ErrorCode.invalid_request, f"Empty {entity_type} not supported")
    kinds = set(types)
    if kinds <= {USER, CLIENT_ID}:
        return CLIENT_KEYS
    if IP in kinds and len(kinds) > 1:
        raise QuotaError(  # sic: Kafka's message
            ErrorCode.invalid_request,
            "Invalid quota entity combination, IP entity shouldnot be combined with User or "
            "ClientId",
        )
    if kinds == {IP}:
        name = dict(entity)[IP]
        if name is not None:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                raise QuotaError(
                    ErrorCode.invalid_request, f"{name} is not a valid IP or resolvable host."
                ) from None
        return IP_KEYS
    raise QuotaError(ErrorCode.invalid_request, "Invalid empty client quota entity")


_JAVA_MAP_ORDER = {IP: 0, CLIENT_ID: 1, USER: 2}
"""The order in which Java's HashMap lists these three keys (their hash buckets), which is how
Kafka's messages print an entity."""


def _show(entity: Entity) -> str:
    """An entity as Kafka's ClientQuotaEntity.toString prints it (the default is `null`)."""
    pairs = sorted(entity, key=lambda p: _JAVA_MAP_ORDER.get(p[0], 3))
    inner = ", ".join(f"{t}={n}" if n is not None else f"{t}=null" for t, n in pairs)
    return f"ClientQuotaEntity(entries={{{inner}}})"


def _record(entity: Entity, values: dict[str, float]) -> dict[str, Any]:
    return {"type": "client_quota", "entity": [list(p) for p in entity], "values": dict(values)}


# -- the hooks Produce and Fetch call ---------------------------------------------------------

_MANAGERS: weakref.WeakKeyDictionary[BrokerCore, QuotaManager] = weakref.WeakKeyDictionary()


def install(broker: BrokerCore) -> None:
    """Attach a quota manager to a fresh BrokerCore (called by kafkito.broker.assembly)."""
    manager = QuotaManager(broker)
    _MANAGERS[broker] = manager
    broker.participants.append(manager)


def quotas_of(broker: BrokerCore) -> QuotaManager | None:
    return _MANAGERS.get(broker)


def _who(ctx: RequestContext) -> tuple[str, str]:
    user = getattr(ctx.connection, "authenticated_user", None) or ANONYMOUS
    return user, ctx.client_id or ""


async def throttle_produce(ctx: RequestContext, request_bytes: int, *, acks: int) -> int:
    """Record a Produce's bytes; mute the connection and return the throttle time if over."""
    manager = quotas_of(ctx.broker)
    if manager is None:
        return 0
    delay = manager.record(PRODUCE, *_who(ctx), request_bytes)
    if acks != 0 and ctx.broker.request_meter is not None:
        delay = max(delay, charge(ctx))  # the request quota too, as Kafka takes the larger
    if delay > 0:
        mute(ctx, delay)
        if acks != 0 and ctx.api_version < PRODUCE_THROTTLE_FROM_VERSION:
            await asyncio.sleep(delay / 1000)
    return delay


def fetch_max_bytes(ctx: RequestContext, max_bytes: int) -> int:
    """A Fetch's max_bytes, cut to what the consumer's quota window holds."""
    manager = quotas_of(ctx.broker)
    limit = None if manager is None else manager.max_window_bytes(FETCH, *_who(ctx))
    return max_bytes if limit is None else min(max_bytes, limit)


async def throttle_fetch(ctx: RequestContext, response_bytes: int) -> int:
    """Record a Fetch answer's bytes; if over the quota, take them back, mute the connection
    (answering after the delay for old versions) and return the throttle time: the caller
    then answers without data, as Kafka's throttled fetch response carries none."""
    manager = quotas_of(ctx.broker)
    if manager is None:
        return 0
    request_delay = charge(ctx) if ctx.broker.request_meter is not None else 0
    if response_bytes <= 0 and request_delay <= 0:
        return 0
    who = _who(ctx)
    delay = manager.record(FETCH, *who, response_bytes) if response_bytes > 0 else 0
    if delay > 0 or request_delay > 0:
        if response_bytes > 0:
            manager.unrecord(FETCH, *who, response_bytes)
        delay = max(delay, request_delay)
        mute(ctx, delay)
        if ctx.api_version < FETCH_THROTTLE_FROM_VERSION:
            await asyncio.sleep(delay / 1000)
    return delay
