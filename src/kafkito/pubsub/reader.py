"""Reader on Pub/Sub: a handler per message, acked only after the handler returns.

The loop, in both flavours (this module and `kafkito.pubsub.aio`):

    streaming pull (google's client, its own threads; opened by the first read(), kept
        │           until close(), as a Kafka consumer stays subscribed between reads)
        │ flow control: at most max_outstanding_messages / _bytes handed to us, unacked
        │ leases: every message handed to us is extended until acked or nacked,
        ▼         for at most max_lease_duration
    a FIFO queue ─► the caller's thread: handler(...) ─► ack
                                            │ raises
                                            ▼
             nack it: Pub/Sub redelivers it at once (on this open stream, so the next
             read() gets it again); read() stops and the exception propagates

The google client calls a callback on its scheduler's thread; kafkito's callback only puts
the message in a queue, and `read()` runs handlers one at a time on the caller's thread, as the
Kafka Reader does: `message_key` (the ordering key) and `current_message` context variables
work, signals stop it, and order per ordering key holds (the client hands out the next message
of a key only after the previous one was acked or nacked).

Why nack-and-raise on a handler exception and not nack-and-continue: it is the Kafka Reader's
contract (a failing handler stops the reader; the message is read again by the next read),
so code moves between backends unchanged. Retrying and dead-lettering are the consume flow's.

Stopping: `stop()` (thread- and signal-safe) ends `read()` after the current message; in the
main thread `read()` turns SIGINT and SIGTERM into `stop()`; `limit` stops after that many
messages. The stream stays open and its messages stay leased, so the next `read()` goes on
where this one stopped. `close()` ends the stream: messages received and not handled are
left unacked and come back when their ack deadline passes (see `close_stream` for why they
are not nacked), exactly as after a crash. Nothing acked is redelivered, nothing unacked is
lost.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from kafkito.client.reader import message_key, stop_on_signals
from kafkito.pubsub import _google
from kafkito.pubsub.config import ReaderConfig
from kafkito.pubsub.errors import ClientError, ConfigError, from_google_error

log = logging.getLogger(__name__)

__all__ = ["Message", "Reader", "current_message", "message_key"]

POLL_TIMEOUT_S = 0.1
"""Longest wait for the next message: bounds how long stop() takes to be noticed."""
CLOSE_TIMEOUT_S = 10.0
"""How long closing a stream waits for the google client's threads."""


@dataclass(frozen=True, slots=True)
class Message:
    """One received message, as `read_message` handlers receive it."""

    subscription: str
    message_id: str
    key: bytes | None
    """The ordering key (UTF-8), None when the message has none."""
    value: bytes
    headers: dict[str, str]
    """The attributes."""
    publish_time_ms: int | None
    delivery_attempt: int | None
    """Set only when the subscription has a dead-letter policy (Pub/Sub's own counter)."""


current_message: ContextVar[Message | None] = ContextVar(
    "kafkito_pubsub_current_message", default=None
)
"""The Pub/Sub message being handled."""


def to_message(subscription: str, msg: Any) -> Message:
    stamp: datetime.datetime | None = msg.publish_time
    return Message(
        subscription=subscription,
        message_id=str(msg.message_id),
        key=msg.ordering_key.encode() if msg.ordering_key else None,
        value=bytes(msg.data),
        headers=dict(msg.attributes),
        publish_time_ms=int(stamp.timestamp() * 1000) if stamp is not None else None,
        delivery_attempt=msg.delivery_attempt,
    )


def build_reader_config(
    config: ReaderConfig | Mapping[str, Any] | None,
    *,
    subscription: str | None = None,
    topic: str | None = None,
    project_id: str | None = None,
) -> ReaderConfig:
    base = config if isinstance(config, ReaderConfig) else ReaderConfig.from_dict(config or {})
    merged = base.merged(subscription_id=subscription, topic_id=topic)
    if project_id is not None:
        merged = merged.merged(client={**merged.client.model_dump(), "project_id": project_id})
    if not merged.subscription_id:
        raise ConfigError("a Reader needs a subscription_id", key="subscription_id")
    return merged


class Stream:
    """One streaming pull: its own client, the google future, and the count of messages held.

    `deliver` is the google client's callback (its threads); `settle` is called by the reading
    side with each message it finished. `held` counts messages delivered and not yet acked or
    nacked: the number flow control bounds.
    """

    def __init__(self, put: Callable[[Any], None]) -> None:
        self._put = put
        self._lock = threading.Lock()
        self.closing = False
        self.held = 0
        self.max_held = 0
        self.future: Any = None
        self.client: Any = None

    def deliver(self, msg: Any) -> None:
        with self._lock:
            if self.closing:  # arrived while closing: left to its ack deadline (close_stream)
                return
            self.held += 1
            self.max_held = max(self.max_held, self.held)
            # under the lock: once begin_close() returns, no message is queued any more
            self._put(msg)

    def settle(self, msg: Any, *, ok: bool) -> None:
        if ok:
            msg.ack()
        else:
            msg.nack()
        with self._lock:
            self.held -= 1

    def redeliver_after(self, msg: Any, delay_s: float) -> None:
        """Hand the message back so that Pub/Sub redelivers it in about `delay_s` (the flow's
        "nack with backoff"): its ack deadline is set to the delay, then it leaves the lease
        manager (which would otherwise go on extending it). Pub/Sub takes 0-600 s; 0 is a nack.
        """
        seconds = max(0, min(600, round(delay_s)))
        if seconds == 0:
            msg.nack()
        else:
            msg.modify_ack_deadline(seconds)
            msg.drop()
        with self._lock:
            self.held -= 1

    def begin_close(self) -> None:
        with self._lock:
            self.closing = True


class SubscriberCore:
    """The google subscriber, the subscription check and the streams; shared by both flavours."""

    def __init__(self, config: ReaderConfig) -> None:
        assert config.subscription_id
        g = _google.pubsub()
        self._g = g
        self.config = config
        self.project_id = config.client.resolved_project_id()
        self.subscription = config.subscription_id
        self.path = (
            self.subscription
            if self.subscription.startswith("projects/")
            else f"projects/{self.project_id}/subscriptions/{self.subscription}"
        )
        self.subscriber = g.SubscriberClient(credentials=_google.credentials(config.client))
        self.closed = False
        self.handled = 0
        self.last_poll_monotonic: float | None = None
        self.stream: Stream | None = None
        self.reading = False
        """Whether a read() is running (health checks poll age only then)."""
        self._max_held_closed = 0
        self.info: Any = None
        """The subscription as Pub/Sub describes it (topic, dead-letter and retry policies),
        read by connect()."""

    def connect(self) -> None:
        """Check the subscription exists; create it (and its topic) when create_if_missing."""
        timeout = self.config.client.timeout

        def get_or_create() -> None:
            try:
                self.info = self.subscriber.get_subscription(
                    subscription=self.path, timeout=timeout, retry=None
                )
                return
            except Exception as exc:
                if not (_google.is_not_found(exc) and self.config.create_if_missing):
                    raise
            if not self.config.topic_id:
                raise ConfigError(
                    f"subscription {self.subscription!r} does not exist and create_if_missing "
                    "needs topic_id to create it",
                    key="topic_id",
                )
            self.create_subscription()

        _google.call_with_retry(
            get_or_create, delays_s=self.config.retry_delays_s, subscription=self.subscription
        )

    def create_subscription(self) -> None:
        assert self.config.topic_id
        topic = self.config.topic_id
        topic_path = (
            topic if topic.startswith("projects/") else f"projects/{self.project_id}/topics/{topic}"
        )
        timeout = self.config.client.timeout
        publisher = self._g.PublisherClient(credentials=_google.credentials(self.config.client))
        try:
            try:
                publisher.create_topic(name=topic_path, timeout=timeout, retry=None)
                log.info("created Pub/Sub topic %s", topic_path)
            except Exception as exc:
                if not _google.is_already_exists(exc):
                    raise
        finally:
            publisher.stop()
        request = {
            "name": self.path,
            "topic": topic_path,
            "ack_deadline_seconds": int(self.config.subscription.ack_deadline),
            "enable_message_ordering": self.config.message_ordering,
        }
        try:
            self.info = self.subscriber.create_subscription(
                request=request, timeout=timeout, retry=None
            )
            log.info("created Pub/Sub subscription %s on %s", self.path, topic_path)
        except Exception as exc:
            if not _google.is_already_exists(exc):
                raise
            self.info = self.subscriber.get_subscription(
                subscription=self.path, timeout=timeout, retry=None
            )

    def flow_control(self) -> Any:
        s = self.config.subscription
        # The lease step is the ack deadline: a message of a reader that crashed comes back
        # after at most that long. Left at google's default (0), the stream would ask for 60 s
        # whatever the subscription says.
        return self._g.types.FlowControl(
            max_messages=s.max_outstanding_messages,
            max_bytes=s.max_outstanding_bytes,
            max_lease_duration=s.max_lease_duration,
            max_duration_per_lease_extension=int(s.ack_deadline),
        )

    def open(self, put: Callable[[Any], None]) -> Stream:
        """Start a streaming pull that hands each message to `put` (through Stream.deliver)."""
        if self.closed:
            raise ClientError("the reader is closed")
        stream = Stream(put)
        scheduler = _google.thread_scheduler()
        stream.client = self._g.SubscriberClient(
            credentials=_google.credentials(self.config.client)
        )
        stream.future = stream.client.subscribe(
            self.path,
            callback=stream.deliver,
            flow_control=self.flow_control(),
            scheduler=scheduler,
        )
        self.stream = stream
        return stream

    def failed(self, stream: Stream) -> ClientError | None:
        """The typed error if the stream ended by itself (subscription deleted, no access)."""
        future = stream.future
        if future is None or not future.done() or future.cancelled():
            return None
        exc = future.exception()
        if exc is None:
            return ClientError(f"the streaming pull on {self.subscription!r} ended")
        if isinstance(exc, _google.google_exceptions()):
            return from_google_error(exc, subscription=self.subscription)
        return ClientError(f"the streaming pull on {self.subscription!r} failed: {exc!r}")

    def close_stream(self, stream: Stream, unhandled: list[Any]) -> None:
        """End the stream and close its channel; what it held goes back to Pub/Sub unacked.

        Messages received and not handled are not nacked here, on purpose: a nack sent while
        the stream closes is answered by a redelivery on that same closing stream, and the
        emulator then held such messages back for more than 30 s in our tests (it never
        redelivered them within the test), while un-nacked ones came back exactly when their
        ack deadline passed. So their leases simply stop being extended: Pub/Sub redelivers
        them after the ack deadline, as it would after a crash. Nothing is lost either way.

        The stream has a gRPC channel of its own: closing the channel is what makes the
        emulator forget the stream (it keeps sending to a merely cancelled one while the
        channel lives).
        """
        stream.begin_close()
        if unhandled:
            log.info(
                "%d received, unhandled message(s) on %s go back after their ack deadline",
                len(unhandled),
                self.path,
            )
        self._max_held_closed = max(self._max_held_closed, stream.max_held)
        future = stream.future
        half_close(future)
        future.cancel()
        with contextlib.suppress(Exception):  # a failed stream's error was reported already
            future.result(timeout=CLOSE_TIMEOUT_S)
        stream.client.close()
        self.stream = None
        self.reading = False

    @property
    def max_held(self) -> int:
        """The most messages ever held at once (delivered, not settled), over every stream."""
        current = self.stream.max_held if self.stream is not None else 0
        return max(self._max_held_closed, current)

    @property
    def held(self) -> int:
        return self.stream.held if self.stream is not None else 0

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.subscriber.close()


HALF_CLOSE_WAIT_S = 0.5
"""How long close waits for the server to end a stream after our half-close."""


def half_close(future: Any) -> None:
    """End the stream's requests (a gRPC half-close) and give the server a moment to end the
    stream itself, before google's cancel sends RST_STREAM.

    The Cloud SDK's emulator fails on RST_STREAM (a NoSuchMethodError in its gRPC server),
    never forgets a stream cancelled that way and keeps sending it new messages, which then
    come back only after their ack deadline. A half-close makes it end the stream cleanly,
    and the next stream on the subscription gets new messages at once (measured). Google's
    service needs none of this; where the server does not end the stream within
    HALF_CLOSE_WAIT_S the cancel goes ahead as before. Reaches into the client's streaming
    pull manager (not public API; stable in the 2.x line): without those attributes it does
    nothing.
    """
    manager = getattr(future, "_StreamingPullFuture__manager", None)  # its private name
    rpc = getattr(manager, "_rpc", None)
    requests = getattr(rpc, "_request_queue", None)
    call = getattr(rpc, "call", None)
    call = getattr(call, "_wrapped", call)  # api_core's iterator around the gRPC call
    if requests is None or call is None or not hasattr(call, "done"):
        return
    requests.put(None)
    deadline = time.monotonic() + HALF_CLOSE_WAIT_S
    while not call.done() and time.monotonic() < deadline:
        time.sleep(0.01)


def drain(q: queue.Queue[Any]) -> list[Any]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


Handler = Callable[[bytes, dict[str, str]], object]
ValueHandler = Callable[[bytes], object]
MessageHandler = Callable[[Message], object]


class Reader:
    """Reads a subscription and calls a handler per message; acks after the handler returns.

    `config` is a ReaderConfig or a dict of the seed's pubsub keys; `subscription`, `topic` and
    `project_id` override it. The subscription is checked on construction (created, with its
    topic, when `create_if_missing` and a topic are set).
    """

    def __init__(
        self,
        subscription: str | None = None,
        config: ReaderConfig | Mapping[str, Any] | None = None,
        *,
        topic: str | None = None,
        project_id: str | None = None,
    ) -> None:
        merged = build_reader_config(
            config, subscription=subscription, topic=topic, project_id=project_id
        )
        self._core = SubscriberCore(merged)
        self._stopping = False
        self._inbox: queue.Queue[Any] = queue.Queue()
        try:
            self._core.connect()
        except BaseException:
            self._core.close()
            raise

    @property
    def config(self) -> ReaderConfig:
        return self._core.config

    @property
    def core(self) -> SubscriberCore:
        """The subscriber and its progress (used by HealthChecker)."""
        return self._core

    def read(
        self, handler: Handler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Call `handler(value, headers)` per message until stop(), a signal, or `limit` messages.

        `headers` are the attributes. Returns how many messages were handled. A handler
        exception nacks that message (Pub/Sub redelivers it), stops reading and propagates.
        """
        key_name = self.config.key

        def call(msg: Any) -> object:
            headers = dict(msg.attributes)
            if key_name is not None:
                headers[key_name] = msg.ordering_key
            return handler(msg.data, headers)

        return self._loop(call, limit, handle_signals)

    def read_value(
        self, handler: ValueHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Call `handler(value)` per message (see read)."""
        return self._loop(lambda msg: handler(msg.data), limit, handle_signals)

    def read_message(
        self, handler: MessageHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Call `handler(Message)` per message (see read)."""
        subscription = self._core.subscription

        def call(msg: Any) -> object:
            message = to_message(subscription, msg)
            token = current_message.set(message)
            try:
                return handler(message)
            finally:
                current_message.reset(token)

        return self._loop(call, limit, handle_signals)

    def _loop(self, call: Callable[[Any], object], limit: int | None, handle_signals: bool) -> int:
        core = self._core
        self._stopping = False
        if core.stream is None:
            core.open(self._inbox.put)
        stream = core.stream
        assert stream is not None
        inbox = self._inbox
        budget = -1 if limit is None else limit
        handled = 0
        guard = stop_on_signals(self.stop) if handle_signals else contextlib.nullcontext()
        core.reading = True
        try:
            with guard:
                while not self._stopping and handled != budget:
                    core.last_poll_monotonic = time.monotonic()
                    try:
                        msg = inbox.get(timeout=POLL_TIMEOUT_S)
                    except queue.Empty:
                        error = core.failed(stream)
                        if error is not None:
                            core.close_stream(stream, drain(inbox))
                            raise error from None
                        continue
                    key = msg.ordering_key
                    token = message_key.set(key.encode() if key else None)
                    try:
                        call(msg)
                    except BaseException:
                        # back to Pub/Sub now: it comes again on this open stream
                        stream.settle(msg, ok=False)
                        raise
                    finally:
                        message_key.reset(token)
                    stream.settle(msg, ok=True)
                    handled += 1
                    core.handled += 1
        finally:
            core.reading = False
        return handled

    def stop(self) -> None:
        """Ask read() to return after the current message (thread- and signal-safe)."""
        self._stopping = True

    def close(self) -> None:
        """End the stream (what it holds comes back after its ack deadline) and close the
        subscriber. Idempotent."""
        self.stop()
        if self._core.stream is not None:
            self._core.close_stream(self._core.stream, drain(self._inbox))
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        c = self.config
        return f"Reader(project_id={self._core.project_id!r}, subscription={c.subscription_id!r})"
