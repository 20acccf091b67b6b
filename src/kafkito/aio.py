"""The asyncio flavour of the client library: the same names and semantics as `kafkito.client`.

    from kafkito.aio import Writer, Reader      # instead of: from kafkito import Writer, Reader

Why a sibling module and not `AsyncWriter` beside `Writer`: code moves between the two
flavours by changing one import line, and every name, argument, default, error and guarantee
is shared; only `await` differs (the model of `redis.asyncio` and `httpx.AsyncClient`). The
engine underneath is one: `ProducerCore` and `ConsumerCore` in kafkito.client hold the
librdkafka objects, the settings and the offset rules for both flavours.

How librdkafka meets the event loop:

* Writer: `produce()` never blocks, so it runs on the loop. Delivery reports are served by a
  poller thread calling `poll()`; each report resolves an asyncio future through
  `call_soon_threadsafe` (for `write_many`, one future per batch, resolved by the last report).
* Reader: every consumer call (`consume`, `commit`, `close`) runs on one dedicated thread, so
  calls never overlap and a rebalance callback runs on that thread inside `consume()`. The
  handler (a coroutine function or a plain one) runs on the loop, in the reading task, so
  `message_key` and `current_message` are visible to it. Cancelling the task that runs `read()`
  stops it at the next await; `close()` (or leaving `async with`) then waits for the pending
  consume call, commits the stored offsets and leaves the group. Messages fetched but not
  handled are not stored: a restart reads them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, Self, TypeVar

from kafkito.client import health as _health
from kafkito.client.admin_aio import Admin
from kafkito.client.config import ReaderConfig, WriterConfig
from kafkito.client.delivered import offset_of
from kafkito.client.errors import ClientError, ConfigError
from kafkito.client.reader import (
    ConsumerCore,
    Message,
    build_reader_config,
    current_message,
    headers_dict,
    message_key,
    to_message,
)
from kafkito.client.transaction import AsyncTransaction, init_transactions
from kafkito.client.writer import (
    PENDING,
    POLL_INTERVAL_S,
    Batch,
    Deliveries,
    Delivery,
    Headers,
    ProducerCore,
    Record,
    Value,
    build_writer_config,
    enqueue_many,
    pending_deliveries,
)

log = logging.getLogger(__name__)

__all__ = [
    "Admin",
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

T = TypeVar("T")


class _Poller:
    """Serves a producer's delivery reports on a daemon thread until stopped."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafkito-delivery", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._producer.poll(POLL_INTERVAL_S)
            except Exception:  # KafkaException: fatal (fenced); the caller's next call says so
                self._stop.wait(POLL_INTERVAL_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class _AsyncWriting:
    def __init__(self, config: WriterConfig) -> None:
        self._core = ProducerCore(config)
        self._connected = False
        self._poller: _Poller | None = None

    @property
    def config(self) -> WriterConfig:
        return self._core.config

    @property
    def bootstrap(self) -> str:
        return self._core.bootstrap

    @property
    def core(self) -> ProducerCore:
        """The producer and its error tracker (used by HealthChecker)."""
        return self._core

    async def connect(self) -> None:
        """Check the brokers answer (with the connect retries); done by the first write."""
        if not self._connected:
            try:
                await asyncio.to_thread(self._core.connect)
                await asyncio.to_thread(init_transactions, self._core)
            except BaseException:
                self._core.release()
                raise
            self._connected = True
            self._poller = _Poller(self._core.producer)

    def transaction(self) -> AsyncTransaction:
        """`async with writer.transaction() as txn:` commit on exit, abort if the block raises
        (the sync Writer's semantics: kafkito.client.transaction). Needs a transactional_id."""
        return AsyncTransaction(self._core)

    def _produce(self, topic: str, record: Record, on_delivery: Any) -> None:
        # produce() returns at once; only a full local queue (queue.buffering.max.messages)
        # makes it wait, polling delivery reports for up to POLL_INTERVAL_S at a time.
        self._core.produce(topic, record.value, record.key, record.headers, on_delivery)

    async def _write(
        self, topic: str, value: Value, headers: Headers | None, key: Value
    ) -> Delivery:
        await self.connect()
        if self._core.txn is not None:  # the commit confirms it (kafkito.client.transaction)
            self._produce(topic, Record(value, key, headers), self._core.txn.report)
            return Delivery(topic, PENDING, PENDING)
        self._core.on_delivery(topic, None)  # refuses a transactional writer outside a txn
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Any]] = loop.create_future()
        size = len(value.encode() if isinstance(value, str) else value or b"")

        def on_delivery(error: Any, message: Any) -> None:
            loop.call_soon_threadsafe(_settle, future, error, message)

        self._produce(topic, Record(value, key, headers), on_delivery)
        error, message = await future
        if error is not None:
            raise await asyncio.to_thread(self._core.failure, error, topic, size)
        return Delivery(message.topic(), message.partition(), offset_of(message))

    async def _write_many(self, topic: str, items: Iterable[Record | Value]) -> Deliveries:
        await self.connect()
        if self._core.txn is not None:
            return pending_deliveries(
                topic, enqueue_many(self._core, topic, items, self._core.txn.report)
            )
        self._core.on_delivery(topic, None)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        batch = Batch()
        lock = threading.Lock()
        expected: list[int | None] = [None]  # known once everything is enqueued

        def report(error: Any, message: Any) -> None:  # on the delivery thread
            batch.report(error, message)
            with lock:
                settled = expected[0] is not None and batch.reported == expected[0]
            if settled:
                loop.call_soon_threadsafe(_finish, done)

        count = enqueue_many(self._core, topic, items, report)
        with lock:
            expected[0] = count
            settled = batch.reported == count
        if settled:
            _finish(done)
        await done
        return batch.result(self._core, topic, count)

    async def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued record is confirmed."""
        await asyncio.to_thread(self._core.flush, timeout_s)

    async def close(self, timeout_s: float | None = None) -> None:
        """Flush, stop the delivery thread, refuse further writes. Idempotent."""
        if self._core.closed:
            return
        try:
            await asyncio.to_thread(self._core.flush_before_close, timeout_s)
        finally:
            self._core.closed = True
            if self._poller is not None:
                await asyncio.to_thread(self._poller.stop)
            self._core.closed = False
            self._core.release()

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
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r}, topic={self.config.topic!r})"


def _settle(future: asyncio.Future[tuple[Any, Any]], error: Any, message: Any) -> None:
    if not future.done():
        future.set_result((error, message))


def _finish(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Writer(_AsyncWriting):
    """Writes to one topic; each awaited call returns once the broker confirmed the record."""

    def __init__(
        self,
        topic: str | None = None,
        config: WriterConfig | Mapping[str, Any] | None = None,
        *,
        brokers: Sequence[str] | str | None = None,
        settings: Mapping[str, Any] | None = None,
        transactional_id: str | None = None,
    ) -> None:
        merged = build_writer_config(
            config,
            topic=topic,
            brokers=brokers,
            settings=settings,
            transactional_id=transactional_id,
        )
        if not merged.topic:
            raise ConfigError("a Writer needs a topic (or use TopicWriter)", key="topic")
        self.topic: str = merged.topic
        super().__init__(merged)

    async def write(
        self, value: Value, headers: Headers | None = None, key: Value = None
    ) -> Delivery:
        """Write one record and wait for the broker's confirmation."""
        return await self._write(self.topic, value, headers, key)

    async def write_value(self, value: Value) -> Delivery:
        return await self._write(self.topic, value, None, None)

    async def write_with_key(
        self, value: Value, key: Value, headers: Headers | None = None
    ) -> Delivery:
        return await self._write(self.topic, value, headers, key)

    async def write_many(self, records: Iterable[Record | Value]) -> Deliveries:
        """Write a batch; returns once every record is confirmed, raises if any failed."""
        return await self._write_many(self.topic, records)


class TopicWriter(_AsyncWriting):
    """One producer, the topic chosen per call."""

    def __init__(
        self,
        config: WriterConfig | Mapping[str, Any] | None = None,
        *,
        brokers: Sequence[str] | str | None = None,
        settings: Mapping[str, Any] | None = None,
        transactional_id: str | None = None,
    ) -> None:
        super().__init__(
            build_writer_config(
                config, brokers=brokers, settings=settings, transactional_id=transactional_id
            )
        )

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

    async def write_many(self, topic: str, records: Iterable[Record | Value]) -> Deliveries:
        return await self._write_many(topic, records)


AsyncHandler = Callable[[bytes | None, dict[str, str]], Awaitable[object] | object]
AsyncValueHandler = Callable[[bytes | None], Awaitable[object] | object]
AsyncMessageHandler = Callable[[Message], Awaitable[object] | object]


class Reader:
    """Reads a topic and awaits a handler per message; commits after the handler returns."""

    def __init__(
        self,
        topic: str | None = None,
        config: ReaderConfig | Mapping[str, Any] | None = None,
        *,
        group_id: str | None = None,
        brokers: Sequence[str] | str | None = None,
        settings: Mapping[str, Any] | None = None,
        ack_on_consume: bool | None = None,
    ) -> None:
        merged = build_reader_config(
            config,
            topic=topic,
            group_id=group_id,
            brokers=brokers,
            settings=settings,
            ack_on_consume=ack_on_consume,
        )
        self._core = ConsumerCore(merged)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kafkito-reader")
        self._stopping = asyncio.Event()
        self._connected = False

    @property
    def config(self) -> ReaderConfig:
        return self._core.config

    @property
    def bootstrap(self) -> str:
        return self._core.bootstrap

    @property
    def core(self) -> ConsumerCore:
        return self._core

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def connect(self) -> None:
        """Check the brokers answer (with the connect retries); done by the first read."""
        if not self._connected:
            await self._call(self._core.connect)
            self._connected = True

    async def read(
        self, handler: AsyncHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Await `handler(value, headers)` per message until stop(), a signal, cancel or `limit`."""
        key_name = self.config.key

        def call(msg: Any) -> Awaitable[object] | object:
            headers = headers_dict(msg.headers())
            if key_name is not None:
                key = msg.key()
                headers[key_name] = key.decode("utf-8", "replace") if key else ""
            return handler(msg.value(), headers)

        return await self._loop(call, limit, handle_signals)

    async def read_value(
        self, handler: AsyncValueHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        return await self._loop(lambda msg: handler(msg.value()), limit, handle_signals)

    async def read_message(
        self, handler: AsyncMessageHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        async def call(msg: Any) -> object:
            message = to_message(msg)
            token = current_message.set(message)
            try:
                result = handler(message)
                if inspect.isawaitable(result):
                    result = await result
                return result
            finally:
                current_message.reset(token)

        return await self._loop(call, limit, handle_signals)

    async def _loop(
        self, call: Callable[[Any], Awaitable[object] | object], limit: int | None, signals: bool
    ) -> int:
        core = self._core
        if core.closed:
            raise ClientError("the reader is closed")
        await self.connect()
        self._stopping.clear()
        await self._call(core.start)
        handled = 0
        ack_first, store_after = core.config.ack_on_consume, core.stores_after
        budget = -1 if limit is None else limit  # -1: no limit
        with _stop_on_signals(self.stop) if signals else contextlib.nullcontext():
            while not self._stopping.is_set() and handled != budget:
                batch = await self._call(core.fetch)
                before = handled
                try:
                    for index, msg in enumerate(batch):
                        if self._stopping.is_set() or handled == budget:
                            core.pending = batch[index:]
                            break
                        if ack_first:
                            await self._call(core.before, msg)
                        key_token = message_key.set(msg.key())
                        try:
                            result = call(msg)
                            if inspect.isawaitable(result):
                                await result
                        except BaseException:
                            core.pending = batch[index:]  # not stored: read again
                            raise
                        finally:
                            message_key.reset(key_token)
                        if store_after:
                            core.store(msg)
                        handled += 1
                finally:
                    core.handled += handled - before
        return handled

    def stop(self) -> None:
        """Ask read() to return after the current message."""
        self._stopping.set()

    async def commit(self) -> None:
        """Commit the stored offsets now."""
        await self._call(self._core.commit_stored)

    async def close(self) -> None:
        """Commit stored offsets and leave the group. Idempotent; safe after a cancel."""
        self.stop()
        if not self._core.closed:
            await asyncio.shield(self._call(self._core.close))
        self._executor.shutdown(wait=False)

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
        return f"Reader(bootstrap={self.bootstrap!r}, topic={c.topic!r}, group_id={c.group_id!r})"


@contextlib.contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Any:
    """In the main thread, SIGINT and SIGTERM call `stop` while the block runs."""
    loop = asyncio.get_running_loop()
    installed = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop)
                installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


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


Producer = Writer
Consumer = Reader
