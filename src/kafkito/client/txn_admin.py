"""Transaction admin: list and describe transactions, describe a partition's producers.

librdkafka has no API for ListTransactions (66), DescribeTransactions (65) or
DescribeProducers (61) (confluent-kafka 2.16's AdminClient neither), so this module sends
them itself over `kafkito.client.wire.BrokerConnection`, the connection the quota calls use
(same security settings), to the broker each request belongs to, as Kafka's own admin client
does:

* ListTransactions goes to **every** broker: each one answers for the transactional ids it
  coordinates (their `__transaction_state` partitions), and the lists are merged.
* DescribeTransactions goes to the id's **transaction coordinator**, found with
  FindCoordinator key_type 1 (v4: several ids in one request).
* DescribeProducers goes to each partition's **leader** (producer state lives with the log).

Retriable answers (a coordinator loading, moved or not yet elected; a leader that moved) are
asked again, coordinator looked up anew, until the deadline; the rest raise typed errors.

kio cannot decode DescribeTransactions' start time of a transaction that is not open (-1, a
negative timestamp), which both Kafka and kafkito send, so that answer is decoded here by
`decode_describe_transactions` (a pure function over the bytes after the header).

The `Admin` methods (`Admin.list_transactions`, `describe_transactions`,
`describe_producers`) are the public way in; they supply the brokers and leaders from
metadata.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kafkito.client.errors import AdminError, BrokerUnreachableError, ConfigError
from kafkito.client.wire import BrokerConnection
from kafkito.errors import KafkitoError

__all__ = [
    "TRANSACTION_STATES",
    "ProducerState",
    "Retriable",
    "TransactionDescription",
    "TransactionListing",
    "UnknownTransactionError",
    "decode_describe_transactions",
    "describe_producers",
    "describe_transactions",
    "list_transactions",
]

FIND_COORDINATOR, DESCRIBE_PRODUCERS, DESCRIBE_TRANSACTIONS, LIST_TRANSACTIONS = 10, 61, 65, 66
TRANSACTION_STATES = (
    "Empty",
    "Ongoing",
    "PrepareCommit",
    "PrepareAbort",
    "CompleteCommit",
    "CompleteAbort",
    "Dead",
    "PrepareEpochFence",
)
"""Kafka's transaction states, as ListTransactions filters and reports them."""
OPEN_STATES = frozenset({"Ongoing", "PrepareCommit", "PrepareAbort", "PrepareEpochFence"})
"""States in which a transaction holds read_committed readers back (its LSO)."""

_RETRY_DELAY_S = 0.1
_RETRIABLE = {
    14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE",
    16: "NOT_COORDINATOR",
    6: "NOT_LEADER_OR_FOLLOWER",
    5: "LEADER_NOT_AVAILABLE",
}
_NAMES = {
    3: "UNKNOWN_TOPIC_OR_PARTITION",
    29: "TOPIC_AUTHORIZATION_FAILED",
    53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    105: "TRANSACTIONAL_ID_NOT_FOUND",
    **_RETRIABLE,
}
_TRANSACTIONAL_ID_NOT_FOUND = 105
T = TypeVar("T")


class UnknownTransactionError(AdminError):
    """No transaction coordinator knows this transactional id (never used, or expired after
    `transactional.id.expiration.ms`)."""

    def __init__(self, message: str, *, transactional_id: str) -> None:
        super().__init__(message, reason="TRANSACTIONAL_ID_NOT_FOUND")
        self.transactional_id = transactional_id


@dataclass(frozen=True, slots=True)
class TransactionListing:
    """A transactional id as its coordinator lists it: producer id, state, coordinator id."""

    transactional_id: str
    producer_id: int
    state: str
    coordinator: int


@dataclass(frozen=True, slots=True)
class TransactionDescription:
    """A transactional id's current transaction, from its coordinator.

    `start_ms` (wall clock, ms) is when the current transaction started: None when none has
    (-1 on the wire); after it ends Apache Kafka keeps reporting the last one's start, kafkito
    -1. `partitions` are those of the open transaction (while it prepares: those still
    waiting for their marker).
    """

    transactional_id: str
    state: str
    timeout_ms: int
    start_ms: int | None
    producer_id: int
    producer_epoch: int
    partitions: tuple[tuple[str, int], ...]
    coordinator: int

    @property
    def is_open(self) -> bool:
        """Ongoing or preparing: read_committed readers of its partitions wait for it."""
        return self.state in OPEN_STATES

    def age_ms(self, now_ms: int | None = None) -> int | None:
        """How long the open transaction has run (None when none is open)."""
        if self.start_ms is None or not self.is_open:
            return None
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return max(0, now - self.start_ms)

    def expires_in_ms(self, now_ms: int | None = None) -> int | None:
        """Time left before the coordinator aborts it for its timeout (None when not open;
        negative: overdue, the abort is due at the coordinator's next check)."""
        age = self.age_ms(now_ms)
        return None if age is None else self.timeout_ms - age


@dataclass(frozen=True, slots=True)
class ProducerState:
    """A producer a partition's leader keeps state for (DescribeProducers).

    `last_timestamp_ms` is None when unknown; `txn_start_offset` is the first offset of its
    open transaction in this partition (None: no transaction open here); `coordinator_epoch`
    is the epoch of the coordinator that wrote its last marker here (-1: none yet).
    """

    topic: str
    partition: int
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp_ms: int | None
    coordinator_epoch: int
    txn_start_offset: int | None


# -- decoding --------------------------------------------------------------------------------


class _Bytes:
    """A cursor over a flexible-version answer; struct.error/IndexError on a short buffer."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def fixed(self, fmt: struct.Struct) -> Any:
        (value,) = fmt.unpack_from(self.data, self.at)
        self.at += fmt.size
        return value

    def uvarint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.data[self.at]
            self.at += 1
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise ValueError("varint longer than 5 bytes")

    def string(self) -> str:
        size = self.uvarint() - 1
        if size < 0:
            return ""
        end = self.at + size
        if end > len(self.data):
            raise IndexError("string runs past the answer")
        text = self.data[self.at : end].decode()
        self.at = end
        return text

    def count(self) -> int:
        size = self.uvarint() - 1
        if size > len(self.data):
            raise ValueError(f"array of {size} items in an answer of {len(self.data)} bytes")
        return max(size, 0)

    def skip_tags(self) -> None:
        for _ in range(self.uvarint()):
            self.uvarint()
            size = self.uvarint()
            self.at += size


_I16, _I32, _I64 = struct.Struct(">h"), struct.Struct(">i"), struct.Struct(">q")


@dataclass(frozen=True, slots=True)
class DescribedTransaction:
    """One entry of a DescribeTransactions v0 answer, as sent (start_ms -1 when not open)."""

    error_code: int
    transactional_id: str
    state: str
    timeout_ms: int
    start_ms: int
    producer_id: int
    producer_epoch: int
    partitions: tuple[tuple[str, int], ...]


def decode_describe_transactions(data: bytes) -> list[DescribedTransaction]:
    """The entries of a DescribeTransactions v0 answer (`data`: the bytes after the response
    header). Pure; ValueError on malformed bytes."""
    cursor = _Bytes(data)
    out = []
    try:
        cursor.fixed(_I32)  # throttle_time_ms
        for _ in range(cursor.count()):
            error_code = cursor.fixed(_I16)
            transactional_id = cursor.string()
            state = cursor.string()
            timeout_ms = cursor.fixed(_I32)
            start_ms = cursor.fixed(_I64)
            producer_id = cursor.fixed(_I64)
            producer_epoch = cursor.fixed(_I16)
            partitions = []
            for _ in range(cursor.count()):
                topic = cursor.string()
                for _ in range(cursor.count()):
                    partitions.append((topic, int(cursor.fixed(_I32))))
                cursor.skip_tags()
            cursor.skip_tags()
            out.append(
                DescribedTransaction(
                    error_code,
                    transactional_id,
                    state,
                    timeout_ms,
                    start_ms,
                    producer_id,
                    producer_epoch,
                    tuple(sorted(partitions)),
                )
            )
        cursor.skip_tags()
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"malformed DescribeTransactions answer: {exc}") from exc
    if cursor.at != len(data):
        raise ValueError(f"{len(data) - cursor.at} bytes left after a DescribeTransactions answer")
    return out


# -- requests ---------------------------------------------------------------------------------


class Retriable(KafkitoError):
    """A retriable answer (a coordinator or leader moved or not ready): the calls here ask
    again, coordinator or leader looked up anew, until their deadline."""


def _with_retries(action: str, timeout_s: float, attempt: Callable[[float], T], brokers: str) -> T:
    """Run `attempt(remaining_s)` until it returns, retrying on Retriable until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        remaining = deadline - time.monotonic()
        try:
            return attempt(max(remaining, 0.5))
        except Retriable as exc:
            if time.monotonic() + _RETRY_DELAY_S >= deadline:
                raise BrokerUnreachableError(
                    f"{action} failed: {exc} until the {timeout_s:g}s timeout; retry later, "
                    "or raise client.timeout",
                    brokers=brokers,
                    attempts=1,
                ) from None
            time.sleep(_RETRY_DELAY_S)


def _name(code: int) -> str:
    return _NAMES.get(code, f"error {code}")


def _check_states(states: Iterable[str]) -> list[str]:
    wanted = list(states)
    for state in wanted:
        if state not in TRANSACTION_STATES:
            raise ConfigError(
                f"unknown transaction state {state!r} (one of {', '.join(TRANSACTION_STATES)})"
            )
    return wanted


def list_transactions(
    settings: Mapping[str, Any],
    brokers: Sequence[tuple[int, str]],
    *,
    states: Iterable[str] = (),
    producer_ids: Iterable[int] = (),
    min_duration_ms: int | None = None,
    timeout_s: float = 10.0,
) -> list[TransactionListing]:
    """Transactions of every broker in `brokers` ((node id, host:port) pairs), filtered by
    state names and producer ids (empty: all), and with `min_duration_ms` only those open at
    least that long (ListTransactions v1, Kafka 3.8+). Sorted by transactional id.

    Raises ConfigError (unknown state name), BrokerUnreachableError, AdminError.
    """
    state_filters = _check_states(states)
    pid_filters = [int(p) for p in producer_ids]
    body: dict[str, Any] = {"state_filters": state_filters, "producer_id_filters": pid_filters}
    version = 0
    if min_duration_ms is not None:
        if min_duration_ms < 0:
            raise ConfigError(f"min_duration_ms must be >= 0, not {min_duration_ms}")
        body["duration_filter"] = min_duration_ms
        version = 1
    rows: dict[str, TransactionListing] = {}
    for node_id, address in brokers:

        def attempt(remaining_s: float, node_id: int = node_id, address: str = address) -> Any:
            with BrokerConnection(
                settings, remaining_s, address=address, client_id="kafkito-admin"
            ) as connection:
                answer = connection.request(LIST_TRANSACTIONS, version, body)
            if answer.error_code in _RETRIABLE:
                code = _name(answer.error_code)
                raise Retriable(f"broker {node_id} at {address} answered {code}")
            if answer.error_code != 0:
                raise AdminError(
                    f"list transactions failed: broker {node_id} at {address} answered "
                    f"{_name(answer.error_code)}",
                    reason=_name(answer.error_code),
                )
            return answer

        answer = _with_retries("list transactions", timeout_s, attempt, address)
        for t in answer.transaction_states:
            rows[t.transactional_id] = TransactionListing(
                t.transactional_id, int(t.producer_id), t.transaction_state, node_id
            )
    return [rows[k] for k in sorted(rows)]


def _coordinators(
    connection: BrokerConnection, ids: Sequence[str]
) -> dict[str, tuple[int, str] | int]:
    """Each id's transaction coordinator (node id, host:port), or its error code."""
    answer = connection.request(FIND_COORDINATOR, 4, {"key_type": 1, "coordinator_keys": ids})
    out: dict[str, tuple[int, str] | int] = {}
    for c in answer.coordinators:
        if c.error_code != 0:
            out[c.key] = int(c.error_code)
        else:
            out[c.key] = (int(c.node_id), f"{c.host}:{c.port}")
    return out


def describe_transactions(
    settings: Mapping[str, Any], transactional_ids: Iterable[str], *, timeout_s: float = 10.0
) -> list[TransactionDescription]:
    """Each transactional id's transaction, from its coordinator, in the order asked.

    Raises UnknownTransactionError (an id no coordinator knows), BrokerUnreachableError,
    AdminError.
    """
    ids = list(dict.fromkeys(transactional_ids))
    for txn_id in ids:
        if not txn_id:
            raise ConfigError("a transactional id cannot be empty")
    found: dict[str, TransactionDescription] = {}

    def attempt(remaining_s: float) -> None:
        pending = [i for i in ids if i not in found]
        with BrokerConnection(settings, remaining_s, client_id="kafkito-admin") as bootstrap:
            where = _coordinators(bootstrap, pending)
        by_node: dict[tuple[int, str], list[str]] = {}
        retry = ""
        for txn_id in pending:
            place = where.get(txn_id, 15)
            if isinstance(place, int):
                if place not in _RETRIABLE:
                    raise AdminError(
                        f"describe transaction {txn_id!r} failed: finding its coordinator "
                        f"answered {_name(place)}",
                        reason=_name(place),
                    )
                retry = f"the coordinator of {txn_id!r}: {_name(place)}"
                continue
            by_node.setdefault(place, []).append(txn_id)
        for (node_id, address), some in by_node.items():
            with BrokerConnection(
                settings, remaining_s, address=address, client_id="kafkito-admin"
            ) as connection:
                data = connection.request_bytes(
                    DESCRIBE_TRANSACTIONS, 0, {"transactional_ids": some}
                )
            try:
                entries = decode_describe_transactions(data)
            except ValueError as exc:
                raise AdminError(f"describe transactions failed: broker {node_id}: {exc}") from exc
            for e in entries:
                if e.error_code == _TRANSACTIONAL_ID_NOT_FOUND:
                    raise UnknownTransactionError(
                        f"describe transaction {e.transactional_id!r} failed: no transaction "
                        "coordinator knows this transactional id",
                        transactional_id=e.transactional_id,
                    )
                if e.error_code in _RETRIABLE:
                    retry = f"broker {node_id} answered {_name(e.error_code)}"
                    continue
                if e.error_code != 0:
                    raise AdminError(
                        f"describe transaction {e.transactional_id!r} failed: "
                        f"{_name(e.error_code)}",
                        reason=_name(e.error_code),
                    )
                found[e.transactional_id] = TransactionDescription(
                    e.transactional_id,
                    e.state,
                    e.timeout_ms,
                    e.start_ms if e.start_ms >= 0 else None,
                    e.producer_id,
                    e.producer_epoch,
                    e.partitions,
                    node_id,
                )
        if retry:
            raise Retriable(retry)

    if ids:
        _with_retries(
            "describe transactions", timeout_s, attempt, str(settings.get("bootstrap.servers"))
        )
    return [found[i] for i in ids]


def describe_producers(
    settings: Mapping[str, Any],
    topic: str,
    locate: Callable[[], Mapping[int, tuple[int, str]]],
    *,
    timeout_s: float = 10.0,
) -> list[ProducerState]:
    """The producers of `topic`'s partitions, asked of each partition's leader; `locate()`
    maps the partitions wanted to (leader id, host:port), from fresh metadata (called again
    when a leader moved). Sorted by partition, then producer id.

    Raises BrokerUnreachableError, AdminError (the leader refused).
    """

    def attempt(remaining_s: float) -> list[ProducerState]:
        by_leader: dict[tuple[int, str], list[int]] = {}
        for partition, leader in sorted(locate().items()):
            by_leader.setdefault(leader, []).append(partition)
        out: list[ProducerState] = []
        for (node_id, address), partitions in by_leader.items():
            with BrokerConnection(
                settings, remaining_s, address=address, client_id="kafkito-admin"
            ) as connection:
                answer = connection.request(
                    DESCRIBE_PRODUCERS,
                    0,
                    {"topics": [{"name": topic, "partition_indexes": partitions}]},
                )
            for t in answer.topics:
                for p in t.partitions:
                    out.extend(_producers(t.name, p, node_id))
        return sorted(out, key=lambda s: (s.partition, s.producer_id))

    return _with_retries(
        f"describe producers of {topic!r}",
        timeout_s,
        attempt,
        str(settings.get("bootstrap.servers")),
    )


def _producers(topic: str, p: Any, node_id: int) -> list[ProducerState]:
    """One partition of a DescribeProducers answer; Retriable if its leader moved."""
    code = int(p.error_code)
    where = f"{topic}[{p.partition_index}]"
    if code in _RETRIABLE:
        raise Retriable(f"broker {node_id} answered {_name(code)} for {where}")
    if code != 0:
        raise AdminError(
            f"describe producers of {where} failed: broker {node_id} answered {_name(code)}",
            reason=_name(code),
        )
    return [
        ProducerState(
            topic,
            int(p.partition_index),
            int(a.producer_id),
            int(a.producer_epoch),
            int(a.last_sequence),
            int(a.last_timestamp) if a.last_timestamp >= 0 else None,
            int(a.coordinator_epoch),
            int(a.current_txn_start_offset) if a.current_txn_start_offset >= 0 else None,
        )
        for a in p.active_producers
    ]
