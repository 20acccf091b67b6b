"""Idempotent producers of the real clients against the embedded broker.

confluent-kafka (`enable.idempotence`, InitProducerId v4), aiokafka (`enable_idempotence`,
InitProducerId v0), kafka-python (idempotent by default, v4) and kcat each produce, and the
records are read back once each, in order. The broker's producer state is inspected as well, to
prove that the batches really went through the idempotent path (a pid, sequences 0..n-1).
Transactional producers are tested in test_transactions_clients.py.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkito import Broker
from kafkito.broker.producers import ProducerStateManager

N = 300
IDEMPOTENT = "enable.idempotence=true"


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(port=0, data_dir=str(tmp_path / "data"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def read_values(bootstrap: str, topic: str, count: int) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "check", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    try:
        while len(values) < count:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(values)} records"
            assert msg.error() is None, msg.error()
            values.append(msg.value())
        # nothing more: no duplicate behind the expected records
        extra = consumer.poll(0.5)
        assert extra is None or extra.error() is not None, extra.value()
    finally:
        consumer.close()
    return values


def assert_idempotent_state(broker: Broker, topic: str, count: int) -> None:
    """One producer id, epoch 0, whose last batch ends at sequence count-1 and offset count-1."""
    assert broker.core is not None
    manager = broker.core.producers
    assert isinstance(manager, ProducerStateManager)
    plog = broker.core.topics.partition(topic, 0)
    assert plog is not None
    entries = manager.state_for(plog).entries
    assert len(entries) == 1, entries
    (entry,) = entries.values()
    assert entry.epoch == 0
    assert entry.last_seq == count - 1
    assert entry.last_offset == count - 1


def expected(prefix: str) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(N)]


def test_confluent_kafka_idempotent_producer(embedded: Broker, topic_name: str) -> None:
    producer = Producer(
        {
            "bootstrap.servers": embedded.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 2,
            "batch.num.messages": 17,
        }
    )
    errors: list[str] = []
    for value in expected("ck"):
        producer.produce(
            topic_name,
            value,
            partition=0,
            on_delivery=lambda err, _msg: errors.append(str(err)) if err else None,
        )
    assert producer.flush(20) == 0
    assert errors == []
    assert read_values(embedded.bootstrap, topic_name, N) == expected("ck")
    assert_idempotent_state(embedded, topic_name, N)


def test_aiokafka_idempotent_producer(embedded: Broker, topic_name: str) -> None:
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=embedded.bootstrap, enable_idempotence=True, linger_ms=2
        )
        await producer.start()
        try:
            futures = [
                await producer.send(topic_name, value, partition=0) for value in expected("aio")
            ]
            await asyncio.wait_for(asyncio.gather(*futures), 20)
        finally:
            await producer.stop()

    asyncio.run(run())
    assert read_values(embedded.bootstrap, topic_name, N) == expected("aio")
    assert_idempotent_state(embedded, topic_name, N)


def test_kafka_python_default_producer_is_idempotent(embedded: Broker, topic_name: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=embedded.bootstrap, linger_ms=2)
    try:
        futures = [producer.send(topic_name, value, partition=0) for value in expected("kp")]
        producer.flush(20)
        offsets = [f.get(timeout=10).offset for f in futures]
    finally:
        producer.close(5)
    assert offsets == list(range(N))
    assert read_values(embedded.bootstrap, topic_name, N) == expected("kp")
    assert_idempotent_state(embedded, topic_name, N)


def test_kcat_idempotent_producer(embedded: Broker, topic_name: str) -> None:
    """kcat 1.7.1 (librdkafka 2.0.2) with enable.idempotence."""
    kcat = shutil.which("kcat")
    if kcat is None:
        pytest.skip("kcat is not installed")
    lines = b"".join(value + b"\n" for value in expected("kcat"))
    produced = subprocess.run(
        [kcat, "-P", "-b", embedded.bootstrap, "-t", topic_name, "-p", "0", "-X", IDEMPOTENT],
        input=lines,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert produced.returncode == 0, produced.stderr.decode(errors="replace")[-2000:]
    assert read_values(embedded.bootstrap, topic_name, N) == expected("kcat")
    assert_idempotent_state(embedded, topic_name, N)
