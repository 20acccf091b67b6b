"""Consume-flow overhead and parallelism, in one run against the embedded broker.

    python bench/bench_flow.py [--count 100000] [--rounds 3] [--quick]

1. raw `kafkito.Reader` with a no-op handler vs `kafkito.flow.Flow` with a no-op sync handler,
   same topic, same broker (goal: the flow at >= 80% of the Reader's throughput). The flow runs
   with ordering="partition", the Reader's own guarantee (one partition's records in order);
   the default ordering="key" (records of different keys of a partition in parallel) is
   printed beside it. Each round reads the whole topic once with each, in turn, under a new
   group; the medians of the rounds are compared (the machines are noisy);
2. a 10 ms async handler over 1,000 keys with concurrency 100 (goal: >= 5,000 msgs/s, which is
   >= 50x the sequential rate of 100 msgs/s);
3. latency on a quiet topic: 50 records written one at a time, 20 per second, each timed from
   before its write (acks=all) to its handler (Reader and flow, p50 and p99).
Throughput is measured from the first record handled to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkito.client import Reader
from kafkito.flow import Flow
from kafkito.testing.brokers import kafkito_process


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})  # referenced until the result is in
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(15)


def fill(bootstrap: str, topic: str, count: int, size: int, keys: int, partitions: int) -> None:
    create_topic(bootstrap, topic, partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1 << 20})
    body = b'{"v": "' + b"x" * max(size - 9, 0) + b'"}'
    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=f"k{i % keys}".encode(), value=body)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def bench_reader(bootstrap: str, topic: str, count: int) -> float:
    first: list[float] = []

    def handle(value: bytes | None) -> None:
        if not first:
            first.append(time.perf_counter())

    reader = Reader(
        topic,
        group_id=f"reader-{uuid.uuid4().hex[:6]}",
        brokers=bootstrap,
        settings={"auto.offset.reset": "earliest"},
    )
    with reader:
        reader.read_value(handle, limit=count, handle_signals=False)
    return count / (time.perf_counter() - first[0])


def run_flow(flow: Flow, count: int, counter: list[int], first: list[float]) -> float:
    thread = threading.Thread(target=flow.run, daemon=True)
    thread.start()
    while counter[0] < count:
        time.sleep(0.01)
    elapsed = time.perf_counter() - first[0]
    flow.stop()
    thread.join(30)
    return count / elapsed


def bench_flow_noop(bootstrap: str, topic: str, count: int, ordering: str = "partition") -> float:
    counter, first = [0], []

    def handle(value: object) -> None:
        if not first:
            first.append(time.perf_counter())
        counter[0] += 1

    flow = Flow(
        topic,
        handle,
        group_id=f"flow-{uuid.uuid4().hex[:6]}",
        brokers=bootstrap,
        decoder="raw",
        ordering=ordering,  # type: ignore[arg-type]
        concurrency=4,
        max_in_flight=5000,
    )
    return run_flow(flow, count, counter, first)


def bench_flow_async(bootstrap: str, topic: str, count: int) -> float:
    counter, first = [0], []

    async def handle(value: object) -> None:
        if not first:
            first.append(time.perf_counter())
        await asyncio.sleep(0.010)
        counter[0] += 1

    flow = Flow(
        topic,
        handle,
        group_id=f"async-{uuid.uuid4().hex[:6]}",
        brokers=bootstrap,
        decoder="raw",
        concurrency=100,
        max_in_flight=5000,
    )
    return run_flow(flow, count, counter, first)


def bench_latency(bootstrap: str, kind: str, records: int = 50) -> tuple[float, float]:
    """(p50, p99) in ms from write to handler, one record at a time on an idle topic."""
    topic = f"quiet-{kind}"
    create_topic(bootstrap, topic, 1)
    arrived: dict[int, float] = {}

    def handle(value: object) -> None:
        assert isinstance(value, bytes)
        arrived[int(value)] = time.perf_counter()

    stop: Callable[[], None]
    if kind == "reader":
        reader = Reader(topic, group_id="lat-reader", brokers=bootstrap)
        thread = threading.Thread(
            target=reader.read_value, args=(handle,), kwargs={"handle_signals": False}
        )
        stop = reader.stop
    else:
        flow = Flow(topic, handle, group_id="lat-flow", brokers=bootstrap, decoder="raw")
        thread = threading.Thread(target=flow.run)
        stop = flow.stop
    thread.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    sent: dict[int, float] = {}
    try:
        for i in range(-1, records):  # -1: wait until the consumer is assigned and reading
            sent[i] = time.perf_counter()
            producer.produce(topic, value=str(i).encode())
            producer.poll(0)
            deadline = time.monotonic() + (30 if i < 0 else 5)
            while i not in arrived and time.monotonic() < deadline:
                time.sleep(0.0005)
            time.sleep(0.05)
        producer.flush(10)
    finally:
        stop()
        thread.join(30)
        if kind == "reader":
            reader.close()
    latencies = sorted((arrived[i] - sent[i]) * 1000 for i in range(records) if i in arrived)
    if len(latencies) < records:
        raise RuntimeError(f"{kind}: only {len(latencies)} of {records} records arrived")
    return statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 records, one round")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.count
    rounds = 1 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        broker = kafkito_process(Path(tmp) / "data").start()
        try:
            bootstrap = broker.bootstrap
            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} cores, kafkito broker on "
                f"{bootstrap}; {count} records"
            )
            for size in (100, 1024):
                topic = f"noop-{size}"
                fill(bootstrap, topic, count, size, keys=1000, partitions=4)
                runs: dict[str, list[float]] = {"reader": [], "partition": [], "key": []}
                for _ in range(rounds):
                    runs["reader"].append(bench_reader(bootstrap, topic, count))
                    runs["partition"].append(bench_flow_noop(bootstrap, topic, count))
                    runs["key"].append(bench_flow_noop(bootstrap, topic, count, "key"))
                reader, flow, keyed = (statistics.median(runs[k]) for k in runs)
                print(
                    f"{size:>5} B  Reader {reader:>9,.0f} msgs/s   Flow(no-op) {flow:>9,.0f} "
                    f"msgs/s   ratio {flow / reader:.2f} (goal >= 0.80)   "
                    f"[ordering=key: {keyed:,.0f} msgs/s, {keyed / reader:.2f}]"
                )
                for name, values in runs.items():
                    print(f"         {name:>9}: " + "  ".join(f"{v:>9,.0f}" for v in values))
            parallel_count = min(count, 20_000)
            fill(bootstrap, "slow", parallel_count, 100, keys=1000, partitions=4)
            rate = bench_flow_async(bootstrap, "slow", parallel_count)
            print(
                f"10 ms async handler, 1,000 keys, concurrency 100: {rate:,.0f} msgs/s "
                f"= {rate / 100:.0f}x sequential (goal >= 5,000 msgs/s, 50x)"
            )
            for kind in ("reader", "flow"):
                p50, p99 = bench_latency(bootstrap, kind)
                print(
                    f"quiet topic, write (acks=all) to handler, {kind:>6}: "
                    f"p50 {p50:.1f} ms  p99 {p99:.1f} ms"
                )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
