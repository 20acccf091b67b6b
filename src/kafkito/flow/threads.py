"""Sync handlers on the handler threads: the fast path, results in bulk, failures to the loop.

A handler thread decodes and handles a chunk's records in order; what went well is reported
to the loop in bulk (`apply_results`, one wake-up per burst); a record that fails holds its key
and the loop (`recover`) retries or dead-letters it (flow/settling.py), then the key goes back
to the threads. A failing record, or a coarse chunk that runs long and slow, has `split`
regroup the partition's unresolved records by key on the loop, and the partition runs by key
until nothing of it is in flight.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Hashable
from typing import TYPE_CHECKING

from kafkito.flow.codecs import DecodeError, ValidationFailed
from kafkito.flow.exactly_once import outputs_of
from kafkito.flow.records import (
    COARSE_BELOW_S,
    RAN_LONG,
    SPLIT_AFTER_S,
    Failure,
    Stop,
    ThreadBatch,
    Work,
    record_of,
)
from kafkito.flow.tracing import has_traceparent, recording_tracer, trace_span
from kafkito.flow.tracker import Chunk

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def thread_batch(self: Flow) -> ThreadBatch:
    batch: ThreadBatch | None = getattr(self._thread_local, "batch", None)
    if batch is None:
        batch = self._thread_local.batch = ThreadBatch()
    return batch


def run_in_thread(self: Flow, chunk: Chunk) -> Stop | None:
    """Handler thread: handle the chunk from its cursor. None when done; else how far it
    got and the failure, which `_held` hands to the loop once the key is held. What went
    well waits in the thread's batch until `_end_thread_batch`."""
    if not self._owns(chunk):  # a hint read from this thread; the loop checks again
        return None
    batch = self._thread_batch()
    durations = batch.durations.get(chunk.source)
    if durations is None:
        durations = batch.durations[chunk.source] = []
    start = chunk.cursor
    done, failure = self._run_sync_chunk(chunk, start, durations)
    chunk.cursor = start + done
    if failure is not None:
        return done, failure
    batch.results.append((chunk, done, None))
    return None


def end_thread_batch(self: Flow) -> None:
    """Handler thread, after a batch of keys: record the durations, report the results
    (before the failures of the batch, which `_held` reports next)."""
    batch = self._thread_batch()
    for source, durations in batch.durations.items():
        if durations:
            self._counters(source).handler_seconds.observe_many(durations)
            durations.clear()
    if batch.results:
        self._results.extend(batch.results)
        batch.results.clear()
        self._wake_loop()


def held(self: Flow, chunk: Chunk, stop: Stop) -> None:
    """Handler thread, after the failed chunk's key is held: tell the loop."""
    self._results.append((chunk, *stop))
    self._wake_loop()


def wake_loop(self: Flow) -> None:
    """Handler thread: have the loop apply the results; one wake-up per burst of them."""
    if not self._results_wake:
        self._results_wake = True
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the flow is over
            self._loop.call_soon_threadsafe(self._apply_results)


def apply_results(self: Flow) -> None:
    """Loop: resolve what the handler threads finished; failures go to `_recover`."""
    self._results_wake = False
    results = self._results
    processed: dict[str, int] = {}
    while results:
        chunk, done, failure = results.popleft()
        owned = self._owns(chunk)
        if owned and done:
            self._partitions[chunk.tp].tracker.resolved(chunk, done)
            processed[chunk.source] = processed.get(chunk.source, 0) + done
        if failure is None:
            continue
        owned = owned and not self._partitions[chunk.tp].revoking
        if owned and chunk.coarse:
            chunk = self._split(chunk, hold=failure is not RAN_LONG)
            if failure is RAN_LONG:
                continue
        if owned:
            task = asyncio.create_task(self._recover(chunk, failure))
            self._recovering.add(task)
            task.add_done_callback(self._recovering.discard)
        else:
            self._abandon(chunk)
    for source, count in processed.items():
        self._counters(source).processed.inc(count)
    self._progressed.set()


def split(self: Flow, chunk: Chunk, *, hold: bool) -> Chunk:
    """Loop: a coarse chunk stopped (a record failed, or it ran long) and holds its key, the
    partition. Regroup the unresolved records of the partition's coarse chunks by key
    (under a new token: `PartitionState.split`) and hand them to the threads, the failed
    record's key held if `hold`. Returns the part that starts with the record where `chunk`
    stopped.

    Safe because nothing of the partition runs meanwhile (its one key is held), each key's
    records keep their offset order within one part, and the tracker swaps the chunks for
    the parts in one step on the loop (`PartitionTracker.split`)."""
    assert self._threads is not None
    assert chunk.done == chunk.cursor < len(chunk.messages)
    state = self._partitions[chunk.tp]
    queued = self._threads.discard(lambda other: other.key != chunk.key)
    self._threads.release(chunk.key)
    olds = [chunk] + [other for other in queued if other is not chunk]
    token = state.split = object()
    parts: dict[Hashable, Chunk] = {}
    ordered: list[Chunk] = []
    for old in olds:
        for index in range(old.cursor, len(old.messages)):
            msg = old.messages[index]
            key = msg.key()
            order: Hashable = (token, key) if key is not None else object()
            part = parts.get(order)
            if part is None:
                part = parts[order] = Chunk(old.tp, old.generation, order, old.source, [msg])
                ordered.append(part)
            else:
                part.messages.append(msg)
    state.tracker.split(olds, ordered)
    first = ordered[0]
    if hold:
        self._threads.submit_held(first.key, first)
    self._threads.submit_many([(part.key, part) for part in ordered[1 if hold else 0 :]])
    return first


async def recover(self: Flow, chunk: Chunk, failure: Failure) -> None:
    """Loop: the record at the chunk's cursor failed in a handler thread. Retry it or
    dead-letter it, then let the threads go on with the chunk (its key was held)."""
    assert self._threads is not None
    work = Work.of(chunk, chunk.cursor)
    stage, exc, value = failure
    try:
        if stage == "decode":
            self._counters(work.source_topic).failed_permanent.inc()
            await self._dead_letter(work, exc, attempts=work.attempt)
        else:
            await self._attempts(work, value, exc)
    finally:
        if work.resolved:
            chunk.cursor += 1
            self._threads.release(chunk.key)
        else:
            self._abandon(chunk)


def run_sync_chunk(
    self: Flow, chunk: Chunk, start: int, durations: list[float]
) -> tuple[int, Failure | None]:
    """Handler thread: decode and handle the chunk's records from `start`, in order, until
    one fails. Returns (records done, None) or (records done, (stage, exception, value));
    each record's duration is added to `durations`."""
    messages = chunk.messages
    handler, pass_record, attempt = self.handler, self.pass_record, chunk.attempt
    produced = self._outputs
    decode = self.decode if self.validate is None else self._decode_value
    recording = recording_tracer()
    clock = time.perf_counter
    began = clock()
    # A coarse chunk that runs long and slow gives its keys back to be run in parallel.
    chunk_began = began
    long_after = began + SPLIT_AFTER_S if chunk.coarse else float("inf")
    for index in range(start, len(messages)):
        msg = messages[index]
        try:
            value = decode(msg.value())
        except (DecodeError, ValidationFailed) as exc:
            return index - start, ("decode", exc, None)
        try:
            arg = record_of(msg, value, attempt) if pass_record else value
            headers = msg.headers()
            if recording or (headers and has_traceparent(headers)):
                with trace_span(self.name, Work.of(chunk, index)):
                    result = handler(arg)
            else:
                result = handler(arg)
            # Out records (exactly_once.py): held until the record's offset is committed
            if result is not None and (outs := outputs_of(result)):
                produced.append((chunk.tp, chunk.generation, msg.offset(), outs))
        except Exception as exc:
            return index - start, ("handle", exc, value)
        finally:
            now = clock()
            durations.append(now - began)
            began = now
        ran = index + 1 - start
        if (
            now > long_after
            and now - chunk_began > ran * COARSE_BELOW_S
            and ran < len(messages) - start
        ):
            return ran, RAN_LONG
    return len(messages) - start, None
