"""The asyncio flavour of kafkito.pubsub: the same names and semantics, with `await`.

    from kafkito.pubsub.aio import Writer, Reader   # instead of: from kafkito.pubsub import ...

As `kafkito.aio` is to `kafkito.client`: one engine (`PublisherCore`, `SubscriberCore`) under
both flavours. How google-cloud-pubsub meets the event loop:

* Writer: `publish()` only queues the message in the google batcher, so it runs on the loop;
  its future is a `concurrent.futures.Future`, awaited through `asyncio.wrap_future`. Admin
  calls (the topic check) run in a thread. Construction does no I/O; `connect()` (called by
  `async with` and by the first write) checks the topic.
* Reader: the google client's callback (its thread) hands each message to the loop with
  `call_soon_threadsafe`; the handler (a coroutine function or a plain one) runs on the loop,
  in the reading task, then the message is acked; a handler exception nacks it. Cancelling
  the task that runs `read()` stops it at the next await and nacks the message being handled;
  the stream stays open for the next read until `close()`, which leaves the messages it
  held to their ack deadline (as the sync Reader's close does).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self

from kafkito.aio import _stop_on_signals
from kafkito.pubsub import health as _health
from kafkito.pubsub.config import ReaderConfig, WriterConfig
from kafkito.pubsub.errors import ClientError, ConfigError
from kafkito.pubsub.reader import (
    Message,
    Stream,
    SubscriberCore,
    build_reader_config,
    current_message,
    message_key,
    to_message,
)
from kafkito.pubsub.writer import (
    Delivery,
    Headers,
    Pending,
    PublisherCore,
    Record,
    Value,
    build_writer_config,
    publish_many,
)

__all__ = [
    "Consumer",
    "Delivery",
    "HealthChecker",
    "Message",
    "Producer",
    "Reader",
    "Record",
    "TopicWriter",
    "Writer",
    "current_message",
    "message_key",
]


class _AsyncWriting:
    def __init__(self, config: WriterConfig) -> None:
        self._core = PublisherCore(config)
        self._connected = False

    @property
    def config(self) -> WriterConfig:
        return self._core.config

    @property
    def project_id(self) -> str:
        return self._core.project_id

    async def connect(self) -> None:
        """Check the topic exists (a Writer's; created when create_if_missing); done once."""
        if self._connected:
            return
        topic = getattr(self, "topic", None)
        if topic is not None:
            try:
                await asyncio.to_thread(self._core.ensure_topic, topic)
            except BaseException:
                self._core.release()
                raise
        self._connected = True

    async def _confirmed(self, pending: Pending) -> Delivery:
        try:
            message_id = await asyncio.wait_for(
                asyncio.wrap_future(pending.future), self.config.client.timeout
            )
        except (TimeoutError, Exception) as exc:
            if isinstance(exc, ClientError):
                raise
            raise self._core.failure(exc, pending) from None
        return self._core.confirmed(pending, message_id)

    async def _write(
        self, topic: str, value: Value, headers: Headers | None, key: Value
    ) -> Delivery:
        await self.connect()
        if self.config.create_if_missing:
            await asyncio.to_thread(self._core.ensure_topic, topic)
        pending = self._core.publish(topic, value, key, headers)
        self._core.send_now(pending)
        return await self._confirmed(pending)

    async def _write_many(self, topic: str, items: Iterable[Record | Value]) -> list[Delivery]:
        await self.connect()
        if self.config.create_if_missing:
            await asyncio.to_thread(self._core.ensure_topic, topic)
        pendings = publish_many(self._core, topic, items)
        results = await asyncio.gather(
            *(self._confirmed(p) for p in pendings), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            if not isinstance(first, ClientError):
                raise first
            first.args = (f"{len(failures)} of {len(pendings)} messages failed; first: {first}",)
            raise first
        return [r for r in results if isinstance(r, Delivery)]

    async def flush(self, timeout_s: float | None = None) -> None:
        """Send every batched message now."""
        self._core.flush(timeout_s)

    async def close(self, timeout_s: float | None = None) -> None:
        """Send what is batched, then stop the publisher (in a thread). Idempotent."""
        if not self._core.closed:
            await asyncio.shield(asyncio.to_thread(self._core.release))

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(project_id={self.project_id!r}, topic={self.config.topic_id!r})"
        )


class Writer(_AsyncWriting):
    """Publishes to one topic; each awaited call returns once Pub/Sub confirmed the message."""

    def __init__(
        self,
        topic: str | None = None,
        config: WriterConfig | Mapping[str, Any] | None = None,
        *,
        project_id: str | None = None,
    ) -> None:
        merged = build_writer_config(config, topic=topic, project_id=project_id)
        if not merged.topic_id:
            raise ConfigError("a Writer needs a topic_id (or use TopicWriter)", key="topic_id")
        self.topic: str = merged.topic_id
        super().__init__(merged)

    async def write(
        self, value: Value, headers: Headers | None = None, key: Value = None
    ) -> Delivery:
        """Publish one message and wait for Pub/Sub's confirmation."""
        return await self._write(self.topic, value, headers, key)

    async def write_value(self, value: Value) -> Delivery:
        return await self._write(self.topic, value, None, None)

    async def write_with_key(
        self, value: Value, key: Value, headers: Headers | None = None
    ) -> Delivery:
        return await self._write(self.topic, value, headers, key)

    async def write_many(self, records: Iterable[Record | Value]) -> list[Delivery]:
        """Publish a batch; returns once every message is confirmed, raises if any failed."""
        return await self._write_many(self.topic, records)


class TopicWriter(_AsyncWriting):
    """One publisher, the topic chosen per call."""

    def __init__(
        self,
        config: WriterConfig | Mapping[str, Any] | None = None,
        *,
        project_id: str | None = None,
    ) -> None:
        super().__init__(build_writer_config(config, project_id=project_id))

    async def write(
        self, topic: str, value: Value, headers: Headers | None = None, key: Value = None
    ) -> Delivery:
        return await self._write(topic, value, headers, key)

    async def write_value(self, topic: str, value: Value) -> Delivery:
        return await self._write(topic, value, None, None)

    async def write_with_key(
        self, topic: str, value: Value, key: Value, headers: Headers | None = None
    ) -> Delivery:
        return await self._write(topic, value, headers, key)

    async def write_many(self, topic: str, records: Iterable[Record | Value]) -> list[Delivery]:
        return await self._write_many(topic, records)


AsyncHandler = Callable[[bytes, dict[str, str]], Awaitable[object] | object]
AsyncValueHandler = Callable[[bytes], Awaitable[object] | object]
AsyncMessageHandler = Callable[[Message], Awaitable[object] | object]


class Reader:
    """Reads a subscription and awaits a handler per message; acks after the handler returns."""

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
        self._stopping = asyncio.Event()
        self._connected = False
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._stream_loop: asyncio.AbstractEventLoop | None = None

    @property
    def config(self) -> ReaderConfig:
        return self._core.config

    @property
    def core(self) -> SubscriberCore:
        return self._core

    async def connect(self) -> None:
        """Check the subscription exists (or create it); done by the first read."""
        if not self._connected:
            await asyncio.to_thread(self._core.connect)
            self._connected = True

    async def read(
        self, handler: AsyncHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Await `handler(value, headers)` per message until stop(), a signal, cancel or `limit`."""
        key_name = self.config.key

        def call(msg: Any) -> Awaitable[object] | object:
            headers = dict(msg.attributes)
            if key_name is not None:
                headers[key_name] = msg.ordering_key
            return handler(msg.data, headers)

        return await self._loop(call, limit, handle_signals)

    async def read_value(
        self, handler: AsyncValueHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        return await self._loop(lambda msg: handler(msg.data), limit, handle_signals)

    async def read_message(
        self, handler: AsyncMessageHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        subscription = self._core.subscription

        async def call(msg: Any) -> object:
            message = to_message(subscription, msg)
            token = current_message.set(message)
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    result = await result
                return result
            finally:
                current_message.reset(token)

        return await self._loop(call, limit, handle_signals)

    async def _open(self) -> Stream:
        """The stream, opened on the first read and kept until close (as the sync Reader)."""
        core = self._core
        loop = asyncio.get_running_loop()
        if core.stream is not None and self._stream_loop is not loop:
            await self._close_stream()  # opened by a read on another event loop
        if core.stream is None:
            inbox: asyncio.Queue[Any] = asyncio.Queue()

            def hand_over(msg: Any) -> None:  # on the google client's thread
                loop.call_soon_threadsafe(inbox.put_nowait, msg)

            self._inbox, self._stream_loop = inbox, loop
            await asyncio.to_thread(core.open, hand_over)
        assert core.stream is not None
        return core.stream

    async def _close_stream(self) -> None:
        stream = self._core.stream
        if stream is None:
            return
        stream.begin_close()
        await asyncio.sleep(0)  # run the hand-overs scheduled before begin_close()
        unhandled = []
        while not self._inbox.empty():
            unhandled.append(self._inbox.get_nowait())
        await asyncio.to_thread(self._core.close_stream, stream, unhandled)

    async def _loop(
        self, call: Callable[[Any], Awaitable[object] | object], limit: int | None, signals: bool
    ) -> int:
        core = self._core
        if core.closed:
            raise ClientError("the reader is closed")
        await self.connect()
        self._stopping.clear()
        stream = await self._open()
        inbox = self._inbox
        stopped = asyncio.ensure_future(self._stopping.wait())
        handled = 0
        budget = -1 if limit is None else limit
        core.reading = True
        try:
            with _stop_on_signals(self.stop) if signals else contextlib.nullcontext():
                while not self._stopping.is_set() and handled != budget:
                    core.last_poll_monotonic = time.monotonic()
                    getter = asyncio.ensure_future(inbox.get())
                    try:
                        done, _ = await asyncio.wait(
                            {getter, stopped}, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        if not getter.done():
                            getter.cancel()
                    if getter not in done or getter.cancelled():
                        if not getter.cancelled() and getter.done():
                            inbox.put_nowait(getter.result())  # raced with stop: keep it
                        error = core.failed(stream)
                        if error is not None:
                            await self._close_stream()
                            raise error from None
                        continue
                    msg = getter.result()
                    key = msg.ordering_key
                    token = message_key.set(key.encode() if key else None)
                    try:
                        result = call(msg)
                        if inspect.isawaitable(result):
                            await result
                    except BaseException:
                        stream.settle(msg, ok=False)  # back to Pub/Sub: it comes again
                        raise
                    finally:
                        message_key.reset(token)
                    stream.settle(msg, ok=True)
                    handled += 1
                    core.handled += 1
        finally:
            core.reading = False
            stopped.cancel()
        return handled

    def stop(self) -> None:
        """Ask read() to return after the current message."""
        self._stopping.set()

    async def close(self) -> None:
        """End the stream (what it holds comes back after its ack deadline), close the
        subscriber. Idempotent; safe after a cancel."""
        self.stop()
        if not self._core.closed:
            await asyncio.shield(self._close_stream())
            await asyncio.shield(asyncio.to_thread(self._core.close))

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        c = self.config
        return f"Reader(project_id={self._core.project_id!r}, subscription={c.subscription_id!r})"


class HealthChecker(_health.HealthChecker):
    """The sync HealthChecker with awaitable check() and health()."""

    async def check(self) -> dict[str, Any]:  # type: ignore[override]
        return await asyncio.to_thread(super().check)

    async def health(self) -> dict[str, Any]:  # type: ignore[override]
        return await asyncio.to_thread(_health.health_of, [_SyncView(self)])


class _SyncView(_health.HealthChecker):
    def __init__(self, inner: HealthChecker) -> None:
        self._inner = inner
        self.name = inner.name

    def check(self) -> dict[str, Any]:
        return _health.HealthChecker.check(self._inner)

    def build(self, data: dict[str, Any], error: BaseException | None) -> dict[str, Any]:
        return self._inner.build(data, error)


Producer = Writer
Consumer = Reader
