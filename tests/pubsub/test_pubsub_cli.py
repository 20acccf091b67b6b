"""`kafkito produce` / `kafkito consume` on Pub/Sub, run as a user would (subprocesses that
find the emulator through PUBSUB_EMULATOR_HOST, set by the fixture)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from google.cloud import pubsub_v1
from pskit import make_topic

from kafkito.testing.pubsub_emulator import PubSubEmulator


def kafkito(
    *args: str, input: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kafkito", *args],
        input=input,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        cwd=cwd,
    )


def test_produce_then_consume_with_keys_and_attributes(project: str) -> None:
    make_topic(project, "orders", subscription="orders-sub", enable_message_ordering=True)
    lines = 'u1:{"n": 1}\nu2:{"n": 2}\nu1:{"n": 3}\n'
    done = kafkito(
        "produce", "orders", "--pubsub-project", project, "-K", ":", "-H", "source=cli", input=lines
    )
    assert done.returncode == 0, done.stderr
    assert "produced 3 messages to Pub/Sub topic orders" in done.stdout + done.stderr
    read = kafkito(
        "consume",
        "orders",
        "--pubsub-project",
        project,
        "--group",
        "orders-sub",
        "--count",
        "3",
        "--format",
        "json",
    )
    assert read.returncode == 0, read.stderr
    records = [json.loads(line) for line in read.stdout.splitlines()]
    assert sorted((r["key"], r["value"]["n"]) for r in records) == [("u1", 1), ("u1", 3), ("u2", 2)]
    assert all(r["headers"] == {"source": "cli"} and r["message_id"] for r in records)
    u1 = [r["value"]["n"] for r in records if r["key"] == "u1"]
    assert u1 == [1, 3]  # in order per ordering key


def test_config_file_and_formats(project: str, tmp_path: Path) -> None:
    make_topic(project, "logs", subscription="logs-sub")
    config = tmp_path / "pubsub.yaml"
    config.write_text(f"client: {{project_id: {project}}}\n")
    done = kafkito(
        "produce", "logs", "--pubsub-config", str(config), "--input-format", "hex", input="6869\n"
    )
    assert done.returncode == 0, done.stderr
    read = kafkito(
        "consume",
        "logs",
        "--pubsub-config",
        str(config),
        "--group",
        "logs-sub",
        "--count",
        "1",
        "--template",
        "{topic} {value} {partition}",
    )
    assert read.returncode == 0, read.stderr
    assert read.stdout == "logs hi -1\n"


def test_temporary_subscription_is_removed(project: str) -> None:
    make_topic(project, "quiet")
    read = kafkito("consume", "quiet", "--pubsub-project", project)
    assert read.returncode == 0, read.stderr
    assert "temporary subscription" in read.stderr and read.stdout == ""
    with pubsub_v1.SubscriberClient() as subscriber:
        left = list(subscriber.list_subscriptions(project=f"projects/{project}"))
    assert left == []


def test_bad_input_exit_codes(project: str, pubsub_emulator: PubSubEmulator) -> None:
    make_topic(project, "there")
    cases = [
        (
            ["consume", "missing", "--pubsub-project", project, "--group", "g-1"],
            "",
            4,
            "does not exist",
        ),
        (["consume", "there", "--pubsub-project", project, "--from", "end"], "", 2, "--from"),
        (["consume", "there", "--pubsub-project", project, "-p", "0"], "", 2, "--partition"),
        (["produce", "there", "--pubsub-project", project, "-p", "1"], "x\n", 2, "--partition"),
        (
            [
                "produce",
                "there",
                "--pubsub-project",
                project,
                "-K",
                ":",
                "--key-input-format",
                "hex",
            ],
            "ff:x\n",
            2,
            "ordering key is text",
        ),
        (
            ["produce", "there", "--pubsub-project", project, "--input-format", "json"],
            "{oops\n",
            2,
            "line 1",
        ),
    ]
    for args, stdin, code, words in cases:
        done = kafkito(*args, input=stdin)
        assert done.returncode == code, (args, done.stderr)
        assert words in done.stderr and done.stderr.count("\n") == 1, (args, done.stderr)
    # nothing listens: unreachable within --timeout
    down = kafkito(
        "--timeout",
        "2",
        "produce",
        "there",
        "--pubsub-project",
        project,
        input="x\n",
        env={"PUBSUB_EMULATOR_HOST": "127.0.0.1:9"},
    )
    assert down.returncode == 3, down.stderr
    assert "unreachable" in down.stderr


def test_the_next_consume_of_a_subscription_gets_new_messages_at_once(project: str) -> None:
    """After a consume closed its stream, the next one on the subscription gets what was
    published in between without waiting an ack deadline (the emulator kept cancelled streams
    until kafkito half-closed them)."""
    make_topic(project, "again")
    first = kafkito("consume", "again", "--pubsub-project", project, "--group", "again-sub")
    assert first.returncode == 0 and first.stdout == "", first.stderr
    done = kafkito("produce", "again", "--pubsub-project", project, input="a\nb\n")
    assert done.returncode == 0, done.stderr
    began = time.monotonic()
    second = kafkito(
        "consume", "again", "--pubsub-project", project, "--group", "again-sub", "--count", "2"
    )
    assert second.returncode == 0, second.stderr
    assert sorted(second.stdout.split()) == ["a", "b"]
    assert time.monotonic() - began < 20  # not an ack deadline (60 s) later
