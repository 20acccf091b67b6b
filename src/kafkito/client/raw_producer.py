"""RawProducer: librdkafka's producer, built and failing the client library's way.

The Writer confirms every write before it returns. Tools that pipeline records themselves,
such as the CLI's `produce` and `bench` and the consume flow's dead-letter and retry writes,
need librdkafka's own shape instead: enqueue with a delivery callback, serve callbacks with
`poll`, `flush` at the end. RawProducer gives them that on the same footing as Writer, Reader
and Admin: settings from the library's config (the seed's keys, SASL and TLS with verification
on) plus librdkafka `settings`, librdkafka's log lines on the `kafkito.client.librdkafka`
logger, client errors tracked, the Writer's connect check (`connect()`), and failed calls
raised as typed `kafkito.client.errors` exceptions.

Unlike the Writer, it applies none of the Writer's defaults (acks, idempotence): the caller's
`settings` say what it wants. Delivery callbacks receive librdkafka's (error, message) pair
as they are (the hot path pays nothing); `delivery_error` turns such an error into the
library's typed exception with one clear message. `produce` waits for room when the local
queue is full (serving delivery reports meanwhile) instead of raising BufferError.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import confluent_kafka

from kafkito.client.admin import build_admin_config
from kafkito.client.config import _Common
from kafkito.client.connect import ErrorTracker, connect_with_retry, connection_settings
from kafkito.client.errors import (
    ClientError,
    ConfigError,
    from_admin_error,
    from_kafka_error,
)
from kafkito.client.transaction import call_transactional

log = logging.getLogger(__name__)

__all__ = ["RawProducer", "delivery_error"]

QUEUE_FULL_WAIT_S = 0.1
"""How long one poll serves delivery reports while the local queue is full."""

HeaderPairs = Sequence[tuple[str, bytes | str | None]] | Mapping[str, bytes | str | None]


def delivery_error(
    error: Any, *, topic: str | None = None, size_bytes: int | None = None
) -> ClientError:
    """The typed exception (not raised) for the error of a delivery report."""
    return from_kafka_error(error, topic=topic, size_bytes=size_bytes)


class RawProducer:
    """librdkafka's producer with the library's config, logging and typed errors.

    `config` is a WriterConfig (or any of the library's configs) or a dict of the seed's
    keys; `brokers` overrides it; `settings` are librdkafka settings (acks, linger.ms,
    compression.type, enable.idempotence, statistics...), applied last.
    """

    def __init__(
        self,
        config: _Common | Mapping[str, Any] | None = None,
        *,
        brokers: Sequence[str] | str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.config = build_admin_config(config, brokers=brokers)
        self.bootstrap, conf = connection_settings(self.config, extra=settings)
        self.errors = ErrorTracker()
        conf.setdefault("error_cb", self.errors)
        try:
            self._producer = confluent_kafka.Producer(conf)
        except (confluent_kafka.KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"librdkafka refused the producer settings: {exc}") from None
        self.closed = False
        self._produce: Callable[..., None] = self._producer.produce
        self.poll: Callable[..., int] = self._producer.poll
        """poll(timeout_s) -> number of delivery reports served"""

    @property
    def timeout_s(self) -> float:
        return float(self.config.client.timeout)

    def connect(self) -> None:
        """Ask for metadata with the client.retry delays (BrokerUnreachableError,
        AuthenticationError)."""
        connect_with_retry(
            lambda timeout_s: self._producer.list_topics(timeout=timeout_s),
            bootstrap=self.bootstrap,
            timeout_s=self.timeout_s,
            delays_s=self.config.client.retry_delays_s,
            errors=self.errors,
            serve=lambda: self._producer.poll(0),
        )

    def produce(
        self,
        topic: str,
        value: bytes | str | None = None,
        key: bytes | str | None = None,
        *,
        partition: int | None = None,
        headers: HeaderPairs | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        """Enqueue one record; its delivery report goes to `on_delivery(error, message)`.

        Waits (serving delivery reports) while the local queue is full. Raises
        MessageTooLargeError, UnknownTopicError (an unknown partition) or DeliveryError when
        librdkafka refuses the record at once.
        """
        if self.closed:
            raise ClientError("produce failed: the producer is closed")
        # One call with every argument spelled out: building a kwargs dict per record cost
        # more than a third of produce() itself (the CLI's bench and produce are this loop).
        while True:
            try:
                self._produce(
                    topic,
                    value,
                    key,
                    partition=-1 if partition is None else partition,
                    on_delivery=on_delivery,
                    timestamp=timestamp_ms or 0,
                    headers=headers,
                )
                return
            except BufferError:  # local queue full: serve delivery reports, then retry
                self._producer.poll(QUEUE_FULL_WAIT_S)
            except confluent_kafka.KafkaException as exc:
                size = len(value or b"")
                raise from_kafka_error(exc.args[0], topic=topic, size_bytes=size) from None

    def flush(self, timeout_s: float | None = None) -> int:
        """Wait until every queued record is reported (or the timeout); returns how many are
        still unconfirmed."""
        return int(self._producer.flush(-1 if timeout_s is None else timeout_s))

    def __len__(self) -> int:
        """Records queued or in flight, not reported yet."""
        return len(self._producer)

    def list_topics(self, topic: str | None = None, timeout_s: float | None = None) -> Any:
        """Cluster metadata (librdkafka's ClusterMetadata), for one topic or all."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        try:
            return self._producer.list_topics(topic, timeout=wait)
        except confluent_kafka.KafkaException as exc:
            action = f"describe topic {topic!r}" if topic else "list topics"
            raise from_admin_error(
                exc.args[0], action=action, bootstrap=self.bootstrap, topic=topic
            ) from None

    # -- transactions (settings must carry transactional.id) ------------------------------

    @staticmethod
    def _txn(action: str, call: Callable[[], Any], *, resumable: bool = False) -> Any:
        """A transactional call (client/transaction.call_transactional: typed errors, a
        resumable call made again while librdkafka answers retriable)."""
        return call_transactional(action, call, resumable=resumable)

    def init_transactions(self, timeout_s: float | None = None) -> None:
        """Register the transactional.id (fencing any older producer with it, and completing
        or aborting its open transaction). Once, before the first transaction."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self._txn(
            "init transactions", lambda: self._producer.init_transactions(wait), resumable=True
        )

    def begin_transaction(self) -> None:
        """Start a transaction: records produced until commit/abort belong to it."""
        self._txn("begin transaction", self._producer.begin_transaction)

    def send_offsets_to_transaction(
        self, offsets: list[Any], group_metadata: Any, timeout_s: float | None = None
    ) -> None:
        """Commit a consumer group's `offsets` (TopicPartitions, next offset to read) as part
        of the transaction: visible to the group only if it commits. `group_metadata` is
        `RawConsumer.group_metadata()`, which lets the broker fence zombie members."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self._txn(
            "send offsets to transaction",
            lambda: self._producer.send_offsets_to_transaction(offsets, group_metadata, wait),
            resumable=True,
        )

    def commit_transaction(self, timeout_s: float | None = None) -> None:
        """Flush, then commit: every record and offset of the transaction becomes visible."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self._txn(
            "commit transaction", lambda: self._producer.commit_transaction(wait), resumable=True
        )

    def abort_transaction(self, timeout_s: float | None = None) -> None:
        """Abort: read_committed consumers never see the transaction's records, and its
        offsets are dropped."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        self._txn(
            "abort transaction", lambda: self._producer.abort_transaction(wait), resumable=True
        )

    def close(self, timeout_s: float | None = None) -> int:
        """Flush (up to `timeout_s`), then release the producer; returns the records left
        unconfirmed. Idempotent."""
        if self.closed:
            return 0
        try:
            remaining = self.flush(timeout_s)
        finally:
            self.closed = True
            self._producer.close()
        return remaining

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
        return f"RawProducer(bootstrap={self.bootstrap!r})"
