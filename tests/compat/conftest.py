"""Fixtures of the compatibility tests: kafkito's broker and Apache Kafka side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from compat.differential import Brokers
from kafkito import Broker
from kafkito.testing.apache_kafka import ApacheKafka


def _kafkito(tmp_path: Path) -> Broker:
    # The reference runs with group.initial.rebalance.delay.ms=0 (the launcher's test setting);
    # ours matches it, so that both answer a first JoinGroup without waiting.
    return Broker(port=0, data_dir=str(tmp_path / "data"), group_initial_rebalance_delay_ms=0)


@pytest.fixture
def brokers(tmp_path: Path, kafka_reference: ApacheKafka) -> Iterator[Brokers]:
    """A fresh kafkito broker and the session's Apache Kafka node, for `run_differential`."""
    with _kafkito(tmp_path) as bootstrap:
        yield Brokers(kafkito=bootstrap, kafka=kafka_reference.bootstrap)


@pytest.fixture(params=["kafkito", "kafka"])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each broker in turn, for tests whose assertions hold for any Kafka: a fresh kafkito
    broker, or the session's Apache Kafka node (tests must use unique topic names)."""
    if request.param == "kafka":
        yield request.getfixturevalue("kafka_reference").bootstrap
        return
    with _kafkito(tmp_path) as bootstrap:
        yield bootstrap


@pytest.fixture
def kafkito_broker(tmp_path: Path) -> Iterator[str]:
    """A fresh kafkito broker, for a test in a module whose `broker` means any broker."""
    with _kafkito(tmp_path) as bootstrap:
        yield bootstrap
