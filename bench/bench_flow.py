"""Consume-flow overhead and parallelism, in one run against the embedded broker.

    python bench/bench_flow.py [--count 100000] [--rounds 3] [--quick] [--only noop,slow,...]
    python bench/bench_flow.py --setup-faststream    # FastStream's own venv, once
    python bench/bench_flow.py --only eos [--kafka]  # exactly once vs at-least-once

1. `noop`: raw `kafkito.Reader` with a no-op handler vs `kafkito.flow.Flow` with a no-op sync
   handler, same topic, same broker: the default ordering="key" (goal: >= 80% of the Reader)
   and ordering="partition"; and FastStream on its defaults (one async no-op subscriber,
   AckPolicy.ACK_FIRST) with its confluent and aiokafka backends (goal: the default flow >= 5x
   the better one). Each round reads the topic once with each, in turn, under a new group; the
   medians of the rounds are compared (the machines are noisy);
2. `slow`: a 10 ms async handler over 1,000 keys with concurrency 100 (goal: >= 5,000 msgs/s),
   beside FastStream with `max_workers=100` (goal: >= 2x the better backend);
3. `fewkeys`: the same handler over 10 keys (goal: >= 950 msgs/s, 95% of 10 x 100/s; with the
   default max_in_flight, 1,000, and with 5,000, which holds all 3,000 records) and over 1
   key (goal: >= 95 msgs/s), beside bare asyncio tasks that only sleep 10 ms in a loop (what
   this machine allows at the moment), started together and started apart as a flow's keys
   are (asyncio rounds each timer's wait up to a millisecond: `bench_bare_asyncio`); and the
   flow on uvloop's loop when uvloop is installed (the bench extra);
4. `latency` on a quiet topic: 50 records written one at a time, 20 per second, each timed from
   before its write (acks=all) to its handler (Reader and flow, p50 and p99);
5. `eos`: consume-transform-produce, one output per input (the handler returns an `Out`),
   at-least-once vs `exactly_once=True` (goal: exactly once >= 60% of at-least-once), both
   committing every 100 ms, timed from the first record handled until every offset is
   committed (with exactly once: outputs visible to read_committed). `--kafka` runs this
   section on a one-node Apache Kafka instead (kafkito.testing.ApacheKafka).
Throughput is measured from the first record handled to the last. FastStream runs in its own
virtual environment (`--faststream-venv`, made by `--setup-faststream`), as a child process
(bench/faststream_consumer.py), and reads at most 20,000 records of a topic; without the venv
its columns are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
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
from kafkito.flow import Flow, Out
from kafkito.testing.brokers import kafkito_process

FASTSTREAM = "faststream[confluent,kafka]==0.7.8"
FASTSTREAM_VENV = Path.home() / ".cache" / "kafkito" / "faststream-venv"
FASTSTREAM_MAX = 20_000
"""FastStream reads at most this many records of a topic (it is many times slower)."""


def setup_faststream(venv: Path) -> None:
    """FastStream and both its Kafka backends in a venv of their own (not the project's)."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", FASTSTREAM], check=True)


def bench_faststream(
    venv: Path, backend: str, bootstrap: str, topic: str, count: int, handler: str, workers: int
) -> float:
    """msgs/s, or NaN (and why, on stderr) if the run failed or took more than 120 s."""
    script = Path(__file__).with_name("faststream_consumer.py")
    args = [backend, bootstrap, topic, str(count), handler, str(workers)]
    try:
        out = subprocess.run(
            [str(venv / "bin" / "python"), str(script), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        tail = (exc.stderr or "")[-300:] if isinstance(exc.stderr, str) else ""
        print(f"FastStream {backend} {handler} failed: {exc}; {tail}", file=sys.stderr)
        return float("nan")
    return float(out.stdout.strip().splitlines()[-1])


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


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


def run_flow(
    flow: Flow, count: int, counter: list[int], first: list[float], uv: bool = False
) -> float:
    """msgs/s of `flow` until `count` records are handled; on uvloop's loop with `uv`."""
    loop = "uvloop" if uv else "asyncio"
    thread = threading.Thread(target=lambda: flow.run(loop=loop), daemon=True)
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


def bench_flow_async(
    bootstrap: str,
    topic: str,
    count: int,
    concurrency: int = 100,
    max_in_flight: int = 5000,
    uv: bool = False,
) -> float:
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
        concurrency=concurrency,
        max_in_flight=max_in_flight,
    )
    return run_flow(flow, count, counter, first, uv=uv)


def bench_bare_asyncio(keys: int, per_key: int, stagger_s: float = 0.0, uv: bool = False) -> float:
    """Tasks that only await 10 ms in a loop, one per key: the ceiling the machine allows.

    Started together (`stagger_s` 0), the tasks' timers fall due together, one wake-up for
    all. Keys of a flow start when their records arrive, so their timers fall due apart, and
    asyncio's selector rounds each wait up to the next millisecond (epoll's unit): every
    10 ms sleep lasts ~0.5 ms longer on average. `stagger_s` starts key i that much after
    key i-1, as a flow's keys are; `uv` runs the tasks on uvloop's loop instead."""

    async def key(delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for _ in range(per_key):
            await asyncio.sleep(0.010)

    async def main() -> float:
        began = time.perf_counter()
        await asyncio.gather(*(key(i * stagger_s) for i in range(keys)))
        return keys * per_key / (time.perf_counter() - began - (keys - 1) * stagger_s)

    if uv:
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


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


def median(values: list[float]) -> float:
    """The median of the runs that finished (NaN if none did)."""
    done = [v for v in values if v == v]
    return statistics.median(done) if done else float("nan")


def best_of(*values: float) -> float:
    """The highest of the figures that are not NaN (NaN if none)."""
    done = [v for v in values if v == v]
    return max(done) if done else float("nan")


def section_noop(bootstrap: str, count: int, rounds: int, venv: Path | None) -> None:
    for size in (100, 1024):
        topic = f"noop-{size}"
        fill(bootstrap, topic, count, size, keys=1000, partitions=4)
        runs: dict[str, list[float]] = {"reader": [], "key": [], "partition": []}
        if venv is not None:
            runs |= {"fs-confluent": [], "fs-aiokafka": []}
        fs_count = min(count, FASTSTREAM_MAX)
        for _ in range(rounds):
            runs["reader"].append(bench_reader(bootstrap, topic, count))
            runs["key"].append(bench_flow_noop(bootstrap, topic, count, "key"))
            runs["partition"].append(bench_flow_noop(bootstrap, topic, count))
            if venv is not None:
                for backend in ("confluent", "aiokafka"):
                    runs[f"fs-{backend}"].append(
                        bench_faststream(venv, backend, bootstrap, topic, fs_count, "noop", 1)
                    )
        reader, keyed, partition = (median(runs[k]) for k in ("reader", "key", "partition"))
        print(
            f"{size:>5} B  Reader {reader:>9,.0f} msgs/s   Flow(no-op, ordering=key) "
            f"{keyed:>9,.0f} msgs/s   ratio {keyed / reader:.2f} (goal >= 0.80)   "
            f"[ordering=partition: {partition:,.0f} msgs/s, {partition / reader:.2f}]   {load()}"
        )
        if venv is not None:
            best = best_of(median(runs["fs-confluent"]), median(runs["fs-aiokafka"]))
            print(
                f"         FastStream (defaults, async no-op, {fs_count:,} records): confluent "
                f"{median(runs['fs-confluent']):,.0f}, aiokafka {median(runs['fs-aiokafka']):,.0f}"
                f" msgs/s; flow / best = {keyed / best:.1f}x (goal >= 5x)"
            )
        for name, values in runs.items():
            print(f"      {name:>12}: " + "  ".join(f"{v:>9,.0f}" for v in values))


def section_slow(bootstrap: str, count: int, rounds: int, venv: Path | None) -> None:
    slow_count = min(count, 20_000)
    fill(bootstrap, "slow", slow_count, 100, keys=1000, partitions=4)
    runs: dict[str, list[float]] = {"flow": []}
    if venv is not None:
        runs |= {"fs-confluent": [], "fs-aiokafka": []}
    for _ in range(rounds):
        runs["flow"].append(bench_flow_async(bootstrap, "slow", slow_count))
        if venv is not None:
            for backend in ("confluent", "aiokafka"):
                runs[f"fs-{backend}"].append(
                    bench_faststream(venv, backend, bootstrap, "slow", slow_count, "sleep10", 100)
                )
    rate = median(runs["flow"])
    print(
        f"10 ms async handler, 1,000 keys, concurrency 100: {rate:,.0f} msgs/s "
        f"= {rate / 100:.0f}x sequential (goal >= 5,000 msgs/s, 50x)   {load()}"
    )
    if venv is not None:
        best = best_of(median(runs["fs-confluent"]), median(runs["fs-aiokafka"]))
        print(
            f"         FastStream max_workers=100: confluent {median(runs['fs-confluent']):,.0f}, "
            f"aiokafka {median(runs['fs-aiokafka']):,.0f} msgs/s; flow / best = "
            f"{rate / best:.1f}x (goal >= 2x)"
        )
    for name, values in runs.items():
        print(f"      {name:>12}: " + "  ".join(f"{v:>9,.0f}" for v in values))


def section_fewkeys(bootstrap: str, rounds: int) -> None:
    uvloop_installed = have_uvloop()
    for keys, count, goal, limit, uv in (
        (10, 3000, 950, 1000, False),
        (10, 3000, 950, 5000, False),
        (10, 3000, 950, 1000, True),
        (1, 300, 95, 1000, False),
    ):
        if uv and not uvloop_installed:
            print("      (uvloop not installed: no uvloop row; pip install 'kafkito[bench]')")
            continue
        topic = f"fewkeys-{keys}"
        if limit == 1000 and not uv:
            fill(bootstrap, topic, count, 100, keys=keys, partitions=4)
        flow: list[float] = []
        together: list[float] = []
        apart: list[float] = []
        for _ in range(rounds):
            flow.append(bench_flow_async(bootstrap, topic, count, max_in_flight=limit, uv=uv))
            together.append(bench_bare_asyncio(keys, count // keys, uv=uv))
            apart.append(bench_bare_asyncio(keys, count // keys, stagger_s=0.0023, uv=uv))
        loop = "uvloop" if uv else "asyncio"
        print(
            f"10 ms async handler, {keys:>2} key(s), concurrency 100, max_in_flight {limit:,}, "
            f"{loop}: {median(flow):,.0f} msgs/s (goal >= {goal}); bare {loop} tasks started "
            f"together {median(together):,.0f}, apart {median(apart):,.0f} msgs/s; flow / "
            f"apart {median(flow) / median(apart):.2f}   {load()}"
        )
        print("      flow: " + "  ".join(f"{v:,.0f}" for v in flow))


def bench_flow_transform(bootstrap: str, topic: str, count: int, exactly_once: bool) -> float:
    """msgs/s of a flow writing one output per input, until every offset is committed."""
    counter, first = [0], []
    out_topic = f"{topic}-out"

    def handle(value: bytes) -> Out:
        if not first:
            first.append(time.perf_counter())
        counter[0] += 1
        return Out(out_topic, value)

    flow = Flow(
        topic,
        handle,
        group_id=f"eos-{uuid.uuid4().hex[:6]}",
        brokers=bootstrap,
        concurrency=4,
        max_in_flight=5000,
        commit_interval_s=0.1,
        exactly_once=exactly_once,
        transactional_id=f"bench-{uuid.uuid4().hex[:6]}",
    )
    thread = threading.Thread(target=flow.run, daemon=True)
    thread.start()

    def committed() -> int:
        return sum(max(state.tracker.committed, 0) for state in list(flow._partitions.values()))

    deadline = time.monotonic() + 300
    while committed() < count and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed = time.perf_counter() - first[0]
    flow.stop()
    thread.join(30)
    return count / elapsed


def section_eos(bootstrap: str, count: int, rounds: int) -> None:
    for size in (100, 1024):
        topic = f"eos-{size}-{uuid.uuid4().hex[:4]}"
        fill(bootstrap, topic, count, size, keys=1000, partitions=4)
        create_topic(bootstrap, f"{topic}-out", 4)
        alo: list[float] = []
        eos: list[float] = []
        # untimed: Apache Kafka creates __transaction_state at the first transactional.id
        bench_flow_transform(bootstrap, topic, count, exactly_once=True)
        for _ in range(rounds):
            alo.append(bench_flow_transform(bootstrap, topic, count, exactly_once=False))
            eos.append(bench_flow_transform(bootstrap, topic, count, exactly_once=True))
        a, e = median(alo), median(eos)
        print(
            f"{size:>5} B  transform, at-least-once {a:>9,.0f} msgs/s   exactly_once "
            f"{e:>9,.0f} msgs/s   ratio {e / a:.2f} (goal >= 0.60)   {load()}"
        )
        print("      at-least-once: " + "  ".join(f"{v:>9,.0f}" for v in alo))
        print("       exactly_once: " + "  ".join(f"{v:>9,.0f}" for v in eos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 records, two rounds")
    parser.add_argument("--only", default="noop,slow,fewkeys,latency,eos")
    parser.add_argument("--faststream-venv", type=Path, default=FASTSTREAM_VENV)
    parser.add_argument("--setup-faststream", action="store_true")
    parser.add_argument(
        "--kafka", action="store_true", help="run the eos section on Apache Kafka (one node)"
    )
    args = parser.parse_args()
    if args.setup_faststream:
        setup_faststream(args.faststream_venv)
        return
    count = 20_000 if args.quick else args.count
    rounds = 2 if args.quick else args.rounds
    only = set(args.only.split(","))
    venv: Path | None = args.faststream_venv
    if venv is not None and not (venv / "bin" / "python").exists():
        print(f"no FastStream venv at {venv} (--setup-faststream): its columns are left out")
        venv = None
    if args.kafka:
        from kafkito.testing.apache_kafka import ApacheKafka

        with tempfile.TemporaryDirectory() as tmp, ApacheKafka(data_dir=Path(tmp)) as kafka:
            print(f"Apache Kafka on {kafka.bootstrap}; {count} records, {rounds} round(s)")
            section_eos(kafka.bootstrap, count, rounds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        broker = kafkito_process(Path(tmp) / "data").start()
        try:
            bootstrap = broker.bootstrap
            print(
                f"python {sys.version.split()[0]}, {os.cpu_count()} cores, kafkito broker on "
                f"{bootstrap}; {count} records, {rounds} round(s); {load()}"
            )
            if "noop" in only:
                section_noop(bootstrap, count, rounds, venv)
            if "slow" in only:
                section_slow(bootstrap, count, rounds, venv)
            if "fewkeys" in only:
                section_fewkeys(bootstrap, rounds)
            if "eos" in only:
                section_eos(bootstrap, count, rounds)
            if "latency" in only:
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
