"""Reader: a handler per message, offsets committed only after the handler returns.

The loop, in both flavours (this module and `kafkito.aio`):

    consume a batch ─► for each message of a partition we still own:
        [ack_on_consume: commit it now]  ─►  handler(...)  ─► store offset+1
                                                 │ raises
                                                 ▼
                      stop; nothing stored for it or anything after it; the exception propagates

librdkafka runs with `enable.auto.offset.store=false` and auto-commit on: it commits, every
`commit_interval` and on close, only offsets we *stored*, and we store a message's offset only
after its handler returned. So a handler that raises leaves its message uncommitted: after a
restart it is read again (at-least-once). The seed's AckOnConsume (commit before handling) is
available as `ack_on_consume=True`, which is at-most-once: a crash or exception in the handler
loses that message.

Rebalances happen only inside `consume()`, never while a handler runs (handlers run between
consume calls, on the same thread). On revocation the stored offsets are committed
synchronously, then the partitions are forgotten: a message of a partition we no longer own is
neither handled nor stored (C5); librdkafka >= 1.9 also refuses such a store.

The message key travels in the `message_key` context variable (the seed put it in the Go
context), the whole message in `current_message`; headers reach the handler as a dict of str.
Without a `group_id` the Reader assigns every partition itself and commits nothing.

Stopping: `stop()` (thread- and signal-safe) ends `read()` after the current message; in the
main thread `read()` turns SIGINT and SIGTERM into `stop()`. `close()` commits the stored
offsets and leaves the group at once (no session-timeout wait for the others).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Self

import confluent_kafka

from kafkito.client.config import ReaderConfig
from kafkito.client.connect import (
    RDKAFKA_LOG,
    ErrorTracker,
    connect_with_retry,
    consumer_defaults,
)
from kafkito.client.embedded import resolve_bootstrap
from kafkito.client.errors import ClientError, ConfigError, UnknownTopicError

log = logging.getLogger(__name__)

__all__ = ["Message", "Reader", "consume_ready", "current_message", "message_key"]

BATCH_MESSAGES = 500
"""Messages taken from librdkafka per consume call."""
POLL_TIMEOUT_S = 0.1
"""Longest wait inside librdkafka: bounds how long stop() takes to be noticed."""


@dataclass(frozen=True, slots=True)
class Message:
    """One consumed record, as `read_message` handlers receive it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    raw_headers: list[tuple[str, bytes | None]]
    timestamp_ms: int | None


message_key: ContextVar[bytes | None] = ContextVar("kafkito_message_key", default=None)
"""The key of the message being handled (None outside a handler or for unkeyed messages)."""
current_message: ContextVar[Message | None] = ContextVar("kafkito_current_message", default=None)
"""The message being handled, with topic, partition and offset."""


def headers_dict(raw: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as the seed's map: str to str (UTF-8, undecodable bytes replaced; null as '')."""
    if not raw:
        return {}
    return {name: value.decode("utf-8", "replace") if value else "" for name, value in raw}


def to_message(msg: Any) -> Message:
    raw = msg.headers() or []
    kind, stamp = msg.timestamp()
    return Message(
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
        key=msg.key(),
        value=msg.value(),
        headers=headers_dict(raw),
        raw_headers=list(raw),
        timestamp_ms=stamp if kind != confluent_kafka.TIMESTAMP_NOT_AVAILABLE else None,
    )


def build_reader_config(
    config: ReaderConfig | Mapping[str, Any] | None,
    *,
    topic: str | None = None,
    group_id: str | None = None,
    brokers: Sequence[str] | str | None = None,
    settings: Mapping[str, Any] | None = None,
    ack_on_consume: bool | None = None,
) -> ReaderConfig:
    base = config if isinstance(config, ReaderConfig) else ReaderConfig.from_dict(config or {})
    extra = {**base.settings, **settings} if settings else None
    merged = base.merged(
        topic=topic,
        group_id=group_id,
        brokers=brokers,
        settings=extra,
        ack_on_consume=ack_on_consume,
    )
    if not merged.topic:
        raise ConfigError("a Reader needs a topic", key="topic")
    if merged.ack_on_consume and merged.group_id is None:
        raise ConfigError("ack_on_consume needs a group_id to commit to", key="ack_on_consume")
    return merged


class ConsumerCore:
    """The librdkafka consumer and the offset rules; shared by the sync and async readers."""

    def __init__(self, config: ReaderConfig) -> None:
        assert config.topic
        self.config = config
        self.topics = [t.strip() for t in config.topic.split(",") if t.strip()]
        self.grouped = config.group_id is not None
        self.bootstrap = resolve_bootstrap(config.brokers)
        self.errors = ErrorTracker()
        settings: dict[str, Any] = consumer_defaults(config.to_librdkafka(self.bootstrap))
        settings["error_cb"] = self.errors
        settings.setdefault("logger", RDKAFKA_LOG)
        try:
            self.consumer = confluent_kafka.Consumer(settings)
        except confluent_kafka.KafkaException as exc:
            raise ConfigError(f"librdkafka refused the consumer settings: {exc}") from None
        self.assigned: set[tuple[str, int]] = set()
        self.started = False
        self.closed = False
        self.last_poll_monotonic: float | None = None
        self.handled = 0
        self.revoked_since_fetch = False
        self.pending: list[Any] = []
        """Fetched, not handled when read() returned (limit, stop): handed out first next time."""
        self._warned: set[str] = set()

    def connect(self) -> None:
        connect_with_retry(
            lambda timeout_s: self.consumer.list_topics(timeout=timeout_s),
            bootstrap=self.bootstrap,
            timeout_s=self.config.client.timeout,
            delays_s=self.config.client.retry_delays_s,
            errors=self.errors,
            serve=lambda: self.consumer.poll(0),  # not subscribed yet: no message comes back
        )

    # -- group membership ---------------------------------------------------------------

    def start(self) -> None:
        """Subscribe (with a group) or assign every partition (without); once."""
        if self.started:
            return
        self.started = True
        if self.grouped:
            self.consumer.subscribe(
                self.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            return
        start = (
            confluent_kafka.OFFSET_BEGINNING
            if self.config.initial_offsets == "earliest"
            else confluent_kafka.OFFSET_END
        )
        wanted = []
        for topic in self.topics:
            meta = self.consumer.list_topics(topic, timeout=self.config.client.timeout)
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise UnknownTopicError(
                    f"topic {topic!r} does not exist; write to it first or create it",
                    reason="UNKNOWN_TOPIC_OR_PART",
                    topic=topic,
                )
            for partition in info.partitions:
                wanted.append(confluent_kafka.TopicPartition(topic, partition, start))
                self.assigned.add((topic, partition))
        self.consumer.assign(wanted)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.assigned.update((p.topic, p.partition) for p in partitions)
        log.info("assigned %s", _names(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Commit what the handlers finished before someone else takes the partitions over.
        self.commit_stored()
        self.assigned.difference_update((p.topic, p.partition) for p in partitions)
        self.revoked_since_fetch = True
        log.info("revoked %s", _names(partitions))

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Lost (session expired): another member may own them already; committing could rewind it.
        self.assigned.difference_update((p.topic, p.partition) for p in partitions)
        self.revoked_since_fetch = True
        log.warning("lost %s without a clean revoke", _names(partitions))

    def commit_stored(self) -> None:
        if not self.grouped:
            return
        try:
            self.consumer.commit(asynchronous=False)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError._NO_OFFSET:
                log.warning("commit of stored offsets failed: %s", exc.args[0].str())

    # -- the message path ---------------------------------------------------------------

    def fetch(self, timeout_s: float = POLL_TIMEOUT_S) -> list[Any]:
        """The messages left over by the last read, else one consume call; errors logged or raised.

        Only messages of partitions we still own are returned. librdkafka itself drops
        fetched messages of partitions it unassigns; we filter again only when a revocation
        happened since the messages were fetched (cheap in the common case).
        """
        if self.pending:
            batch, self.pending = self.pending, []
            return self._owned(batch)
        self.revoked_since_fetch = False
        batch = consume_ready(self.consumer, BATCH_MESSAGES, timeout_s)
        self.last_poll_monotonic = time.monotonic()
        out = [msg for msg in batch if msg.error() is None]
        if len(out) != len(batch):
            for msg in batch:
                error = msg.error()
                if error is not None:
                    self._client_error(error)
        if self.revoked_since_fetch:
            out = self._owned(out)
        return out

    def _owned(self, batch: list[Any]) -> list[Any]:
        if not self.grouped:
            return batch
        return [m for m in batch if (m.topic(), m.partition()) in self.assigned]

    def _client_error(self, error: Any) -> None:
        if error.fatal():
            raise ClientError(f"the consumer failed for good ({error.name()}: {error.str()})")
        name = str(error.name())
        if name == "UNKNOWN_TOPIC_OR_PART" and self.grouped:
            # librdkafka reports a subscribed topic that does not exist once, then waits for
            # ever; the ungrouped reader raises this at start (issue #17).
            missing = [t for t in self.topics if t in error.str()] or self.topics
            raise UnknownTopicError(
                f"topic {missing[0]!r} does not exist; write to it first or create it",
                reason=name,
                topic=missing[0],
            )
        if name not in self._warned:
            self._warned.add(name)
            log.warning("consumer error %s: %s", name, error.str())

    def before(self, msg: Any) -> None:
        """AckOnConsume: commit the message before its handler runs (at-most-once)."""
        if self.config.ack_on_consume:
            self.consumer.commit(message=msg, asynchronous=False)

    def store(self, msg: Any) -> None:
        """The handler returned: store offset+1 for the next auto-commit (grouped readers)."""
        try:
            self.consumer.store_offsets(message=msg)
        except confluent_kafka.KafkaException as exc:
            # The partition was revoked meanwhile: its new owner will read the message again.
            log.info(
                "offset %d of %s[%d] not stored (%s)",
                msg.offset(),
                msg.topic(),
                msg.partition(),
                exc.args[0].name(),
            )

    @property
    def stores_after(self) -> bool:
        """Whether offsets are stored after each handler (grouped, not ack_on_consume)."""
        return self.grouped and not self.config.ack_on_consume

    def close(self) -> None:
        """Commit stored offsets and leave the group. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.consumer.close()


def consume_ready(consumer: Any, limit: int, timeout_s: float) -> list[Any]:
    """Up to `limit` messages: those librdkafka has ready, at once; if none, the first to
    arrive within `timeout_s` (and whatever came with it).

    `consumer.consume(limit, timeout)` alone waits until it has `limit` messages or the timeout
    is over: on a quiet topic every message would wait the whole timeout (100 ms here).
    """
    batch: list[Any] = consumer.consume(limit, 0)
    if batch or timeout_s <= 0:
        return batch
    batch = consumer.consume(1, timeout_s)
    if batch and limit > 1:
        batch += consumer.consume(limit - 1, 0)
    return batch


def _names(partitions: list[Any]) -> str:
    return ", ".join(f"{p.topic}[{p.partition}]" for p in partitions) or "nothing"


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """In the main thread, SIGINT and SIGTERM call `stop` for the duration of the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping the reader", signum)
        stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


Handler = Callable[[bytes | None, dict[str, str]], object]
ValueHandler = Callable[[bytes | None], object]
MessageHandler = Callable[[Message], object]


class Reader:
    """Reads a topic and calls a handler per message; commits after the handler returns.

    `config` is a ReaderConfig or a dict of the seed's keys; keywords override it. With no
    brokers configured the local embedded broker is used (kafkito.client.embedded).
    """

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
        self._stopping = False
        try:
            self._core.connect()
        except BaseException:
            self._core.close()
            raise

    @property
    def config(self) -> ReaderConfig:
        return self._core.config

    @property
    def bootstrap(self) -> str:
        return self._core.bootstrap

    @property
    def core(self) -> ConsumerCore:
        """The consumer and its progress (used by HealthChecker)."""
        return self._core

    def read(
        self, handler: Handler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Call `handler(value, headers)` per message until stop(), a signal, or `limit` messages.

        Returns how many messages were handled. A handler exception stops reading and
        propagates; that message's offset is not committed, so it is read again later.
        """
        key_name = self.config.key

        def call(msg: Any) -> object:
            headers = headers_dict(msg.headers())
            if key_name is not None:
                key = msg.key()
                headers[key_name] = key.decode("utf-8", "replace") if key else ""
            return handler(msg.value(), headers)

        return self._loop(call, limit, handle_signals)

    def read_value(
        self, handler: ValueHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Call `handler(value)` per message (see read)."""
        return self._loop(lambda msg: handler(msg.value()), limit, handle_signals)

    def read_message(
        self, handler: MessageHandler, *, limit: int | None = None, handle_signals: bool = True
    ) -> int:
        """Call `handler(Message)` per message (see read)."""

        def call(msg: Any) -> object:
            message = to_message(msg)
            token = current_message.set(message)
            try:
                return handler(message)
            finally:
                current_message.reset(token)

        return self._loop(call, limit, handle_signals)

    def _loop(self, call: Callable[[Any], object], limit: int | None, handle_signals: bool) -> int:
        core = self._core
        if core.closed:
            raise ClientError("the reader is closed")
        self._stopping = False
        core.start()
        ack_first, store_after = core.config.ack_on_consume, core.stores_after
        budget = -1 if limit is None else limit  # -1: no limit
        handled = 0
        set_key, reset_key = message_key.set, message_key.reset
        guard = stop_on_signals(self.stop) if handle_signals else contextlib.nullcontext()
        with guard:
            while not self._stopping and handled != budget:
                batch = core.fetch()
                before = handled
                try:
                    for index, msg in enumerate(batch):
                        if self._stopping or handled == budget:
                            core.pending = batch[index:]  # handed out first by the next read()
                            break
                        if ack_first:
                            core.before(msg)
                        token = set_key(msg.key())
                        try:
                            call(msg)
                        except BaseException:
                            # Not stored: read again by the next read(), or after a restart.
                            core.pending = batch[index:]
                            raise
                        finally:
                            reset_key(token)
                        if store_after:
                            core.store(msg)
                        handled += 1
                finally:
                    core.handled += handled - before
        return handled

    def stop(self) -> None:
        """Ask read() to return after the current message (thread- and signal-safe)."""
        self._stopping = True

    def commit(self) -> None:
        """Commit the stored offsets now (they are also committed every commit_interval)."""
        self._core.commit_stored()

    def close(self) -> None:
        """Commit stored offsets and leave the group. Idempotent."""
        self.stop()
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
        return f"Reader(bootstrap={self.bootstrap!r}, topic={c.topic!r}, group_id={c.group_id!r})"
