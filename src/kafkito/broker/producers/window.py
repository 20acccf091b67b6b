"""One partition's idempotent-producer state: per producer id, its epoch and the window of its
last five batches, and the sequence checks of a produced batch (the table in
kafkito.broker.producers). Pure data and rules: no I/O, no clock (callers pass times).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kafkito.errors import BrokerError, ErrorCode

NUM_BATCHES_TO_RETAIN = 5
"""Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN; clients cap max.in.flight at 5."""
INT32_MAX = 2**31 - 1
PRODUCER_ID_EXPIRATION_MS = 24 * 3600 * 1000
"""Kafka's `producer.id.expiration.ms`: a producer idle this long (by its batches' max
timestamp) is forgotten, which bounds the state kept for short-lived producers."""


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """What is kept of one appended batch: enough to spot and answer its retry."""

    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    """One producer id's state in one partition."""

    epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )
    last_timestamp: int = -1
    """Max timestamp of the last batch (ms), for `producer.id.expiration.ms` as Kafka does."""

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """True if `next_seq` directly follows `last_seq`, wrapping at INT32_MAX."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


def batch_last_seq(base_seq: int, last_offset_delta: int) -> int:
    """The sequence of a batch's last record (Kafka's DefaultRecordBatch.incrementSequence)."""
    if base_seq > INT32_MAX - last_offset_delta:
        return base_seq + last_offset_delta - INT32_MAX - 1
    return base_seq + last_offset_delta


class PartitionProducers:
    """The producer state of one partition log: pid -> entry, and a dirty flag."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self.dirty = False
        self.snapshot_offset = -1
        """Log end offset of the snapshot on disk that matches this state (-1: none)."""

    # The check and the update are plain functions of (state, batch) so that the model test
    # (tests/unit/test_producer_state*.py) drives exactly the code the broker runs.

    def check(
        self,
        producer_id: int,
        epoch: int,
        base_seq: int,
        last_offset_delta: int,
        log_start_offset: int = 0,
    ) -> BatchMetadata | None:
        """The original batch for a duplicate, None to append; raises BrokerError (45, 47)."""
        if base_seq < 0:
            raise BrokerError(
                ErrorCode.invalid_record,
                f"invalid sequence {base_seq} in a batch of producer id {producer_id}",
            )
        entry = self.entries.get(producer_id)
        if entry is not None and entry.batches[0].last_offset < log_start_offset:
            entry = self._trim(producer_id, entry, log_start_offset)
        if entry is None:
            return None
        last_seq = batch_last_seq(base_seq, last_offset_delta)
        if epoch == entry.epoch:
            duplicate = entry.find_duplicate(base_seq, last_seq)
            if duplicate is not None:
                return duplicate
        if epoch < entry.epoch:
            raise BrokerError(
                ErrorCode.invalid_producer_epoch,
                f"producer {producer_id} epoch {epoch} is older than the current {entry.epoch}",
            )
        if epoch > entry.epoch:
            if base_seq != 0:
                raise BrokerError(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {producer_id} new epoch {epoch} must start at sequence 0, "
                    f"got {base_seq}",
                )
        elif not in_sequence(entry.last_seq, base_seq):
            raise BrokerError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {producer_id} epoch {epoch}: expected sequence "
                f"{(entry.last_seq + 1) % (INT32_MAX + 1)}, got {base_seq}",
            )
        return None

    def update(
        self,
        producer_id: int,
        epoch: int,
        base_seq: int,
        last_offset_delta: int,
        base_offset: int,
        max_timestamp: int = -1,
    ) -> None:
        """Remember one appended batch (also used to replay the log at load)."""
        entry = self.entries.get(producer_id)
        if entry is None:
            entry = self.entries[producer_id] = ProducerEntry(epoch)
        elif epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                base_seq,
                batch_last_seq(base_seq, last_offset_delta),
                base_offset,
                base_offset + last_offset_delta,
            )
        )
        entry.last_timestamp = max_timestamp
        self.dirty = True

    def _trim(self, pid: int, entry: ProducerEntry, log_start_offset: int) -> ProducerEntry | None:
        """Forget the batches that are no longer in the log; the entry too if none is left.

        A retry of a batch that retention removed cannot be answered with its offset, and a
        producer with no batch left has no state (Kafka expires it): its next batch is taken
        with any sequence. Trimming batch by batch keeps the state a function of the batches
        in the log, so a rebuild by scanning at a restart gives the same state (B13).
        """
        while entry.batches and entry.batches[0].last_offset < log_start_offset:
            entry.batches.popleft()
        self.dirty = True
        if not entry.batches:
            del self.entries[pid]
            return None
        return entry

    def expire_idle(self, now_ms: int, expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        """Forget producers whose last batch is older than `expiration_ms` (Kafka's rule)."""
        idle = [
            pid for pid, e in self.entries.items() if 0 <= e.last_timestamp < now_ms - expiration_ms
        ]
        for pid in idle:
            del self.entries[pid]
        if idle:
            self.dirty = True

    def expire_before(self, log_start_offset: int) -> None:
        for pid, entry in list(self.entries.items()):
            if entry.batches[0].last_offset < log_start_offset:
                self._trim(pid, entry, log_start_offset)

    # -- snapshots -----------------------------------------------------------------------

    def to_json(self, offset: int) -> dict[str, Any]:
        return {
            "offset": offset,
            "producers": [
                [
                    pid,
                    entry.epoch,
                    [
                        [b.first_seq, b.last_seq, b.base_offset, b.last_offset]
                        for b in entry.batches
                    ],
                    entry.last_timestamp,
                ]
                for pid, entry in self.entries.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionProducers:
        state = cls()
        for pid, epoch, batches, last_timestamp in data["producers"]:
            if not batches:
                raise ValueError(f"producer {pid} has no batch")  # never written so
            entry = ProducerEntry(int(epoch), last_timestamp=int(last_timestamp))
            for first_seq, last_seq, base, last in batches:
                entry.batches.append(
                    BatchMetadata(int(first_seq), int(last_seq), int(base), int(last))
                )
            state.entries[int(pid)] = entry
        return state
