"""The Pub/Sub flow's steps for one message: decode, handle, retry, dead-letter, batch.

A part of `kafkito.pubsub.Flow` (its base class), apart so that each module reads in one
sitting: flow.py holds the lifecycle and the arrival of messages, this one what happens to a
message once it is taken (the theory of operation is at the top of flow.py). Everything here
runs on the flow's event loop except `_call_sync`, which handler threads run.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kafkito.client.errors import ClientError
from kafkito.flow.codecs import DecodeError, Decoder, ValidationFailed
from kafkito.flow.metrics import TopicMetrics
from kafkito.flow.outcomes import BatchFailed, Reject, RetryLater
from kafkito.flow.policy import RetryPolicy
from kafkito.flow.runner import Record
from kafkito.pubsub.letters import dead_letter_attributes
from kafkito.pubsub.reader import Message as PubSubMessage
from kafkito.pubsub.reader import Stream, current_message

log = logging.getLogger("kafkito.pubsub.flow")

DEAD_LETTER_BACKOFF_MAX_S = 30.0
TICK_S = 0.1
"""How often waits check stop() (and the flow's loop its stream)."""
_Failure = tuple[str, BaseException]
"""("decode" | "handle", the exception)."""


@dataclass(frozen=True, slots=True)
class Policies:
    """What the subscription itself does with failures (read from Pub/Sub at start)."""

    topic: str
    """The subscription's topic, its short id (the origin of its messages)."""
    dead_letter_topic: str | None
    """The topic of the subscription's dead-letter policy (full path), if it has one."""
    max_delivery_attempts: int | None
    has_retry_policy: bool

    @classmethod
    def of(cls, info: Any, fallback_topic: str) -> Policies:
        topic_path = str(getattr(info, "topic", "") or "")
        topic = topic_path.rsplit("/", 1)[-1] if topic_path else fallback_topic
        if topic == "_deleted-topic_":
            topic = fallback_topic
        dead = getattr(info, "dead_letter_policy", None)
        dead_topic = str(getattr(dead, "dead_letter_topic", "") or "") or None
        attempts = int(getattr(dead, "max_delivery_attempts", 0) or 0) if dead_topic else 0
        retry = getattr(info, "retry_policy", None)
        has_retry = retry is not None and bool(
            _seconds_of(getattr(retry, "minimum_backoff", None))
            or _seconds_of(getattr(retry, "maximum_backoff", None))
        )
        return cls(topic, dead_topic, attempts or None, has_retry)


def _seconds_of(duration: Any) -> float:
    if duration is None:
        return 0.0
    if hasattr(duration, "total_seconds"):
        return float(duration.total_seconds())
    return float(getattr(duration, "seconds", 0) or 0) + float(getattr(duration, "nanos", 0)) / 1e9


class Steps:
    """What happens to one message (see the module's docstring); state is the Flow's."""

    # set by Flow.__init__ / run_async
    handler: Callable[..., Any]
    is_async: bool
    batch_size: int | None
    batch_timeout_s: float
    pass_record: bool
    decode: Decoder
    _bare: Decoder
    validate: Callable[[Any], Any] | None
    retry: RetryPolicy | Literal["subscription"]
    name: str
    subscription: str
    policies: Policies | None
    dead_letter_to: str | None
    handled: int
    dead_lettered: int
    _counters: TopicMetrics | None
    _stream: Stream | None
    _writer: Any
    _loop: asyncio.AbstractEventLoop | None
    _stopping: threading.Event
    _sem: asyncio.Semaphore | None
    _pool: concurrent.futures.ThreadPoolExecutor | None
    _attempts: collections.OrderedDict[str, int]
    _writes_failing: dict[str, str]
    _count_lock: threading.Lock
    _batch: list[Any]
    _batch_timer: asyncio.TimerHandle | None

    def _spawn(self, coro: Any) -> None:
        raise NotImplementedError  # Flow's

    # -- one message -----------------------------------------------------------------------

    def _attempt_of(self, msg: Any) -> int:
        """This delivery's attempt number: Pub/Sub's count, or ours across redeliveries."""
        if msg.delivery_attempt:
            return int(msg.delivery_attempt)
        return self._attempts.get(str(msg.message_id), 0) + 1

    def _max_attempts(self) -> float:
        assert self.policies is not None
        limit = self.policies.max_delivery_attempts
        if self.retry == "subscription":
            return float(limit) if limit is not None else float("inf")
        allowed = self.retry.attempts
        if self.retry.mode == "topics" and limit is not None:
            # Pub/Sub moves the message itself after its limit, without our attributes
            allowed = min(allowed, limit)
        return float(allowed)

    async def _process_one(self, msg: Any, failure: _Failure | None = None) -> bool:
        """Decode, handle, retry, dead-letter; settles the message once it is resolved.

        Returns False if it was left unsettled (stopping). `failure` is a first attempt's
        failure already known (a batch's member)."""
        counters = self._counters
        stream = self._stream
        assert counters is not None and stream is not None
        started = time.perf_counter()
        attempt = self._attempt_of(msg)
        limit = self._max_attempts()
        try:
            while True:
                if failure is None:
                    failure = await self._call(msg, attempt)
                if failure is None:
                    stream.settle(msg, ok=True)
                    self._attempts.pop(str(msg.message_id), None)
                    counters.processed.inc()
                    with self._count_lock:
                        self.handled += 1
                    return True
                stage, exc = failure
                transient = self._transient(stage, exc)
                if not transient or attempt >= limit or self._stopping.is_set():
                    if self._stopping.is_set() and transient and attempt < limit:
                        return False  # back after its ack deadline, for another try
                    (counters.failed_transient if transient else counters.failed_permanent).inc()
                    return await self._dead_letter(msg, exc, attempt)
                counters.failed_transient.inc()
                counters.retried.inc()
                if self.retry == "subscription":
                    stream.settle(msg, ok=False)  # the subscription's retry policy backs off
                    return True
                delay = self._delay_s(exc, attempt)
                if self.retry.mode == "topics":
                    if not msg.delivery_attempt:
                        self._remember_attempt(str(msg.message_id), attempt)
                    stream.redeliver_after(msg, delay)
                    return True
                if not await self._sleep(delay):
                    return False
                attempt += 1
                failure = None
        finally:
            counters.handler_seconds.observe(time.perf_counter() - started)

    def _transient(self, stage: str, exc: BaseException) -> bool:
        """Worth another attempt: a handler failure the policy lists (never a decode one)."""
        if stage == "decode":
            return False
        if isinstance(self.retry, RetryPolicy):
            return self.retry.is_transient(exc)
        return not isinstance(exc, Reject)

    def _delay_s(self, exc: BaseException, attempt: int) -> float:
        assert isinstance(self.retry, RetryPolicy)
        if isinstance(exc, RetryLater) and exc.delay_s is not None:
            return exc.delay_s
        return self.retry.delay_s(attempt)

    def _remember_attempt(self, message_id: str, attempt: int) -> None:
        self._attempts[message_id] = attempt
        while len(self._attempts) > 100_000:  # bounded: a message lost track of restarts at 1
            self._attempts.popitem(last=False)

    async def _sleep(self, delay_s: float) -> bool:
        """Wait `delay_s`, cut short by stop(); False if stopped."""
        deadline = time.monotonic() + delay_s
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            await asyncio.sleep(min(left, TICK_S))
        return False

    async def _call(self, msg: Any, attempt: int) -> _Failure | None:
        """One attempt: decode, validate and call the handler (in a thread when it is sync)."""
        assert self._sem is not None and self._loop is not None
        async with self._sem:
            if self.is_async:
                try:
                    arg = self._argument(msg, attempt)
                except (DecodeError, ValidationFailed) as exc:
                    return ("decode", exc)
                token = current_message.set(self._message(msg))
                try:
                    with _trace_span(self.name, self._topic(), msg):
                        result = self.handler([arg] if self.batch_size else arg)
                        await result
                except Exception as exc:
                    return ("handle", _single(exc))
                finally:
                    current_message.reset(token)
                return None
            return await self._loop.run_in_executor(self._pool, self._call_sync, msg, attempt)

    def _call_sync(self, msg: Any, attempt: int) -> _Failure | None:
        try:
            arg = self._argument(msg, attempt)
        except (DecodeError, ValidationFailed) as exc:
            return ("decode", exc)
        token = current_message.set(self._message(msg))
        try:
            with _trace_span(self.name, self._topic(), msg):
                self.handler([arg] if self.batch_size else arg)
        except Exception as exc:
            return ("handle", _single(exc))
        finally:
            current_message.reset(token)
        return None

    def _argument(self, msg: Any, attempt: int) -> Any:
        value = self._decode_value(msg.data)
        if not self.pass_record:
            return value
        stamp = msg.publish_time
        return Record(
            topic=self._topic(),
            partition=-1,
            offset=-1,
            timestamp_ms=int(stamp.timestamp() * 1000) if stamp is not None else -1,
            key=msg.ordering_key.encode() if msg.ordering_key else None,
            value=value,
            headers={k: v.encode() for k, v in msg.attributes.items()},
            raw_value=msg.data,
            attempt=attempt,
        )

    def _message(self, msg: Any) -> PubSubMessage:
        from kafkito.pubsub.reader import to_message

        return to_message(self.subscription, msg)

    def _topic(self) -> str:
        return self.policies.topic if self.policies is not None else self.subscription

    def _decode_value(self, raw: bytes | None) -> Any:
        value = self.decode(raw)
        if self.validate is not None:
            verdict = self.validate(value)
            if verdict not in (None, True, [], ()):
                raise ValidationFailed(f"validation failed: {verdict}")
        return value

    def _first_decodes_done(self, loud: str | None) -> None:
        self.decode = self._bare
        if loud is not None:
            where = (
                f"they go to {self.dead_letter_to}"
                if self.dead_letter_to
                else "they are dropped (no dead-letter topic)"
            )
            log.error("flow %s: %s; %s", self.name, loud, where)

    # -- batches -----------------------------------------------------------------------------

    def _add_to_batch(self, msg: Any) -> None:
        assert self.batch_size is not None and self._loop is not None
        self._batch.append(msg)
        if len(self._batch) >= self.batch_size:
            self._flush_batch()
        elif self._batch_timer is None:
            self._batch_timer = self._loop.call_later(self.batch_timeout_s, self._flush_batch)

    def _flush_batch(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        batch, self._batch = self._batch, []
        if batch:
            self._spawn(self._process_batch(batch))

    async def _process_batch(self, batch: list[Any]) -> None:
        """A batch handler's call: its messages that decoded, in one call. Those that failed
        (all of them, or the ones `BatchFailed` names) go on alone through the retry path."""
        assert self._sem is not None and self._loop is not None
        args: list[Any] = []
        members: list[Any] = []
        alone: list[tuple[Any, _Failure]] = []
        for msg in batch:
            try:
                args.append(self._argument(msg, self._attempt_of(msg)))
                members.append(msg)
            except (DecodeError, ValidationFailed) as exc:
                alone.append((msg, ("decode", exc)))
        failures: Mapping[int, BaseException] = {}
        if members:
            async with self._sem:
                try:
                    if self.is_async:
                        await self.handler(args)
                    else:
                        await self._loop.run_in_executor(self._pool, self.handler, args)
                except BatchFailed as exc:
                    failures = exc.failures
                except Exception as exc:
                    failures = dict.fromkeys(range(len(members)), exc)
        stream = self._stream
        assert stream is not None and self._counters is not None
        for index, msg in enumerate(members):
            if index in failures:
                alone.append((msg, ("handle", failures[index])))
            else:
                stream.settle(msg, ok=True)
                self._counters.processed.inc()
                self.handled += 1
        if alone:
            await asyncio.gather(*(self._process_one(msg, failure) for msg, failure in alone))

    # -- dead letters ------------------------------------------------------------------------

    async def _dead_letter(self, msg: Any, exc: BaseException, attempts: int) -> bool:
        """Publish the message to the dead-letter topic, then ack it. A failing write keeps
        it unsettled (its lease extended) and is tried again with capped backoff."""
        stream = self._stream
        assert stream is not None and self._counters is not None and self.policies is not None
        if self.dead_letter_to is None or self._writer is None:
            log.warning(
                "flow %s: message %s dropped after %d attempt(s) (no dead-letter topic): %r",
                self.name,
                msg.message_id,
                attempts,
                exc,
            )
            stream.settle(msg, ok=True)
            return True
        stamp = msg.publish_time
        attributes = dead_letter_attributes(
            dict(msg.attributes),
            topic=self.policies.topic,
            subscription=self.subscription,
            message_id=str(msg.message_id),
            publish_time_ms=int(stamp.timestamp() * 1000) if stamp is not None else None,
            attempts=attempts,
            exc=exc,
        )
        message_id = str(msg.message_id)
        backoff = 0.5
        while True:
            try:
                await asyncio.to_thread(
                    self._writer.write,
                    self.dead_letter_to,
                    bytes(msg.data),
                    attributes,
                    msg.ordering_key or None,
                )
                break
            except (ClientError, ValueError) as error:
                self._writes_failing[message_id] = f"{self.dead_letter_to}: {error}"
                log.error(
                    "flow %s: dead letter of %s to %s failed (the message stays unacked, "
                    "retrying in %.1fs): %s",
                    self.name,
                    message_id,
                    self.dead_letter_to,
                    backoff,
                    error,
                )
                if not await self._sleep(backoff):
                    return False
                backoff = min(backoff * 2, DEAD_LETTER_BACKOFF_MAX_S)
        self._writes_failing.pop(message_id, None)
        self._attempts.pop(message_id, None)
        stream.settle(msg, ok=True)
        self._counters.dead_lettered.inc()
        with self._count_lock:
            self.dead_lettered += 1
        return True


def _single(exc: BaseException) -> BaseException:
    """A one-message batch's BatchFailed is its one failure."""
    if isinstance(exc, BatchFailed) and len(exc.failures) == 1:
        return next(iter(exc.failures.values()))
    return exc


@functools.cache
def _recording_tracer() -> bool:
    """Whether an OpenTelemetry SDK records spans in this process (asked once)."""
    from opentelemetry import trace

    with trace.get_tracer("kafkito.pubsub").start_as_current_span("kafkito.probe") as span:
        return bool(span.is_recording())


@contextlib.contextmanager
def _trace_span(name: str, topic: str, msg: Any) -> Iterator[None]:
    """A consumer span whose parent is the `traceparent` attribute (the producer's span).

    Without an SDK and without a traceparent there is nothing to record or propagate."""
    attributes = msg.attributes
    if not _recording_tracer() and "traceparent" not in attributes:
        yield
        return
    from opentelemetry import propagate, trace

    parent = propagate.extract(dict(attributes))
    with trace.get_tracer("kafkito.pubsub").start_as_current_span(
        f"{topic} process",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            "messaging.system": "gcp_pubsub",
            "messaging.destination.name": topic,
            "messaging.message.id": str(msg.message_id),
            "messaging.gcp_pubsub.message.ordering_key": msg.ordering_key or "",
            "kafkito.flow": name,
        },
    ):
        yield
