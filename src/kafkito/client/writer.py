"""Writer and TopicWriter: every write returns only once the broker has confirmed it.

A librdkafka producer queues records and reports each one's fate in a delivery callback served
by `poll()`/`flush()`. The seed flushed the whole producer after every record and returned nil
on a failed delivery; here `write()` enqueues one record with its own callback and polls until
*that* callback has fired, so concurrent writers on one producer share batches instead of
flushing each other. `write_many()` enqueues everything, flushes once and checks every
callback: one failed record fails the call, with the broker's reason. `close()` flushes.

The producer's defaults are the safe ones (C1): `acks=all`, idempotence on, at most five
requests in flight; any librdkafka setting passes through `settings`.

With a `transactional_id` the writer also runs transactions (`with writer.transaction():`,
client/transaction.py); inside one, writes return once queued and the commit confirms them all.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NamedTuple, Self, overload

import confluent_kafka

from kafkito.client.config import WriterConfig
from kafkito.client.connect import RDKAFKA_LOG, ErrorTracker, connect_with_retry
from kafkito.client.delivered import offset_of
from kafkito.client.embedded import resolve_bootstrap
from kafkito.client.errors import (
    ClientError,
    ConfigError,
    DeliveryError,
    TransactionError,
    from_kafka_error,
    from_transaction_error,
)
from kafkito.client.transaction import Transaction, TransactionState, init_transactions

log = logging.getLogger(__name__)
"""librdkafka's own log lines go here instead of stderr."""

__all__ = ["Deliveries", "Delivery", "Headers", "Record", "TopicWriter", "Writer"]

Value = bytes | str | None
Headers = Mapping[str, bytes | str | None] | Sequence[tuple[str, bytes | str | None]]

POLL_INTERVAL_S = 0.1
"""How long one poll waits for a delivery report before checking again."""


class Delivery(NamedTuple):
    """Where the broker put a record (a NamedTuple: built once per record on the hot path)."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    """One record for `write_many`."""

    value: Value
    key: Value = None
    headers: Headers | None = None


def _encode(value: Value) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"values and keys must be bytes, str or None, not {type(value).__name__}")


def _headers(headers: Headers | None) -> list[tuple[str, str | bytes | None]] | None:
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, _encode(value)) for name, value in pairs]


def _as_record(item: Record | Value) -> Record:
    return item if isinstance(item, Record) else Record(item)


def build_writer_config(
    config: WriterConfig | Mapping[str, Any] | None,
    *,
    topic: str | None = None,
    brokers: Sequence[str] | str | None = None,
    settings: Mapping[str, Any] | None = None,
    transactional_id: str | None = None,
) -> WriterConfig:
    """A WriterConfig from an object or a dict, with keyword overrides applied."""
    base = config if isinstance(config, WriterConfig) else WriterConfig.from_dict(config or {})
    extra = {**base.settings, **(settings or {})} if settings else None
    return base.merged(
        topic=topic, brokers=brokers, settings=extra, transactional_id=transactional_id
    )


def produce_error(error: Any, topic: str, size_bytes: int) -> ClientError:
    """The typed error for a produce() librdkafka refused: a transactional producer's fatal
    or abortable state is a TransactionError (ProducerFencedError when fenced)."""
    if error.fatal() or error.txn_requires_abort():
        return from_transaction_error(error, action=f"write to {topic!r}")
    return from_kafka_error(error, topic=topic, size_bytes=size_bytes)


PENDING = -1
"""Partition and offset of a Delivery returned inside a transaction: not known until the
commit (`Transaction.deliveries` has them then)."""


class ProducerCore:
    """The librdkafka producer with its connect check; shared by the sync and async writers."""

    def __init__(self, config: WriterConfig) -> None:
        self.config = config
        self.bootstrap = resolve_bootstrap(config.brokers)
        self.errors = ErrorTracker()
        settings: dict[str, Any] = config.to_librdkafka(self.bootstrap)
        settings["error_cb"] = self.errors
        settings.setdefault("logger", RDKAFKA_LOG)
        try:
            self.producer = confluent_kafka.Producer(settings)
        except confluent_kafka.KafkaException as exc:
            raise ConfigError(f"librdkafka refused the producer settings: {exc}") from None
        self.closed = False
        self.txn: TransactionState | None = None
        """The open transaction (writes report to it), if any."""
        self.txn_ready = False
        """init_transactions has run (once per producer)."""

    def on_delivery(self, topic: str, callback: Any) -> Any:
        """The delivery callback for a write: the open transaction's, or `callback`.

        Raises ClientError for a transactional writer outside a transaction (librdkafka would
        refuse the record with an opaque state error)."""
        if self.txn is not None:
            return self.txn.report
        if self.config.transactional_id is not None:
            raise ClientError(
                f"write to {topic!r} outside a transaction: a writer with a transactional_id "
                "writes inside `with writer.transaction():`"
            )
        return callback

    def connect(self) -> None:
        connect_with_retry(
            lambda timeout_s: self.producer.list_topics(timeout=timeout_s),
            bootstrap=self.bootstrap,
            timeout_s=self.config.client.timeout,
            delays_s=self.config.client.retry_delays_s,
            errors=self.errors,
            serve=lambda: self.producer.poll(0),
        )

    def produce(
        self,
        topic: str,
        value: Value,
        key: Value,
        headers: Headers | None,
        on_delivery: Any,
    ) -> None:
        """Enqueue one record; waits for queue space instead of failing when the queue is full."""
        if self.closed:
            raise ClientError("the writer is closed")
        payload = _encode(value)
        while True:
            try:
                self.producer.produce(
                    topic,
                    value=payload,
                    key=_encode(key),
                    headers=_headers(headers),
                    on_delivery=on_delivery,
                )
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self.producer.poll(POLL_INTERVAL_S)
            except confluent_kafka.KafkaException as exc:
                raise produce_error(exc.args[0], topic, len(payload or b"")) from None

    def flush_before_close(self, timeout_s: float | None) -> None:
        """flush() for close(): a producer that failed for good (fenced) has nothing left to
        deliver and is closed without raising, since closing is what its error asks for."""
        try:
            self.flush(timeout_s)
        except TransactionError as exc:
            if not exc.fatal:
                raise
            log.warning("closing a producer that failed for good: %s", exc)

    def release(self) -> None:
        """Refuse further writes and close the librdkafka producer (its connections too)."""
        if not self.closed:
            self.closed = True
            self.producer.close()

    def failure(self, error: Any, topic: str, size_bytes: int) -> ClientError:
        """The typed error for a failed delivery report.

        librdkafka holds records for a topic missing from metadata until they time out
        (_MSG_TIMED_OUT), so a timeout is checked against the topic list: unknown beats slow.
        """
        exc = from_kafka_error(error, topic=topic, size_bytes=size_bytes)
        if str(error.name()) == "_MSG_TIMED_OUT" and not self.topic_exists(topic):
            exc = from_kafka_error(_UnknownTopic(), topic=topic)
        return exc

    def topic_exists(self, topic: str) -> bool:
        try:
            meta = self.producer.list_topics(timeout=self.config.client.timeout)
        except confluent_kafka.KafkaException:
            return True  # cannot tell: keep the original error
        return topic in meta.topics and meta.topics[topic].error is None

    def flush(self, timeout_s: float | None = None) -> None:
        try:
            remaining = self.producer.flush(-1 if timeout_s is None else timeout_s)
        except confluent_kafka.KafkaException as exc:  # a fatal error, e.g. fenced
            raise produce_error(exc.args[0], "(flush)", 0) from None
        if remaining:
            raise DeliveryError(
                f"{remaining} record(s) still unconfirmed after {timeout_s}s",
                reason="_MSG_TIMED_OUT",
                retriable=True,
            )


class _UnknownTopic:
    """Stands in for librdkafka's error when metadata shows the topic is missing."""

    def name(self) -> str:
        return "UNKNOWN_TOPIC_OR_PART"

    def str(self) -> str:
        return "topic not in cluster metadata"


class _Outcome:
    """The delivery report for one record, filled in by librdkafka's callback."""

    __slots__ = ("done", "error", "message")

    def __init__(self) -> None:
        self.done = False
        self.error: Any = None
        self.message: Any = None

    def __call__(self, error: Any, message: Any) -> None:
        self.error = error
        self.message = message
        self.done = True


def _delivery(core: ProducerCore, outcome: _Outcome, topic: str, size_bytes: int) -> Delivery:
    if outcome.error is not None:
        raise core.failure(outcome.error, topic, size_bytes)
    message = outcome.message
    return Delivery(message.topic(), message.partition(), offset_of(message))


class Batch:
    """Delivery reports of one write_many call; `report` is the one callback for all records.

    One shared bound method instead of an object per record, and partitions and offsets kept
    in arrays rather than the Message objects: allocating per record (and the garbage
    collector walking 100,000 live objects) cost more than produce() itself
    (bench/bench_client.py).
    """

    __slots__ = ("failed", "offsets", "partitions", "report")

    def __init__(self) -> None:
        self.partitions = array("i")
        self.offsets = array("q")
        self.failed: list[tuple[Any, int]] = []
        self.report = self._report

    def _report(self, error: Any, message: Any) -> None:
        if error is None:
            self.partitions.append(message.partition())
            # an array takes no None: a TypeError here lost the report (and broke flush)
            self.offsets.append(offset_of(message))
        else:
            self.failed.append((error, len(message.value() or b"")))

    @property
    def reported(self) -> int:
        return len(self.offsets) + len(self.failed)

    def result(self, core: ProducerCore, topic: str, count: int) -> Deliveries:
        """The deliveries, or the typed error of the first failed record."""
        if self.failed:
            error, size = self.failed[0]
            exc = core.failure(error, topic, size)
            exc.args = (f"{len(self.failed)} of {count} records failed; first: {exc}",)
            raise exc
        if self.reported < count:  # a report lost with a failed callback: not known delivered
            raise DeliveryError(
                f"{count - self.reported} of {count} records to {topic!r} have no delivery "
                "report (a client callback failed); they may or may not be written",
                reason="_NO_REPORT",
                topic=topic,
            )
        return Deliveries(topic, self.partitions, self.offsets)


class Deliveries(Sequence[Delivery]):
    """write_many's result: one Delivery per record, in the order the broker confirmed them
    (the input order within each partition). Built on access, so a batch pays nothing for
    results it does not look at."""

    __slots__ = ("_offsets", "_partitions", "_topic")

    def __init__(self, topic: str, partitions: array[int], offsets: array[int]) -> None:
        self._topic = topic
        self._partitions = partitions
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets)

    @overload
    def __getitem__(self, index: int) -> Delivery: ...

    @overload
    def __getitem__(self, index: slice) -> list[Delivery]: ...

    def __getitem__(self, index: int | slice) -> Delivery | list[Delivery]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return Delivery(self._topic, self._partitions[index], self._offsets[index])

    def __repr__(self) -> str:
        return f"Deliveries({len(self)} records on {self._topic!r})"


def enqueue_many(
    core: ProducerCore, topic: str, items: Iterable[Record | Value], report: Any
) -> int:
    """produce() every record with the shared `report` callback; returns how many.

    The hot path of batch writing: librdkafka is called directly, and plain bytes values (the
    common case) go without building a Record.
    """
    if core.closed:
        raise ClientError("the writer is closed")
    produce = core.producer.produce
    count = 0
    for item in items:
        try:
            if type(item) is bytes:
                produce(topic, item, on_delivery=report)
            else:
                record = _as_record(item)
                produce(
                    topic,
                    _encode(record.value),
                    _encode(record.key),
                    on_delivery=report,
                    headers=_headers(record.headers),
                )
        except BufferError:  # local queue full: serve delivery reports, then retry (slow path)
            record = _as_record(item)
            core.produce(topic, record.value, record.key, record.headers, report)
        except confluent_kafka.KafkaException as exc:
            core.producer.flush()  # the records before it are on their way: settle them
            size = len(_encode(_as_record(item).value) or b"")
            raise produce_error(exc.args[0], topic, size) from None
        count += 1
    return count


def pending_deliveries(topic: str, count: int) -> Deliveries:
    """write_many's result inside a transaction: `count` records, places not known yet."""
    return Deliveries(topic, array("i", [PENDING]) * count, array("q", [PENDING]) * count)


def write_many_sync(core: ProducerCore, topic: str, items: Iterable[Record | Value]) -> Deliveries:
    """Enqueue every record, flush once, and check every delivery report (inside a
    transaction: enqueue only; the commit confirms)."""
    if core.txn is not None:
        return pending_deliveries(topic, enqueue_many(core, topic, items, core.txn.report))
    batch = Batch()
    count = enqueue_many(core, topic, items, core.on_delivery(topic, batch.report))
    flush_through_callback_failures(core.producer)
    return batch.result(core, topic, count)


FLUSH_ATTEMPTS = 100
"""Each failed flush serves at least the failing callback: a bound, not a budget."""


def flush_through_callback_failures(producer: Any) -> None:
    """producer.flush() until it returns.

    A callback that fails inside flush (a log line, a delivery report) stops it early, and
    confluent-kafka 2.16 on Python 3.11 re-raises a C-level error there as SystemError
    ("exception <class 'str'> is not a BaseException subclass": it restores an unnormalized
    exception); seen once, in the failover test's writer while a node was killed. The
    failure itself is gone by then; flushing on serves the other reports, and the caller
    counts them (`Batch.result` refuses a batch with reports missing)."""
    for attempt in range(1, FLUSH_ATTEMPTS + 1):
        try:
            producer.flush()
            return
        except SystemError as exc:
            if attempt == FLUSH_ATTEMPTS:
                raise
            log.warning("a librdkafka callback failed during flush (%s); flushing on", exc)


class _SyncWriting:
    """What Writer and TopicWriter share: a producer, the delivery wait, close and with."""

    def __init__(self, config: WriterConfig) -> None:
        self._core = ProducerCore(config)
        try:
            self._core.connect()
            init_transactions(self._core)
        except BaseException:
            self._core.release()
            raise

    @property
    def config(self) -> WriterConfig:
        return self._core.config

    @property
    def bootstrap(self) -> str:
        """The brokers this writer talks to."""
        return self._core.bootstrap

    @property
    def core(self) -> ProducerCore:
        """The producer and its error tracker (used by HealthChecker)."""
        return self._core

    def transaction(self) -> Transaction:
        """`with writer.transaction() as txn:` the block's writes are committed together on
        exit, or aborted (none visible to read_committed readers) if it raises. Needs a
        transactional_id; see kafkito.client.transaction for errors and what writes return."""
        return Transaction(self._core)

    def _write(self, topic: str, value: Value, headers: Headers | None, key: Value) -> Delivery:
        if self._core.txn is not None:
            self._core.produce(topic, value, key, headers, self._core.txn.report)
            return Delivery(topic, PENDING, PENDING)
        outcome = _Outcome()
        self._core.produce(topic, value, key, headers, self._core.on_delivery(topic, outcome))
        # flush(), not poll(): it sends at once instead of waiting linger.ms for company
        while not outcome.done:
            self._core.producer.flush(POLL_INTERVAL_S)
        return _delivery(self._core, outcome, topic, len(_encode(value) or b""))

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every queued record is confirmed (or raise DeliveryError on timeout)."""
        self._core.flush(timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        """Flush, then release the producer and its connections. Idempotent."""
        if not self._core.closed:
            try:
                self._core.flush_before_close(timeout_s)
            finally:
                self._core.release()

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
        return f"{type(self).__name__}(bootstrap={self.bootstrap!r}, topic={self.config.topic!r})"


class Writer(_SyncWriting):
    """Writes to one topic; each call returns once the broker confirmed the record.

    Writer(topic="clicks").write(b"...") works with nothing configured: the embedded broker
    starts on demand (kafkito.client.embedded). `config` is a WriterConfig or a dict of the
    seed's keys; `brokers`, `settings` and `topic` override it.
    """

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

    def write(self, value: Value, headers: Headers | None = None, key: Value = None) -> Delivery:
        """Write one record and wait for the broker's confirmation.

        Raises UnknownTopicError, MessageTooLargeError, AuthenticationError or DeliveryError.
        """
        return self._write(self.topic, value, headers, key)

    def write_value(self, value: Value) -> Delivery:
        """Write a value with no key and no headers."""
        return self._write(self.topic, value, None, None)

    def write_with_key(self, value: Value, key: Value, headers: Headers | None = None) -> Delivery:
        """Write a keyed record (records with one key keep their order)."""
        return self._write(self.topic, value, headers, key)

    def write_many(self, records: Iterable[Record | Value]) -> Deliveries:
        """Write a batch; returns once every record is confirmed, raises if any failed.

        The result holds one Delivery per record in confirmation order (see Deliveries).
        """
        return write_many_sync(self._core, self.topic, records)


class TopicWriter(_SyncWriting):
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

    def write(
        self, topic: str, value: Value, headers: Headers | None = None, key: Value = None
    ) -> Delivery:
        """Write one record to `topic` and wait for the broker's confirmation."""
        return self._write(topic, value, headers, key)

    def write_value(self, topic: str, value: Value) -> Delivery:
        return self._write(topic, value, None, None)

    def write_with_key(
        self, topic: str, value: Value, key: Value, headers: Headers | None = None
    ) -> Delivery:
        return self._write(topic, value, headers, key)

    def write_many(self, topic: str, records: Iterable[Record | Value]) -> Deliveries:
        return write_many_sync(self._core, topic, records)
