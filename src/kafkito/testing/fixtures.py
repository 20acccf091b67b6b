"""pytest fixtures that give a test suite a real kafkito broker (TCP, real protocol), not a fake.

    def test_clicks(kafkito_bootstrap, kafkito_topic):
        Writer(kafkito_topic, brokers=kafkito_bootstrap).write(b"hi")

* `kafkito_broker`: one embedded `kafkito.Broker` per test session, on a free loopback port,
  with its data in a session temporary directory; yields the running Broker.
* `kafkito_bootstrap`: its "host:port" address.
* `kafkito_topic`: a fresh topic name per test (created on first use by auto-creation, so tests
  never see each other's records).
* `kafkito_env`: sets KAFKITO_BROKERS for the test, so code under test that builds its own
  Writer/Reader without brokers reaches the session broker rather than ./.kafkito.
* `apache_kafka`: a real Apache Kafka cluster for the whole session (3 KRaft nodes on
  loopback, replication factor 3, `min.insync.replicas=2`; `kafkito.testing.ApacheKafka`);
  its `.bootstrap` lists every node. Needs java and mvn (or KAFKA_HOME); the first use
  resolves Kafka's jars into ~/.cache/kafkito. Tests that asked for it are skipped, with the
  reason, when `KAFKITO_SKIP_APACHE_KAFKA=1`.

Everything is prefixed `kafkito_` so that a suite's own `broker` or `topic` fixtures never clash.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kafkito.broker.embedded import Broker
from kafkito.testing.apache_kafka import ApacheKafka

__all__ = ["apache_kafka", "kafkito_bootstrap", "kafkito_broker", "kafkito_env", "kafkito_topic"]


@pytest.fixture(scope="session")
def kafkito_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """An embedded kafkito broker for the whole session (loopback, free port, temp data)."""
    data_dir = tmp_path_factory.mktemp("kafkito-broker") / "data"
    broker = Broker(port=0, data_dir=str(data_dir))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def kafkito_bootstrap(kafkito_broker: Broker) -> str:
    """The session broker's bootstrap address, "127.0.0.1:<port>"."""
    return kafkito_broker.bootstrap


@pytest.fixture
def kafkito_topic(request: pytest.FixtureRequest) -> str:
    """A topic name unique to this test."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"{stem or 'test'}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def kafkito_env(kafkito_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point KAFKITO_BROKERS at the session broker for this test; returns the address."""
    monkeypatch.setenv("KAFKITO_BROKERS", kafkito_bootstrap)
    return kafkito_bootstrap


@pytest.fixture(scope="session")
def apache_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """A 3-node Apache Kafka cluster for the whole session (RF 3, min.insync.replicas 2)."""
    import os

    if os.environ.get("KAFKITO_SKIP_APACHE_KAFKA") == "1":
        pytest.skip("KAFKITO_SKIP_APACHE_KAFKA=1: Apache Kafka tests skipped")
    kafka = ApacheKafka(brokers=3, data_dir=tmp_path_factory.mktemp("apache-kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


from kafkito.testing.pubsub_emulator import PubSubEmulator, PubSubEmulatorError  # noqa: E402

__all__ += ["pubsub_emulator"]


@pytest.fixture(scope="session")
def pubsub_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PubSubEmulator]:
    """The Google Cloud SDK's Pub/Sub emulator for the whole session, PUBSUB_EMULATOR_HOST set.

    Yields a `kafkito.testing.pubsub_emulator.PubSubEmulator` (`.host`, `.project_id`,
    `.logs()`). The variable is set for the session and restored after, so google clients
    built anywhere in the tests reach the emulator. When the emulator (or java) is missing,
    the tests that asked for it fail with a one-line reason: never a silent skip.
    """
    import os

    emulator = PubSubEmulator(data_dir=tmp_path_factory.mktemp("pubsub-emulator"))
    try:
        emulator.start()
    except PubSubEmulatorError as exc:
        pytest.fail(str(exc), pytrace=False)
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    try:
        yield emulator
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous
        emulator.stop()
