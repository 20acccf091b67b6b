"""Restart the broker between produce and fetch, and find everything.

Three ways down: the in-process `Broker` stopped and a new one opened on the same data_dir (a
clean shutdown); the `kafkito broker` subprocess stopped with SIGTERM; and the same subprocess
killed with SIGKILL, where every record acknowledged under acks=all (durability=always: acked
means fsynced) must survive. After each restart the records read back byte for byte, offsets
continue where they stopped, topic ids and partition counts are unchanged, and a producer that
stayed up across the restart reconnects and carries on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition

from compat.helpers import Message, assert_same, sample_messages
from compat.test_data_path_confluent import consume, consumer_for, produce
from kafkito import Broker
from kafkito.testing.brokers import kafkito_process


def topic_layout(bootstrap: str, topics: list[str]) -> dict[str, tuple[int, str]]:
    """topic -> (partition count, topic id) as librdkafka's DescribeTopics sees them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.describe_topics(TopicCollection(topics))
    described = {name: future.result(timeout=15) for name, future in futures.items()}
    return {name: (len(d.partitions), str(d.topic_id)) for name, d in described.items()}


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1)
    admin.create_topics([new])[topic].result(timeout=15)


def test_in_process_restart_on_the_same_data_dir(tmp_path: Path, topic_name: str) -> None:
    data_dir = str(tmp_path / "data")
    compressed = f"{topic_name}-zstd"
    messages = sample_messages()
    with Broker(port=0, data_dir=data_dir) as bootstrap:
        create_topic(bootstrap, topic_name, 3)
        # Twice, so that every partition holds several batches.
        delivered = produce(bootstrap, topic_name, messages)
        delivered += produce(bootstrap, topic_name, messages)
        assert all(isinstance(d, tuple) for d in delivered), delivered
        assert produce(bootstrap, compressed, messages, compression="zstd") == [
            (0, i) for i in range(len(messages))
        ]
        layout = topic_layout(bootstrap, [topic_name, compressed])
        before = {
            p: consume(bootstrap, topic_name, p, count)
            for p, count in partition_counts(bootstrap, topic_name).items()
        }
    with Broker(port=0, data_dir=data_dir) as bootstrap:
        assert topic_layout(bootstrap, [topic_name, compressed]) == layout
        after = {
            p: consume(bootstrap, topic_name, p, count)
            for p, count in partition_counts(bootstrap, topic_name).items()
        }
        assert after == before
        assert sum(len(v) for v in after.values()) == len(delivered)
        assert sorted((p, o) for p, recs in after.items() for o, _ in recs) == sorted(delivered)
        read = consume(bootstrap, compressed, 0, len(messages))
        assert_same([m for _, m in read], messages)
        # Offsets continue where they stopped.
        extra = Message.of(b"after", b"restart", [], int(time.time() * 1000))
        assert produce(bootstrap, compressed, [extra]) == [(0, len(messages))]


def partition_counts(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> high watermark, read through librdkafka."""
    consumer = consumer_for(bootstrap)
    try:
        n = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(n)
        }
    finally:
        consumer.close()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_subprocess_restart_keeps_every_acknowledged_record(
    tmp_path: Path, topic_name: str, how: str
) -> None:
    proc = kafkito_process(tmp_path / "data").start()
    try:
        # kafka-python writes (Produce v9, acks=all); librdkafka reads after the restart.
        producer = KafkaProducer(
            bootstrap_servers=proc.bootstrap,
            acks="all",
            enable_idempotence=False,
            linger_ms=2,
            max_request_size=2_000_000,
        )
        messages = sample_messages()
        futures = [
            producer.send(
                topic_name,
                key=m.key,
                value=m.value,
                headers=list(m.headers),
                timestamp_ms=m.timestamp_ms,
            )
            for m in messages
        ]
        offsets = [f.get(timeout=15).offset for f in futures]
        producer.close(timeout=5)
        assert offsets == list(range(len(messages)))
        if how == "sigkill":
            proc.kill()
        else:
            proc.stop()
        proc.start()
        read = consume(proc.bootstrap, topic_name, 0, len(messages))
        assert [o for o, _ in read] == offsets
        assert_same([m for _, m in read], messages)
        consumer = KafkaConsumer(bootstrap_servers=proc.bootstrap, group_id=None)
        try:
            tp = KafkaTopicPartition(topic_name, 0)
            assert consumer.end_offsets([tp]) == {tp: len(messages)}
            assert consumer.beginning_offsets([tp]) == {tp: 0}
        finally:
            consumer.close()
    finally:
        proc.kill()


def test_a_producer_carries_on_across_a_restart(tmp_path: Path, topic_name: str) -> None:
    """librdkafka reconnects to the same port; the leader epoch must not go backwards (P6)."""
    proc = kafkito_process(tmp_path / "data").start()
    try:
        producer = Producer(
            {
                "bootstrap.servers": proc.bootstrap,
                "linger.ms": 2,
                "message.timeout.ms": 20_000,
                "reconnect.backoff.max.ms": 200,
            }
        )
        delivered: list[int] = []

        def on_delivery(err: Any, msg: Any) -> None:
            assert err is None, err
            delivered.append(msg.offset())

        for i in range(10):
            producer.produce(
                topic_name, key=b"k", value=f"before-{i}".encode(), on_delivery=on_delivery
            )
        assert producer.flush(15) == 0
        proc.stop()
        proc.start()
        for i in range(10):
            producer.produce(
                topic_name, key=b"k", value=f"after-{i}".encode(), on_delivery=on_delivery
            )
        assert producer.flush(20) == 0
        assert delivered == list(range(20))
        read = consume(proc.bootstrap, topic_name, 0, 20)
        assert [m.value for _, m in read] == [
            *(f"before-{i}".encode() for i in range(10)),
            *(f"after-{i}".encode() for i in range(10)),
        ]
    finally:
        proc.kill()
