"""Shared fixtures: real brokers over TCP, never mocks of Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kafkito import Broker
from kafkito.testing.apache_kafka import ApacheKafka
from kafkito.testing.brokers import BrokerProcess, kafkito_process, start_tansu


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
