"""Consume-flow overhead and parallelism, in one run against the embedded broker.

    python bench/bench_flow.py [--count 100000] [--quick]

1. raw `kafkito.Reader` with a no-op handler vs `kafkito.flow.Flow` with a no-op handler, same
   topic, same broker (goal: the flow at >= 80% of the Reader's throughput);
2. a 10 ms async handler over 1,000 keys with concurrency 100 (goal: >= 5,000 msgs/s, which is
   >= 50x the sequential rate of 100 msgs/s).
Throughput is measured from the first record handled to the last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkito.client import Reader
from kafkito.flow import Flow
from kafkito.testing.brokers import kafkito_process


def fill(bootstrap: str, topic: str, count: int, size: int, keys: int, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(15)
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


def bench_flow_noop(bootstrap: str, topic: str, count: int) -> float:
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
        ordering="partition",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 records")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.count
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
                reader = bench_reader(bootstrap, topic, count)
                flow = bench_flow_noop(bootstrap, topic, count)
                print(
                    f"{size:>5} B  Reader {reader:>10,.0f} msgs/s   Flow(no-op) {flow:>10,.0f} "
                    f"msgs/s   ratio {flow / reader:.2f} (goal >= 0.80)"
                )
            parallel_count = min(count, 20_000)
            fill(bootstrap, "slow", parallel_count, 100, keys=1000, partitions=4)
            rate = bench_flow_async(bootstrap, "slow", parallel_count)
            print(
                f"10 ms async handler, 1,000 keys, concurrency 100: {rate:,.0f} msgs/s "
                f"= {rate / 100:.0f}x sequential (goal >= 5,000 msgs/s, 50x)"
            )
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
