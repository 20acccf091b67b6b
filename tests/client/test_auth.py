"""SASL against real brokers: kafkito's (PLAIN, SCRAM-SHA-256/512 users) and Tansu's refusal.

The config mapping itself is unit-tested in test_config.py; here the librdkafka settings it
produces meet real SASL servers. Tansu's user creation does not work in the shipped build
(`tansu user create` fails with "early eof"), so against Tansu only the refusal is tested.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.broker.auth.store import UserStore
from kafkito.client import AuthenticationError, Reader, Writer
from kafkito.testing.brokers import BrokerProcess, free_port, tansu_binary

SECRET = "s3cret-pa55word"


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[str]:
    users = tmp_path / "users.json"
    store = UserStore(str(users))
    store.set_password("app", SECRET)
    store.save()
    with Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=str(users),
    ) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def tansu_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("Tansu is not installed")
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url]
    argv += ["--storage-engine", "memory://tansu/", "--authentication"]
    log_path = tmp_path_factory.mktemp("tansu-auth") / "tansu.log"
    proc = BrokerProcess(argv, port, log_path).start()
    try:
        yield proc.bootstrap
    finally:
        proc.stop()


def client(algorithm: str, password: str = SECRET) -> dict[str, object]:
    return {
        "client": {"username": "app", "password": password, "algorithm": algorithm, "timeout": 3}
    }


@pytest.mark.parametrize("algorithm", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_round_trip(sasl_broker: str, algorithm: str, topic: str) -> None:
    with Writer(topic, client(algorithm), brokers=sasl_broker) as writer:
        writer.write(b"authenticated")
    seen: list[bytes | None] = []
    with Reader(topic, client(algorithm), brokers=sasl_broker) as reader:
        reader.read_value(seen.append, limit=1)
    assert seen == [b"authenticated"]


@pytest.mark.parametrize("algorithm", ["PLAIN", "SCRAM-SHA-512"])
def test_wrong_password_is_authentication_error(
    sasl_broker: str, algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "not-the-pa55word"
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        Writer("t", client(algorithm, wrong), brokers=sasl_broker)
    assert "client.password" in str(info.value)
    for secret in (wrong, SECRET):
        assert secret not in str(info.value)
        assert secret not in caplog.text


def test_tansu_refuses_unknown_user(tansu_auth: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthenticationError) as info:
        Writer("t", client("SCRAM-SHA-512"), brokers=tansu_auth)
    assert SECRET not in str(info.value)
    assert SECRET not in caplog.text
