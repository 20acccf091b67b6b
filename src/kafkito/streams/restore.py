"""Restoring store partitions from their changelogs (state.py says why this is enough).

One consumer, assigned to every changelog partition to restore at once, each from its
store's checkpoint (from the start with an empty state dir, or when the checkpoint is outside
the changelog: a changelog deleted and made again), read_committed, until the end of each
partition (librdkafka's partition-EOF event: for read_committed, the last stable offset).
Each batch is written to LMDB with the offset reached, so a restore interrupted by a crash
continues where it was. Progress goes to `report` after every batch and at the end.

`Restorer` restores a batch at a time (`step`), between the rounds of the app's loop: the
main consumer keeps polling (the group does not see a stuck member however long a restore
takes) while the input partitions waiting for their stores are paused (app.py), and the
partitions already restored are processed meanwhile, as Kafka Streams does.
`restore_stores` is the same done in one go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafkito.client.raw_consumer import RawConsumer, TopicPartition, is_partition_eof, message_error
from kafkito.errors import KafkitoError
from kafkito.streams.aggregate import StoreSpec
from kafkito.streams.state import PartitionStore

log = logging.getLogger(__name__)

__all__ = ["RestoreError", "RestoreProgress", "Restorer", "restore_stores"]

RESTORE_BATCH = 10_000
"""Changelog records taken per consume call."""
RESTORE_TIMEOUT_S = 600.0
"""A restore that makes no progress for this long is an error."""


class RestoreError(KafkitoError):
    """A changelog could not be read back."""


@dataclass
class RestoreProgress:
    """How far one store partition's restore is: `restored` of about `total` records."""

    store: str
    partition: int
    restored: int = 0
    total: int = 0
    done: bool = False
    seconds: float = 0.0


Job = tuple[StoreSpec, PartitionStore, RestoreProgress]


class Restorer:
    """Store partitions being restored, one consume batch per `step`.

    `add(jobs)` starts restores (a store with nothing to restore is `opened` at once),
    `step()` applies one batch and opens each store that reaches its changelog's end,
    `cancel(...)` drops restores whose partitions were revoked (closing their stores)."""

    def __init__(
        self,
        consumer: RawConsumer,
        *,
        report: Callable[[RestoreProgress], None],
        opened: Callable[[StoreSpec, PartitionStore], None],
    ) -> None:
        self.consumer = consumer
        self.report = report
        self.opened = opened
        self.todo: dict[tuple[str, int], Job] = {}
        self._next: dict[tuple[str, int], int] = {}
        self._started: dict[tuple[str, int], float] = {}
        self._last_progress = time.monotonic()

    def pending(self) -> set[int]:
        """The partition numbers with a store still restoring."""
        return {store.partition for _, store, _ in self.todo.values()}

    def add(self, jobs: list[Job]) -> None:
        added = False
        for spec, store, progress in jobs:
            p = store.partition
            low, high = self.consumer.get_watermark_offsets(TopicPartition(spec.changelog, p))
            start = low if store.checkpoint is None else store.checkpoint
            if start > high or start < low:
                log.warning(
                    "state store %s[%d]: checkpoint %d outside the changelog's %d..%d; "
                    "restoring from the start",
                    spec.name,
                    p,
                    start,
                    low,
                    high,
                )
                store.wipe()
                start = low
            progress.total = max(0, high - start)
            if start >= high:
                progress.done = True
                self.report(progress)
                self.opened(spec, store)
                continue
            self.report(progress)
            self.todo[(spec.changelog, p)] = (spec, store, progress)
            self._next[(spec.changelog, p)] = start
            self._started[(spec.changelog, p)] = time.monotonic()
            added = True
        if added:
            self._last_progress = time.monotonic()
            self._assign()

    def cancel(self, revoked: set[tuple[str, int]]) -> list[tuple[str, int]]:
        """Drop the restores of store partitions following revoked (topic, partition)s;
        the (store, partition)s dropped."""
        gone = [
            tp
            for tp, (spec, store, _) in self.todo.items()
            if (spec.topic, store.partition) in revoked
        ]
        dropped = []
        for tp in gone:
            spec, store, _ = self.todo.pop(tp)
            self._next.pop(tp, None)
            self._started.pop(tp, None)
            store.close()
            dropped.append((spec.name, store.partition))
        if gone:
            self._assign()
        return dropped

    def close(self) -> None:
        """Close the stores still restoring (the app stops)."""
        for _, store, _ in self.todo.values():
            store.close()
        self.todo.clear()

    def _assign(self) -> None:
        if self.todo:
            self.consumer.assign(
                [TopicPartition(t, p, self._next[(t, p)]) for t, p in sorted(self.todo)]
            )
        else:
            self.consumer.unassign()

    def step(self, batch: int | None = None, wait_s: float = 0.1) -> None:
        """Apply one batch of changelog records (RESTORE_BATCH; waiting at most `wait_s`)."""
        if not self.todo:
            return
        msgs = self.consumer.consume(batch or RESTORE_BATCH, wait_s)
        _apply(msgs, self.todo, self._started, self.report, self.opened, self._next)
        if msgs:
            self._last_progress = time.monotonic()
        elif time.monotonic() - self._last_progress > RESTORE_TIMEOUT_S:
            raise RestoreError(f"restore made no progress for {RESTORE_TIMEOUT_S:.0f} s")
        if not self.todo:
            self.consumer.unassign()


def restore_stores(
    consumer: RawConsumer,
    jobs: list[Job],
    *,
    report: Callable[[RestoreProgress], None],
    opened: Callable[[StoreSpec, PartitionStore], None],
) -> None:
    """Restore each job's store partition to its changelog's end; `opened(spec, store)` as
    each one is done (in the order they finish). All at once: `Restorer` a step at a time."""
    restorer = Restorer(consumer, report=report, opened=opened)
    restorer.add(jobs)
    try:
        while restorer.todo:
            restorer.step(RESTORE_BATCH, 0.5)
    finally:
        restorer.close()
        consumer.unassign()


def _apply(
    msgs: list[Any],
    todo: dict[tuple[str, int], Job],
    started: dict[tuple[str, int], float],
    report: Callable[[RestoreProgress], None],
    opened: Callable[[StoreSpec, PartitionStore], None],
    positions: dict[tuple[str, int], int],
) -> None:
    # The hot loop of a restore (a million records and more): a consume batch is runs of one
    # partition's records in offset order, so the run's list and end offset are switched
    # only when the partition changes.
    batches: dict[tuple[str, int], list[tuple[bytes, bytes | None, int]]] = {}
    ends: dict[tuple[str, int], int] = {}
    finished = []
    current: list[tuple[bytes, bytes | None, int]] = []
    key: tuple[str, int] | None = None
    last: Any = None
    for msg in msgs:
        if msg.error() is not None:
            eof = (msg.topic(), msg.partition())
            if not is_partition_eof(msg.error()):
                raise RestoreError(f"restore of {eof[0]}[{eof[1]}]: {message_error(msg.error())}")
            ends[eof] = max(ends.get(eof, 0), msg.offset())
            finished.append(eof)
            continue
        here = (msg.topic(), msg.partition())
        if here != key:
            if key is not None:
                ends[key] = max(ends.get(key, 0), last.offset() + 1)
            key = here
            current = batches.setdefault(here, [])
        current.append((msg.key(), msg.value(), msg.timestamp()[1]))
        last = msg
    if key is not None:
        ends[key] = max(ends.get(key, 0), last.offset() + 1)
    for tp, end in ends.items():
        if tp in todo:
            _, store, progress = todo[tp]
            entries = batches.get(tp, [])
            store.restore(entries, end)
            positions[tp] = end
            progress.restored += len(entries)
            report(progress)
    for tp in finished:
        if tp in todo:
            spec, store, progress = todo.pop(tp)
            positions.pop(tp, None)
            progress.done = True
            progress.seconds = time.monotonic() - started.pop(tp, time.monotonic())
            log.info(
                "state store %s[%d] restored: %d records in %.2f s",
                spec.name,
                store.partition,
                progress.restored,
                progress.seconds,
            )
            report(progress)
            opened(spec, store)
