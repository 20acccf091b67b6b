"""Running the handler off the fast path: async handlers, batch handlers, one record at a time.

Async handlers take their key's chunks record by record in a task; batch handlers take a
partition's buffered records `batch_size` at a time; each record is decoded (and validated),
handled, and on failure settled by flow/settling.py. A record is resolved (`resolve`) only
when it is safe: handled, moved on to a retry or dead-letter topic, or given up. A record left
unresolved (revoked, or stopping) takes the queued records of its key in its partition with it
(`abandon`): nothing overtakes it; they are all read again.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import time
from typing import TYPE_CHECKING, Any

from kafkito.flow.codecs import DecodeError, Decoder, ValidationFailed
from kafkito.flow.exactly_once import outputs_of
from kafkito.flow.metrics import TopicMetrics
from kafkito.flow.outcomes import BatchFailed
from kafkito.flow.records import (
    Work,
    log,
    other_partition,
    record_of,
)
from kafkito.flow.tracing import trace_span
from kafkito.flow.tracker import Chunk

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


def counters(self: Flow, topic: str) -> TopicMetrics:
    return self.metrics.for_topic(topic, self.group_id)


def owns(self: Flow, chunk: Chunk) -> bool:
    state = self._partitions.get(chunk.tp)
    return state is not None and state.generation == chunk.generation


def owned(self: Flow, work: Work) -> bool:
    state = self._partitions.get(work.tp)
    return state is not None and state.generation == work.generation


def resolve(self: Flow, work: Work) -> None:
    """The record is safe (handled, moved on, or given up): its offset may be committed.
    Records of a chunk are resolved in order: `work` is the chunk's next one."""
    work.resolved = True
    state = self._partitions.get(work.tp)
    if state is not None and state.generation == work.generation:
        state.tracker.resolved(work.chunk)
        self._progressed.set()


def abandon(self: Flow, chunk: Chunk) -> None:
    """A record of `chunk` stays unresolved (revoked, or stopping): drop what is queued
    behind it with the same key in its partition, so nothing overtakes it, and free the
    key. The next owner (or the next run) reads them all again."""

    def keep(other: Chunk) -> bool:
        return other.tp != chunk.tp or other.key != chunk.key

    if self._threads is not None:
        self._threads.discard(keep)
        self._threads.release(chunk.key)
    elif self._scheduler is not None:
        self._scheduler.discard(keep)


def argument(self: Flow, work: Work, value: Any, attempt: int) -> Any:
    return record_of(work.message, value, attempt) if self.pass_record else value


def first_decodes_done(self: Flow, bare: Decoder, loud: str | None) -> None:
    """A record decoded, or the first ones all failed: log that once; decode bare now."""
    self.decode = bare
    if loud is not None:
        where = (
            "they go to " + ", ".join(self.dead_letter_topic(t) for t in self.topics)
            if self.dead_letter
            else "they are dropped (no dead-letter topic)"
        )
        log.error("flow %s: %s; %s", self.name, loud, where)


def decode_value(self: Flow, raw: bytes | None) -> Any:
    """The record's value, decoded and validated; raises DecodeError or ValidationFailed."""
    value = self.decode(raw)
    if self.validate is not None:
        verdict = self.validate(value)
        if verdict not in (None, True, [], ()):
            raise ValidationFailed(f"validation failed: {verdict}")
    return value


async def process(self: Flow, chunks: list[Chunk]) -> None:
    """Async handlers: one ordering key's chunks, record by record, in order."""
    for chunk in chunks:
        while chunk.cursor < len(chunk.messages) and self._owns(chunk):
            work = Work.of(chunk, chunk.cursor)
            await self._process_one(work)
            if not work.resolved:
                self._abandon(chunk)
                return
            chunk.cursor += 1


async def process_one(self: Flow, work: Work) -> None:
    """Decode, handle, retry, dead-letter; resolves the offset only when the record is safe."""
    started = time.perf_counter()
    try:
        try:
            value = self._decode_value(work.raw_value)
        except (DecodeError, ValidationFailed) as exc:
            self._counters(work.source_topic).failed_permanent.inc()
            await self._dead_letter(work, exc, attempts=work.attempt)
            return
        await self._attempts(work, value, None)
    finally:
        self._counters(work.source_topic).handler_seconds.observe(time.perf_counter() - started)


async def process_batches(self: Flow, batches: list[list[Chunk]]) -> None:
    """One partition's buffered chunks, `batch_size` records per handler call, in order."""
    assert self.batch_size is not None
    for chunks in batches:
        works = [
            Work.of(chunk, index)
            for chunk in chunks
            if self._owns(chunk)
            for index in range(chunk.cursor, len(chunk.messages))
        ]
        for start in range(0, len(works), self.batch_size):
            if not await self._process_batch(works[start : start + self.batch_size]):
                # Left unresolved (revoked, or stopping): nothing of the partition overtakes.
                assert self._batch_scheduler is not None
                self._batch_scheduler.discard(other_partition(chunks[0].tp))
                return


async def process_batch(self: Flow, batch: list[Work]) -> bool:
    """One call of the batch handler; then, in order, undecodable records are dead-lettered
    and failed ones retried one by one. False if a record was left unresolved."""
    started = time.perf_counter()
    try:
        decoded: list[tuple[Work, Any]] = []
        undecodable: dict[int, Exception] = {}
        for index, work in enumerate(batch):
            try:
                decoded.append((work, self._decode_value(work.raw_value)))
            except (DecodeError, ValidationFailed) as exc:
                undecodable[index] = exc
        failures: dict[int, BaseException] = {}
        if decoded:
            try:
                await self._call_batch_handler(decoded)
            except asyncio.CancelledError:
                raise
            except BatchFailed as exc:
                failures = dict(exc.failures)
            except Exception as exc:
                failures = dict.fromkeys(range(len(decoded)), exc)
        values = iter(enumerate(decoded))
        for index, work in enumerate(batch):
            if not self._owned(work):
                return False
            if index in undecodable:
                self._counters(work.source_topic).failed_permanent.inc()
                await self._dead_letter(work, undecodable[index], attempts=work.attempt)
            else:
                position, (_, value) = next(values)
                if position in failures:
                    await self._attempts(work, value, failures[position])
                else:
                    self._counters(work.source_topic).processed.inc()
                    self._resolve(work)
            if not work.resolved:
                return False
        return True
    finally:
        self._counters(batch[0].source_topic).handler_seconds.observe(time.perf_counter() - started)


async def call_handler(self: Flow, work: Work, value: Any, attempt: int) -> None:
    if self.batch_handler is not None:  # a retry of one record of a batch
        await self._call_batch_handler([(work, value)], attempt=attempt)
        return
    arg = self._argument(work, value, attempt)
    with trace_span(self.name, work):
        if self.is_async:
            result = await self.handler(arg)
        else:
            assert self._loop is not None
            # copy_context: the handler thread sees the trace span (and any contextvar) set here
            context = contextvars.copy_context()
            result = await self._loop.run_in_executor(
                self._handlers, context.run, self.handler, arg
            )
    if result is not None and (outs := outputs_of(result)):
        self._outputs.append((work.tp, work.generation, work.offset, outs))


async def call_batch_handler(
    self: Flow, decoded: list[tuple[Work, Any]], *, attempt: int | None = None
) -> None:
    args = [self._argument(work, value, attempt or work.attempt) for work, value in decoded]
    assert self.batch_handler is not None
    if inspect.iscoroutinefunction(self.batch_handler):
        await self.batch_handler(args)
    else:
        assert self._loop is not None
        context = contextvars.copy_context()
        await self._loop.run_in_executor(self._handlers, context.run, self.batch_handler, args)
