"""Re-authentication (KIP-368), kafkito against Apache Kafka with connections.max.reauth.ms.

The same raw-wire client on both (compat/aclkit.py `run_reauth`): the session lifetime a login
is told, re-authenticating on the same connection (again and again), as another user (refused,
and the connection closed), a request after the session expired (the connection closed), and a
re-authentication started after expiry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compat.aclkit import USERS, run_reauth
from compat.differential import assert_same_observations
from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.testing.apache_kafka import ApacheKafka, ApacheKafkaError

LIFETIME_MS = 2000


@pytest.fixture(scope="module")
def kafka_reauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    kafka = ApacheKafka(
        data_dir=tmp_path_factory.mktemp("kafka-reauth"),
        sasl_users=USERS,
        broker_configs={"connections.max.reauth.ms": LIFETIME_MS},
    )
    try:
        kafka.start()
    except ApacheKafkaError as exc:
        pytest.skip(f"Apache Kafka not available: {exc}")
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def kafkito_reauth(tmp_path: Path) -> Iterator[str]:
    users = str(tmp_path / "users.json")
    store = UserStore.load(users, missing_ok=True)
    for user, password in USERS.items():
        store.set_password(user, password)
    store.save()
    with Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users,
        connections_max_reauth_ms=LIFETIME_MS,
    ) as bootstrap:
        yield bootstrap


def test_reauthentication_matches_kafka(kafkito_reauth: str, kafka_reauth: ApacheKafka) -> None:
    ours = run_reauth(kafkito_reauth, LIFETIME_MS)
    theirs = run_reauth(kafka_reauth.sasl_bootstrap, LIFETIME_MS)
    assert_same_observations(ours, theirs)
    assert ours["login"] == ("ok", LIFETIME_MS)
    assert ours["served in the renewed session"] is True
    assert ours["served after expiry"] is False
