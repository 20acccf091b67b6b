"""Restoring store partitions from their changelogs (state.py says why this is enough).

One consumer, assigned to every changelog partition to restore at once, each from its
store's checkpoint (from the start with an empty state dir, or when the checkpoint is outside
the changelog: a changelog deleted and made again), read_committed, until the end of each
partition (librdkafka's partition-EOF event: for read_committed, the last stable offset).
Each batch is written to LMDB with the offset reached, so a restore interrupted by a crash
continues where it was. Progress goes to `report` after every batch and at the end.
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

__all__ = ["RestoreError", "RestoreProgress", "restore_stores"]

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


def restore_stores(
    consumer: RawConsumer,
    jobs: list[Job],
    *,
    report: Callable[[RestoreProgress], None],
    opened: Callable[[StoreSpec, PartitionStore], None],
) -> None:
    """Restore each job's store partition to its changelog's end; `opened(spec, store)` as
    each one is done (in the order they finish)."""
    todo: dict[tuple[str, int], Job] = {}
    assign = []
    for spec, store, progress in jobs:
        p = store.partition
        low, high = consumer.get_watermark_offsets(TopicPartition(spec.changelog, p))
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
            report(progress)
            opened(spec, store)
            continue
        report(progress)
        todo[(spec.changelog, p)] = (spec, store, progress)
        assign.append(TopicPartition(spec.changelog, p, start))
    if not assign:
        return
    started = last_progress = time.monotonic()
    consumer.assign(assign)
    try:
        while todo:
            msgs = consumer.consume(RESTORE_BATCH, 0.5)
            _apply(msgs, todo, started, report, opened)
            if msgs:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > RESTORE_TIMEOUT_S:
                raise RestoreError(f"restore made no progress for {RESTORE_TIMEOUT_S:.0f} s")
    finally:
        consumer.unassign()


def _apply(
    msgs: list[Any],
    todo: dict[tuple[str, int], Job],
    started: float,
    report: Callable[[RestoreProgress], None],
    opened: Callable[[StoreSpec, PartitionStore], None],
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
            progress.restored += len(entries)
            report(progress)
    for tp in finished:
        if tp in todo:
            spec, store, progress = todo.pop(tp)
            progress.done = True
            progress.seconds = time.monotonic() - started
            log.info(
                "state store %s[%d] restored: %d records in %.2f s",
                spec.name,
                store.partition,
                progress.restored,
                progress.seconds,
            )
            report(progress)
            opened(spec, store)
