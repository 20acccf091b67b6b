"""Intake: the poll loop, and a poll's records cut into chunks and handed on.

The loop polls the records librdkafka has ready, up to `poll_batch`, the room under
`max_in_flight` and, while partitions share the limit, a quarter of a partition's share
(`backpressure.spread`). No waiting for a full batch (`consume_ready`); the poll thread returns
every ~100 ms even when idle, so the group never sees a missed poll, whatever the handlers do. It
cuts them into chunks (the records of one partition with the same ordering key, in offset
order; `tracker.Chunk`), notes each chunk in its partition's `PartitionTracker` and submits it
under its ordering key: sync handlers to the handler threads (flow/threads.py), async ones to
the `KeyedScheduler`'s tasks (flow/execution.py), batch handlers to per-partition buffers.
With ordering="key" and a fast sync handler a partition's records of a poll are one *coarse*
chunk (offset order keeps every key's order, and a fast handler gains nothing from parallel
keys). Records of a retry topic become chunks of their own when due (else
flow/backpressure.py waits for them). Exactly once: records of a partition being rewound after
an aborted transaction are dropped here (the seek delivers them again).

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from kafkito.client.reader import POLL_TIMEOUT_S, consume_ready
from kafkito.flow import letters
from kafkito.flow.backpressure import UNKNOWN, Spread, first_poll, spread, spreads
from kafkito.flow.records import (
    COARSE_BELOW_S,
    FlowError,
    PartitionState,
    log,
)
from kafkito.flow.tracker import TP, Chunk

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


async def poll_loop(self: Flow) -> None:
    assert self._scheduler is not None
    next_commit = self._clock.monotonic() + self.commit_interval_s

    cap = first_poll(self)  # what one poll may take (`spread` sets it after each poll)
    memo = Spread()

    def poll(room: int) -> asyncio.Future[tuple[int, list[Any], dict[TP, int]]]:
        """The next poll, for at most `room` records (at least one: polls never stop)."""
        limit = max(1, min(cap, room))
        return asyncio.ensure_future(self._call(self._consume, limit))

    polling: asyncio.Future[tuple[int, list[Any], dict[TP, int]]] | None = poll(self.max_in_flight)
    while not self._stopping.is_set():
        assert polling is not None
        began, messages, highs = await polling
        if self._rewind_seeks or (self._sought_at and began != self._seek_epoch):
            messages = self._drop_rewound(began, messages)
        self._last_poll = self._clock.monotonic()
        # With room left, the next poll runs on the consumer's thread while this batch is
        # accepted; without, it waits for the handlers to catch up first.
        room = self.max_in_flight - self._in_flight() - len(messages)
        polling = poll(room) if room > 0 else None
        self._submit(self._accept(messages))
        if self.batch_size is not None:
            self._flush_due_buffers()
        cap = spread(self, highs, memo)
        if polling is None:
            await self._catch_up()
            cap = spread(self, highs, memo)
        self._update_backpressure()
        await self._apply_pauses()
        if polling is None:  # still at the limit: the pause is applied before polling again
            polling = poll(self.max_in_flight - self._in_flight())
        if self._clock.monotonic() >= next_commit:
            next_commit = self._clock.monotonic() + self.commit_interval_s
            if self.exactly_once:
                self._start_transaction()
            else:
                await self._commit()
        if self._rewind_seeks:
            await self._call(self._apply_seeks)
    # Records of the last poll are left untracked: never committed, read again next time.
    if polling is not None:
        with contextlib.suppress(Exception):
            await polling


def consume(self: Flow, limit: int) -> tuple[int, list[Any], dict[TP, int]]:
    """Consumer thread: the records librdkafka has ready, with the rewind epoch at the
    start (records of a partition sought back after it are stale: `_drop_rewound`), and
    the partitions' high watermarks as of the last fetch (which have records waiting:
    `backpressure.spread`)."""
    epoch = self._seek_epoch
    messages = consume_ready(self._consumer, limit, POLL_TIMEOUT_S)
    return epoch, messages, high_watermarks(self)


def high_watermarks(self: Flow) -> dict[TP, int]:
    """Consumer thread: each assigned partition's high watermark librdkafka saw last (no
    request: its cache of the fetch responses), `UNKNOWN` before its first fetch. Only with
    two or more partitions and a handler that is not fast (`spreads`), else nothing."""
    from kafkito.client.raw_consumer import TopicPartition

    tps = list(self._partitions)  # one step under the GIL: the loop changes the dict
    if len(tps) < 2 or not spreads(self):
        return {}
    highs: dict[TP, int] = {}
    for tp in tps:
        try:
            _, high = self._consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
        except Exception:  # revoked meanwhile
            continue
        highs[tp] = max(high, UNKNOWN)
    return highs


def drop_rewound(self: Flow, began: int, messages: list[Any]) -> list[Any]:
    """Exactly-once, after an abort: drop the records of partitions that are going back
    (seek pending) or went back after this poll began; the seek delivers them again."""
    with self._seek_lock:
        stale = set(self._rewind_seeks)
    stale.update(tp for tp, epoch in list(self._sought_at.items()) if epoch > began)
    if not stale:
        return messages
    return [m for m in messages if (m.topic(), m.partition()) not in stale]


def apply_seeks(self: Flow) -> None:
    """Consumer thread: seek the rewound partitions back to their last committed offsets."""
    from kafkito.client.raw_consumer import TopicPartition

    with self._seek_lock:
        seeks, self._rewind_seeks = self._rewind_seeks, {}
    if not seeks:
        return
    self._seek_epoch += 1
    for tp, offset in seeks.items():
        self._sought_at[tp] = self._seek_epoch
        try:
            self._consumer.seek(TopicPartition(tp[0], tp[1], offset))
        except Exception as exc:  # revoked meanwhile: its next owner reads from the commit
            log.info("flow %s: no rewind of %s-%d: %s", self.name, tp[0], tp[1], exc)
    log.info("flow %s rewound %s", self.name, sorted(seeks.items()))


def accept(self: Flow, messages: list[Any]) -> list[Chunk]:
    """Group a poll's records into chunks (per partition and ordering key, in offset order)
    and track them. The hot path: a few C calls and a dict lookup per record."""
    from kafkito.client.raw_consumer import PARTITION_EOF

    partitions, ordering = self._partitions, self.ordering
    # Batch handlers take a partition's records in offset order, one batch at a time.
    by_partition = ordering == "partition" or self.batch_size is not None
    by_key: dict[Hashable, Chunk] = {}
    chunks: list[Chunk] = []
    floors: dict[TP, int] = {}
    last_topic, last_partition = "", -1
    tp: TP = ("", -1)
    state: PartitionState | None = None
    current: Chunk | None = None  # ordering="partition": the chunk of the partition
    skip = retrying = False
    threads = self._threads
    split_by_key = ordering == "key" and threads is not None and self.batch_size is None
    speed = threads.seconds_per_unit if threads is not None else None
    fast = speed is None or speed < COARSE_BELOW_S  # unmeasured: coarse, split if slow
    coarse = False
    token: object | None = None
    for msg in messages:
        err = msg.error()
        if err is not None:
            if err.fatal():
                self._fatal = FlowError(f"consumer failed: {err.str()}")
                self._stopping.set()
                break
            if err.code() != PARTITION_EOF:
                log.warning("flow %s: consumer error: %s", self.name, err.str())
            continue
        topic, partition = msg.topic(), msg.partition()
        if partition != last_partition or topic != last_topic:
            last_topic, last_partition, tp = topic, partition, (topic, partition)
            state = partitions.get(tp)
            # Not ours (revoked meanwhile), or a retry partition seeking back to a record
            # that is not due yet.
            skip = state is None or state.waiting_until_ms is not None
            if state is not None and tp not in floors:
                floors[tp] = state.tracker.next
                if state.origin is None:
                    state.origin = msg.offset()
                if split_by_key and state.tracker.pending == 0:
                    # Nothing of the partition in flight: it may change modes safely.
                    state.split = None if fast else object()
            retrying = self._reads_retry_topics and topic not in self._own_topics
            coarse = split_by_key and state is not None and state.split is None
            token = state.split if state is not None else None
            current = by_key.get(tp) if by_partition or coarse else None
        if skip:
            continue
        assert state is not None
        if retrying:
            chunk = self._retry_chunk(msg, tp, state)
            if chunk is None:
                skip = True  # waiting until it is due: the rest comes again after it
            else:
                chunks.append(chunk)
        elif by_partition or coarse:
            if current is None:
                current = by_key[tp] = Chunk(tp, state.generation, tp, topic, [msg])
                current.coarse = coarse
                chunks.append(current)
            else:
                current.messages.append(msg)
        elif ordering == "key" and (key := msg.key()) is not None:
            group = (tp, key)
            chunk = by_key.get(group)
            if chunk is None:
                order = (topic, key) if token is None else (token, key)
                chunk = by_key[group] = Chunk(tp, state.generation, order, topic, [msg])
                chunks.append(chunk)
            else:
                chunk.messages.append(msg)
        else:  # no order to keep: a key of its own
            chunks.append(Chunk(tp, state.generation, object(), topic, [msg]))
    received: dict[str, int] = {}
    accepted: list[Chunk] = []
    for chunk in chunks:
        state = partitions.get(chunk.tp)
        if state is None:
            continue
        floor = floors.get(chunk.tp, -1)
        if chunk.messages[0].offset() < floor:  # delivered again after a seek back
            chunk.messages = [m for m in chunk.messages if m.offset() >= floor]
            if not chunk.messages:
                continue
        state.tracker.received(chunk)
        received[chunk.source] = received.get(chunk.source, 0) + len(chunk.messages)
        accepted.append(chunk)
    for source, count in received.items():
        self._counters(source).received.inc(count)
    return accepted


def retry_chunk(self: Flow, msg: Any, tp: TP, state: PartitionState) -> Chunk | None:
    """A record of a retry topic: its own chunk if due, else wait for it (None)."""
    headers = msg.headers() or []
    due = letters.header_int(headers, letters.DUE_MS)
    if due is not None and due > self._clock.wall_ms():
        self._wait_until_due(tp, msg.offset(), due)
        return None
    source = tp[0].rsplit(".retry.", 1)[0]
    key = msg.key()
    order: Hashable = object()  # no order to keep: a key of its own
    if self.ordering == "partition":
        order = tp
    elif self.ordering == "key" and key is not None:
        order = (source, key)
    attempt = letters.header_int(headers, letters.ATTEMPT) or 2
    return Chunk(tp, state.generation, order, source, [msg], attempt=attempt)


def submit(self: Flow, chunks: list[Chunk]) -> None:
    """Hand accepted chunks to the handler threads, the async scheduler or the batch
    buffers."""
    if not chunks:
        return
    if self.batch_size is not None:
        for chunk in chunks:
            tp = chunk.tp
            buffer = self._buffers.setdefault(tp, [])
            if not buffer:
                self._buffer_started[tp] = self._clock.monotonic()
            buffer.append(chunk)
            self._buffered[tp] = self._buffered.get(tp, 0) + len(chunk.messages)
            if self._buffered[tp] >= self.batch_size:
                self._flush_buffer(tp)
    elif self._threads is not None:
        self._threads.submit_many([(chunk.key, chunk) for chunk in chunks])
    else:
        assert self._scheduler is not None
        self._scheduler.submit_many([(chunk.key, chunk) for chunk in chunks])


def flush_buffer(self: Flow, tp: TP) -> None:
    """Hand a partition's buffered records to the batch handler (one batch at a time)."""
    assert self._batch_scheduler is not None
    batch = self._buffers.pop(tp, [])
    self._buffer_started.pop(tp, None)
    self._buffered.pop(tp, None)
    if batch:
        self._batch_scheduler.submit(tp, batch)


def flush_due_buffers(self: Flow, *, all_now: bool = False) -> None:
    now = self._clock.monotonic()
    for tp, began in list(self._buffer_started.items()):
        if all_now or now - began >= self.batch_timeout_s:
            self._flush_buffer(tp)
