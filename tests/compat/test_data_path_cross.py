"""One client writes, another reads: the broker stores batches exactly as received, so a batch
compressed by one client's codec library must inflate in another's (snappy in particular:
librdkafka writes raw snappy, kafka-python the xerial framing of the Java client).

A ring over the three Python clients, each codec: confluent-kafka -> aiokafka -> kafka-python
-> confluent-kafka. kcat reads what confluent-kafka wrote in test_data_path_kcat.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from kafka import KafkaConsumer

from compat import test_data_path_aiokafka as aio
from compat import test_data_path_confluent as ck
from compat import test_data_path_kafka_python as kp
from compat.helpers import CODECS, Message, assert_same, sample_messages


@pytest.fixture
def broker(any_broker: str) -> str:
    """Every test here runs against kafkito's broker and against Apache Kafka (any_broker):
    what it asserts holds for any Kafka, so the same assertions check both."""
    return any_broker


async def ck_produce(bootstrap: str, topic: str, messages: Sequence[Message], codec: str) -> Any:
    return ck.produce(bootstrap, topic, messages, compression=codec)


async def aio_produce(bootstrap: str, topic: str, messages: Sequence[Message], codec: str) -> Any:
    return await aio.produce(bootstrap, topic, messages, compression=codec)


async def kp_produce(bootstrap: str, topic: str, messages: Sequence[Message], codec: str) -> Any:
    return kp.produce(bootstrap, topic, messages, compression=codec)


async def ck_consume(bootstrap: str, topic: str, count: int) -> list[tuple[int, Message]]:
    return ck.consume(bootstrap, topic, 0, count)


async def aio_consume(bootstrap: str, topic: str, count: int) -> list[tuple[int, Message]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return await aio.consume(consumer, topic, 0, count)
    finally:
        await consumer.stop()


async def kp_consume(bootstrap: str, topic: str, count: int) -> list[tuple[int, Message]]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        return kp.consume(consumer, topic, 0, count)
    finally:
        consumer.close()


Producer = Callable[[str, str, Sequence[Message], str], Awaitable[Any]]
Consumer = Callable[[str, str, int], Awaitable[list[tuple[int, Message]]]]
RING: dict[str, tuple[Producer, Consumer]] = {
    "confluent->aiokafka": (ck_produce, aio_consume),
    "aiokafka->kafka-python": (aio_produce, kp_consume),
    "kafka-python->confluent": (kp_produce, ck_consume),
}


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("write", "read"), RING.values(), ids=list(RING))
async def test_one_client_writes_another_reads(
    broker: str, topic_name: str, codec: str, write: Producer, read: Consumer
) -> None:
    messages = sample_messages()
    delivered = await write(broker, topic_name, messages, codec)
    assert delivered == [(0, i) for i in range(len(messages))]
    got = await read(broker, topic_name, len(messages))
    assert [offset for offset, _ in got] == list(range(len(messages)))
    assert_same([m for _, m in got], messages)
