"""Shared fixtures: real brokers over TCP, never mocks of Kafka."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from kafkito import Broker
from kafkito.testing.apache_kafka import ApacheKafka
from kafkito.testing.brokers import BrokerProcess, kafkito_process, start_tansu

# No per-example time limit: Hypothesis' default deadline (200 ms) is a timing assertion, and
# the suite runs on 3 workers on 2 cores (slower still on CI), where one slow example of an
# otherwise correct property failed a run. Speed is measured in bench/, not here.
settings.register_profile("kafkito", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("kafkito")


class _UnknownFieldCatcher(logging.Handler):
    """Collects the broker's internal errors that are codec.build refusing a field name."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, KeyError) and "in any version" in str(exc):
            self.seen.append(str(exc))


@pytest.fixture(autouse=True)
def _no_unknown_response_fields() -> Iterator[None]:
    """Fail a test whose in-process broker built a response with a field no version has.

    The broker answers such a bug by closing the connection, which a client may retry past;
    this makes the misspelled field (say `eror_code`) the test's failure instead.
    """
    catcher = _UnknownFieldCatcher()
    logger = logging.getLogger("kafkito.broker")
    logger.addHandler(catcher)
    try:
        yield
    finally:
        logger.removeHandler(catcher)
    if catcher.seen:
        pytest.fail("the broker built a response with an unknown field: " + "; ".join(catcher.seen))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A fresh in-process kafkito broker on a free port; yields its bootstrap address."""
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        yield bootstrap


@pytest.fixture
def broker_process(tmp_path: Path) -> Iterator[BrokerProcess]:
    """A kafkito broker in a child process (kill -9 and restart on the same data dir)."""
    proc = kafkito_process(tmp_path / "data").start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """Tansu, a Kafka-compatible broker in Rust that we did not write (session-wide)."""
    with start_tansu(tmp_path_factory.mktemp("tansu")) as proc:
        yield proc


@pytest.fixture
def topic_name() -> str:
    """A topic name unique to this test."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def kafka_reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """One Apache Kafka node for the whole session: the reference that differential tests
    compare kafkito's broker with (single node like ours, so replication factor 1).

    Timed-out transactions are looked for every second, as kafkito does (Kafka's default is
    every 10 s), so that transaction-timeout tests take seconds on both brokers."""
    with ApacheKafka(
        brokers=1,
        data_dir=tmp_path_factory.mktemp("kafka-reference"),
        broker_configs={"transaction.abort.timed.out.transaction.cleanup.interval.ms": 1000},
    ) as kafka:
        yield kafka
