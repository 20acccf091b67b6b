"""confluent-kafka (librdkafka 2.16) against the embedded broker: the data path.

Produce the sample (null key, empty value, a 1 MB value, headers, explicit timestamps) with each
codec and read it back by partition assignment, byte for byte; list offsets (earliest, latest,
by timestamp, max timestamp); a batch above message.max.bytes is refused with MESSAGE_TOO_LARGE;
keys stick to partitions; a deleted topic is gone. Reads use `assign()`, never group
subscription, so that these tests depend on the data path only.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from compat.helpers import (
    CLIENT_MAX_BYTES,
    CODECS,
    TOO_LARGE,
    Message,
    assert_same,
    key_spread,
    sample_messages,
)
from kafkito.broker.dispatch import advertised_versions


@pytest.fixture
def broker(any_broker: str) -> str:
    """Every test here runs against kafkito's broker and against Apache Kafka (any_broker):
    what it asserts holds for any Kafka, so the same assertions check both."""
    return any_broker


DELETE_TOPICS = 20


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[Message],
    *,
    compression: str = "none",
) -> list[tuple[int, int] | KafkaError]:
    """Produce in order; returns (partition, offset) or the error of each delivery."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": compression,
            "message.max.bytes": CLIENT_MAX_BYTES,
            "linger.ms": 5,
            "acks": "all",
            "message.timeout.ms": 10_000,
        }
    )
    results: list[Any] = [None] * len(messages)

    def delivered(i: int, err: KafkaError | None, msg: Any) -> None:
        results[i] = err if err is not None else (msg.partition(), msg.offset())

    for i, m in enumerate(messages):
        producer.produce(
            topic,
            key=m.key,
            value=m.value,
            headers=list(m.headers),
            timestamp=m.timestamp_ms,
            on_delivery=functools.partial(delivered, i),
        )
    assert producer.flush(15) == 0, "deliveries still pending after 15 s"
    return results


def consumer_for(bootstrap: str) -> Any:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compat-assign-only",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
    )


def consume(
    bootstrap: str, topic: str, partition: int, count: int, *, offset: int = 0
) -> list[tuple[int, Message]]:
    """Read `count` records from one partition by assignment: (offset, message)."""
    consumer = consumer_for(bootstrap)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        seen: list[tuple[int, Message]] = []
        deadline = time.monotonic() + 15
        while len(seen) < count:
            assert time.monotonic() < deadline, f"only {len(seen)} of {count} records read"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            _ts_type, ts = msg.timestamp()
            seen.append((msg.offset(), Message.of(msg.key(), msg.value(), msg.headers(), ts)))
        return seen
    finally:
        consumer.close()


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(broker: str, topic_name: str, codec: str) -> None:
    messages = sample_messages()
    delivered = produce(broker, topic_name, messages, compression=codec)
    assert delivered == [(0, i) for i in range(len(messages))]
    read = consume(broker, topic_name, 0, len(messages))
    assert [offset for offset, _ in read] == list(range(len(messages)))
    assert_same([m for _, m in read], messages)


def test_null_header_value_and_mid_log_start(broker: str, topic_name: str) -> None:
    """A header with a null value survives; reading from the middle starts at that offset."""
    messages = [
        Message.of(b"k", f"v{i}".encode(), [("n", None)], 1_700_000_000_000 + i) for i in range(6)
    ]
    assert produce(broker, topic_name, messages) == [(0, i) for i in range(6)]
    read = consume(broker, topic_name, 0, 3, offset=3)
    assert read == list(enumerate(messages))[3:]


def test_list_offsets(broker: str, topic_name: str) -> None:
    messages = sample_messages(big=False)
    assert produce(broker, topic_name, messages) == [(0, i) for i in range(len(messages))]
    base = messages[0].timestamp_ms
    consumer = consumer_for(broker)
    try:
        tp = TopicPartition(topic_name, 0)
        assert consumer.get_watermark_offsets(tp, timeout=10, cached=False) == (0, len(messages))
        wanted = [base - 5000, base, base + 1500, messages[-1].timestamp_ms, base + 999_999]
        found = [
            consumer.offsets_for_times([TopicPartition(topic_name, 0, ts)], timeout=10)[0]
            for ts in wanted
        ]
        # The first offset whose timestamp is >= the one asked for; none after the last.
        assert [tp.offset for tp in found] == [0, 0, 2, len(messages) - 1, -1]
    finally:
        consumer.close()

    admin = AdminClient({"bootstrap.servers": broker})
    specs = {
        "earliest": OffsetSpec.earliest(),
        "latest": OffsetSpec.latest(),
        "max_timestamp": OffsetSpec.max_timestamp(),
        "at base+2500": OffsetSpec.for_timestamp(base + 2500),
    }
    answers = {}
    for name, spec in specs.items():
        futures = admin.list_offsets({TopicPartition(topic_name, 0): spec}, request_timeout=10)
        (future,) = futures.values()
        answers[name] = future.result(timeout=15).offset
    assert answers == {
        "earliest": 0,
        "latest": len(messages),
        "max_timestamp": len(messages) - 1,
        "at base+2500": 3,
    }


def test_too_large_is_refused_by_the_broker(broker: str, topic_name: str) -> None:
    """The client's own limit is raised, so the broker answers MESSAGE_TOO_LARGE; no hang."""
    small = Message.of(b"k", b"fits", [], int(time.time() * 1000))
    huge = Message.of(b"k", b"x" * TOO_LARGE, [], int(time.time() * 1000))
    (ok,) = produce(broker, topic_name, [small])
    (refused,) = produce(broker, topic_name, [huge])
    assert ok == (0, 0)
    assert isinstance(refused, KafkaError)
    assert refused.code() == KafkaError.MSG_SIZE_TOO_LARGE
    (after,) = produce(broker, topic_name, [small])
    assert after == (0, 1), "the refused batch must not have been appended"


def test_same_key_same_partition_and_every_partition_reads_back(
    broker: str, topic_name: str
) -> None:
    admin = AdminClient({"bootstrap.servers": broker})
    futures = admin.create_topics([NewTopic(topic_name, num_partitions=4, replication_factor=1)])
    futures[topic_name].result(timeout=15)
    pairs = key_spread(n_keys=12, per_key=5)
    messages = [Message.of(k, v, [], 1_700_000_000_000 + i) for i, (k, v) in enumerate(pairs)]
    results = produce(broker, topic_name, messages)
    delivered = [d for d in results if isinstance(d, tuple)]
    assert len(delivered) == len(messages), results
    partition_of: dict[bytes | None, set[int]] = {}
    for m, (partition, _) in zip(messages, delivered, strict=True):
        partition_of.setdefault(m.key, set()).add(partition)
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    used = {p for parts in partition_of.values() for p in parts}
    assert len(used) >= 2, "12 keys all hashed to one of 4 partitions"
    for partition in range(4):
        want = [m for m, d in zip(messages, delivered, strict=True) if d[0] == partition]
        read = consume(broker, topic_name, partition, len(want)) if want else []
        assert [m for _, m in read] == want
        assert [o for o, _ in read] == list(range(len(want)))


def test_delete_topic_and_see_it_gone(kafkito_broker: str, topic_name: str) -> None:
    """Deleted, the topic leaves the metadata; re-created, it has a new id and an empty log.

    kafkito only: Apache Kafka deletes and creates topics asynchronously, so a describe right
    after the re-creation may answer UNKNOWN_TOPIC_OR_PARTITION there (docs/broker.md).
    """
    broker = kafkito_broker
    if DELETE_TOPICS not in {key for key, _, _ in advertised_versions()}:
        pytest.skip("DeleteTopics is not served yet")
    admin = AdminClient({"bootstrap.servers": broker})
    new = NewTopic(topic_name, num_partitions=2, replication_factor=1)
    admin.create_topics([new])[topic_name].result(timeout=15)
    assert all(isinstance(d, tuple) for d in produce(broker, topic_name, sample_messages()))
    described = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=15)
    old_id = str(described.topic_id)
    admin.delete_topics([topic_name], operation_timeout=10)[topic_name].result(timeout=15)
    deadline = time.monotonic() + 10
    while topic_name in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, "the deleted topic is still listed"
        time.sleep(0.1)

    admin.create_topics([NewTopic(topic_name, num_partitions=1, replication_factor=1)])[
        topic_name
    ].result(timeout=15)
    described = admin.describe_topics(TopicCollection([topic_name]))[topic_name].result(timeout=15)
    assert str(described.topic_id) != old_id
    assert len(described.partitions) == 1
    fresh = Message.of(b"k", b"fresh", [], int(time.time() * 1000))
    assert produce(broker, topic_name, [fresh]) == [(0, 0)]
    assert consume(broker, topic_name, 0, 1) == [(0, fresh)]
