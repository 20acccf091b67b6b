"""Backpressure and pauses: how much is in flight, and which partitions are paused and why.

With `max_in_flight` records polled and unresolved, the loop stops polling and waits (up to
`backpressure_wait_s`) for the handlers to bring it below half; if they do not, every partition
is paused (polling goes on, so the group never waits on us) and they resume below half of it.
Pausing comes second because it is costly: librdkafka drops what it prefetched for a paused
partition and fetches it again on resume. A record from a retry topic that is not due yet
pauses its partition and seeks back to it; a timer resumes the partition when it is due. A
failing dead-letter write pauses its partition too (flow/settling.py). With records waiting
in several partitions, `spread` shares the limit between them (smaller polls, and a partition
about to pass its share paused while another waits), so few keys are not left idle behind one
partition's run of records. Each partition keeps its set of pause reasons; `apply_pauses`
applies the changes on the consumer's thread.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from kafkito.flow.records import COARSE_BELOW_S
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


UNKNOWN = -1
"""A high watermark librdkafka has not seen yet (the partition not fetched since assigned)."""

FIRST_RECORDS_S = 2.0
"""How long a partition fetched with records but none received yet counts as waiting."""

SHARE = "share"
"""The pause reason of a partition holding its share of `max_in_flight` (`spread`)."""


class Spread:
    """What `spread` remembers between polls: when each partition that has given us nothing
    yet was first seen fetched with records (keyed by assignment generation)."""

    __slots__ = ("first_seen", "generations")

    def __init__(self) -> None:
        self.first_seen: dict[tuple[TP, int], float] = {}
        self.generations: dict[TP, int] = {}
        """The assignment of each partition seen last: a new one is resumed once, as a
        pause librdkafka kept from the partition's last assignment has no reason left."""


def spreads(self: Flow) -> bool:
    """Whether sharing the limit between partitions can pay: not with a fast sync handler
    (measured under COARSE_BELOW_S a record), which keeps the CPU busy whatever the keys, and
    whose throughput the smaller polls and the pauses would only cost. Async and batch
    handlers share it; sync ones once measured slower (a pause made while unmeasured, lifted
    a moment later, would cost a fast handler a refetch: up to `fetch.wait.max.ms`)."""
    threads = self._threads
    if threads is None:
        return True
    speed = threads.seconds_per_unit
    return speed is not None and speed >= COARSE_BELOW_S


def first_poll(self: Flow) -> int:
    """The size of a poll before `spread` knows the partitions: an eighth of the limit, so
    that the first partition to arrive cannot take it all before the others are seen."""
    return max(1, min(self.poll_batch, self.max_in_flight // 8))


def spread(self: Flow, highs: dict[TP, int], memo: Spread) -> int:
    """Share `max_in_flight` between the partitions that have records; returns the next
    poll's size.

    librdkafka hands out a partition's fetched records in one run, then the next
    partition's: one poll of the full limit could fill it with a single partition's records
    (its few keys), and the keys of the other partitions would sit idle until those were
    worked off. With records waiting in two or more partitions, each partition gets a
    share, `max_in_flight` / the partitions with records (waiting or in flight); polls take
    a quarter of a share, and a partition about to pass its share is paused ("share") while
    another partition with records waiting holds less than half of its own, unless every
    handler slot is busy with more keys waiting (more keys would only wait too). It resumes
    at half its share, or when no partition waits for the room. The limit itself is
    untouched: a pause only chooses whose records fill it. Pausing has a price (librdkafka drops the
    partition's prefetched records and fetches them again on resume), paid only while some
    partition would otherwise be kept waiting.

    Records waiting: `highs` (the high watermarks librdkafka saw last) past what we
    received. A partition that has given us nothing yet has no position to compare with:
    it counts as waiting until it was fetched and for `FIRST_RECORDS_S` after (its records
    may be queued behind another partition's; a partition with nothing to read gives none)."""
    partitions = self._partitions
    generations = memo.generations
    for tp, state in partitions.items():
        if generations.get(tp) != state.generation:
            if tp in generations:  # assigned again: no pause of the old assignment stays
                self._pause_changes.add(tp)
            generations[tp] = state.generation
    if not partitions:  # nothing assigned yet: the first poll after the assignment takes little
        return first_poll(self)
    if not highs:  # one partition, or not spreading (`spreads`): the limit is one pool
        for tp, state in partitions.items():
            if SHARE in state.pause_reasons:
                state.pause_reasons.discard(SHARE)
                self._pause_changes.add(tp)
        return self.poll_batch
    now = self._clock.monotonic()
    active: list[TP] = []
    waiting: set[TP] = set()
    seen = memo.first_seen
    for tp, state in partitions.items():
        high = highs.get(tp)  # None: not reported (one partition, or revoked meanwhile)
        received = state.tracker.next
        if high is None:
            is_waiting = False
        elif received >= 0:
            is_waiting = high > received
        elif high == UNKNOWN:
            is_waiting = True
        else:
            since = seen.setdefault((tp, state.generation), now)
            is_waiting = high > 0 and now - since < FIRST_RECORDS_S
        if is_waiting:
            waiting.add(tp)
            active.append(tp)
        elif state.tracker.pending:
            active.append(tp)
    if len(seen) > 4 * len(partitions) + 16:  # forget old generations
        memo.first_seen = {k: v for k, v in seen.items() if k[0] in partitions}
    if len(active) < 2:
        for tp, state in partitions.items():
            if SHARE in state.pause_reasons:
                state.pause_reasons.discard(SHARE)
                self._pause_changes.add(tp)
        return self.poll_batch
    share = max(1, self.max_in_flight // len(active))
    cap = max(1, min(self.poll_batch, share // 4))
    low = share // 2
    for tp, state in partitions.items():
        if SHARE in state.pause_reasons and state.tracker.pending <= low:
            state.pause_reasons.discard(SHARE)
            self._pause_changes.add(tp)
    hungry = [
        tp
        for tp in waiting
        if not partitions[tp].pause_reasons and partitions[tp].tracker.pending <= low
    ]
    # Every handler slot busy and keys waiting for one: more keys would only wait too.
    saturated = saturated_handlers(self)
    for tp, state in partitions.items():
        others_hungry = any(other != tp for other in hungry)
        if SHARE in state.pause_reasons:
            if not others_hungry:
                state.pause_reasons.discard(SHARE)
                self._pause_changes.add(tp)
        elif (
            others_hungry
            and not saturated
            and tp in waiting
            and state.tracker.pending + cap > share
        ):
            state.pause_reasons.add(SHARE)
            self._pause_changes.add(tp)
    return self.poll_batch if saturated else cap


def saturated_handlers(self: Flow) -> bool:
    """Every handler slot runs a key and more keys wait for one."""
    if self._threads is not None:
        return self._threads.saturated
    scheduler = self._batch_scheduler if self.batch_size is not None else self._scheduler
    return scheduler is not None and scheduler.saturated
