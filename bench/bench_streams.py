"""kafkito.streams: a windowed count's throughput, its close latency, and state restore time.

    python bench/bench_streams.py --quick        # 100,000 events, 100,000 restore keys
    python bench/bench_streams.py                # the issue's run: 1,000,000 events over
                                                 # 10,000 keys, 1,000,000 restore keys
    python bench/bench_streams.py --exactly-once # the same with transactions

Against a kafkito broker in a child process (or `--brokers`):

1. `count`: EVENTS JSON events over KEYS keys, event times spread over 10 windows of 10 s,
   are written to a 4-partition topic first; a StreamsApp counts them per key in 10-second
   tumbling windows (`group_by().window(Tumbling(10_000)).count()`) into a result topic.
   Throughput is events / (time from the app's first record to the last input offset
   committed), so group join and start-up are left out.
2. `latency`: with the app caught up, one record per key far in event time closes every open
   window; the close latency is the time from writing that record to the last result read.
3. `restore`: a plain count over RESTORE_KEYS distinct keys fills a changelog; then an app
   with an empty state dir restores it; the time is the store's restore (all partitions).

quixstreams (the issue's comparison) is not run here yet: it needs its own virtual
environment (it pins an older confluent-kafka); see docs/streams.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kafkito.client import Admin
from kafkito.client.raw_consumer import RawConsumer, TopicPartition
from kafkito.client.raw_producer import RawProducer
from kafkito.streams import RestoreProgress, StreamsApp, Tumbling
from kafkito.testing.brokers import kafkito_process

PARTITIONS = 4
WINDOW_MS = 10_000


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def write(bootstrap: str, topic: str, count: int, keys: int, span_ms: int) -> None:
    producer = RawProducer(
        brokers=bootstrap, settings={"linger.ms": 20, "batch.num.messages": 10_000}
    )
    for i in range(count):
        key = f"key-{i % keys}"
        ts = i * span_ms // count
        producer.produce(topic, json.dumps({"ts": ts, "i": i}).encode(), key.encode())
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush()
    producer.close()


def committed(bootstrap: str, group: str, topic: str) -> int:
    consumer = RawConsumer(brokers=bootstrap, settings={"group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts))
    finally:
        consumer.close()


def count_records(bootstrap: str, topic: str, expect: int, timeout_s: float) -> float:
    """Read `topic` until `expect` records; returns when the last one arrived."""
    consumer = RawConsumer(
        brokers=bootstrap,
        settings={
            "group.id": f"bench-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        },
    )
    consumer.subscribe([topic])
    seen, last = 0, time.monotonic()
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expect and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is None:
                    seen += 1
                    last = time.monotonic()
    finally:
        consumer.close()
    if seen < expect:
        raise SystemExit(f"only {seen} of {expect} results in {topic}")
    return last


def bench_count(bootstrap: str, events: int, keys: int, exactly_once: bool, state: Path) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    admin = Admin(brokers=bootstrap)
    admin.create_topic(topic, PARTITIONS)
    admin.close()
    started = time.monotonic()
    span = 10 * WINDOW_MS
    write(bootstrap, topic, events, keys, span)
    print(f"  wrote {events:,} events in {time.monotonic() - started:.1f} s")
    app = StreamsApp(
        f"bench-{topic}", brokers=bootstrap, state_dir=state, exactly_once=exactly_once
    )
    windowed = app.stream(topic, timestamp=lambda v: v["ts"]).group_by().window(Tumbling(WINDOW_MS))
    windowed.count(name="counts").to(f"{topic}-out")
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    while app.processed == 0:
        time.sleep(0.01)
    first = time.monotonic()
    while committed(bootstrap, app.name, topic) < events:
        time.sleep(0.2)
    elapsed = time.monotonic() - first
    print(
        f"  count: {events:,} events over {keys:,} keys, 10-s tumbling windows "
        f"({'exactly-once' if exactly_once else 'at-least-once'}): {events / elapsed:,.0f} "
        f"events/s ({elapsed:.1f} s; {load()})"
    )
    # Close latency: one record per key past the last window's end + grace closes them all.
    closed_before = 9 * keys  # windows 0..8 closed while the 10th was being filled
    producer = RawProducer(brokers=bootstrap)
    sent = time.monotonic()
    for k in range(keys):
        ts = span + WINDOW_MS
        producer.produce(topic, json.dumps({"ts": ts}).encode(), f"key-{k}".encode())
    producer.flush()
    producer.close()
    last = count_records(bootstrap, f"{topic}-out", closed_before + keys, timeout_s=120)
    print(
        f"  close latency: the last of {keys:,} window results {1000 * (last - sent):,.0f} ms "
        f"after the records that closed them were written"
    )
    app.stop()
    thread.join(60)


def bench_restore(bootstrap: str, keys: int, state: Path) -> None:
    topic = f"keys-{uuid.uuid4().hex[:8]}"
    admin = Admin(brokers=bootstrap)
    admin.create_topic(topic, PARTITIONS)
    admin.close()
    write(bootstrap, topic, keys, keys, 1)
    name = f"bench-{topic}"

    def build(state_dir: Path, progress: list[RestoreProgress]) -> StreamsApp:
        app = StreamsApp(name, brokers=bootstrap, state_dir=state_dir, on_restore=progress.append)
        app.stream(topic).group_by().count(name="counts")
        return app

    app = build(state / "fill", [])
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    while committed(bootstrap, name, topic) < keys:
        time.sleep(0.2)
    app.stop()
    thread.join(120)
    progress: list[RestoreProgress] = []
    app = build(state / "empty", progress)
    thread = threading.Thread(target=app.run, daemon=True)
    started = time.monotonic()
    thread.start()
    while sum(1 for p in progress if p.done) < PARTITIONS:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    restored = sum(p.restored for p in progress if p.done)
    slowest = max(p.seconds for p in progress if p.done)
    app.stop()
    thread.join(60)
    print(
        f"  restore: {restored:,} keys from the changelog into an empty state dir in "
        f"{slowest:.2f} s ({elapsed:.2f} s from start, group join included; {load()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--restore-keys", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 events and restore keys")
    parser.add_argument("--exactly-once", action="store_true")
    parser.add_argument("--brokers", help="an existing cluster instead of a broker process")
    parser.add_argument("--only", default="count,restore")
    args = parser.parse_args()
    if args.quick:
        args.events, args.restore_keys = 100_000, 100_000
    with tempfile.TemporaryDirectory() as tmp:
        broker = None if args.brokers else kafkito_process(Path(tmp) / "data").start()
        bootstrap = args.brokers or (broker.bootstrap if broker else "")
        try:
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {bootstrap}; {load()}")
            if "count" in args.only:
                bench_count(bootstrap, args.events, args.keys, args.exactly_once, Path(tmp))
            if "restore" in args.only:
                bench_restore(bootstrap, args.restore_keys, Path(tmp))
        finally:
            if broker is not None:
                broker.stop()


if __name__ == "__main__":
    main()
