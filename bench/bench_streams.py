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

4. `quix`: the same count with quixstreams (`tumbling_window(10_000).count().final()`,
   commit interval 1 s like ours at-least-once) in its own virtual environment (it pins an
   older confluent-kafka; `--setup-quixstreams` makes it in ~/.cache/kafkito), as a child
   process (bench/quixstreams_windowed.py), on a topic of its own with the same events.
Throughput for both engines is measured from outside the same way: the group's committed
offsets, from its first commit to the commit of the last event.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
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


QUIX_VENV = Path.home() / ".cache" / "kafkito" / "quixstreams-venv"
QUIX = Path(__file__).with_name("quixstreams_windowed.py")


def setup_quixstreams(venv: Path) -> None:
    """quixstreams in a venv of its own (it pins an older confluent-kafka than kafkito)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "quixstreams"], check=True
    )


def progress_rate(bootstrap: str, group: str, topic: str, events: int, timeout_s: float) -> float:
    """Events/s between the group's first commit and the commit of the last event (the same
    outside view for every engine: start-up and group join are left out)."""
    deadline = time.monotonic() + timeout_s
    first_at, first = 0.0, 0
    while time.monotonic() < deadline:
        done = committed(bootstrap, group, topic)
        if done and not first_at:
            first_at, first = time.monotonic(), done
        if done >= events:
            elapsed = time.monotonic() - first_at
            return (events - first) / elapsed if elapsed > 0 else float("nan")
        time.sleep(0.1)
    raise SystemExit(f"{group}: not done in {timeout_s:.0f} s")


class Engine:
    """Starts and stops one windowed-count app on a topic."""

    name = ""

    def start(self, bootstrap: str, topic: str, group: str, state: Path) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def out_topic(self, topic: str) -> str:
        raise NotImplementedError


class Kafkito(Engine):
    def __init__(self, exactly_once: bool) -> None:
        self.exactly_once = exactly_once
        self.name = "kafkito.streams" + (" (exactly-once)" if exactly_once else "")

    def start(self, bootstrap: str, topic: str, group: str, state: Path) -> None:
        self.app = StreamsApp(
            group, brokers=bootstrap, state_dir=state, exactly_once=self.exactly_once
        )
        windowed = (
            self.app.stream(topic, timestamp=lambda v: v["ts"])
            .group_by()
            .window(Tumbling(WINDOW_MS))
        )
        windowed.count(name="counts").to(self.out_topic(topic))
        self.thread = threading.Thread(target=self.app.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.app.stop()
        self.thread.join(60)

    def out_topic(self, topic: str) -> str:
        return f"{topic}-out"


class Quix(Engine):
    name = "quixstreams"

    def __init__(self, venv: Path) -> None:
        self.venv = venv

    def start(self, bootstrap: str, topic: str, group: str, state: Path) -> None:
        python = str(self.venv / "bin" / "python")
        self.proc = subprocess.Popen([python, str(QUIX), bootstrap, topic, group, str(state)])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def out_topic(self, topic: str) -> str:
        return f"{topic}-quix-out"


def bench_count(bootstrap: str, engine: Engine, events: int, keys: int, state: Path) -> None:
    topic = f"events-{uuid.uuid4().hex[:8]}"
    admin = Admin(brokers=bootstrap)
    admin.create_topic(topic, PARTITIONS)
    admin.close()
    started = time.monotonic()
    span = 10 * WINDOW_MS
    write(bootstrap, topic, events, keys, span)
    print(f"  {engine.name}: wrote {events:,} events in {time.monotonic() - started:.1f} s")
    group = f"bench-{topic}"
    engine.start(bootstrap, topic, group, state / topic)
    try:
        rate = progress_rate(bootstrap, group, topic, events, timeout_s=3600)
        print(
            f"  {engine.name}: {events:,} events over {keys:,} keys, 10-s tumbling windows: "
            f"{rate:,.0f} events/s ({load()})"
        )
        # Close latency: one record per key past the last window's end closes them all.
        closed_before = 9 * keys  # windows 0..8 closed while the 10th was being filled
        producer = RawProducer(brokers=bootstrap)
        sent = time.monotonic()
        for k in range(keys):
            producer.produce(
                topic, json.dumps({"ts": span + WINDOW_MS}).encode(), f"key-{k}".encode()
            )
        producer.flush()
        producer.close()
        last = count_records(bootstrap, engine.out_topic(topic), closed_before + keys, 300)
        print(
            f"  {engine.name}: close latency {1000 * (last - sent):,.0f} ms from writing the "
            f"{keys:,} records that close the last windows to the last of their results"
        )
    finally:
        engine.stop()


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
    while len({p.partition for p in progress if p.done}) < PARTITIONS:
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    final = {p.partition: p for p in progress}  # the same object is reported many times
    restored = sum(p.restored for p in final.values())
    slowest = max(p.seconds for p in final.values())
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
    parser.add_argument("--only", default="count,quix,restore")
    parser.add_argument("--quix-venv", type=Path, default=QUIX_VENV)
    parser.add_argument("--setup-quixstreams", action="store_true")
    args = parser.parse_args()
    if args.setup_quixstreams:
        setup_quixstreams(args.quix_venv)
        return
    if args.quick:
        args.events, args.restore_keys = 100_000, 100_000
    with tempfile.TemporaryDirectory() as tmp:
        broker = None if args.brokers else kafkito_process(Path(tmp) / "data").start()
        bootstrap = args.brokers or (broker.bootstrap if broker else "")
        try:
            print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {bootstrap}; {load()}")
            if "count" in args.only:
                engine = Kafkito(args.exactly_once)
                bench_count(bootstrap, engine, args.events, args.keys, Path(tmp))
            if "quix" in args.only:
                if (args.quix_venv / "bin" / "python").exists():
                    bench_count(bootstrap, Quix(args.quix_venv), args.events, args.keys, Path(tmp))
                else:
                    print(
                        f"  quixstreams: skipped, no venv at {args.quix_venv} "
                        "(make it with --setup-quixstreams)"
                    )
            if "restore" in args.only:
                bench_restore(bootstrap, args.restore_keys, Path(tmp))
        finally:
            if broker is not None:
                broker.stop()


if __name__ == "__main__":
    main()
