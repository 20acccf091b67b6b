"""Each command end to end against the embedded broker, and the main ones against Tansu."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_USAGE
from kafkito.testing.brokers import BrokerProcess

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_produce_then_consume_keys_values_and_headers(
    kafkito: Run, broker: str, topic_name: str
) -> None:
    lines = "".join(f'user-{i}:{{"n": {i}}}\n' for i in range(5))
    produced = kafkito(
        "--json",
        "produce",
        topic_name,
        "-K",
        ":",
        "-H",
        "source=cli",
        "--json-values",
        input=lines,
        brokers=broker,
    )
    assert produced.returncode == 0, produced.stderr
    summary = json.loads(produced.stdout)
    assert summary["records"] == 5
    assert summary["partitions"] == {"0": {"first": 0, "last": 4, "count": 5}}

    consumed = kafkito("consume", topic_name, "--format", "json", brokers=broker)
    assert consumed.returncode == 0, consumed.stderr
    records = [json.loads(line) for line in consumed.stdout.splitlines()]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in records] == [
        (i, f"user-{i}", {"n": i}, {"source": "cli"}) for i in range(5)
    ]


def test_consume_positions_count_and_template(kafkito: Run, broker: str, topic_name: str) -> None:
    kafkito("produce", topic_name, input="".join(f"m{i}\n" for i in range(10)), brokers=broker)
    last3 = kafkito("consume", topic_name, "--from", "-3", brokers=broker)
    assert last3.stdout.split() == ["m7", "m8", "m9"]
    from_offset = kafkito("consume", topic_name, "--from", "4", "--count", "2", brokers=broker)
    assert from_offset.stdout.split() == ["m4", "m5"]
    templated = kafkito(
        "consume",
        topic_name,
        "--count",
        "1",
        "--template",
        "{partition}:{offset}={value}",
        brokers=broker,
    )
    assert templated.stdout.strip() == "0:0=m0"
    at_end = kafkito("consume", topic_name, "--from", "end", brokers=broker)
    assert at_end.returncode == 0 and at_end.stdout == ""
    future = kafkito("consume", topic_name, "--from", "@99999999999999", brokers=broker)
    assert future.returncode == 0 and future.stdout == ""


def test_topics_lifecycle(kafkito: Run, broker: str, topic_name: str) -> None:
    created = kafkito(
        "topics",
        "create",
        topic_name,
        "--partitions",
        "3",
        "-c",
        "retention.ms=3600000",
        brokers=broker,
    )
    assert created.returncode == 0, created.stderr
    again = kafkito("topics", "create", topic_name, brokers=broker)
    assert again.returncode == EXIT_USAGE and "TOPIC_ALREADY_EXISTS" in again.stderr
    assert "Traceback" not in again.stderr
    listed = kafkito("--json", "topics", "list", brokers=broker)
    assert {"topic": topic_name, "partitions": 3} in [
        json.loads(x) for x in listed.stdout.split("\n") if x
    ]
    described = kafkito("--json", "topics", "describe", topic_name, brokers=broker)
    assert described.returncode == 0, described.stderr
    info = json.loads(described.stdout)
    assert [p["partition"] for p in info["partitions"]] == [0, 1, 2]
    assert info["configs"]["retention.ms"] == "3600000"
    altered = kafkito(
        "topics",
        "alter",
        topic_name,
        "-c",
        "retention.ms=7200000",
        "--partitions",
        "4",
        brokers=broker,
    )
    assert altered.returncode == 0, altered.stderr
    info = json.loads(kafkito("--json", "topics", "describe", topic_name, brokers=broker).stdout)
    assert info["configs"]["retention.ms"] == "7200000"
    assert len(info["partitions"]) == 4
    deleted = kafkito("topics", "delete", topic_name, "--yes", brokers=broker)
    assert deleted.returncode == 0, deleted.stderr
    gone = kafkito("topics", "describe", topic_name, brokers=broker)
    assert gone.returncode == EXIT_NOT_FOUND


def test_groups_lag_reset_and_delete(kafkito: Run, broker: str, topic_name: str) -> None:
    kafkito("produce", topic_name, input="".join(f"m{i}\n" for i in range(6)), brokers=broker)
    first = kafkito("consume", topic_name, "--group", "g1", "--count", "4", brokers=broker)
    assert first.stdout.split() == ["m0", "m1", "m2", "m3"], first.stderr
    lag = kafkito("--json", "groups", "lag", "g1", brokers=broker)
    assert lag.returncode == 0, lag.stderr
    rows = [json.loads(x) for x in lag.stdout.splitlines()]
    assert rows == [
        {"topic": topic_name, "partition": 0, "committed": 4, "end": 6, "lag": 2, "member": None}
    ]
    listed = kafkito("--json", "groups", "list", brokers=broker)
    assert "g1" in [json.loads(x)["group"] for x in listed.stdout.splitlines()]
    dry = kafkito(
        "--json", "groups", "reset-offsets", "g1", "-t", topic_name, "--to-earliest", brokers=broker
    )
    assert json.loads(dry.stdout.splitlines()[0])["new_offset"] == 0
    still = json.loads(kafkito("--json", "groups", "lag", "g1", brokers=broker).stdout)
    assert still["committed"] == 4, "a dry run must not change anything"
    done = kafkito(
        "groups",
        "reset-offsets",
        "g1",
        "-t",
        topic_name,
        "--to-offset",
        "1",
        "--execute",
        brokers=broker,
    )
    assert done.returncode == 0, done.stderr
    resumed = kafkito("consume", topic_name, "--group", "g1", "--from", "stored", brokers=broker)
    assert resumed.stdout.split() == ["m1", "m2", "m3", "m4", "m5"]
    assert kafkito("groups", "delete", "g1", brokers=broker).returncode == 0
    missing = kafkito("groups", "describe", "no-such-group", brokers=broker)
    assert missing.returncode in (0, EXIT_NOT_FOUND)  # Kafka describes unknown groups as Dead


def test_errors_are_one_line_with_documented_codes(kafkito: Run, broker: str) -> None:
    unreachable = kafkito("health", "--timeout", "1", brokers="127.0.0.1:1")
    assert unreachable.returncode == EXIT_UNREACHABLE
    assert unreachable.stderr.startswith("kafkito: error: broker unreachable")
    assert len(unreachable.stderr.strip().splitlines()) == 1
    unknown = kafkito("consume", "no-such-topic-here", brokers=broker)
    assert unknown.returncode == EXIT_NOT_FOUND, unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad = kafkito("consume", "x", "--from", "yesterday-ish", brokers=broker)
    assert bad.returncode == EXIT_USAGE and "--from" in bad.stderr
    bad_header = kafkito("produce", "x", "-H", "nonsense", input="a\n", brokers=broker)
    assert bad_header.returncode == EXIT_USAGE
    not_json = kafkito("produce", "x", "--json-values", input="{oops\n", brokers=broker)
    assert not_json.returncode == EXIT_USAGE and "not JSON" in not_json.stderr
    healthy = kafkito("--json", "health", brokers=broker)
    assert json.loads(healthy.stdout)["status"] == "UP"


def test_debug_shows_the_traceback(kafkito: Run) -> None:
    result = kafkito("--debug", "health", "--timeout", "1", brokers="127.0.0.1:1")
    assert result.returncode != 0
    assert "Traceback" in result.stderr


def test_consume_into_a_closed_pipe_ends_quietly(
    broker: str, topic_name: str, tmp_path: Path
) -> None:
    subprocess.run(
        [sys.executable, "-m", "kafkito", "--brokers", broker, "produce", topic_name],
        input="".join(f"line {i}\n" for i in range(5000)),
        text=True,
        check=True,
        capture_output=True,
    )
    pipeline = subprocess.run(
        f"{sys.executable} -m kafkito --brokers {broker} consume {topic_name} | head -1; "
        'echo "status=${PIPESTATUS[0]}"',
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pipeline.stdout.splitlines() == ["line 0", "status=0"]
    assert "Traceback" not in pipeline.stderr and "Broken pipe" not in pipeline.stderr


def test_without_brokers_the_local_broker_is_shared(kafkito: Run, topic_name: str) -> None:
    """No --brokers: each command uses the local broker in KAFKITO_DATA_DIR; data persists."""
    assert kafkito("produce", topic_name, input="kept\n").returncode == 0
    result = kafkito("consume", topic_name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["kept"]


def test_bench_prints_rates(kafkito: Run, broker: str) -> None:
    result = kafkito("--json", "bench", "-n", "2000", "-s", "64", brokers=broker)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["consumed"] == 2000 and report["produce_msgs_per_s"] > 0


@pytest.mark.tansu
def test_main_commands_against_tansu(kafkito: Run, tansu: BrokerProcess, topic_name: str) -> None:
    bootstrap = tansu.bootstrap
    assert (
        kafkito("topics", "create", topic_name, "--partitions", "1", brokers=bootstrap).returncode
        == 0
    )
    produced = kafkito("produce", topic_name, "-K", ":", input="k:v1\nk:v2\n", brokers=bootstrap)
    assert produced.returncode == 0, produced.stderr
    consumed = kafkito("consume", topic_name, "--format", "kv", brokers=bootstrap)
    assert consumed.stdout.splitlines() == ["k\tv1", "k\tv2"], consumed.stderr
    listed = kafkito("--json", "topics", "list", brokers=bootstrap)
    assert topic_name in listed.stdout
    assert json.loads(kafkito("--json", "health", brokers=bootstrap).stdout)["status"] == "UP"
