"""HealthChecker and the HTTP probe: broker reachability and reader progress."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from clientkit import Cluster
from test_reader import write_keyed

from kafkito.client import BrokerUnreachableError, HealthChecker, Reader, serve_health
from kafkito.testing.brokers import free_port


def get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_check_up_and_down(cluster: Cluster) -> None:
    up = HealthChecker("kafka", brokers=cluster.bootstrap)
    assert up.name == "kafka"
    data = up.check()
    assert data["brokers"] >= 1
    assert up.build(data, None) == data
    down = HealthChecker("gone", brokers=f"127.0.0.1:{free_port()}", timeout_s=0.5)
    with pytest.raises(BrokerUnreachableError) as info:
        down.check()
    assert "error" in down.build({}, info.value)


def test_http_probe_reports_each_checker(cluster: Cluster) -> None:
    up = HealthChecker("main", brokers=cluster.bootstrap)
    down = HealthChecker("backup", brokers=f"127.0.0.1:{free_port()}", timeout_s=0.5)
    with serve_health([up]) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = get(server.url)
        assert status == 200
        assert body["status"] == "UP"
        assert body["details"]["main"]["status"] == "UP"
    with serve_health([up, down]) as server:
        status, body = get(server.url)
        assert status == 500
        assert body["status"] == "DOWN"
        assert body["details"]["main"]["status"] == "UP"
        assert "error" in body["details"]["backup"]["data"]


def test_reader_progress_and_stuck_loop(cluster: Cluster, topic: str) -> None:
    write_keyed(cluster, topic, 3)
    with Reader(topic, brokers=cluster.bootstrap) as reader:
        checker = HealthChecker("reader", reader=reader, max_poll_age_s=60)
        reader.read_value(lambda v: None, limit=1)
        data = checker.check()
        assert data["handled"] == 1
        assert data["last_poll_age_s"] < 60
        assert sum(data["lag"].values()) == 2  # two messages not handled yet
        stuck = HealthChecker("reader", reader=reader, max_poll_age_s=0.0)
        assert stuck.health()["status"] == "DOWN"


async def test_writer_health_for_sync_and_asyncio_writers(cluster: Cluster, topic: str) -> None:
    """A Writer or TopicWriter of either flavour gives the checker its topic and its count of
    records still waiting for the brokers' confirmation (none once each write returned)."""
    from kafkito import aio
    from kafkito.client import TopicWriter, Writer

    async with aio.Writer(topic, brokers=cluster.bootstrap) as async_writer:
        await async_writer.write(b"a")
        checker = HealthChecker("async-writer", writer=async_writer)
        assert checker.topics == [topic]
        assert checker.check()["unconfirmed"] == 0
    async with aio.TopicWriter(brokers=cluster.bootstrap) as async_topic_writer:
        await async_topic_writer.write(topic, b"b")
        data = HealthChecker("async-topic-writer", writer=async_topic_writer).check()
        assert data["unconfirmed"] == 0
    with Writer(topic, brokers=cluster.bootstrap) as writer:
        writer.write(b"c")
        assert HealthChecker("writer", writer=writer).check()["unconfirmed"] == 0
    with TopicWriter(brokers=cluster.bootstrap) as topic_writer:
        topic_writer.write(topic, b"d")
        checker = HealthChecker("topic-writer", writer=topic_writer)
        assert checker.topics is None
        assert checker.check()["unconfirmed"] == 0
