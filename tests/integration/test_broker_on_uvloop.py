"""`kafkito broker` on uvloop (KAFKITO_LOOP=uvloop): the socket code (broker/server.py, an
asyncio BufferedProtocol) serves real clients there as on asyncio's own loop.

uvloop's transports are not subclasses of asyncio.Transport; the first version of the
BufferedProtocol asserted that they were, and every connection was reset on uvloop while
every test on asyncio's loop passed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.testing.brokers import BrokerProcess, kafkito_process

pytest.importorskip("uvloop")


@pytest.fixture(scope="module")
def uvloop_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    proc = kafkito_process(
        tmp_path_factory.mktemp("uvloop") / "data", env={"KAFKITO_LOOP": "uvloop"}
    )
    proc.start(timeout_s=60)
    try:
        yield proc
    finally:
        proc.stop()


def test_the_broker_runs_on_uvloop_and_serves_small_and_large_requests(
    uvloop_broker: BrokerProcess,
) -> None:
    assert uvloop_broker.proc is not None
    maps = Path(f"/proc/{uvloop_broker.proc.pid}/maps").read_text()
    assert "uvloop" in maps  # the loop really is uvloop's
    topic = f"uv-{uuid.uuid4().hex[:8]}"
    bootstrap = uvloop_broker.bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    small = [f"small-{i}".encode() for i in range(500)]
    large = [bytes([i]) * 200_000 for i in range(10)]  # requests spread over many reads
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    failed: list[object] = []
    for value in [*small, *large]:
        producer.produce(
            topic, value, on_delivery=lambda err, _m: err is not None and failed.append(err)
        )
    assert producer.flush(30) == 0 and not failed
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "uv", "enable.auto.commit": False}
    )
    received: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        for _ in range(60):
            for msg in consumer.consume(100, 1.0):
                assert msg.error() is None
                received.append(msg.value())
            if len(received) >= len(small) + len(large):
                break
    finally:
        consumer.close()
    assert received == [*small, *large]
