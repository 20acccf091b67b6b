"""Settling a failed record: retry it, or move it to a retry or dead-letter topic.

A failure is retried in place with backoff (`RetryPolicy(mode="blocking")`) or republished to
`<topic>.retry.<n>` with a due time (`mode="topics"`); when attempts run out, or on `Reject` or
a decoding failure, the record is written to `<topic>.dlq` and resolved only after the ack. A
failing dead-letter write keeps the record unresolved (no loss), pauses its partition, turns
health red and retries with capped backoff (no hot loop). A back-off is cancelled when its
partition is revoked or the flow stops: the record is left for the next owner.

Functions here are `Flow` methods (bound in flow/runner.py); they share the flow's state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kafkito.flow import letters
from kafkito.flow.exactly_once import OutRecord
from kafkito.flow.outcomes import RetryLater
from kafkito.flow.records import (
    FlowError,
    Work,
    log,
)
from kafkito.flow.tracing import inject_trace
from kafkito.flow.tracker import TP

if TYPE_CHECKING:
    from kafkito.flow.runner import Flow


async def attempts(self: Flow, work: Work, value: Any, failure: BaseException | None) -> None:
    """Call the handler until it succeeds, the attempts run out, or the record moves on.

    `failure` is the exception of an attempt already made (a batch call), if any.
    """
    attempt = work.attempt
    while True:
        if failure is None:
            if not self._owned(work):
                return
            try:
                await self._call_handler(work, value, attempt)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failure = error
            else:
                self._counters(work.source_topic).processed.inc()
                self._resolve(work)
                return
        exc: BaseException = failure
        failure = None
        transient = self.retry.is_transient(exc)
        kind = "transient" if transient else "permanent"
        counters = self._counters(work.source_topic)
        (counters.failed_transient if transient else counters.failed_permanent).inc()
        log.info(
            "flow %s: %s-%d@%d attempt %d failed (%s): %s",
            self.name,
            work.tp[0],
            work.tp[1],
            work.offset,
            attempt,
            kind,
            exc,
        )
        if not transient or attempt >= self.retry.attempts:
            await self._dead_letter(work, exc, attempts=attempt)
            return
        delay_s = (
            exc.delay_s
            if isinstance(exc, RetryLater) and exc.delay_s is not None
            else self.retry.delay_s(attempt)
        )
        counters.retried.inc()
        if self.retry.mode == "topics":
            await self._send_to_retry_topic(work, attempt + 1, delay_s)
            return
        if not await self._backoff(work, delay_s):
            return  # revoked or stopping: left unresolved for the next owner
        attempt += 1


async def backoff(self: Flow, work: Work, delay_s: float) -> bool:
    """Sleep before the next attempt; False if the partition was revoked or we stop."""
    if self._stopping.is_set():
        return False
    task = asyncio.current_task()
    assert task is not None
    waiting = self._backoffs.setdefault(work.tp, set())
    waiting.add(task)
    try:
        await self._clock.sleep(delay_s)
    except asyncio.CancelledError:
        if self._owned(work) and not self._stopping.is_set():
            raise
        return False
    finally:
        waiting.discard(task)
    return self._owned(work) and not self._stopping.is_set()


async def produce(
    self: Flow,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
) -> None:
    """Write one record and wait for the broker's ack; raises on failure."""
    assert self._loop is not None
    loop = self._loop
    done: asyncio.Future[None] = loop.create_future()

    def on_delivery(err: Any, _msg: Any) -> None:
        def settle() -> None:
            if done.done():
                return
            if err is not None:
                done.set_exception(FlowError(f"write to {topic} failed: {err.str()}"))
            else:
                done.set_result(None)

        loop.call_soon_threadsafe(settle)

    carrier: dict[str, str] = {}
    inject_trace(carrier)
    all_headers = [h for h in headers if h[0] not in carrier]
    all_headers += [(k, v.encode()) for k, v in carrier.items()]
    self._producer.produce(
        topic, value=value, key=key, headers=all_headers, on_delivery=on_delivery
    )
    await done


async def dead_letter(self: Flow, work: Work, exc: BaseException, *, attempts: int) -> None:
    """Write the record to the dead-letter topic; resolve only after the ack.

    A failing write is retried with capped backoff while the partition stays paused and
    health is red; the record is never skipped.
    """
    if not self.dead_letter:
        log.error(
            "flow %s: dropping %s-%d@%d after %d attempts (no dead-letter topic): %s",
            self.name,
            work.tp[0],
            work.tp[1],
            work.offset,
            attempts,
            exc,
        )
        self._resolve(work)
        return
    topic = self.dead_letter_topic(work.source_topic)
    headers = letters.dead_letter_headers(
        work.headers,
        work.origin(),
        group=self.group_id,
        attempts=attempts,
        exc=exc,
        key=work.key,
        value=work.raw_value,
        max_record_bytes=self.max_dead_letter_bytes,
    )
    written = await self._write_until_acked(
        work, topic, headers, on_failure=lambda: self._mark_dead_letter_failing(work.tp, True)
    )
    if written:
        self._mark_dead_letter_failing(work.tp, False)
        self._counters(work.source_topic).dead_lettered.inc()
        log.warning(
            "flow %s: %s-%d@%d dead-lettered to %s after %d attempt(s): %s: %s",
            self.name,
            work.tp[0],
            work.tp[1],
            work.offset,
            topic,
            attempts,
            type(exc).__name__,
            exc,
        )
        self._resolve(work)


def mark_dead_letter_failing(self: Flow, tp: TP, failing: bool) -> None:
    state = self._partitions.get(tp)
    if failing:
        self._dead_letter_failing.add(tp)
        if state is not None and "dead-letter" not in state.pause_reasons:
            state.pause_reasons.add("dead-letter")
            self._pause_changes.add(tp)
    else:
        self._dead_letter_failing.discard(tp)
        if state is not None and "dead-letter" in state.pause_reasons:
            state.pause_reasons.discard("dead-letter")
            self._pause_changes.add(tp)


async def send_to_retry_topic(self: Flow, work: Work, next_attempt: int, delay_s: float) -> None:
    topic = letters.retry_topic(work.source_topic, next_attempt)
    due_ms = self._clock.wall_ms() + int(delay_s * 1000)
    headers = letters.retry_headers(
        work.headers, work.origin(), attempt=next_attempt, due_ms=due_ms
    )
    if await self._write_until_acked(work, topic, headers):
        self._resolve(work)


async def write_until_acked(
    self: Flow,
    work: Work,
    topic: str,
    headers: list[tuple[str, bytes | None]],
    *,
    on_failure: Callable[[], None] | None = None,
) -> bool:
    """Write `work`'s original key and value with `headers` to `topic` until the broker
    acknowledges it (True), retrying failures with capped backoff; False if the partition
    is revoked or the flow stops first (the record stays unresolved: nothing is lost)."""
    if self.exactly_once:  # written in the commit's transaction, with the offset
        if not self._owned(work):
            return False
        carrier: dict[str, str] = {}
        inject_trace(carrier)
        held = [h for h in headers if h[0] not in carrier]
        held += [(k, v.encode()) for k, v in carrier.items()]
        record: OutRecord = (topic, work.key, work.raw_value, held)
        self._outputs.append((work.tp, work.generation, work.offset, [record]))
        return True
    delay_s = 0.5
    try:
        while self._owned(work):
            try:
                await self._produce(topic, work.key, work.raw_value, headers)
            except FlowError as write_error:
                self._writes_failing[id(work)] = str(write_error)
                if on_failure is not None:
                    on_failure()
                log.error(
                    "flow %s: write of %s-%d@%d to %s failed (%s); retrying in %.1fs",
                    self.name,
                    work.tp[0],
                    work.tp[1],
                    work.offset,
                    topic,
                    write_error,
                    delay_s,
                )
                if not await self._backoff(work, delay_s):
                    return False
                delay_s = min(delay_s * 2, 30.0)
                continue
            return True
        return False
    finally:
        self._writes_failing.pop(id(work), None)  # written, or no longer ours to write
