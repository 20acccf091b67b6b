"""The flow's records and its state per partition, shared by the modules of flow/.

`Record` is what a handler sees; `Work` one record off the fast path (being retried,
dead-lettered, or run by an async or batch handler); `PartitionState` what the flow keeps per
assigned partition. `log` is the flow's one logger: its name, kafkito.flow.runner, is what
users configure, whichever module of the flow logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from kafkito.errors import KafkitoError
from kafkito.flow import letters
from kafkito.flow.exactly_once import HeldOutputs
from kafkito.flow.tracker import TP, Chunk, PartitionTracker

log = logging.getLogger("kafkito.flow.runner")

T = TypeVar("T")
Ordering = Literal["key", "partition", "none"]

COARSE_BELOW_S = 100e-6
"""Under ordering="key", a sync handler faster than this per record (measured) gets coarse
chunks: a fast handler holds the GIL, so running keys in parallel gains nothing and costs a
chunk, a tracker entry and a scheduler turn per key."""
SPLIT_AFTER_S = 0.05
"""A coarse chunk that has run this long, slower than COARSE_BELOW_S per record, is split by key
(its keys go on in parallel)."""


class FlowError(KafkitoError):
    """The flow cannot run as configured, or its consumer failed for good."""


@dataclass(slots=True)
class Record(Generic[T]):
    """One record as a handler sees it."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: T
    headers: dict[str, bytes | None]
    raw_value: bytes | None
    attempt: int
    """1 for the first try; counts tries across retry topics too."""


@dataclass(slots=True)
class Work:
    """One record off the fast path: a failure being retried or dead-lettered, a record of an
    async or batch handler. Built from its chunk when needed."""

    tp: TP
    generation: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    raw_value: bytes | None
    headers: list[tuple[str, bytes | None]]
    attempt: int
    source_topic: str
    """The flow's own topic this record belongs to (for retry records: the original topic)."""
    chunk: Chunk
    message: Any
    """The confluent_kafka.Message it came from."""
    resolved: bool = False

    @classmethod
    def of(cls, chunk: Chunk, index: int) -> Work:
        msg = chunk.messages[index]
        return cls(
            chunk.tp,
            chunk.generation,
            msg.offset(),
            msg.timestamp()[1],
            msg.key(),
            msg.value(),
            msg.headers() or [],
            chunk.attempt,
            chunk.source,
            chunk,
            msg,
        )

    def origin(self) -> letters.Origin:
        """Where the record was first read (worked out only when it must move on)."""
        return letters.Origin.of(
            self.tp[0], self.tp[1], self.offset, self.timestamp_ms, self.headers
        )


@dataclass(slots=True)
class PartitionState:
    generation: int
    tracker: PartitionTracker = field(default_factory=PartitionTracker)
    pause_reasons: set[str] = field(default_factory=set)
    waiting_until_ms: int | None = None
    revoking: bool = False
    """Being revoked: a failed record is left for the next owner, not retried or split (what
    that would start could outlive the revoke)."""
    held: HeldOutputs = field(default_factory=HeldOutputs)
    """Outputs of handled records, written when their offsets are committed
    (flow/exactly_once.py)."""
    origin: int | None = None
    """Where this assignment started reading (its first record, or the offset a rewind went
    back to): what a rewind seeks to while nothing is committed yet."""
    split: object | None = None
    """Sync handler, ordering="key": None while the partition's records run in coarse chunks
    (the partition's records of a poll, in offset order); else a token new at each split, and
    its records run by key under (token, key) until the partition has nothing in flight."""


@dataclass(slots=True)
class ThreadBatch:
    """What a handler thread did in its current batch of keys, reported at its end."""

    durations: dict[str, list[float]] = field(default_factory=dict)
    results: list[tuple[Chunk, int, None]] = field(default_factory=list)


Failure = tuple[str, Exception, Any]
"""Why a record failed in a handler thread: ("decode" | "handle", the exception, the value);
or `RAN_LONG`."""
RAN_LONG: Failure = ("long", Exception("a coarse chunk ran long"), None)
"""A coarse chunk stopped because it ran long and slow: its rest is split by key."""
Stop = tuple[int, Failure]
"""How far a handler thread got with a chunk, and the failure that stopped it."""


def record_of(msg: Any, value: Any, attempt: int) -> Record[Any]:
    """The handler's Record for a confluent_kafka.Message."""
    return Record(
        msg.topic(),
        msg.partition(),
        msg.offset(),
        msg.timestamp()[1],
        msg.key(),
        value,
        dict(msg.headers() or ()),
        msg.value(),
        attempt,
    )


def unhandled(chunk: Chunk) -> int:
    """Records of the chunk a handler thread has still to run (the scheduler's unit of work)."""
    return len(chunk.messages) - chunk.cursor


def other_partition(tp: TP) -> Callable[[list[Chunk]], bool]:
    """A filter keeping the batches of partitions other than `tp`."""
    return lambda batch: batch[0].tp != tp
