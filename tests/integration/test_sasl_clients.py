"""SASL PLAIN and SCRAM-SHA-256/512 with every real client: confluent-kafka, aiokafka,
kafka-python and kcat (librdkafka 2.0.2), each with the good password (produce, then read back)
and a wrong one (a clear authentication error on the client; the broker keeps serving).
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka import TopicPartition as AioTopicPartition
from aiokafka.errors import KafkaConnectionError
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import KafkaError as KpKafkaError

from kafkito import Broker
from kafkito.broker.auth import UserStore

USER = "alice"
PASSWORD = "Pa55-w0rd-for-tests"
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("sasl")
    users = str(root / "users.json")
    store = UserStore.load(users, missing_ok=True)
    store.set_password(USER, PASSWORD)
    store.save()
    with Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
    ) as bootstrap:
        yield bootstrap


def new_topic() -> str:
    return f"sasl-{uuid.uuid4().hex[:10]}"


def rdk_config(bootstrap: str, mechanism: str, password: str) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": USER,
        "sasl.password": password,
    }


# -- confluent-kafka ---------------------------------------------------------------------------


def confluent_round_trip(bootstrap: str, mechanism: str) -> None:
    topic = new_topic()
    producer = Producer(rdk_config(bootstrap, mechanism, PASSWORD))
    delivered: list[object] = []
    producer.produce(topic, b"hello", on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(15) == 0
    assert delivered == [None]
    consumer = Consumer(
        {**rdk_config(bootstrap, mechanism, PASSWORD), "group.id": "g", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        msg = consumer.poll(15)
        assert msg is not None and msg.error() is None and msg.value() == b"hello"
    finally:
        consumer.close()


def confluent_wrong_password(bootstrap: str, mechanism: str) -> str:
    errors: list[KafkaError] = []
    producer = Producer({**rdk_config(bootstrap, mechanism, "wrong"), "error_cb": errors.append})
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        producer.poll(0.2)
    assert errors, "no error reported for a wrong password"
    assert errors[0].code() == KafkaError._AUTHENTICATION
    return str(errors[0])


# -- aiokafka ------------------------------------------------------------------------------------


def aio_kwargs(bootstrap: str, mechanism: str, password: str) -> dict[str, object]:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": password,
    }


async def aio_round_trip(bootstrap: str, mechanism: str) -> None:
    topic = new_topic()
    producer = AIOKafkaProducer(**aio_kwargs(bootstrap, mechanism, PASSWORD))  # type: ignore[arg-type]
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"hello"), 15)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**aio_kwargs(bootstrap, mechanism, PASSWORD))  # type: ignore[arg-type]
    await consumer.start()
    try:
        tp = AioTopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        msg = await asyncio.wait_for(consumer.getone(), 15)
        assert msg.value == b"hello"
    finally:
        await consumer.stop()


async def aio_wrong_password(
    bootstrap: str, mechanism: str, caplog: pytest.LogCaptureFixture
) -> str:
    producer = AIOKafkaProducer(**aio_kwargs(bootstrap, mechanism, "wrong"))  # type: ignore[arg-type]
    try:
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(producer.start(), 20)
    finally:
        await producer.stop()
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("aiokafka"))


# -- kafka-python --------------------------------------------------------------------------------


def kp_kwargs(bootstrap: str, mechanism: str, password: str) -> dict[str, object]:
    return {
        "bootstrap_servers": bootstrap,
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": USER,
        "sasl_plain_password": password,
    }


def kp_round_trip(bootstrap: str, mechanism: str) -> None:
    topic = new_topic()
    producer = KafkaProducer(**kp_kwargs(bootstrap, mechanism, PASSWORD))
    try:
        producer.send(topic, b"hello").get(15)
    finally:
        producer.close(5)
    consumer = KafkaConsumer(
        **kp_kwargs(bootstrap, mechanism, PASSWORD), group_id=None, auto_offset_reset="earliest"
    )
    try:
        consumer.assign([KpTopicPartition(topic, 0)])
        deadline = time.monotonic() + 15
        values: list[bytes] = []
        while not values and time.monotonic() < deadline:
            for records in consumer.poll(1000).values():
                values += [r.value for r in records]
        assert values == [b"hello"]
    finally:
        consumer.close()


def kp_wrong_password(bootstrap: str, mechanism: str, caplog: pytest.LogCaptureFixture) -> str:
    with pytest.raises(KpKafkaError):
        KafkaProducer(**kp_kwargs(bootstrap, mechanism, "wrong"), bootstrap_timeout_ms=3000)
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kafka"))


# -- kcat ------------------------------------------------------------------------------------------


def kcat_args(bootstrap: str, mechanism: str, password: str) -> list[str]:
    return [
        "kcat",
        "-b",
        bootstrap,
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        f"sasl.mechanisms={mechanism}",
        "-X",
        f"sasl.username={USER}",
        "-X",
        f"sasl.password={password}",
    ]


def kcat_round_trip(bootstrap: str, mechanism: str) -> None:
    topic = new_topic()
    base = kcat_args(bootstrap, mechanism, PASSWORD)
    subprocess.run(
        [*base, "-P", "-t", topic], input=b"hello\n", check=True, timeout=30, capture_output=True
    )
    out = subprocess.run(
        [*base, "-C", "-t", topic, "-o", "beginning", "-c", "1", "-e"],
        check=True,
        timeout=30,
        capture_output=True,
    )
    assert out.stdout == b"hello\n"


def kcat_wrong_password(bootstrap: str, mechanism: str) -> str:
    out = subprocess.run(
        [*kcat_args(bootstrap, mechanism, "wrong"), "-L", "-m", "2"],
        timeout=30,
        capture_output=True,
    )
    assert out.returncode != 0
    return out.stderr.decode(errors="replace")


# -- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("client", ["confluent", "aiokafka", "kafka-python", "kcat"])
def test_good_password_produces_and_reads_back(
    sasl_bootstrap: str, client: str, mechanism: str
) -> None:
    if client == "confluent":
        confluent_round_trip(sasl_bootstrap, mechanism)
    elif client == "aiokafka":
        asyncio.run(aio_round_trip(sasl_bootstrap, mechanism))
    elif client == "kafka-python":
        kp_round_trip(sasl_bootstrap, mechanism)
    else:
        kcat_round_trip(sasl_bootstrap, mechanism)


@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize("client", ["confluent", "aiokafka", "kafka-python", "kcat"])
def test_wrong_password_is_a_clear_client_error_and_the_broker_keeps_serving(
    sasl_bootstrap: str, client: str, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    if client == "confluent":
        message = confluent_wrong_password(sasl_bootstrap, mechanism)
    elif client == "aiokafka":
        message = asyncio.run(aio_wrong_password(sasl_bootstrap, mechanism, caplog))
    elif client == "kafka-python":
        message = kp_wrong_password(sasl_bootstrap, mechanism, caplog)
    else:
        message = kcat_wrong_password(sasl_bootstrap, mechanism)
    assert "authentication failed" in message.lower(), message
    assert f"invalid credentials with SASL mechanism {mechanism}" in message, message
    confluent_round_trip(sasl_bootstrap, mechanism)  # others are still served
