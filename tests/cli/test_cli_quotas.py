"""`kafkito quotas` end to end: set, list, remove, and the refusals, against a real broker."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

from kafkito.cli.context import EXIT_UNREACHABLE, EXIT_USAGE

Run = Callable[..., subprocess.CompletedProcess[str]]


def listed(kafkito: Run, broker: str, *args: str) -> list[dict[str, object]]:
    result = kafkito("--json", "quotas", "list", *args, brokers=broker)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_set_list_remove(kafkito: Run, broker: str) -> None:
    done = kafkito(
        "quotas",
        "set",
        "--client-id",
        "loader",
        "producer_byte_rate=1048576",
        "consumer_byte_rate=2048",
        brokers=broker,
    )
    assert done.returncode == 0, done.stderr
    done = kafkito("quotas", "set", "--user", "default", "request_percentage=12.5", brokers=broker)
    assert done.returncode == 0, done.stderr
    dry = kafkito(
        "quotas", "set", "--user", "bob", "producer_byte_rate=5", "--dry-run", brokers=broker
    )
    assert dry.returncode == 0, dry.stderr
    assert listed(kafkito, broker) == [
        {"entity": "client-id=loader", "key": "consumer_byte_rate", "value": 2048.0},
        {"entity": "client-id=loader", "key": "producer_byte_rate", "value": 1048576.0},
        {"entity": "user=<default>", "key": "request_percentage", "value": 12.5},
    ]
    assert listed(kafkito, broker, "--user", "default") == [
        {"entity": "user=<default>", "key": "request_percentage", "value": 12.5}
    ]
    gone = kafkito(
        "quotas", "remove", "--client-id", "loader", "producer_byte_rate", brokers=broker
    )
    assert gone.returncode == 0, gone.stderr
    assert listed(kafkito, broker, "--client-id", "loader") == [
        {"entity": "client-id=loader", "key": "consumer_byte_rate", "value": 2048.0}
    ]


def test_refusals_are_one_line(kafkito: Run, broker: str) -> None:
    no_entity = kafkito("quotas", "set", "producer_byte_rate=5", brokers=broker)
    assert no_entity.returncode == EXIT_USAGE and "--user" in no_entity.stderr
    bad_key = kafkito("quotas", "set", "--user", "a", "speed=5", brokers=broker)
    assert bad_key.returncode == EXIT_USAGE and "unknown quota" in bad_key.stderr
    not_a_number = kafkito(
        "quotas", "set", "--user", "a", "producer_byte_rate=fast", brokers=broker
    )
    assert not_a_number.returncode == EXIT_USAGE and "number" in not_a_number.stderr
    # the broker's own refusal, with its message (Kafka's wording)
    fraction = kafkito("quotas", "set", "--user", "a", "producer_byte_rate=1.5", brokers=broker)
    assert fraction.returncode == EXIT_USAGE, fraction.stderr  # the input was refused
    assert "cannot be a fractional value" in fraction.stderr
    assert len(fraction.stderr.strip().splitlines()) == 1, fraction.stderr
    assert listed(kafkito, broker) == []
    unreachable = kafkito("quotas", "list", brokers="127.0.0.1:1")
    assert unreachable.returncode == EXIT_UNREACHABLE, unreachable.stderr
