"""`kafkito transactions` end to end: list, describe and producers of transactions made by real
transactional producers (kafkito.testing.transactions), and the refusals, against a real broker."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE
from kafkito.testing.transactions import OPEN_TIMEOUT_MS, three_transactions

Run = Callable[..., subprocess.CompletedProcess[str]]


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_list_describe_producers(kafkito: Run, broker: str) -> None:
    with three_transactions(broker) as scene:
        listed = lines(kafkito("transactions", "list", "--json", brokers=broker))
        states = {r["transactional_id"]: r["state"] for r in listed}
        assert states == {
            scene.open_id: "Ongoing",
            scene.committed_id: "CompleteCommit",
            scene.aborted_id: "CompleteAbort",
        }
        assert all(r["coordinator"] >= 0 and r["producer_id"] >= 0 for r in listed)
        # options anywhere, state names in any case
        ongoing = lines(
            kafkito("--json", "transactions", "list", "--state", "ongoing", brokers=broker)
        )
        assert [r["transactional_id"] for r in ongoing] == [scene.open_id]
        pid = next(r["producer_id"] for r in listed if r["transactional_id"] == scene.aborted_id)
        by_pid = lines(
            kafkito("transactions", "--json", "list", "--producer-id", str(pid), brokers=broker)
        )
        assert [r["transactional_id"] for r in by_pid] == [scene.aborted_id]

        described = lines(
            kafkito(
                "transactions",
                "describe",
                scene.open_id,
                scene.committed_id,
                "--json",
                brokers=broker,
            )
        )
        opened, committed = described
        assert (opened["state"], opened["timeout_ms"], opened["partitions"]) == (
            "Ongoing",
            OPEN_TIMEOUT_MS,
            [f"{scene.topic}[0]"],
        )
        assert 0 <= opened["age_ms"] < 60_000 and 0 < opened["expires_in_ms"] <= OPEN_TIMEOUT_MS
        assert opened["started"].endswith("Z")
        assert (committed["state"], committed["age_ms"], committed["partitions"]) == (
            "CompleteCommit",
            None,
            [],
        )

        table = kafkito(
            "transactions", "describe", scene.open_id, brokers=broker, env={"COLUMNS": "200"}
        )
        assert table.returncode == 0, table.stderr
        assert "Ongoing" in table.stdout and f"{scene.topic}[0]" in table.stdout
        assert "120.0s" in table.stdout  # the timeout

        producers = lines(
            kafkito("transactions", "producers", scene.topic, "--json", brokers=broker)
        )
        assert sorted(
            (r["partition"], -1 if r["txn_start_offset"] is None else r["txn_start_offset"])
            for r in producers
        ) == [
            (0, -1),
            (0, 0),  # the open transaction holds partition 0 at offset 0
            (1, -1),
            (1, -1),
        ]
        assert all(isinstance(r["last_timestamp"], int) for r in producers)
        only = lines(
            kafkito(
                "transactions",
                "producers",
                scene.topic,
                "--partition",
                "1",
                "--json",
                brokers=broker,
            )
        )
        assert {r["partition"] for r in only} == {1}
        text = kafkito("transactions", "producers", scene.topic, brokers=broker)
        assert text.returncode == 0 and "txn start" in text.stdout


def test_refusals_are_one_line(kafkito: Run, broker: str) -> None:
    missing = kafkito("transactions", "describe", "nobody", brokers=broker)
    assert missing.returncode == EXIT_NOT_FOUND, missing.stderr
    assert missing.stderr.strip() == (
        "kafkito: error: transactional id 'nobody' not found (never used, or expired)"
    )
    bad_state = kafkito("transactions", "list", "--state", "Open", brokers=broker)
    assert bad_state.returncode == EXIT_USAGE
    assert "unknown transaction state 'Open'" in bad_state.stderr
    assert len(bad_state.stderr.strip().splitlines()) == 1
    no_topic = kafkito("transactions", "producers", "no-such-topic", brokers=broker)
    assert no_topic.returncode == EXIT_NOT_FOUND and len(no_topic.stderr.strip().splitlines()) == 1
    no_id = kafkito("transactions", "describe", brokers=broker)
    assert no_id.returncode == EXIT_USAGE
    negative = kafkito("transactions", "list", "--min-duration-ms", "-5", brokers=broker)
    assert negative.returncode == EXIT_USAGE
    empty = kafkito(
        "transactions", "list", "--json", "--min-duration-ms", "3600000", brokers=broker
    )
    assert lines(empty) == []
