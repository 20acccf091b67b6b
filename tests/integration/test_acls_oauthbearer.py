"""SASL OAUTHBEARER with unsecured JWTs (development only), with confluent-kafka (librdkafka's
own unsecured-JWT builder), kafka-python and aiokafka (token providers): the token's `sub` is
the principal ACLs see. The wire-level refusals are compared with Apache Kafka in
compat/test_differential_acls.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka import errors as aio_errors
from aiokafka.abc import AbstractTokenProvider as AioTokenProvider
from confluent_kafka import KafkaError, Producer
from kafka import KafkaProducer
from kafka import errors as kp_errors
from kafka.net.sasl.oauth import AbstractTokenProvider as KpTokenProvider

from compat.aclkit import jws, oauth_login, oauth_message
from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.broker.auth.oauthbearer import unsecured_token
from kafkito.client.admin import Acl, Admin

TOPIC, OTHER = "oauth-open", "oauth-closed"


@pytest.fixture(scope="module")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("oauth")
    users = str(root / "users.json")
    UserStore.load(users, missing_ok=True).save()  # OAUTHBEARER needs no user store entry
    with Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
        sasl_mechanisms=("OAUTHBEARER",),
        authorizer="acl",
        super_users=("User:admin",),
    ) as address:
        with Admin(brokers=address, settings=rdk("admin")) as admin:
            admin.create_topics([TOPIC, OTHER])
            admin.create_acls(Acl("TOPIC", TOPIC, principal="User:alice", operation="WRITE"))
        yield address


def rdk(principal: str) -> dict[str, object]:
    return {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "enable.sasl.oauthbearer.unsecure.jwt": True,
        "sasl.oauthbearer.config": f"principal={principal}",
    }


def test_confluent_kafka(bootstrap: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, **rdk("alice")})
    delivered: list[KafkaError | None] = []
    for topic in (TOPIC, OTHER):
        producer.produce(topic, b"x", on_delivery=lambda e, m: delivered.append(e))
        producer.flush(15)
    assert delivered[0] is None
    assert delivered[1] is not None and delivered[1].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


class KpToken(KpTokenProvider):  # type: ignore[misc]
    def token(self) -> str:
        return unsecured_token("alice", lifetime_s=300, now_s=time.time())


class AioToken(AioTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        return unsecured_token("alice", lifetime_s=300, now_s=time.time())


def test_kafka_python(bootstrap: str) -> None:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider=KpToken(),
    )
    try:
        producer.send(TOPIC, b"x").get(15)
        with pytest.raises(kp_errors.TopicAuthorizationFailedError):
            producer.send(OTHER, b"x").get(15)
    finally:
        producer.close(5)


def test_aiokafka(bootstrap: str) -> None:
    async def scenario() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="OAUTHBEARER",
            sasl_oauth_token_provider=AioToken(),
        )
        await producer.start()
        try:
            await asyncio.wait_for(producer.send_and_wait(TOPIC, b"x"), 15)
            with pytest.raises(aio_errors.TopicAuthorizationFailedError):
                await asyncio.wait_for(producer.send_and_wait(OTHER, b"x"), 15)
        finally:
            await producer.stop()

    asyncio.run(scenario())


def test_refused_tokens_and_the_broker_keeps_serving(bootstrap: str) -> None:
    now = time.time()
    none = {"alg": "none"}
    expired = oauth_message(jws(none, {"sub": "alice", "exp": now - 1}))
    assert oauth_login(bootstrap, expired) == (
        "ok",
        b'{"status":"invalid_token"}',  # the RFC 7628 error challenge, then the failure
        "sasl_authentication_failed",
    )
    signed = oauth_message(jws({"alg": "HS256"}, {"sub": "alice", "exp": now + 60}, "c2ln"))
    assert oauth_login(bootstrap, signed)[-1] == "sasl_authentication_failed"
    other = oauth_message(jws(none, {"sub": "alice", "exp": now + 60}), authzid="admin")
    assert oauth_login(bootstrap, other)[-1] == "sasl_authentication_failed"  # no posing
    good = oauth_message(jws(none, {"sub": "alice", "exp": now + 60}))
    assert oauth_login(bootstrap, good) == ("ok", b"")
