"""Admin: topics, configs, consumer groups, offsets and the cluster, as typed results.

    from kafkito.client import Admin
    with Admin(brokers="kafka:9092") as admin:
        admin.create_topic("clicks", partitions=6, configs={"retention.ms": "86400000"})
        for row in admin.group_lag("analytics"):
            print(row.topic, row.partition, row.lag)

Why a kafkito Admin instead of confluent-kafka's AdminClient: the same config as Writer and
Reader (the seed's keys: brokers, client.username/password/algorithm, client.tls, client.timeout,
client.retry, settings), the same connect check with retries, results as frozen dataclasses
instead of futures of librdkafka objects, and every failure as one typed exception from
`kafkito.client.errors` whose message says what was being done, the broker's reason and what
to do next (never a `KafkaError{...}` repr). The CLI, the console, the demo and the flow use it,
so what they print is what a program using the library sees.

Every call is synchronous and waits at most `client.timeout` (or `timeout_s`) for the brokers.
librdkafka's AdminClient returns futures that die with the client, so one Admin holds one
AdminClient for its lifetime; `close()` releases it. The asyncio flavour is `kafkito.aio.Admin`.

Topics and partitions are described from cluster metadata (one round trip, like librdkafka's
own DescribeTopics on a classic cluster); offsets through ListOffsets on each leader; group
lag is the committed offset (OffsetFetch) against the latest offset of each partition.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

import confluent_kafka
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    OffsetSpec,
    ResourceType,
)

from kafkito.client import txn_admin
from kafkito.client.config import _Common
from kafkito.client.connect import ErrorTracker, connect_with_retry, connection_settings
from kafkito.client.errors import (
    AuthorizationError,
    BrokerUnreachableError,
    ClientError,
    ConfigError,
    TopicExistsError,
    UnknownGroupError,
    UnknownTopicError,
    from_admin_error,
)

log = logging.getLogger(__name__)

__all__ = [
    "Acl",
    "AclFilter",
    "Admin",
    "AdminConfig",
    "BrokerInfo",
    "ClusterInfo",
    "ConfigValue",
    "GroupDescription",
    "GroupListing",
    "GroupMember",
    "PartitionDescription",
    "PartitionLag",
    "TopicDescription",
]

T = TypeVar("T")
OffsetAt = Literal["earliest", "latest"] | int
"""Where list_offsets looks: the earliest or latest offset, or the first at a time (ms)."""

_RESULT_MARGIN_S = 5.0
"""Futures wait this much longer than the request timeout: the broker's own answer (a timeout
error with its reason) is more useful than ours."""


@dataclass(frozen=True, slots=True)
class Acl:
    """One ACL, in Kafka's names: resource type TOPIC, GROUP, CLUSTER or TRANSACTIONAL_ID;
    pattern LITERAL or PREFIXED; a principal such as User:alice (User:* for everyone); a host
    (* for any); an operation (READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, CLUSTER_ACTION,
    DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE or ALL); permission ALLOW or DENY."""

    resource_type: str
    name: str
    pattern_type: str = "LITERAL"
    principal: str = "User:*"
    host: str = "*"
    operation: str = "ALL"
    permission: str = "ALLOW"

    def __str__(self) -> str:
        return (
            f"{self.permission} {self.principal}@{self.host} {self.operation} on "
            f"{self.resource_type}:{self.pattern_type}:{self.name}"
        )


@dataclass(frozen=True, slots=True)
class AclFilter:
    """Which ACLs describe_acls and delete_acls match: None (or ANY) matches every value;
    pattern_type MATCH matches the ACLs that apply to the named resource (literal, `*` and
    prefixes)."""

    resource_type: str = "ANY"
    name: str | None = None
    pattern_type: str = "ANY"
    principal: str | None = None
    host: str | None = None
    operation: str = "ANY"
    permission: str = "ANY"

    def __str__(self) -> str:
        return (
            ", ".join(
                f"{k}={v}"
                for k, v in (
                    ("resource_type", self.resource_type),
                    ("name", self.name),
                    ("pattern_type", self.pattern_type),
                    ("principal", self.principal),
                    ("host", self.host),
                    ("operation", self.operation),
                    ("permission", self.permission),
                )
                if v is not None and v != "ANY"
            )
            or "every ACL"
        )


class AdminConfig(_Common):
    """An Admin's config: the connection keys shared with WriterConfig and ReaderConfig."""


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerInfo:
    """One broker of the cluster, as metadata lists it."""

    node_id: int
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """The cluster: its id, the controller (-1 if not reported) and the brokers."""

    cluster_id: str | None
    controller_id: int
    brokers: tuple[BrokerInfo, ...]


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    """A partition's leader (-1: none), its replicas and in-sync replicas (broker ids)."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic and its partitions, in partition order."""

    name: str
    partitions: tuple[PartitionDescription, ...]

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0

    @property
    def internal(self) -> bool:
        """Kafka's own topics (`__consumer_offsets`, `__transaction_state`, ...)."""
        return self.name.startswith("__")


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """One config of a topic: its value (None when sensitive), and where it comes from."""

    name: str
    value: str | None
    is_default: bool
    is_read_only: bool
    is_sensitive: bool
    source: str
    """librdkafka's ConfigSource name, e.g. DYNAMIC_TOPIC_CONFIG or DEFAULT_CONFIG."""


@dataclass(frozen=True, slots=True)
class GroupListing:
    """A consumer group as listed: its id and state (e.g. STABLE, EMPTY; None if unknown), and
    its protocol: type CLASSIC (JoinGroup/SyncGroup) or CONSUMER (KIP-848); None if unknown."""

    group_id: str
    state: str | None
    is_simple: bool
    type: str | None = None


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A member of a group and the partitions assigned to it."""

    member_id: str
    client_id: str
    host: str
    assignment: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group's state, partition assignor, coordinator (broker id) and members.

    Apache Kafka and the embedded broker describe a group that does not exist as state DEAD
    with no members (Kafka 4 may answer GROUP_ID_NOT_FOUND instead: UnknownGroupError).
    """

    group_id: str
    state: str | None
    assignor: str | None
    coordinator: int | None
    members: tuple[GroupMember, ...]
    type: str | None = None
    """CLASSIC or CONSUMER (KIP-848: the broker assigns, states ASSIGNING and RECONCILING)."""


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """A group's progress on one partition: committed offset (None: nothing committed),
    the partition's end offset, and the member that owns it now (client id, if any)."""

    topic: str
    partition: int
    committed: int | None
    end_offset: int
    member: str | None

    @property
    def lag(self) -> int | None:
        """Records not consumed yet; None when the group committed nothing here."""
        return None if self.committed is None else max(self.end_offset - self.committed, 0)


# -- the client ------------------------------------------------------------------------------


def build_admin_config(
    config: _Common | Mapping[str, Any] | None,
    *,
    brokers: Sequence[str] | str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> _Common:
    """Any of the library's configs (WriterConfig, ReaderConfig, AdminConfig) or a dict of the
    seed's connection keys, with keyword overrides applied."""
    if isinstance(config, _Common):
        base = config
    else:
        data = dict(config or {})
        # A reader's or writer's dict is fine: only the connection keys matter here.
        for role_key in ("group_id", "key", "min_bytes", "max_bytes", "commit_interval"):
            data.pop(role_key, None)
        for role_key in ("initial_offsets", "ack_on_consume"):
            data.pop(role_key, None)
        base = AdminConfig.from_dict(data)
    extra = {**base.settings, **settings} if settings else None
    return base.merged(brokers=brokers, settings=extra)


PROBE_SLICE_S = 0.5
"""A metadata request waits in slices this long, so refused credentials end it at once."""


def metadata_in_slices(
    call: Callable[[float], T],
    *,
    timeout_s: float,
    errors: ErrorTracker,
    serve: Callable[[], object],
) -> T:
    """`call(slice_s)` (a librdkafka metadata request) retried in short slices up to
    `timeout_s`, stopping early when the error callback reports an authentication failure.

    librdkafka reports refused credentials only through `error_cb` and lets the request run
    to its timeout; asking in slices ends a wrong password within a second instead. The last
    failure is re-raised (the caller turns it into a typed error, reading `errors`).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        started = time.monotonic()
        slice_s = max(0.05, min(PROBE_SLICE_S, deadline - started))
        try:
            return call(slice_s)
        except Exception:  # confluent_kafka.KafkaException: the edge of librdkafka
            serve()  # error_cb runs only when the client's queue is served
            if errors.auth_failure() is not None or deadline - time.monotonic() <= 0:
                raise
            # a quick refusal (connection refused) must not spin: wait out the slice
            time.sleep(
                max(0.0, min(slice_s, deadline - time.monotonic()) - (time.monotonic() - started))
            )


class Admin:
    """Administers a Kafka cluster: topics, partitions, configs, groups, offsets.

    `config` is a WriterConfig, ReaderConfig, AdminConfig or a dict of the seed's keys;
    `brokers` and `settings` (librdkafka settings, passed through) override it; `timeout_s`
    overrides `client.timeout` for every request. The brokers are asked for metadata at once
    (with the `client.retry` delays), so a wrong address or refused credentials fail here:
    BrokerUnreachableError, AuthenticationError.
    """

    def __init__(
        self,
        config: _Common | Mapping[str, Any] | None = None,
        *,
        brokers: Sequence[str] | str | None = None,
        settings: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.config = build_admin_config(config, brokers=brokers, settings=settings)
        self.timeout_s = float(timeout_s if timeout_s is not None else self.config.client.timeout)
        self.bootstrap, conf = connection_settings(self.config)
        # Looking at a topic must never create it; an explicit setting still wins.
        conf.setdefault("allow.auto.create.topics", False)
        self._settings = dict(conf)
        """The librdkafka settings, for the requests kafkito speaks itself (txn_admin)."""
        self._steered: dict[str, AdminClient] = {}
        """Clients that reached one broker each (host:port), for _await_ready_at."""
        self._errors = ErrorTracker()
        conf["error_cb"] = self._errors
        try:
            self._admin = AdminClient(conf)
        except (confluent_kafka.KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"librdkafka refused the admin settings: {exc}") from None
        self.closed = False
        connect_with_retry(
            lambda timeout_s: metadata_in_slices(
                lambda slice_s: self._admin.list_topics(timeout=slice_s),
                timeout_s=timeout_s,
                errors=self._errors,
                serve=lambda: self._admin.poll(0),
            ),
            bootstrap=self.bootstrap,
            timeout_s=self.timeout_s,
            delays_s=self.config.client.retry_delays_s,
            errors=self._errors,
            serve=lambda: self._admin.poll(0),
        )

    # -- plumbing --------------------------------------------------------------------------

    def _fail(self, exc: BaseException, action: str, **where: str | None) -> ClientError:
        """The typed error for a failed call (KafkaException, a timeout, a bad argument)."""
        if isinstance(exc, ClientError):
            return exc
        if isinstance(exc, confluent_kafka.KafkaException) and exc.args:
            return from_admin_error(exc.args[0], action=action, bootstrap=self.bootstrap, **where)
        if isinstance(exc, concurrent.futures.TimeoutError | TimeoutError):
            return BrokerUnreachableError(
                f"{action} failed: no answer from the brokers at {self.bootstrap} within "
                f"{self.timeout_s:g}s; check that they run, or raise client.timeout",
                brokers=self.bootstrap,
                attempts=1,
            )
        return ClientError(f"{action} failed: {exc}")

    def _result(self, future: concurrent.futures.Future[T], action: str, **where: str | None) -> T:
        try:
            return future.result(self.timeout_s + _RESULT_MARGIN_S)
        except Exception as exc:  # confluent_kafka.KafkaException: the edge of librdkafka
            raise self._fail(exc, action, **where) from None

    def _do(self, action: str, call: Callable[[], T], **where: str | None) -> T:
        """Run one librdkafka admin call that may raise synchronously (bad arguments)."""
        if self.closed:
            raise ClientError(f"{action} failed: the admin client is closed")
        try:
            return call()
        except Exception as exc:
            raise self._fail(exc, action, **where) from None

    @property
    def _timeouts(self) -> dict[str, float]:
        return {"request_timeout": self.timeout_s}

    def _metadata(self, topic: str | None = None) -> Any:
        action = f"describe topic {topic!r}" if topic else "list topics"
        return self._do(
            action,
            lambda: self._admin.list_topics(topic, timeout=self.timeout_s),
            topic=topic,
        )

    # -- cluster and topics ----------------------------------------------------------------

    def describe_cluster(self) -> ClusterInfo:
        """The cluster id, the controller and the brokers (from metadata)."""
        meta = self._metadata()
        brokers = tuple(
            BrokerInfo(b.id, b.host, b.port) for b in sorted(meta.brokers.values(), key=_node)
        )
        return ClusterInfo(meta.cluster_id, meta.controller_id, brokers)

    def list_topics(self, *, internal: bool = False) -> list[TopicDescription]:
        """Every topic (Kafka's internal ones too with `internal=True`), sorted by name."""
        meta = self._metadata()
        out = [
            _topic(name, tmeta)
            for name, tmeta in sorted(meta.topics.items())
            if tmeta.error is None and (internal or not name.startswith("__"))
        ]
        return out

    def describe_topic(self, topic: str) -> TopicDescription:
        """One topic's partitions, leaders and replicas; UnknownTopicError if it is missing."""
        tmeta = self._metadata(topic).topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            reason = tmeta.error.name() if tmeta is not None and tmeta.error else "not listed"
            raise UnknownTopicError(
                f"describe topic {topic!r} failed: topic {topic!r} does not exist ({reason})",
                reason=str(reason),
                topic=topic,
            )
        return _topic(topic, tmeta)

    def partitions(self, topic: str) -> list[int]:
        """The partition numbers of `topic`, ascending; UnknownTopicError if it is missing."""
        return [p.partition for p in self.describe_topic(topic).partitions]

    def create_topic(
        self,
        topic: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> bool:
        """Create `topic`; returns False if it existed and `if_not_exists`, else True.

        `replication_factor` None takes the cluster's default (1 on the embedded broker).
        Raises TopicExistsError, InvalidRequestError (bad partitions, factor or config).
        """
        created = self.create_topics(
            [topic],
            partitions=partitions,
            replication_factor=replication_factor,
            configs=configs,
            if_not_exists=if_not_exists,
        )
        return topic in created

    def create_topics(
        self,
        topics: Iterable[str],
        partitions: int = 1,
        replication_factor: int | None = None,
        configs: Mapping[str, str] | None = None,
        *,
        if_not_exists: bool = False,
    ) -> list[str]:
        """Create several topics alike; returns those created (see create_topic)."""
        names = list(dict.fromkeys(topics))
        if not names:
            return []
        new = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=-1 if replication_factor is None else replication_factor,
                config=dict(configs or {}),
            )
            for name in names
        ]
        action = f"create topic(s) {', '.join(map(repr, names))}"
        futures = self._do(
            action,
            lambda: self._admin.create_topics(
                new, operation_timeout=self.timeout_s, **self._timeouts
            ),
        )
        created: list[str] = []
        existing: list[str] = []
        first_error: ClientError | None = None
        for name in names:
            try:
                self._result(futures[name], f"create topic {name!r}", topic=name)
            except TopicExistsError as exc:
                if if_not_exists:
                    existing.append(name)
                else:
                    first_error = first_error or exc
                continue
            except ClientError as exc:
                first_error = first_error or exc
                continue
            created.append(name)
        # a topic found existing may have been created a moment ago by another instance (two
        # flows starting together create the same retry topics): it is waited for alike
        if created or existing:
            self._await_ready(created + existing)
        if first_error is not None:
            raise first_error
        return created

    def _await_ready(self, topics: list[str]) -> None:
        """Wait (up to `timeout_s`) until every broker's metadata lists `topics` with a leader
        per partition.

        Apache Kafka (KRaft) answers CreateTopics once its controller has the topic; the brokers
        learn of it a moment later, each at its own pace. A consumer subscribing in that moment
        asks one of them, finds no topic, and librdkafka looks again only at its next periodic
        metadata refresh (`topic.metadata.refresh.interval.ms`, 5 minutes by default): a flow's
        retry topics, created just before it subscribed, stayed unread for a whole test on a
        loaded 3-broker cluster. So a topic we say is created is known to every broker.
        """
        deadline = time.monotonic() + self.timeout_s
        try:
            while True:
                meta = self._admin.list_topics(timeout=max(0.1, deadline - time.monotonic()))
                if _lists(meta, topics):
                    break
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            answered = _address(meta.orig_broker_name)
            for broker in meta.brokers.values():
                address = f"{broker.host}:{broker.port}"
                if address != answered:
                    self._await_ready_at(address, topics, deadline)
        except confluent_kafka.KafkaException:
            return  # the topics were created; describing them is the next call's business

    def _await_ready_at(self, address: str, topics: list[str], deadline: float) -> None:
        """Wait until the broker at `address` lists `topics`. librdkafka sends a request to
        whichever broker it likes; a client bootstrapped from `address` alone mostly starts
        there, so fresh ones are made until one answers from there (`_STEER_TRIES` at most,
        then that broker is left unchecked)."""
        client = self._steered.pop(address, None)
        misses = 0
        while time.monotonic() < deadline:
            client = client or AdminClient({**self._settings, "bootstrap.servers": address})
            meta = client.list_topics(timeout=max(0.1, deadline - time.monotonic()))
            if _address(meta.orig_broker_name) != address:
                client = None
                misses += 1
                if misses >= _STEER_TRIES:
                    return
            elif _lists(meta, topics):
                self._steered[address] = client  # it stays with that broker: kept for next time
                return
            else:
                time.sleep(0.05)

    def delete_topics(self, *topics: str) -> None:
        """Delete topics and all their records; UnknownTopicError names a missing one."""
        names = list(dict.fromkeys(topics))
        if not names:
            return
        futures = self._do(
            "delete topics",
            lambda: self._admin.delete_topics(
                names, operation_timeout=self.timeout_s, **self._timeouts
            ),
        )
        for name in names:
            self._result(futures[name], f"delete topic {name!r}", topic=name)

    def create_partitions(self, topic: str, total: int) -> None:
        """Grow `topic` to `total` partitions (Kafka never shrinks a topic)."""
        action = f"grow topic {topic!r} to {total} partitions"
        futures = self._do(
            action,
            lambda: self._admin.create_partitions(
                [NewPartitions(topic, total)],
                operation_timeout=self.timeout_s,
                **self._timeouts,
            ),
            topic=topic,
        )
        self._result(futures[topic], action, topic=topic)

    # -- configs ---------------------------------------------------------------------------

    def describe_configs(self, topic: str) -> dict[str, ConfigValue]:
        """Every config of `topic` (defaults included), by name."""
        resource = ConfigResource(ResourceType.TOPIC, topic)
        action = f"describe configs of topic {topic!r}"
        futures = self._do(
            action, lambda: self._admin.describe_configs([resource], **self._timeouts)
        )
        entries = self._result(futures[resource], action, topic=topic)
        return {
            name: ConfigValue(
                name,
                entry.value,
                bool(entry.is_default),
                bool(entry.is_read_only),
                bool(entry.is_sensitive),
                _config_source(entry.source),
            )
            for name, entry in sorted(entries.items())
        }

    def alter_configs(
        self,
        topic: str,
        set: Mapping[str, str] | None = None,
        delete: Iterable[str] = (),
    ) -> None:
        """Change configs of `topic` incrementally: `set` these, reset `delete` to default.

        Other configs stay as they are (IncrementalAlterConfigs, not the legacy AlterConfigs
        that replaces the whole set).
        """
        entries = [
            ConfigEntry(k, str(v), incremental_operation=AlterConfigOpType.SET)
            for k, v in (set or {}).items()
        ]
        entries += [
            ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in delete
        ]
        if not entries:
            return
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
        action = f"alter configs of topic {topic!r}"
        futures = self._do(
            action, lambda: self._admin.incremental_alter_configs([resource], **self._timeouts)
        )
        self._result(futures[resource], action, topic=topic)

    # -- offsets ---------------------------------------------------------------------------

    def list_offsets(
        self, topic: str, at: OffsetAt = "latest", partitions: Iterable[int] | None = None
    ) -> dict[int, int | None]:
        """Per partition: the earliest offset, the latest (the next to be written), or the
        first offset whose timestamp is at or after `at` ms (None: no such record yet)."""
        wanted = list(partitions) if partitions is not None else self.partitions(topic)
        found = self.list_offsets_many({(topic, p) for p in wanted}, at)
        return {p: found[(topic, p)] for p in sorted(wanted)}

    def list_offsets_many(
        self, partitions: Iterable[tuple[str, int]], at: OffsetAt = "latest"
    ) -> dict[tuple[str, int], int | None]:
        """list_offsets for (topic, partition) pairs of any topics, in one request per leader."""
        if at == "earliest":
            spec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
        elif at == "latest":
            spec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        elif isinstance(at, int) and not isinstance(at, bool):
            spec = OffsetSpec.for_timestamp(at)
        else:
            raise ConfigError(f"offsets are 'earliest', 'latest' or a time in ms, not {at!r}")
        wanted = sorted(set(partitions))
        if not wanted:
            return {}
        request = {confluent_kafka.TopicPartition(t, p): spec for t, p in wanted}
        futures = self._do(
            "list offsets", lambda: self._admin.list_offsets(request, **self._timeouts)
        )
        out: dict[tuple[str, int], int | None] = {}
        for tp, future in futures.items():
            info = self._result(
                future, f"list offsets of {tp.topic}[{tp.partition}]", topic=tp.topic
            )
            out[(tp.topic, tp.partition)] = info.offset if info.offset >= 0 else None
        return out

    def watermarks(
        self, partitions: Iterable[tuple[str, int]]
    ) -> dict[tuple[str, int], tuple[int, int]]:
        """(earliest, latest) offsets of each (topic, partition): two requests per leader."""
        wanted = list(partitions)
        low = self.list_offsets_many(wanted, "earliest")
        high = self.list_offsets_many(wanted, "latest")
        return {tp: (low[tp] or 0, high[tp] or 0) for tp in sorted(set(wanted))}

    def delete_records(self, topic: str, before: Mapping[int, int]) -> dict[int, int]:
        """Delete the records of each partition below the given offset (-1: all of them);
        returns each partition's new earliest offset."""
        request = [confluent_kafka.TopicPartition(topic, p, o) for p, o in sorted(before.items())]
        if not request:
            return {}
        action = f"delete records of topic {topic!r}"
        futures = self._do(
            action,
            lambda: self._admin.delete_records(
                request, operation_timeout=self.timeout_s, **self._timeouts
            ),
            topic=topic,
        )
        out = {}
        for tp, future in futures.items():
            deleted = self._result(future, f"{action} in partition {tp.partition}", topic=topic)
            out[tp.partition] = int(deleted.low_watermark)
        return dict(sorted(out.items()))

    # -- consumer groups -------------------------------------------------------------------

    def list_groups(self) -> list[GroupListing]:
        """Every consumer group with its state, sorted by id."""
        future = self._do("list groups", lambda: self._admin.list_consumer_groups(**self._timeouts))
        result = self._result(future, "list groups")
        for error in result.errors:
            log.warning("list groups: one broker failed: %s", error)
        return sorted(
            (
                GroupListing(
                    g.group_id,
                    _enum_name(g.state) or None,
                    bool(g.is_simple_consumer_group),
                    _enum_name(getattr(g, "type", None)) or None,
                )
                for g in result.valid
            ),
            key=lambda g: g.group_id,
        )

    def describe_group(self, group: str) -> GroupDescription:
        """The group's state, assignor, coordinator and members with their partitions."""
        action = f"describe group {group!r}"
        futures = self._do(
            action,
            lambda: self._admin.describe_consumer_groups([group], **self._timeouts),
            group=group,
        )
        described = self._result(futures[group], action, group=group)
        members = []
        for m in described.members:
            assigned = m.assignment.topic_partitions if m.assignment else []
            members.append(
                GroupMember(
                    m.member_id,
                    m.client_id,
                    m.host,
                    tuple(sorted((tp.topic, tp.partition) for tp in assigned)),
                )
            )
        coordinator = described.coordinator.id if described.coordinator is not None else None
        return GroupDescription(
            group,
            _enum_name(described.state) or None,
            described.partition_assignor or None,
            coordinator,
            tuple(members),
            _enum_name(getattr(described, "type", None)) or None,
        )

    def group_offsets(self, group: str) -> dict[tuple[str, int], int]:
        """The group's committed offsets by (topic, partition); empty if it committed none."""
        action = f"fetch committed offsets of group {group!r}"
        request = [confluent_kafka.ConsumerGroupTopicPartitions(group)]
        futures = self._do(
            action,
            lambda: self._admin.list_consumer_group_offsets(request, **self._timeouts),
            group=group,
        )
        result = self._result(futures[group], action, group=group)
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in sorted(result.topic_partitions, key=lambda tp: (tp.topic, tp.partition))
            if tp.offset >= 0 and tp.error is None
        }

    def group_lag(self, group: str) -> list[PartitionLag]:
        """Per partition the group owns or committed to: committed, end offset, lag, owner.

        Raises UnknownGroupError when the group has neither members nor committed offsets.
        """
        description = self.describe_group(group)
        committed = self.group_offsets(group)
        owners: dict[tuple[str, int], str] = {}
        for member in description.members:
            for tp in member.assignment:
                owners[tp] = member.client_id or member.member_id
        keys = sorted(set(committed) | set(owners))
        if not keys:
            if description.state in (None, "DEAD", "UNKNOWN") and not description.members:
                raise UnknownGroupError(
                    f"group lag of {group!r} failed: no consumer group {group!r}",
                    reason="GROUP_ID_NOT_FOUND",
                )
            return []
        ends = self.list_offsets_many(keys, "latest")
        return [
            PartitionLag(t, p, committed.get((t, p)), ends[(t, p)] or 0, owners.get((t, p)))
            for t, p in keys
        ]

    def alter_group_offsets(self, group: str, offsets: Mapping[tuple[str, int], int]) -> None:
        """Set the group's committed offsets (the group must have no active members)."""
        if not offsets:
            return
        action = f"set committed offsets of group {group!r}"
        request = [
            confluent_kafka.ConsumerGroupTopicPartitions(
                group,
                [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in sorted(offsets.items())],
            )
        ]
        futures = self._do(
            action,
            lambda: self._admin.alter_consumer_group_offsets(request, **self._timeouts),
            group=group,
        )
        result = self._result(futures[group], action, group=group)
        for tp in result.topic_partitions:
            if tp.error is not None:
                raise from_admin_error(
                    tp.error,
                    action=f"{action} on {tp.topic}[{tp.partition}]",
                    bootstrap=self.bootstrap,
                    topic=tp.topic,
                    group=group,
                )

    def delete_groups(self, *groups: str) -> None:
        """Delete consumer groups and their committed offsets (they must have no members)."""
        names = list(dict.fromkeys(groups))
        if not names:
            return
        futures = self._do(
            "delete groups",
            lambda: self._admin.delete_consumer_groups(names, **self._timeouts),
        )
        for name in names:
            self._result(futures[name], f"delete group {name!r}", group=name)

    # -- transactions (requests librdkafka lacks: client/txn_admin.py speaks them) ----------

    def list_transactions(
        self,
        *,
        states: Iterable[str] = (),
        producer_ids: Iterable[int] = (),
        min_duration_ms: int | None = None,
    ) -> list[txn_admin.TransactionListing]:
        """Transactional ids known to the cluster's coordinators, sorted; `states` (Kafka's
        names, e.g. "Ongoing") and `producer_ids` filter (empty: all); `min_duration_ms`
        keeps transactions open at least that long (Kafka 3.8+).

        Raises ConfigError (unknown state), BrokerUnreachableError, AdminError.
        """
        if self.closed:
            raise ClientError("list transactions failed: the admin client is closed")
        brokers = [(b.node_id, f"{b.host}:{b.port}") for b in self.describe_cluster().brokers]
        return txn_admin.list_transactions(
            self._settings,
            brokers,
            states=states,
            producer_ids=producer_ids,
            min_duration_ms=min_duration_ms,
            timeout_s=self.timeout_s,
        )

    def describe_transactions(
        self, *transactional_ids: str
    ) -> list[txn_admin.TransactionDescription]:
        """The current transaction of each id (state, timeout, start, partitions), in order.

        Raises UnknownTransactionError (an id no coordinator knows), BrokerUnreachableError,
        AdminError.
        """
        if self.closed:
            raise ClientError("describe transactions failed: the admin client is closed")
        return txn_admin.describe_transactions(
            self._settings, transactional_ids, timeout_s=self.timeout_s
        )

    def describe_producers(
        self, topic: str, partitions: Iterable[int] | None = None
    ) -> list[txn_admin.ProducerState]:
        """The producers each partition's leader keeps state for (all partitions if None):
        epoch, last sequence and timestamp, and the start offset of an open transaction.

        Raises UnknownTopicError (no such topic or partition), BrokerUnreachableError,
        AdminError.
        """
        wanted = None if partitions is None else sorted(set(partitions))

        def locate() -> dict[int, tuple[int, str]]:
            described = self.describe_topic(topic)
            hosts = {b.node_id: f"{b.host}:{b.port}" for b in self.describe_cluster().brokers}
            by_partition = {p.partition: p.leader for p in described.partitions}
            out = {}
            for partition in by_partition if wanted is None else wanted:
                if partition not in by_partition:
                    raise UnknownTopicError(
                        f"describe producers failed: topic {topic!r} has no partition "
                        f"{partition} (it has {len(by_partition)})",
                        reason="UNKNOWN_TOPIC_OR_PARTITION",
                        topic=topic,
                    )
                leader = by_partition[partition]
                if leader not in hosts:  # being elected: txn_admin asks again
                    raise txn_admin.Retriable(f"{topic}[{partition}] has no leader")
                out[partition] = (leader, hosts[leader])
            return out

        return txn_admin.describe_producers(self._settings, topic, locate, timeout_s=self.timeout_s)

    # -- ACLs ------------------------------------------------------------------------------

    def create_acls(self, *acls: Acl) -> None:
        """Create ACLs (an ACL that exists already is no change). Needs ALTER on the cluster;
        a broker without an authorizer refuses with SECURITY_DISABLED (AdminError)."""
        if not acls:
            return
        bindings = [_binding(acl) for acl in acls]
        futures = self._do(
            "create ACLs", lambda: self._admin.create_acls(bindings, **self._timeouts)
        )
        for acl, binding in zip(acls, bindings, strict=True):
            self._result(futures[binding], f"create ACL {acl}")

    def describe_acls(self, wanted: AclFilter | None = None) -> list[Acl]:
        """The ACLs that match `wanted` (every ACL by default). Needs DESCRIBE on the cluster:
        AuthorizationError(CLUSTER_AUTHORIZATION_FAILED) without it.

        librdkafka answers a refused DescribeAcls with an empty list instead of its error
        (CLUSTER_AUTHORIZATION_FAILED, or SECURITY_DISABLED on a broker without an
        authorizer), so the cluster's authorized operations are asked first: a principal that
        may not describe the cluster gets the error, not a misleading "no ACLs". A broker
        without an authorizer still answers an empty list."""
        cluster = self._result(
            self._do(
                "describe ACLs",
                lambda: self._admin.describe_cluster(
                    include_authorized_operations=True, **self._timeouts
                ),
            ),
            "describe ACLs",
        )
        if "DESCRIBE" not in {_enum_name(op) for op in cluster.authorized_operations or ()}:
            raise AuthorizationError(
                "describe ACLs failed (CLUSTER_AUTHORIZATION_FAILED: this principal may not "
                "describe the cluster); a super user, or an ACL allowing DESCRIBE on the "
                "cluster, may list ACLs",
                reason="CLUSTER_AUTHORIZATION_FAILED",
            )
        found = self._result(
            self._do(
                "describe ACLs",
                lambda: self._admin.describe_acls(
                    _binding_filter(wanted or AclFilter()), **self._timeouts
                ),
            ),
            "describe ACLs",
        )
        return [_acl_of(binding) for binding in found]

    def delete_acls(self, *filters: AclFilter) -> list[Acl]:
        """Delete the ACLs each filter matches; returns those deleted. Needs ALTER on the
        cluster. A filter with every field None matches every ACL."""
        if not filters:
            return []
        native = [_binding_filter(f) for f in filters]
        futures = self._do("delete ACLs", lambda: self._admin.delete_acls(native, **self._timeouts))
        deleted: dict[Acl, None] = {}
        for f, binding in zip(filters, native, strict=True):
            for found in self._result(futures[binding], f"delete ACLs matching {f}"):
                deleted[_acl_of(found)] = None
        return list(deleted)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Release the AdminClient and its connections. Idempotent."""
        if not self.closed:
            self.closed = True
            del self._admin
            self._steered.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Admin(bootstrap={self.bootstrap!r})"


_RESOURCE_TYPES = {"CLUSTER": "BROKER"}
"""confluent-kafka calls Kafka's CLUSTER resource type BROKER (the same wire value, 4)."""


def _binding(acl: Acl) -> Any:
    try:
        return AclBinding(
            _RESOURCE_TYPES.get(acl.resource_type, acl.resource_type),
            acl.name,
            acl.pattern_type,
            acl.principal,
            acl.host,
            acl.operation,
            acl.permission,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"invalid ACL {acl}: {exc}") from None


def _binding_filter(wanted: AclFilter) -> Any:
    make: Any = AclBindingFilter  # its stubs say str where None (any) is accepted
    try:
        return make(
            _RESOURCE_TYPES.get(wanted.resource_type, wanted.resource_type),
            wanted.name,
            wanted.pattern_type,
            wanted.principal,
            wanted.host,
            wanted.operation,
            wanted.permission,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"invalid ACL filter {wanted}: {exc}") from None


def _acl_of(binding: Any) -> Acl:
    rtype = _enum_name(binding.restype)
    return Acl(
        "CLUSTER" if rtype == "BROKER" else rtype,
        str(binding.name),
        _enum_name(binding.resource_pattern_type),
        str(binding.principal),
        str(binding.host),
        _enum_name(binding.operation),
        _enum_name(binding.permission_type),
    )


def _node(broker: Any) -> int:
    return int(broker.id)


_STEER_TRIES = 20
"""Fresh clients made to reach one broker of a cluster before giving up on it."""


def _address(broker_name: str | None) -> str:
    """The host:port of a librdkafka broker name ("host:port/1", "host:port/bootstrap")."""
    return (broker_name or "").rpartition("/")[0]


def _lists(meta: Any, topics: list[str]) -> bool:
    """Whether cluster metadata lists every one of `topics` with a leader per partition."""
    found = [meta.topics.get(name) for name in topics]
    return all(
        t is not None
        and t.error is None
        and bool(t.partitions)
        and all(p.leader >= 0 for p in t.partitions.values())
        for t in found
    )


def _topic(name: str, tmeta: Any) -> TopicDescription:
    return TopicDescription(
        name,
        tuple(
            PartitionDescription(
                p, pm.leader, tuple(pm.replicas), tuple(getattr(pm, "isrs", ()) or ())
            )
            for p, pm in sorted(tmeta.partitions.items())
        ),
    )


def _config_source(value: Any) -> str:
    try:
        return str(ConfigSource(value).name)
    except ValueError:
        return str(value)


def _enum_name(value: Any) -> str:
    if value is None:
        return ""
    return str(getattr(value, "name", value))
