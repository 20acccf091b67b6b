"""The graduation path: kafkito's client library and flow on a real 3-node Apache Kafka.

Users develop on kafkito's embedded broker and deploy on Apache Kafka; these tests run the same
code on the `apache_kafka` fixture of the kafkito pytest plugin (session-wide, 3 KRaft nodes,
replication factor 3, min.insync.replicas=2). The fault tests (test_failover_*.py) start a
cluster of their own, so a killed node never damages the shared one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from gradkit import Running

from kafkito.flow import Flow
from kafkito.testing.apache_kafka import ApacheKafka


@pytest.fixture
def kafka(apache_kafka: ApacheKafka) -> ApacheKafka:
    """The session's 3-node Apache Kafka (from the kafkito pytest plugin)."""
    return apache_kafka


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:30].strip("-")
    return f"g-{stem}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def group() -> str:
    return f"grp-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def start_flow() -> Iterator[Callable[[Flow], Running]]:
    """Start flows on threads; every one still running is stopped at the end of the test."""
    started: list[Running] = []

    def start(flow: Flow) -> Running:
        running = Running(flow)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.flow.stop()
            running.thread.join(60)
