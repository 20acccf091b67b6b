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
