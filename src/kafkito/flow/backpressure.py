"""Backpressure and pauses: how much is in flight, and which partitions are paused and why.

With `max_in_flight` records polled and unresolved, the loop stops polling and waits (up to
`backpressure_wait_s`) for the handlers to bring it below half; if they do not, every partition
is paused (polling goes on, so the group never waits on us) and they resume below half of it.
Pausing comes second because it is costly: librdkafka drops what it prefetched for a paused
partition and fetches it again on resume. A record from a retry topic that is not due yet
pauses its partition and seeks back to it; a timer resumes the partition when it is due. A
failing dead-letter write pauses its partition too (flow/settling.py). Each partition keeps
its set of pause reasons; `apply_pauses` applies the changes on the consumer's thread.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from kafkito.flow.tracker import TP

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def wait_until_due(self: Flow, tp: TP, offset: int, due_ms: int) -> None:
    """A retry record not due yet: seek back to it, pause the partition until it is."""
    assert self._loop is not None
    state = self._partitions[tp]
    state.waiting_until_ms = due_ms
    state.pause_reasons.add("due")
    self._pause_changes.add(tp)
    self._seek_to[tp] = offset
    generation = state.generation
    delay_s = max(due_ms - self._clock.wall_ms(), 0) / 1000

    def resume() -> None:
        current = self._partitions.get(tp)
        if current is None or current.generation != generation:
            return
        current.waiting_until_ms = None
        current.pause_reasons.discard("due")
        self._pause_changes.add(tp)

    self._clock.call_later(delay_s, resume)


async def catch_up(self: Flow) -> None:
    """Wait (bounded) until the handlers bring the records in flight below half the limit."""
    deadline = self._clock.monotonic() + self.backpressure_wait_s
    while self._in_flight() > self.max_in_flight // 2 and not self._stopping.is_set():
        remaining = deadline - self._clock.monotonic()
        if remaining <= 0:
            return  # still too many: _update_backpressure pauses the partitions
        self._progressed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(remaining, 0.1)):
                await self._progressed.wait()


def in_flight(self: Flow) -> int:
    """Records polled and not resolved yet (queued, buffered, running or waiting)."""
    # list() copies in one step under the GIL: health() calls this from other threads.
    return sum(state.tracker.pending for state in list(self._partitions.values()))


def update_backpressure(self: Flow) -> None:
    size = self._in_flight()
    if not self._backpressured and size >= self.max_in_flight:
        self._backpressured = True
        for tp, state in self._partitions.items():
            state.pause_reasons.add("backpressure")
            self._pause_changes.add(tp)
    elif self._backpressured and size <= self.max_in_flight // 2:
        self._backpressured = False
        for tp, state in self._partitions.items():
            state.pause_reasons.discard("backpressure")
            self._pause_changes.add(tp)
    self.metrics.in_flight.labels(self.name).set(size)


async def apply_pauses(self: Flow) -> None:
    if not self._pause_changes:
        return
    from kafkito.client.raw_consumer import TopicPartition

    changes, self._pause_changes = self._pause_changes, set()
    pause: list[Any] = []
    resume: list[Any] = []
    seeks: list[Any] = []
    for tp in changes:
        state = self._partitions.get(tp)
        if state is None:
            continue
        target = TopicPartition(tp[0], tp[1])
        (pause if state.pause_reasons else resume).append(target)
        if tp in self._seek_to:
            seeks.append(TopicPartition(tp[0], tp[1], self._seek_to.pop(tp)))

    def apply() -> None:
        if pause:
            self._consumer.pause(pause)
        for target in seeks:
            with contextlib.suppress(Exception):  # a partition revoked meanwhile
                self._consumer.seek(target)
        if resume:
            self._consumer.resume(resume)

    await self._call(apply)
