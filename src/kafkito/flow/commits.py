"""Commits: the lowest unresolved offset of each partition, with the outputs it covers.

Every `commit_interval_s` the lowest unresolved offset of each partition is committed, so the
committed offset never passes an unresolved record. `Out` records a handler returned are held
per partition and written before the offsets that cover them (at-least-once), or in one
transaction with them (`exactly_once`, flow/exactly_once.py); a failed transaction aborts and
rewinds every partition to its last commit.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kafkito.flow.exactly_once import OutRecord, run_transaction
from kafkito.flow.records import (
    log,
)
from kafkito.flow.tracker import TP

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def committable(self: Flow, tps: Iterable[TP] | None = None) -> list[Any]:
    from kafkito.client.raw_consumer import TopicPartition

    offsets = []
    for tp in list(tps if tps is not None else self._partitions):
        state = self._partitions.get(tp)
        if state is None:
            continue
        offset = state.tracker.needs_commit()
        if offset is not None:
            offsets.append(TopicPartition(tp[0], tp[1], offset))
    return offsets


def mark_committed(self: Flow, offsets: Iterable[Any]) -> None:
    for tp in offsets:
        state = self._partitions.get((tp.topic, tp.partition))
        if state is not None:
            state.tracker.committed = max(state.tracker.committed, tp.offset)
        self.metrics.committed_offset.labels(tp.topic, str(tp.partition), self.group_id).set(
            tp.offset
        )


async def commit(self: Flow) -> None:
    if self.exactly_once:
        await self._commit_transaction()
        return
    offsets = self._committable()
    if not offsets:
        self._commit_error = None  # nothing waits to be committed: nothing is failing
        return
    if (self._outputs or self._holding()) and not await self._write_outputs(offsets):
        return
    try:
        await self._call(self._consumer.commit, offsets=offsets, asynchronous=False)
    except Exception as exc:  # a rebalance in progress, the coordinator moving...
        log.warning("flow %s: commit failed, will retry: %s", self.name, exc)
        self._commit_error = str(exc)
        return
    self._commit_error = None
    self._mark_committed(offsets)


def take_outputs(self: Flow) -> None:
    """Loop: move what the handlers produced to their partitions' held outputs."""
    produced = self._outputs
    while produced:
        tp, generation, offset, records = produced.popleft()
        state = self._partitions.get(tp)
        if state is not None and state.generation == generation:
            state.held.add(offset, records)


def holding(self: Flow) -> bool:
    return any(state.held.count for state in list(self._partitions.values()))


def ready_outputs(self: Flow, offsets: list[Any]) -> list[tuple[TP, int, list[OutRecord]]]:
    """Loop: take the held outputs of the records below each committable offset."""
    self._take_outputs()
    ready = []
    for target in offsets:
        tp = (target.topic, target.partition)
        state = self._partitions.get(tp)
        if state is not None and state.held.count:
            records = state.held.take_below(target.offset)
            if records:
                ready.append((tp, target.offset, records))
    return ready


async def write_outputs(self: Flow, offsets: list[Any]) -> bool:
    """At-least-once: write the Out records of what `offsets` commit and wait for the
    acks; False (outputs held again, nothing committed) if any write failed."""
    ready = self._ready_outputs(offsets)
    if not ready:
        return True
    failures: list[str] = []

    def report(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.topic()}: {err.str()}")

    def write() -> None:
        for _, _, records in ready:
            for topic, key, value, headers in records:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=report)
        left = self._producer.flush(self._producer.timeout_s)
        if left:
            failures.append(f"{left} output record(s) unconfirmed")

    try:
        await asyncio.to_thread(write)
    except Exception as exc:  # refused at once (unknown partition, too large...)
        failures.append(str(exc))
    if not failures:
        return True
    log.warning("flow %s: writing outputs failed, will retry: %s", self.name, failures[0])
    self._commit_error = f"output writes failing: {failures[0]}"
    for tp, below, records in ready:
        state = self._partitions.get(tp)
        if state is not None:
            state.held.put_back(below, records)
    return False


def start_transaction(self: Flow) -> None:
    """Loop: commit in the background, so polling and handling go on meanwhile (what it
    commits is taken when it starts; what is resolved meanwhile waits for the next one).
    One at a time: while one runs, this interval's commit is left to the next."""
    if self._txn_task is None or self._txn_task.done():
        self._txn_task = asyncio.create_task(self._commit_transaction())
        self._txn_task.add_done_callback(self._transaction_done)


def transaction_done(self: Flow, task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("flow %s: commit failed unexpectedly", self.name, exc_info=exc)
        self._fatal = exc
        self._stopping.set()


async def commit_transaction(self: Flow, group_metadata: Any = None) -> None:
    """Exactly-once: one transaction with the outputs of the records below each
    committable offset, and those offsets. A failure aborts it and rewinds.

    The group metadata is read on the consumer's thread, before the lock: read from
    another thread it blocks while that thread is in a rebalance callback, which itself
    waits for this lock (the revoke path passes it in, read inside the callback)."""
    assert self._txn_lock is not None
    if group_metadata is None:
        try:
            group_metadata = await self._call(self._consumer.group_metadata)
        except Exception as exc:  # the consumer is closing: the next commit tries again
            log.info("flow %s: no group metadata for the commit: %s", self.name, exc)
            return
    async with self._txn_lock:
        if self._fatal is not None or self._producer is None:
            return
        offsets = self._committable()
        if not offsets:  # commit_error stays until a transaction commits (after a rewind)
            return
        outputs = [r for _, _, records in self._ready_outputs(offsets) for r in records]
        try:
            await asyncio.to_thread(
                run_transaction,
                self._producer,
                group_metadata,
                outputs,
                offsets,
                self._producer.timeout_s,
            )
        except Exception as exc:  # TransactionError, DeliveryError: abort and rewind
            await self._transaction_failed(exc)
            return
        self._commit_error = None
        self._mark_committed(offsets)


async def transaction_failed(self: Flow, exc: Exception) -> None:
    """Abort, then rewind every partition to its last commit, so the records of the
    aborted transaction are handled again; a fenced or fatal producer stops the flow."""
    from kafkito.client.errors import TransactionError

    failure: Exception = exc
    if not (isinstance(exc, TransactionError) and exc.fatal):
        try:
            await asyncio.to_thread(self._producer.abort_transaction)
        except TransactionError as abort_error:
            if abort_error.fatal:
                failure = abort_error
        except Exception as abort_error:  # nothing open to abort (begin failed)
            log.debug("flow %s: abort: %s", self.name, abort_error)
    if isinstance(failure, TransactionError) and failure.fatal:
        log.error("flow %s: transactions failed for good, stopping: %s", self.name, failure)
        self._fatal = failure
        self._stopping.set()
        return
    log.warning(
        "flow %s: transaction aborted (%s); going back to the last committed offsets",
        self.name,
        exc,
    )
    self._commit_error = str(exc)
    await self._rewind()


async def rewind(self: Flow) -> None:
    """Loop: forget everything not committed (queued work, back-offs, held outputs, the
    trackers: a new generation) and seek each partition back to its last commit, or to
    where this assignment began reading."""
    targets: dict[TP, int | None] = {}
    committed: dict[TP, int] = {}
    for tp, state in self._partitions.items():
        committed[tp] = state.tracker.committed
        targets[tp] = state.tracker.committed if state.tracker.committed >= 0 else state.origin
    tps = list(targets)
    await self._revoked(tps, commit=False)
    await self._assigned(tps)
    with self._seek_lock:
        for tp in tps:
            state = self._partitions[tp]
            state.tracker.committed = committed[tp]
            target = state.origin = targets[tp]
            if target is not None:
                self._rewind_seeks[tp] = target
            self._pause_changes.add(tp)  # lift pauses of the old generation (retry waits)
