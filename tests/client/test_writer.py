"""Writer and TopicWriter over TCP, on kafkito's broker and on Tansu: confirmed, typed errors."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from clientkit import Cluster
from confluent_kafka import Consumer, TopicPartition

from kafkito import Broker
from kafkito.client import (
    AuthenticationError,
    BrokerUnreachableError,
    Delivery,
    MessageTooLargeError,
    Record,
    TopicWriter,
    UnknownTopicError,
    Writer,
)
from kafkito.client.raw_producer import RawProducer
from kafkito.client.writer import flush_through_callback_failures
from kafkito.testing.brokers import free_port


def read_back(bootstrap: str, topic: str, count: int, timeout_s: float = 20.0) -> list[Any]:
    """Every record of `topic` (all partitions) with a raw consumer, by assignment."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "read-back", "enable.auto.commit": False}
    )
    try:
        meta = consumer.list_topics(topic, timeout=10)
        partitions = sorted(meta.topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
        return out
    finally:
        consumer.close()


def test_write_variants_are_confirmed_with_their_offsets(cluster: Cluster, topic: str) -> None:
    with Writer(topic, brokers=cluster.bootstrap) as writer:
        first = writer.write(b"v0", headers={"h": "1"}, key=b"k0")
        second = writer.write_value("v1")
        third = writer.write_with_key(b"v2", "k2", headers=[("a", b"x"), ("b", None)])
        batch = writer.write_many([b"v3", Record(b"v4", key=b"k4", headers={"n": b"4"})])
    assert len(batch) == 2
    assert isinstance(batch[0], Delivery)
    assert batch[:] == [batch[0], batch[1]]
    deliveries = [first, second, third, *batch]
    assert all(isinstance(d, Delivery) and d.topic == topic for d in deliveries)
    messages = read_back(cluster.bootstrap, topic, 5)
    where = {(m.partition(), m.offset()): m for m in messages}
    assert len(where) == 5
    found = [where[(d.partition, d.offset)] for d in deliveries]
    # single writes in order; the batch's deliveries come in confirmation order
    assert [m.value() for m in found[:3]] == [b"v0", b"v1", b"v2"]
    assert sorted((m.value(), m.key()) for m in found[3:]) == [(b"v3", None), (b"v4", b"k4")]
    assert [m.key() for m in found[:3]] == [b"k0", None, b"k2"]
    assert found[0].headers() == [("h", b"1")]
    assert found[2].headers() == [("a", b"x"), ("b", None)]


def test_write_many_confirms_every_record(cluster: Cluster, topic: str) -> None:
    values = [f"m{i}".encode() for i in range(500)]
    with Writer(topic, brokers=cluster.bootstrap, settings={"linger.ms": 20}) as writer:
        deliveries = writer.write_many(values)
    assert len(deliveries) == 500
    assert len({(d.partition, d.offset) for d in deliveries}) == 500
    got = read_back(cluster.bootstrap, topic, 500)
    assert sorted(m.value() for m in got) == sorted(values)


def test_topic_writer_chooses_topic_per_call(cluster: Cluster, topic: str) -> None:
    other = topic + "-b"
    with TopicWriter(brokers=cluster.bootstrap) as writer:
        a = writer.write(topic, b"to-a", key=b"k")
        b = writer.write_value(other, b"to-b")
        many = writer.write_many(other, [b"b1", b"b2"])
    assert (a.topic, b.topic, many[0].topic) == (topic, other, other)
    assert [m.value() for m in read_back(cluster.bootstrap, topic, 1)] == [b"to-a"]
    assert sorted(m.value() for m in read_back(cluster.bootstrap, other, 3)) == [
        b"b1",
        b"b2",
        b"to-b",
    ]


def test_close_flushes_queued_records(cluster: Cluster, topic: str) -> None:
    writer = Writer(topic, brokers=cluster.bootstrap, settings={"linger.ms": 500})
    for i in range(50):  # queued without waiting: close() must deliver them
        writer._core.produce(topic, f"q{i}".encode(), None, None, None)
    writer.close()
    assert len(read_back(cluster.bootstrap, topic, 50)) == 50
    with pytest.raises(Exception, match="closed"):
        writer.write(b"late")


def test_message_too_large_is_typed(cluster: Cluster, topic: str) -> None:
    with Writer(topic, brokers=cluster.bootstrap) as writer:
        # larger than the producer's message.max.bytes (1 MB default): refused locally
        with pytest.raises(MessageTooLargeError, match="too large"):
            writer.write(b"x" * 2_000_000)
        writer.write(b"still usable")


def test_broker_refusing_a_large_record_is_typed(tmp_path: Any, topic: str) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "d"), message_max_bytes=10_000) as bootstrap:
        settings = {"message.max.bytes": 200_000, "compression.type": "none"}
        with Writer(topic, brokers=bootstrap, settings=settings) as writer:
            writer.write(b"small")
            with pytest.raises(MessageTooLargeError) as info:
                writer.write(b"y" * 50_000)
    assert info.value.reason in {"MSG_SIZE_TOO_LARGE", "MESSAGE_TOO_LARGE"}
    assert info.value.topic == topic


def test_unknown_topic_is_typed(tmp_path: Any, topic: str) -> None:
    settings = {"message.timeout.ms": 3000}
    with (
        Broker(port=0, data_dir=str(tmp_path / "d"), auto_create_topics=False) as bootstrap,
        Writer(topic, brokers=bootstrap, settings=settings) as writer,
        pytest.raises(UnknownTopicError, match="does not exist") as info,
    ):
        writer.write(b"nowhere")
    assert info.value.topic == topic


def test_unreachable_broker_after_the_retry_delays(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    config = {"client": {"timeout": 0.5, "retry": {1: 0.1, 2: 0.2}}}
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="kafkito.client"),
        pytest.raises(BrokerUnreachableError) as info,
    ):
        Writer("t", config, brokers=f"127.0.0.1:{port}")
    elapsed = time.monotonic() - started
    assert info.value.attempts == 3
    assert f"127.0.0.1:{port}" in str(info.value)
    assert elapsed >= 3 * 0.5 + 0.3 - 0.05
    assert caplog.text.count("retrying in") == 2


def test_authentication_failure_is_typed_and_hides_the_password(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # kafkito's broker without SASL configured: the SASL handshake is refused.
    secret = "pa55-word-never-shown"
    client = {"username": "app", "password": secret, "algorithm": "PLAIN", "timeout": 2}
    with (
        Broker(port=0, data_dir=str(tmp_path / "d")) as bootstrap,
        caplog.at_level(logging.DEBUG),
        pytest.raises((AuthenticationError, BrokerUnreachableError)) as info,
    ):
        Writer("t", {"client": client}, brokers=bootstrap)
    assert secret not in str(info.value)
    assert secret not in caplog.text


class _CrashingLogger:
    """A librdkafka `logger` whose log() fails with a C-level error (int() called with five
    arguments raises TypeError from C): the failure confluent-kafka 2.16 re-raises from flush()
    as SystemError on Python 3.11, as seen once in the failover test under load."""

    log = int


def test_flush_goes_on_through_a_failing_callback(tmp_path: Path, topic: str) -> None:
    """write_many's flush: every delivery report is served although the log callback fails
    (librdkafka logs during the flush with debug=msg)."""
    reports: list[tuple[Any, Any]] = []
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        settings = {"logger": _CrashingLogger(), "debug": "msg"}
        with RawProducer(brokers=bootstrap, settings=settings) as producer:
            for value in (b"a", b"b", b"c"):
                producer.produce(topic, value, on_delivery=lambda e, m: reports.append((e, m)))
            flush_through_callback_failures(producer._producer)
    assert [error for error, _ in reports] == [None, None, None]
    assert sorted(message.offset() for _, message in reports) == [0, 1, 2]
