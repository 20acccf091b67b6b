"""aiokafka 0.14 against the embedded broker: the data path.

aiokafka speaks old versions (ApiVersions v0, Metadata v5, Produce v7, Fetch v11, ListOffsets
v3; KAFKA-NOTES §1) and sets partitionLeaderEpoch -1 and baseSequence 0 with producerId -1 in
its batches, so it takes paths the other clients do not. Every codec comes from cramjam.
Reads use `assign()` with no group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import MessageSizeTooLargeError

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


async def produce(
    bootstrap: str, topic: str, messages: Sequence[Message], *, compression: str = "none"
) -> list[tuple[int, int]]:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        compression_type=None if compression == "none" else compression,
        max_request_size=CLIENT_MAX_BYTES,
        linger_ms=5,
        acks="all",
        request_timeout_ms=10_000,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(
                topic,
                value=m.value,
                key=m.key,
                headers=list(m.headers),
                timestamp_ms=m.timestamp_ms,
            )
            for m in messages
        ]
        done = await asyncio.wait_for(asyncio.gather(*futures), 15)
        return [(md.partition, md.offset) for md in done]
    finally:
        await producer.stop()


@pytest.fixture
async def consumer(broker: str) -> AsyncIterator[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def consume(
    consumer: Any, topic: str, partition: int, count: int, *, offset: int = 0
) -> list[tuple[int, Message]]:
    tp = TopicPartition(topic, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    seen: list[tuple[int, Message]] = []
    deadline = time.monotonic() + 15
    while len(seen) < count:
        assert time.monotonic() < deadline, f"only {len(seen)} of {count} records read"
        batches = await consumer.getmany(tp, timeout_ms=500)
        for record in batches.get(tp, []):
            m = Message.of(record.key, record.value, record.headers, record.timestamp)
            seen.append((record.offset, m))
    return seen


@pytest.mark.parametrize("codec", CODECS)
async def test_round_trip_every_codec(
    broker: str, consumer: Any, topic_name: str, codec: str
) -> None:
    messages = sample_messages()
    delivered = await produce(broker, topic_name, messages, compression=codec)
    assert delivered == [(0, i) for i in range(len(messages))]
    read = await consume(consumer, topic_name, 0, len(messages))
    assert [offset for offset, _ in read] == list(range(len(messages)))
    assert_same([m for _, m in read], messages)


async def test_list_offsets(broker: str, consumer: Any, topic_name: str) -> None:
    messages = sample_messages(big=False)
    # One send per message: separate batches, so the time index has an entry for each.
    for i, m in enumerate(messages):
        assert await produce(broker, topic_name, [m]) == [(0, i)]
    tp = TopicPartition(topic_name, 0)
    assert await consumer.beginning_offsets([tp]) == {tp: 0}
    assert await consumer.end_offsets([tp]) == {tp: len(messages)}
    base = messages[0].timestamp_ms
    wanted = {base - 5000: 0, base + 1500: 2, messages[-1].timestamp_ms: len(messages) - 1}
    for ts, offset in wanted.items():
        found = await consumer.offsets_for_times({tp: ts})
        assert found[tp] is not None
        assert found[tp].offset == offset
        assert found[tp].timestamp == messages[offset].timestamp_ms
    assert (await consumer.offsets_for_times({tp: base + 999_999}))[tp] is None


async def test_too_large_is_refused_by_the_broker(broker: str, topic_name: str) -> None:
    now = int(time.time() * 1000)
    assert await produce(broker, topic_name, [Message.of(b"k", b"fits", [], now)]) == [(0, 0)]
    with pytest.raises(MessageSizeTooLargeError):
        await produce(broker, topic_name, [Message.of(b"k", b"x" * TOO_LARGE, [], now)])
    assert await produce(broker, topic_name, [Message.of(b"k", b"fits", [], now)]) == [(0, 1)]


async def test_same_key_same_partition_and_every_partition_reads_back(
    broker: str, consumer: Any, topic_name: str
) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=1)])
    finally:
        await admin.close()
    pairs = key_spread(n_keys=12, per_key=5)
    messages = [Message.of(k, v, [], 1_700_000_000_000 + i) for i, (k, v) in enumerate(pairs)]
    delivered = await produce(broker, topic_name, messages)
    partition_of: dict[bytes | None, set[int]] = {}
    for m, (partition, _) in zip(messages, delivered, strict=True):
        partition_of.setdefault(m.key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    assert len({p for parts in partition_of.values() for p in parts}) >= 2
    for partition in range(4):
        want = [m for m, d in zip(messages, delivered, strict=True) if d[0] == partition]
        read = await consume(consumer, topic_name, partition, len(want)) if want else []
        assert [m for _, m in read] == want


async def test_read_from_the_middle_of_a_batch(broker: str, consumer: Any, topic_name: str) -> None:
    """Fetch returns the whole batch holding the offset; the client skips what precedes it."""
    messages = [Message.of(b"k", f"v{i}".encode(), [], 1_700_000_000_000 + i) for i in range(6)]
    assert await produce(broker, topic_name, messages, compression="gzip") == [
        (0, i) for i in range(6)
    ]
    assert await consume(consumer, topic_name, 0, 3, offset=3) == list(enumerate(messages))[3:]
