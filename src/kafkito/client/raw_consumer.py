"""RawConsumer: librdkafka's consumer, built and failing the client library's way.

The Reader decides for its user (commit after the handler, one poll loop, signals). Tools that
steer the consumer themselves, such as the consume flow, the CLI's `consume` and `bench`, the
console's message browser, need the lower-level calls: poll and consume, assign and seek,
pause and resume, commits of explicit offsets, rebalance callbacks, statistics. RawConsumer
gives them those calls on the same footing as Writer, Reader and Admin:

* settings from the library's config (the seed's keys: brokers, client.username/password/
  algorithm, client.tls with verification on, client.timeout) plus librdkafka `settings`;
  brokers default as everywhere (KAFKITO_BROKERS, then the local embedded broker);
* librdkafka's log lines go to the `kafkito.client.librdkafka` logger, client-level errors to
  an ErrorTracker (logged once per kind), and `connect()` is the Reader's connect check;
* a call that fails raises a typed `kafkito.client.errors` exception naming what was being
  done (never a `KafkaError{...}` repr); errors carried by messages stay librdkafka's
  `KafkaError` objects (`is_partition_eof`, `message_error` read them).

What it does not do is wrap the hot path: `poll` and `consume` are librdkafka's own bound
methods (no extra Python frame per call), and messages are librdkafka `Message` objects.
Rebalance callbacks receive the RawConsumer, not the librdkafka object. Coordinates are
`TopicPartition` (re-exported here, so callers need not import confluent_kafka).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

import confluent_kafka

from kafkito.client.admin import build_admin_config
from kafkito.client.config import _Common
from kafkito.client.connect import (
    ErrorTracker,
    connect_with_retry,
    connection_settings,
    consumer_defaults,
)
from kafkito.client.errors import ClientError, ConfigError, from_admin_error

log = logging.getLogger(__name__)

__all__ = [
    "OFFSET_BEGINNING",
    "OFFSET_END",
    "OFFSET_STORED",
    "PARTITION_EOF",
    "RawConsumer",
    "TopicPartition",
    "is_partition_eof",
    "message_error",
]

T = TypeVar("T")

TopicPartition = confluent_kafka.TopicPartition
"""A (topic, partition[, offset]) coordinate, librdkafka's own type."""
OFFSET_BEGINNING: int = confluent_kafka.OFFSET_BEGINNING
OFFSET_END: int = confluent_kafka.OFFSET_END
OFFSET_STORED: int = confluent_kafka.OFFSET_STORED
PARTITION_EOF: int = confluent_kafka.KafkaError._PARTITION_EOF
"""The code of the pseudo-error a message carries at the end of a partition
(with `enable.partition.eof`)."""

Rebalance = Callable[["RawConsumer", list[Any]], None]


def is_partition_eof(error: Any) -> bool:
    """Whether a message's error only says that the end of its partition was reached."""
    return error is not None and error.code() == PARTITION_EOF


def message_error(error: Any, *, bootstrap: str = "", topic: str | None = None) -> ClientError:
    """The typed exception (not raised) for an error a consumed message carries."""
    return from_admin_error(error, action="consume", bootstrap=bootstrap, topic=topic)


class RawConsumer:
    """librdkafka's consumer with the library's config, logging and typed errors.

    `config` is a ReaderConfig, WriterConfig, AdminConfig or a dict of the seed's connection
    keys; `brokers` overrides it; `settings` are librdkafka settings for this consumer
    (group.id, auto.offset.reset, enable.auto.commit, ...), applied last.
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
        consumer_defaults(conf)
        self.errors = ErrorTracker()
        conf.setdefault("error_cb", self.errors)
        try:
            self._consumer = confluent_kafka.Consumer(conf)
        except (confluent_kafka.KafkaException, ValueError, TypeError) as exc:
            raise ConfigError(f"librdkafka refused the consumer settings: {exc}") from None
        self.closed = False
        # The hot path, unwrapped: librdkafka's bound methods.
        self.poll: Callable[..., Any] = self._consumer.poll
        """poll(timeout_s) -> Message | None"""
        self.consume: Callable[..., list[Any]] = self._consumer.consume
        """consume(num_messages, timeout_s) -> list[Message]"""

    @property
    def timeout_s(self) -> float:
        """How long a call that asks the brokers waits (client.timeout)."""
        return float(self.config.client.timeout)

    def _do(self, action: str, call: Callable[[], T], topic: str | None = None) -> T:
        try:
            return call()
        except confluent_kafka.KafkaException as exc:
            raise from_admin_error(
                exc.args[0], action=action, bootstrap=self.bootstrap, topic=topic
            ) from None
        except RuntimeError as exc:  # "Consumer closed"
            raise ClientError(f"{action} failed: {exc}") from None

    def connect(self) -> None:
        """Ask for metadata with the client.retry delays: BrokerUnreachableError or
        AuthenticationError now rather than a silent wait later."""
        connect_with_retry(
            lambda timeout_s: self._consumer.list_topics(timeout=timeout_s),
            bootstrap=self.bootstrap,
            timeout_s=self.timeout_s,
            delays_s=self.config.client.retry_delays_s,
            errors=self.errors,
            serve=lambda: self._consumer.poll(0),
        )

    # -- metadata and offsets --------------------------------------------------------------

    def list_topics(self, topic: str | None = None, timeout_s: float | None = None) -> Any:
        """Cluster metadata (librdkafka's ClusterMetadata), for one topic or all."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        action = f"describe topic {topic!r}" if topic else "list topics"
        return self._do(action, lambda: self._consumer.list_topics(topic, timeout=wait), topic)

    def partitions(self, topic: str) -> list[int]:
        """The partitions of `topic`, ascending; UnknownTopicError if it does not exist."""
        from kafkito.client.errors import UnknownTopicError

        tmeta = self.list_topics(topic).topics.get(topic)
        if tmeta is None or tmeta.error is not None or not tmeta.partitions:
            raise UnknownTopicError(
                f"topic {topic!r} does not exist", reason="UNKNOWN_TOPIC_OR_PART", topic=topic
            )
        return sorted(tmeta.partitions)

    def get_watermark_offsets(
        self, partition: Any, timeout_s: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        """(low, high) offsets of a TopicPartition."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        low, high = self._do(
            f"watermarks of {partition.topic}[{partition.partition}]",
            lambda: self._consumer.get_watermark_offsets(partition, timeout=wait, cached=cached),
            partition.topic,
        )
        return int(low), int(high)

    def offsets_for_times(self, partitions: list[Any], timeout_s: float | None = None) -> Any:
        """For TopicPartitions whose offset is a time (ms): the first offset at or after it."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        return self._do(
            "offsets for times", lambda: self._consumer.offsets_for_times(partitions, timeout=wait)
        )

    def committed(self, partitions: list[Any], timeout_s: float | None = None) -> list[Any]:
        """The group's committed offsets of these TopicPartitions."""
        wait = self.timeout_s if timeout_s is None else timeout_s
        result: list[Any] = self._do(
            "fetch committed offsets", lambda: self._consumer.committed(partitions, timeout=wait)
        )
        return result

    def position(self, partitions: list[Any]) -> list[Any]:
        result: list[Any] = self._do("position", lambda: self._consumer.position(partitions))
        return result

    # -- membership and positions ----------------------------------------------------------

    def subscribe(
        self,
        topics: list[str],
        *,
        on_assign: Rebalance | None = None,
        on_revoke: Rebalance | None = None,
        on_lost: Rebalance | None = None,
    ) -> None:
        """Join the group for `topics`; the callbacks run inside poll/consume with (self,
        partitions)."""
        hooks: dict[str, Callable[[Any, list[Any]], None]] = {}
        for name, hook in (
            ("on_assign", on_assign),
            ("on_revoke", on_revoke),
            ("on_lost", on_lost),
        ):
            if hook is not None:
                hooks[name] = self._bind(hook)
        self._do("subscribe", lambda: self._consumer.subscribe(topics, **hooks))

    def _bind(self, hook: Rebalance) -> Callable[[Any, list[Any]], None]:
        def call(_consumer: Any, partitions: list[Any]) -> None:
            hook(self, partitions)

        return call

    def assign(self, partitions: list[Any]) -> None:
        self._do("assign", lambda: self._consumer.assign(partitions))

    def unassign(self) -> None:
        self._do("unassign", self._consumer.unassign)

    def assignment(self) -> list[Any]:
        result: list[Any] = self._do("assignment", self._consumer.assignment)
        return result

    def seek(self, partition: Any) -> None:
        self._do(
            f"seek {partition.topic}[{partition.partition}] to {partition.offset}",
            lambda: self._consumer.seek(partition),
            partition.topic,
        )

    def pause(self, partitions: list[Any]) -> None:
        self._do("pause", lambda: self._consumer.pause(partitions))

    def resume(self, partitions: list[Any]) -> None:
        self._do("resume", lambda: self._consumer.resume(partitions))

    # -- commits ---------------------------------------------------------------------------

    def commit(
        self,
        message: Any = None,
        offsets: list[Any] | None = None,
        asynchronous: bool = False,
    ) -> Any:
        """Commit a message's offset + 1, explicit offsets, or the stored ones (neither)."""
        kwargs: dict[str, Any] = {"asynchronous": asynchronous}
        if message is not None:
            kwargs["message"] = message
        if offsets is not None:
            kwargs["offsets"] = offsets
        return self._do("commit", lambda: self._consumer.commit(**kwargs))

    def store_offsets(self, message: Any = None, offsets: list[Any] | None = None) -> None:
        """Store offsets for the next auto-commit (enable.auto.offset.store=false)."""
        kwargs: dict[str, Any] = {}
        if message is not None:
            kwargs["message"] = message
        if offsets is not None:
            kwargs["offsets"] = offsets
        self._do("store offsets", lambda: self._consumer.store_offsets(**kwargs))

    def group_metadata(self) -> Any:
        """The consumer's group membership (generation, member id) for
        `RawProducer.send_offsets_to_transaction`."""
        return self._do("read group metadata", self._consumer.consumer_group_metadata)

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Commit (if auto-commit is on) and leave the group. Idempotent."""
        if not self.closed:
            self.closed = True
            self._do("close", self._consumer.close)

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
        return f"RawConsumer(bootstrap={self.bootstrap!r})"
