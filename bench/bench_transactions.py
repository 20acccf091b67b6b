"""Transactional produce throughput against plain produce: kafkito's broker and Apache Kafka,
same workload, one run, with ratios.

    python bench/bench_transactions.py            # about 2 minutes (Kafka's start included)
    python bench/bench_transactions.py --quick    # about 40 seconds, rough figures
    python bench/bench_transactions.py --only kafkito
    python bench/bench_transactions.py --interval   # kafkito also with --durability interval

One producer, one partition, 1 KiB values, acks=all, linger.ms=5 (confluent-kafka through
kafkito.client.RawProducer), each figure from its own topic:

* plain: a producer without transactional.id, from the first produce() until flush() returns;
* N per transaction (N = 100 and 10,000): a transactional producer running begin, N produce(),
  commit_transaction back to back, from the first begin until the last commit returns;
  records per second and transactions per second.

kafkito runs as `python -m kafkito broker` (durability=always: a write is acknowledged after
fsync; the transaction journal likewise), Apache Kafka as one KRaft node from
kafkito.testing.apache_kafka with Kafka's own JVM options and default durability (no fsync per
write: the page cache and replication keep data). The ratio that issue #13 sets a goal on is
kafkito's transactional / plain at 100 records per transaction (goal >= 0.7).

Nothing here asserts a speed; figures go to docs/benchmarks.md with this command and the
machine's load (`uptime`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.client.raw_producer import RawProducer
from kafkito.testing.apache_kafka import KAFKA_SERVER_JVM, ApacheKafka
from kafkito.testing.brokers import kafkito_process

SIZE = 1024
PER_TRANSACTION = (100, 10_000)


@dataclass
class Figures:
    name: str
    plain: float = 0.0
    """records/s without transactions"""
    txn: dict[int, tuple[float, float]] = field(default_factory=dict)
    """records per transaction -> (records/s, transactions/s)"""


def create_topic(bootstrap: str) -> str:
    name = f"bench-txn-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # Metadata shows it a moment after creation on Kafka
        topics = admin.list_topics(timeout=5).topics
        if name in topics and not topics[name].error:
            return name
        time.sleep(0.05)
    raise RuntimeError(f"topic {name} did not appear")


SETTINGS = {
    "acks": "all",
    "linger.ms": 5,
    "queue.buffering.max.messages": 1_000_000,
    "queue.buffering.max.kbytes": 1_048_576,
    "batch.size": 1_000_000,
    "message.max.bytes": 1_000_000,
    "log_level": 3,
}


def _send(producer: RawProducer, topic: str, value: bytes, count: int) -> None:
    for _ in range(count):
        producer.produce(topic, value, partition=0)  # waits while the local queue is full


def plain_run(bootstrap: str, seconds: float) -> float:
    """Records per second, no transactions; the count is sized to take about `seconds`."""
    topic = create_topic(bootstrap)
    value = b"x" * SIZE
    with RawProducer(brokers=bootstrap, settings=SETTINGS) as producer:
        producer.produce(topic, b"warm-up", partition=0)  # connect before timing
        producer.flush(30)
        count, rate = 2_000, 0.0
        while True:
            start = time.perf_counter()
            _send(producer, topic, value, count)
            if producer.flush(120):
                raise RuntimeError("records left undelivered")
            elapsed = time.perf_counter() - start
            rate = count / elapsed
            if elapsed >= seconds * 0.5:
                return rate
            count = int(rate * seconds)


def txn_run(bootstrap: str, per_txn: int, seconds: float) -> tuple[float, float]:
    """(records/s, transactions/s) for transactions of `per_txn` records, back to back, for
    about `seconds` (at least two transactions)."""
    topic = create_topic(bootstrap)
    value = b"x" * SIZE
    settings = {**SETTINGS, "transactional.id": f"bench-{uuid.uuid4().hex[:8]}"}
    with RawProducer(brokers=bootstrap, settings=settings) as producer:
        producer.init_transactions(60)
        producer.begin_transaction()  # a first transaction: connections and partition known
        _send(producer, topic, value, 10)
        producer.commit_transaction(60)
        done = 0
        start = time.perf_counter()
        while done < 2 or time.perf_counter() - start < seconds:
            producer.begin_transaction()
            _send(producer, topic, value, per_txn)
            producer.commit_transaction(120)
            done += 1
        elapsed = time.perf_counter() - start
    return done * per_txn / elapsed, done / elapsed


def measure(name: str, bootstrap: str, seconds: float, rounds: int) -> Figures:
    figures = Figures(name)
    plains, txns = [], {n: list[tuple[float, float]]() for n in PER_TRANSACTION}
    for _ in range(rounds):  # interleaved: a slow minute of the shared disk hits all kinds
        plains.append(plain_run(bootstrap, seconds))
        print(f"  {name}: plain {plains[-1]:,.0f} rec/s", file=sys.stderr)
        for n in PER_TRANSACTION:
            txns[n].append(txn_run(bootstrap, n, seconds))
            print(f"  {name}: {n}/txn {txns[n][-1][0]:,.0f} rec/s", file=sys.stderr)
    figures.plain = sorted(plains)[len(plains) // 2]
    for n, runs in txns.items():
        figures.txn[n] = sorted(runs)[len(runs) // 2]
    return figures


@contextlib.contextmanager
def kafkito_broker(workdir: Path, durability: str = "always") -> Iterator[str]:
    proc = kafkito_process(workdir / durability, extra_args=["--durability", durability]).start()
    try:
        yield proc.bootstrap
    finally:
        proc.stop()


@contextlib.contextmanager
def kafka_broker(workdir: Path) -> Iterator[str]:
    with ApacheKafka(brokers=1, data_dir=workdir / "kafka", jvm_args=KAFKA_SERVER_JVM) as kafka:
        yield kafka.bootstrap


def report(all_figures: list[Figures]) -> str:
    names = [f.name for f in all_figures]
    rows = [
        "| figure | " + " | ".join(names) + " |",
        "|---" * (1 + len(names)) + "|",
    ]

    def row(label: str, value: Callable[[Figures], str]) -> None:
        rows.append(f"| {label} | " + " | ".join(value(f) for f in all_figures) + " |")

    row("plain, records/s", lambda f: f"{f.plain:,.0f}")
    for n in PER_TRANSACTION:
        row(f"{n:,} per txn, records/s", lambda f, n=n: f"{f.txn[n][0]:,.0f}")
        row(f"{n:,} per txn, transactions/s", lambda f, n=n: f"{f.txn[n][1]:,.1f}")
        row(f"{n:,} per txn / plain", lambda f, n=n: f"{f.txn[n][0] / f.plain:.2f}")
    lines = ["\n".join(rows), ""]
    ours = next((f for f in all_figures if f.name == "kafkito"), None)
    if ours is not None:
        met = ours.txn[100][0] / ours.plain >= 0.7
        lines.append(f"  [{'met' if met else 'MISSED'}] kafkito 100 per txn >= 0.7 of plain")
    lines.append(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, rough figures")
    parser.add_argument("--only", choices=["kafkito", "kafka"], help="one broker only")
    parser.add_argument(
        "--interval",
        action="store_true",
        help="also kafkito with --durability interval (no fsync per acknowledgement, as Kafka)",
    )
    args = parser.parse_args()
    seconds, rounds = (3.0, 1) if args.quick else (8.0, 3)
    print(f"load before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "kafkito"):
            with kafkito_broker(Path(tmp)) as bootstrap:
                results.append(measure("kafkito", bootstrap, seconds, rounds))
            if args.interval:
                with kafkito_broker(Path(tmp), "interval") as bootstrap:
                    results.append(measure("kafkito interval", bootstrap, seconds, rounds))
        if args.only in (None, "kafka"):
            with kafka_broker(Path(tmp)) as bootstrap:
                results.append(measure("Apache Kafka", bootstrap, seconds, rounds))
    print(report(results))


if __name__ == "__main__":
    main()
