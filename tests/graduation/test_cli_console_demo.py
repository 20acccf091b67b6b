"""Graduation on Apache Kafka (issue #12, part 4): the CLI, the console and the demo, unchanged,
against a real 3-broker cluster (RF 3, min.insync.replicas 2; `apache_kafka` is the plugin's
session fixture and its `.bootstrap` lists all three brokers).

The CLI runs as a user runs it (a subprocess, `--brokers` with all three), and each command's
exit code and output are checked against what the test did to the cluster. The console is
driven through its JSON API and pages; the demo through `kafkito demo --duration N`, whose
report must account for every event (counted, stored, dead-lettered).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from starlette.testclient import TestClient

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE
from kafkito.client import Admin
from kafkito.console.app import create_app
from kafkito.testing.apache_kafka import ApacheKafka

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def kafkito(apache_kafka: ApacheKafka, tmp_path: Path) -> Run:
    """kafkito(*args, input=None) against the cluster -> CompletedProcess (text)."""

    def run(*args: str, input: str | None = None, timeout: float = 120) -> Any:
        env = {**os.environ, "KAFKITO_DATA_DIR": str(tmp_path / "local")}
        env.pop("KAFKITO_BROKERS", None)
        return subprocess.run(
            [sys.executable, "-m", "kafkito", "--brokers", apache_kafka.bootstrap, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=tmp_path,
        )

    return run


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def _one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.stderr.startswith("kafkito: error: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "KafkaError{" not in result.stderr


def test_cli_on_a_three_broker_cluster(kafkito: Run, apache_kafka: ApacheKafka) -> None:
    topic = f"grad-cli-{uuid.uuid4().hex[:8]}"
    group = f"grad-g-{uuid.uuid4().hex[:8]}"

    healthy = kafkito("--json", "health")
    assert healthy.returncode == 0, healthy.stderr
    report = json.loads(healthy.stdout)
    assert report["status"] == "UP"
    assert sorted(report["brokers"]) == sorted(apache_kafka.bootstrap.split(","))

    created = kafkito("topics", "create", topic, "-p", "3", "-c", "retention.ms=3600000")
    assert created.returncode == 0, created.stderr
    again = kafkito("topics", "create", topic)
    assert again.returncode == EXIT_USAGE and "TOPIC_ALREADY_EXISTS" in again.stderr
    _one_line_error(again)
    info = json.loads(kafkito("--json", "topics", "describe", topic).stdout)
    assert [p["partition"] for p in info["partitions"]] == [0, 1, 2]
    assert all(len(p["replicas"]) == 3 for p in info["partitions"]), "the cluster's RF 3"
    assert info["configs"]["retention.ms"] == "3600000"
    altered = kafkito("topics", "alter", topic, "-c", "retention.ms=7200000", "--partitions", "4")
    assert altered.returncode == 0, altered.stderr
    info = json.loads(kafkito("--json", "topics", "describe", topic).stdout)
    assert len(info["partitions"]) == 4 and info["configs"]["retention.ms"] == "7200000"
    listed = _lines(kafkito("--json", "topics", "list").stdout)
    assert {"topic": topic, "partitions": 4} in listed

    lines = "".join(f"k{i % 5}:v{i}\n" for i in range(40))
    produced = kafkito("--json", "produce", topic, "-K", ":", "-H", "src=grad", input=lines)
    assert produced.returncode == 0, produced.stderr
    summary = json.loads(produced.stdout)
    assert summary["records"] == 40
    assert sum(p["count"] for p in summary["partitions"].values()) == 40

    everything = kafkito("consume", topic, "--format", "json")
    assert everything.returncode == 0, everything.stderr
    records = _lines(everything.stdout)
    assert sorted(r["value"] for r in records) == sorted(f"v{i}" for i in range(40))
    assert all(r["key"] == f"k{int(r['value'][1:]) % 5}" for r in records)
    assert all(r["headers"] == {"src": "grad"} for r in records)
    per_key = {r["key"]: r["partition"] for r in records}
    assert all(per_key[r["key"]] == r["partition"] for r in records), "one partition per key"

    first = kafkito("consume", topic, "--group", group, "--count", "15")
    assert first.returncode == 0, first.stderr
    assert len(first.stdout.split()) == 15
    lag = _lines(kafkito("--json", "groups", "lag", group).stdout)
    assert sum(row["committed"] for row in lag) == 15
    assert all(row["lag"] == row["end"] - row["committed"] for row in lag)
    described = json.loads(kafkito("--json", "groups", "describe", group).stdout)
    assert described["state"] == "EMPTY" and described["members"] == []

    reset = kafkito("groups", "reset-offsets", group, "-t", topic, "--to-earliest", "--execute")
    assert reset.returncode == 0, reset.stderr
    lag = _lines(kafkito("--json", "groups", "lag", group).stdout)
    assert {row["partition"]: row["committed"] for row in lag} == {0: 0, 1: 0, 2: 0, 3: 0}
    resumed = kafkito("consume", topic, "--group", group, "--from", "stored")
    assert sorted(resumed.stdout.split()) == sorted(f"v{i}" for i in range(40))

    assert kafkito("groups", "delete", group).returncode == 0
    gone = kafkito("groups", "delete", group)
    assert gone.returncode == EXIT_NOT_FOUND, gone.stderr
    _one_line_error(gone)
    unknown = kafkito("consume", f"no-such-{topic}")
    assert unknown.returncode == EXIT_NOT_FOUND
    _one_line_error(unknown)

    assert kafkito("topics", "delete", topic, "--yes").returncode == 0
    missing = kafkito("topics", "describe", topic)
    assert missing.returncode == EXIT_NOT_FOUND
    _one_line_error(missing)


def test_console_on_a_three_broker_cluster(apache_kafka: ApacheKafka) -> None:
    bootstrap = apache_kafka.bootstrap
    topic = f"grad-console-{uuid.uuid4().hex[:8]}"
    group = f"grad-console-g-{uuid.uuid4().hex[:8]}"
    with Admin(brokers=bootstrap) as admin:
        admin.create_topic(topic, 2)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(30):
        value = b'{"n": %d}' % i if i % 2 == 0 else b"plain text %d" % i
        producer.produce(topic, key=f"k{i}", value=value, partition=0, headers={"h": b"v"})
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    consumer.commit(offsets=[TopicPartition(topic, 0, 12)], asynchronous=False)
    consumer.close()

    client = TestClient(create_app({"bootstrap.servers": bootstrap}))
    topics = {t["name"]: t for t in client.get("/api/topics").json()}
    assert topics[topic]["records"] == 30
    detail = client.get(f"/api/topics/{topic}").json()
    assert [p["end_offset"] for p in detail["partitions"]] == [30, 0]
    assert all(len(p["replicas"]) == 3 for p in detail["partitions"])
    assert detail["configs"]["min.insync.replicas"] == "2"
    messages = client.get(f"/api/topics/{topic}/messages?partition=0&limit=5").json()
    assert [m["offset"] for m in messages] == [25, 26, 27, 28, 29]
    assert messages[1]["is_json"] and messages[1]["value_json"] == {"n": 26}
    assert messages[0]["value"] == "plain text 25" and messages[0]["headers"] == {"h": "v"}
    assert client.get(f"/api/topics/no-such-{topic}").status_code == 404
    assert {"group": group, "state": "EMPTY"} in client.get("/api/groups").json()
    described = client.get(f"/api/groups/{group}").json()
    assert described["lag"] == 18 and described["partitions"][0]["committed"] == 12
    assert client.get(f"/api/groups/no-such-{group}").status_code == 404
    for path in (
        "/console",
        f"/console/topics/{topic}",
        "/console/groups",
        f"/console/groups/{group}",
    ):
        page = client.get(path)
        assert page.status_code == 200 and "kafkito" in page.text, path
    assert "plain text 29" in client.get(f"/console/topics/{topic}").text


_REPORT = re.compile(
    r"produced ([\d,]+) valid and ([\d,]+) malformed events; analytics counted ([\d,]+), "
    r"the lake stored ([\d,]+)"
)


def test_demo_on_a_three_broker_cluster(
    kafkito: Run, apache_kafka: ApacheKafka, tmp_path: Path
) -> None:
    done = kafkito(
        "demo",
        "--duration",
        "6",
        "--port",
        "0",
        "--rate",
        "200",
        "--malformed",
        "0.05",
        "--lake-dir",
        str(tmp_path / "lake"),
        timeout=240,
    )
    assert done.returncode == 0, done.stderr
    assert f"on the Kafka at {apache_kafka.bootstrap}" in done.stdout
    assert "warning" not in done.stderr, done.stderr  # the consumers caught up
    found = _REPORT.search(done.stdout)
    assert found is not None, done.stdout
    valid, malformed, counted, stored = (int(g.replace(",", "")) for g in found.groups())
    assert valid > 500 and malformed > 5
    assert counted == valid and stored == valid, "every valid event counted and stored"
    with Admin(brokers=apache_kafka.bootstrap) as admin:
        for name in ("page_views", "clicks"):
            assert admin.describe_topic(name).replication_factor == 3
        dead_letters = [
            (name, partition)
            for name in ("page_views.dlq", "clicks.dlq")
            for partition in admin.partitions(name)
        ]
        marks = admin.watermarks(dead_letters)
        assert sum(high - low for low, high in marks.values()) == malformed
        lag = admin.group_lag("analytics") + admin.group_lag("lake")
        assert [row for row in lag if row.lag != 0] == [], lag
