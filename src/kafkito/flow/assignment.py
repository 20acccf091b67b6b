"""Assignment: partitions given, revoked and lost (the consumer's rebalance callbacks).

On revoke (called inside the poll thread) the loop drops queued work of the revoked partitions,
cancels their back-offs, waits up to `revoke_grace_s` for handlers already running, and the poll
thread commits what is resolved before the revoke completes. Results that arrive later for a
partition no longer owned are dropped (a generation number per assignment); a record that fails
while its partition is being revoked is not retried or split (what that starts could outlive the
revoke and run under the next owner). Lost partitions (session expired) commit nothing.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from kafkito.flow.records import (
    PartitionState,
    log,
)
from kafkito.flow.tracker import TP, Chunk

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def on_assign(self: Flow, consumer: Any, partitions: list[Any]) -> None:
    """Poll thread: partitions given to us. Start their trackers on the loop."""
    assert self._loop is not None
    tps = [(p.topic, p.partition) for p in partitions]
    asyncio.run_coroutine_threadsafe(self._assigned(tps), self._loop).result()
    log.info("flow %s assigned %s", self.name, tps)
    self._notify("assigned", tps)


def notify(self: Flow, kind: str, tps: list[TP]) -> None:
    if self.on_rebalance is not None:
        try:
            self.on_rebalance(kind, tps)
        except Exception:
            log.exception("flow %s: on_rebalance hook failed", self.name)


async def assigned(self: Flow, tps: list[TP]) -> None:
    for tp in tps:
        self._generation += 1
        state = PartitionState(self._generation)
        if self._backpressured:
            state.pause_reasons.add("backpressure")
            self._pause_changes.add(tp)
        self._partitions[tp] = state


def on_revoke(self: Flow, consumer: Any, partitions: list[Any]) -> None:
    """Poll thread: finish or drop work of revoked partitions, commit what is done."""
    assert self._loop is not None
    tps = [(p.topic, p.partition) for p in partitions]
    future = asyncio.run_coroutine_threadsafe(self._revoked(tps, commit=True), self._loop)
    offsets = future.result()
    if self.exactly_once:
        # One transaction with what is resolved, before the partitions go (KIP-447: the
        # coordinator still takes offsets from this generation); the poll loop applies the
        # seeks of a rewind after this callback.
        metadata = self._consumer.group_metadata()  # on this thread (see _commit_transaction)
        asyncio.run_coroutine_threadsafe(self._commit_transaction(metadata), self._loop).result()
        offsets = []
    elif offsets and (self._outputs or self._holding()):
        written = asyncio.run_coroutine_threadsafe(self._write_outputs(offsets), self._loop)
        if not written.result():
            offsets = []  # outputs not written: the next owner handles the records again
    if offsets:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
            log.info(
                "flow %s committed %s before revoke",
                self.name,
                [(o.topic, o.partition, o.offset) for o in offsets],
            )
        except Exception as exc:
            log.warning("flow %s: commit on revoke failed: %s", self.name, exc)
    asyncio.run_coroutine_threadsafe(self._forget(tps), self._loop).result()
    self._notify("revoked", tps)


def on_lost(self: Flow, consumer: Any, partitions: list[Any]) -> None:
    """Poll thread: partitions lost (session expired): drop everything, commit nothing."""
    assert self._loop is not None
    tps = [(p.topic, p.partition) for p in partitions]
    asyncio.run_coroutine_threadsafe(self._revoked(tps, commit=False), self._loop).result()
    asyncio.run_coroutine_threadsafe(self._forget(tps), self._loop).result()
    log.warning("flow %s lost %s", self.name, tps)
    self._notify("lost", tps)


async def revoked(self: Flow, tps: list[TP], *, commit: bool) -> list[Any]:
    """Drop queued work and back-offs of `tps`, let running handlers finish (bounded)."""
    assert self._scheduler is not None
    revoked = set(tps)
    for tp in tps:
        if (state := self._partitions.get(tp)) is not None:
            state.revoking = True

    def keep(chunk: Chunk) -> bool:
        return chunk.tp not in revoked

    self._scheduler.discard(keep)
    if self._threads is not None:
        self._threads.discard(keep)
    if self._batch_scheduler is not None:
        self._batch_scheduler.discard(lambda batch: batch[0].tp not in revoked)
    for tp in tps:
        self._buffers.pop(tp, None)
        self._buffered.pop(tp, None)
        self._buffer_started.pop(tp, None)
    for tp in tps:
        for task in list(self._backoffs.get(tp, ())):
            task.cancel()
    if not commit:
        for tp in tps:
            self._partitions.pop(tp, None)
    deadline = self._clock.monotonic() + self.revoke_grace_s
    while self._clock.monotonic() < deadline:
        busy = [t for t in self._running_tasks() if not t.done()]
        threads_busy = self._threads is not None and self._threads.running > 0
        if not (busy or threads_busy) or not commit:
            break
        if busy:
            await asyncio.wait(
                busy,
                timeout=min(0.05, deadline - self._clock.monotonic()),
                return_when=asyncio.FIRST_COMPLETED,
            )
        else:  # handler threads report through call_soon_threadsafe: let them in
            await asyncio.sleep(0.005)
        self._apply_results()
        if all(
            self._partitions.get(tp) is None or self._partitions[tp].tracker.pending == 0
            for tp in tps
        ):
            break
    self._apply_results()  # what the threads reported, even if its wake-up is pending
    return self._committable(tps) if commit else []


async def forget(self: Flow, tps: list[TP]) -> None:
    for tp in tps:
        self._partitions.pop(tp, None)
        self._backoffs.pop(tp, None)
        self._dead_letter_failing.discard(tp)
