"""kafka-python 3.0 against the embedded broker: the data path.

kafka-python speaks ApiVersions v4, Metadata v12, Produce v9, Fetch v12 and ListOffsets v9
(KAFKA-NOTES §1). Its codecs come from python-snappy, lz4 and zstandard (the `test` extra).
Its default producer is idempotent; these tests turn that off to exercise the plain data path
(idempotence has its own tests). Reads use `assign()` with no group.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import MessageSizeTooLargeError

from compat.helpers import (
    CLIENT_MAX_BYTES,
    CODECS,
    TOO_LARGE,
    Message,
    assert_same,
    key_spread,
    sample_messages,
)


@pytest.fixture
def broker(any_broker: str) -> str:
    """Every test here runs against kafkito's broker and against Apache Kafka (any_broker):
    what it asserts holds for any Kafka, so the same assertions check both."""
    return any_broker


def produce(
    bootstrap: str, topic: str, messages: Sequence[Message], *, compression: str = "none"
) -> list[tuple[int, int]]:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if compression == "none" else compression,
        max_request_size=CLIENT_MAX_BYTES,
        linger_ms=5,
        acks="all",
        enable_idempotence=False,
        retries=0,
        request_timeout_ms=10_000,
    )
    try:
        futures = [
            producer.send(
                topic,
                value=m.value,
                key=m.key,
                headers=list(m.headers),
                timestamp_ms=m.timestamp_ms,
            )
            for m in messages
        ]
        producer.flush(timeout=15)
        done = [f.get(timeout=15) for f in futures]
        return [(md.partition, md.offset) for md in done]
    finally:
        producer.close(timeout=5)


@pytest.fixture
def consumer(broker: str) -> Iterator[Any]:
    consumer = KafkaConsumer(
        bootstrap_servers=broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    try:
        yield consumer
    finally:
        consumer.close()


def consume(
    consumer: Any, topic: str, partition: int, count: int, *, offset: int = 0
) -> list[tuple[int, Message]]:
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    seen: list[tuple[int, Message]] = []
    deadline = time.monotonic() + 15
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {len(seen)} of {count} records read"
        for record in consumer.poll(timeout_ms=500).get(tp, []):
            m = Message.of(record.key, record.value, record.headers, record.timestamp)
            seen.append((record.offset, m))
    return seen


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(broker: str, consumer: Any, topic_name: str, codec: str) -> None:
    messages = sample_messages()
    delivered = produce(broker, topic_name, messages, compression=codec)
    assert delivered == [(0, i) for i in range(len(messages))]
    read = consume(consumer, topic_name, 0, len(messages))
    assert [offset for offset, _ in read] == list(range(len(messages)))
    assert_same([m for _, m in read], messages)


def test_list_offsets(broker: str, consumer: Any, topic_name: str) -> None:
    messages = sample_messages(big=False)
    assert produce(broker, topic_name, messages) == [(0, i) for i in range(len(messages))]
    tp = TopicPartition(topic_name, 0)
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: len(messages)}
    base = messages[0].timestamp_ms
    wanted = {base - 5000: 0, base + 1500: 2, messages[-1].timestamp_ms: len(messages) - 1}
    for ts, offset in wanted.items():
        found = consumer.offsets_for_times({tp: ts})[tp]
        assert found is not None
        assert (found.offset, found.timestamp) == (offset, messages[offset].timestamp_ms)
    assert consumer.offsets_for_times({tp: base + 999_999})[tp] is None


def test_too_large_is_refused_by_the_broker(broker: str, topic_name: str) -> None:
    now = int(time.time() * 1000)
    assert produce(broker, topic_name, [Message.of(b"k", b"fits", [], now)]) == [(0, 0)]
    with pytest.raises(MessageSizeTooLargeError):
        produce(broker, topic_name, [Message.of(b"k", b"x" * TOO_LARGE, [], now)])
    assert produce(broker, topic_name, [Message.of(b"k", b"fits", [], now)]) == [(0, 1)]


def test_same_key_same_partition_and_every_partition_reads_back(
    broker: str, consumer: Any, topic_name: str
) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker, request_timeout_ms=10_000)
    try:
        admin.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=1)])
        # Apache Kafka answers CreateTopics before its broker leads the partitions; the
        # producer (no retries) would meet NOT_LEADER_OR_FOLLOWER on a slow machine.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (described,) = admin.describe_topics([topic_name])
            parts = described.get("partitions") or []
            if len(parts) == 4 and all(p.get("leader", -1) >= 0 for p in parts):
                break
            time.sleep(0.05)
    finally:
        admin.close()
    pairs = key_spread(n_keys=12, per_key=5)
    messages = [Message.of(k, v, [], 1_700_000_000_000 + i) for i, (k, v) in enumerate(pairs)]
    delivered = produce(broker, topic_name, messages)
    partition_of: dict[bytes | None, set[int]] = {}
    for m, (partition, _) in zip(messages, delivered, strict=True):
        partition_of.setdefault(m.key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    assert len({p for parts in partition_of.values() for p in parts}) >= 2
    for partition in range(4):
        want = [m for m, d in zip(messages, delivered, strict=True) if d[0] == partition]
        read = consume(consumer, topic_name, partition, len(want)) if want else []
        assert [m for _, m in read] == want


def test_read_from_the_middle_of_a_batch(broker: str, consumer: Any, topic_name: str) -> None:
    """Fetch returns the whole batch holding the offset; the client skips what precedes it."""
    messages = [Message.of(b"k", f"v{i}".encode(), [], 1_700_000_000_000 + i) for i in range(6)]
    assert produce(broker, topic_name, messages, compression="gzip") == [(0, i) for i in range(6)]
    assert consume(consumer, topic_name, 0, 3, offset=3) == list(enumerate(messages))[3:]
