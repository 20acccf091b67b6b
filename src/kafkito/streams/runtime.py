"""Where records enter and leave a running app: sources (decoding, event time) and the
Runtime that sinks produce through (their records join the app's transaction)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafkito.client.errors import ClientError
from kafkito.client.raw_producer import RawProducer, delivery_error
from kafkito.streams.records import Record, key_from_repartition
from kafkito.streams.topology import Node

__all__ = ["RepartitionSource", "Runtime", "Source", "raw"]


class Source(Node):
    """Where a topic's records enter: decoding, the timestamp extractor, dead letters."""

    __slots__ = ("decode_key", "decode_value", "timestamp", "topic")

    def __init__(
        self,
        topic: str,
        decode_key: Callable[[bytes | None], Any],
        decode_value: Callable[[bytes | None], Any],
        timestamp: Callable[[Any], int] | None,
    ) -> None:
        super().__init__()
        self.topic = topic
        self.decode_key = decode_key
        self.decode_value = decode_value
        self.timestamp = timestamp

    def record(self, msg: Any) -> Record:
        """The Record of a librdkafka message (raises on bad input: the caller dead-letters)."""
        value = self.decode_value(msg.value())
        ts = int(self.timestamp(value)) if self.timestamp else msg.timestamp()[1]
        return Record(
            self.decode_key(msg.key()),
            value,
            ts,
            self.topic,
            msg.partition(),
            msg.offset(),
            msg.headers(),
        )


class RepartitionSource(Source):
    """A repartition topic's records: keys flagged by a header (records.key_to_repartition)."""

    __slots__ = ()

    def record(self, msg: Any) -> Record:
        headers = msg.headers()
        return Record(
            key_from_repartition(msg.key(), headers),
            self.decode_value(msg.value()),
            msg.timestamp()[1],
            self.topic,
            msg.partition(),
            msg.offset(),
            headers,
        )


def raw(data: bytes | None) -> Any:
    return data


class Runtime:
    """What nodes use while running: `produce` for sinks (outputs join the transaction)."""

    def __init__(self, producer: RawProducer, failures: list[ClientError]) -> None:
        self._produce = producer.produce
        self._failures = failures
        self.produced = 0
        """Records produced since the last commit."""

    def _delivered(self, error: Any, msg: Any) -> None:
        if error is not None:
            self._failures.append(delivery_error(error, topic=msg.topic()))

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        timestamp_ms: int,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        self.produced += 1
        self._produce(
            topic,
            value,
            key,
            headers=headers,
            timestamp_ms=timestamp_ms if timestamp_ms > 0 else None,
            on_delivery=self._delivered,
        )
