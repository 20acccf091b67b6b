"""Re-authentication (KIP-368) on the embedded broker with real clients: librdkafka
(confluent-kafka) re-authenticates on its connections and keeps producing; kafka-python and
aiokafka keep producing too (re-authenticating, or reconnecting when the broker closes an
expired session); an OAUTHBEARER session ends with its token. The wire-level behaviour is
compared with Apache Kafka in compat/test_differential_reauth.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from confluent_kafka import KafkaError, Producer
from kafka import KafkaProducer

from compat.aclkit import USERS, jws, oauth_message, plain_login, still_served
from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.errors import KafkitoError
from kafkito.testing.wire import WireClient

LIFETIME_MS = 1000


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("reauth")
    users = str(root / "users.json")
    store = UserStore.load(users, missing_ok=True)
    for user, password in USERS.items():
        store.set_password(user, password)
    store.save()
    with Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
        sasl_mechanisms=("SCRAM-SHA-512", "PLAIN", "OAUTHBEARER"),
        connections_max_reauth_ms=LIFETIME_MS,
    ) as address:
        yield address


def produce_for(send: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        send()  # type: ignore[operator]
        time.sleep(0.05)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_librdkafka_reauthenticates_on_its_connection(
    bootstrap: str, mechanism: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kafkito.broker.auth.session")
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": "alice",
            "sasl.password": USERS["alice"],
        }
    )
    failures: list[KafkaError] = []

    def send() -> None:
        producer.produce(
            f"reauth-{mechanism}", b"x", on_delivery=lambda e, m: e and failures.append(e)
        )
        producer.poll(0)

    produce_for(send, 3.5)
    assert producer.flush(15) == 0 and failures == []
    renewed = [r for r in caplog.records if r.getMessage().startswith("re-authenticated 'alice'")]
    assert len(renewed) >= 2, [r.getMessage() for r in caplog.records]
    closed = [r for r in caplog.records if "SASL session expired" in r.getMessage()]
    assert closed == []  # re-authenticated in time, never cut off


def test_kafka_python_and_aiokafka_keep_producing(bootstrap: str) -> None:
    kp = KafkaProducer(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username="alice",
        sasl_plain_password=USERS["alice"],
        retries=5,
    )
    try:
        produce_for(lambda: kp.send("reauth-kp", b"x").get(15), 2.5)
    finally:
        kp.close(5)

    async def aio() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username="alice",
            sasl_plain_password=USERS["alice"],
        )
        await producer.start()
        try:
            deadline = time.monotonic() + 2.5
            while time.monotonic() < deadline:
                await asyncio.wait_for(producer.send_and_wait("reauth-aio", b"x"), 15)
                await asyncio.sleep(0.05)
        finally:
            await producer.stop()

    asyncio.run(aio())


def test_the_session_is_told_and_enforced(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        assert plain_login(client, "alice", USERS["alice"]) == ("ok", LIFETIME_MS)
        time.sleep(LIFETIME_MS / 1000 + 0.3)
        assert not still_served(client)
    # an OAUTHBEARER session ends no later than its token
    now = time.time()
    token = jws({"alg": "none"}, {"sub": "alice", "exp": now + 0.6})
    with WireClient(bootstrap) as client:
        assert client.request(17, 1, {"mechanism": "OAUTHBEARER"}).error_code == 0
        answer = client.request(36, 2, {"auth_bytes": oauth_message(token)})
        lifetime_ms = answer.session_lifetime.total_seconds() * 1000
        assert answer.error_code == 0 and 0 < lifetime_ms <= 600


def test_a_negative_lifetime_is_refused() -> None:
    with pytest.raises(KafkitoError, match="connections_max_reauth_ms"):
        Broker(connections_max_reauth_ms=-1)
