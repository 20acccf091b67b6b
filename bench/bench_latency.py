"""End-to-end latency of the broker at a paced rate over several partitions, side by side.

    python bench/bench_latency.py --quick                  # kafkito of this tree, 10 s
    python bench/bench_latency.py --against /work/main/src # and another source tree, interleaved
    python bench/bench_latency.py --partitions 1 --rate 2000 --seconds 20 --rounds 3

The workload of issue #20: confluent-kafka, linger.ms=0, acks=all, a paced 2,000 msgs/s of
100-byte values that carry their send time, spread round-robin over 3 partitions, and a
consumer in another process (its own GIL) calling `poll()`; the figure is receive time minus
send time, p50/p99/max. Each broker is `python -m kafkito broker` with its defaults, so
durability=always: every acknowledgement, and every record a consumer may read, waits for an
fsync. Rounds are interleaved (A, B, A, B, ...) so that a busy machine slows both alike; the
load average is printed with the figures. `--variants` runs brokers of this tree with other
environments side by side, e.g. the event loop and the GIL switch interval
(kafkito.broker.loop):

    python bench/bench_latency.py --variants \
        "asyncio:KAFKITO_LOOP=asyncio;uvloop:KAFKITO_LOOP=uvloop;5ms:KAFKITO_SWITCH_INTERVAL_MS=5"

Also printed: the fsync latency of a 16 KiB write on the same disk (median, p99), the floor
under any durable acknowledgement; per round, the machine's busy share and the hypervisor's
steal (from /proc/stat, sampled every 20 ms during the round), and the p99 of the records sent
more than 50 ms from any stolen tick. On a shared virtual machine a round with a few percent of
steal says nothing about the broker: compare rounds under 1% (docs/benchmarks.md, "Steal").
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.testing.brokers import BrokerProcess, kafkito_process


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        if name in topics and not topics[name].error and len(topics[name].partitions) == partitions:
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {name} did not appear")


def _reader(bootstrap: str, topic: str, partitions: int, total: int, out: Queue[object]) -> None:
    """In its own process: receive time minus send time of every record."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"lat-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 500,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    latencies: list[tuple[int, float]] = []  # (send time ns, latency ms)
    warm: set[int] = set()
    deadline = time.monotonic() + 60 + total / 500
    while len(latencies) < total and time.monotonic() < deadline:
        msg = consumer.poll(0.2)
        now = time.time_ns()
        if msg is None or msg.error() is not None:
            continue
        sent = int(msg.value()[:20])
        if sent == 0:  # warm-up records, one per partition: connected and fetching
            warm.add(msg.partition())
            if len(warm) == partitions:
                out.put("ready")
        else:
            latencies.append((sent, (now - sent) / 1e6))
    consumer.close()
    out.put(latencies)


class Run(NamedTuple):
    """One latency run's figures, in ms; the last two leave out the records sent near a steal
    (`steal_ticks`: within STEAL_NEAR_S of a tick the hypervisor took from this machine)."""

    p50: float
    p99: float
    max: float
    p99_away_from_steal: float | None
    share_near_steal: float


STEAL_SAMPLE_S = 0.02
STEAL_NEAR_S = 0.05
"""/proc/stat counts steal in ticks of 10 ms per CPU; a record sent within 50 ms of a sample
interval in which a tick was stolen counts as near it."""


def steal_ticks(stop: threading.Event, out: list[tuple[int, int]]) -> None:
    """Sample the machine's stolen ticks every STEAL_SAMPLE_S: (time ns, ticks so far)."""
    while not stop.wait(STEAL_SAMPLE_S):
        out.append((time.time_ns(), machine_ticks()[7]))


def sent_away_from_steal(
    latencies: list[tuple[int, float]], samples: list[tuple[int, int]]
) -> list[float]:
    """The latencies of the records (send time ns, latency) sent more than STEAL_NEAR_S from
    any sample interval of `steal_ticks` in which a tick was stolen."""
    near = int(STEAL_NEAR_S * 1e9)
    windows = [
        (samples[i - 1][0] - near, at + near)
        for i, (at, ticks) in enumerate(samples)
        if i and ticks > samples[i - 1][1]
    ]
    return [lat for sent, lat in latencies if not any(a <= sent <= b for a, b in windows)]


def away_from_steal(
    latencies: list[tuple[int, float]], samples: list[tuple[int, int]]
) -> tuple[float | None, float]:
    """(p99 of the records sent away from any stolen tick, share of records near one)."""
    clean = sent_away_from_steal(latencies, samples)
    share = 1 - len(clean) / len(latencies)
    if len(clean) < 100:
        return None, share
    return statistics.quantiles(clean, n=100)[98], share


def latency_run(bootstrap: str, partitions: int, rate: int, seconds: float) -> Run:
    """Latency figures in ms for `rate` msgs/s over `partitions` partitions for `seconds`."""
    topic = f"lat-{uuid.uuid4().hex[:6]}"
    create_topic(bootstrap, topic, partitions)
    total = int(rate * seconds)
    ctx = multiprocessing.get_context("spawn")
    results: Queue[object] = ctx.Queue()
    reader = ctx.Process(target=_reader, args=(bootstrap, topic, partitions, total, results))
    reader.start()
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for p in range(partitions):
        producer.produce(topic, b"0".zfill(20) + b"x" * 80, partition=p)
    producer.flush(30)
    if results.get(timeout=60) != "ready":
        raise RuntimeError("latency reader did not start")
    time.sleep(0.5)
    interval = 1 / rate
    acks: list[float] = []
    stop = threading.Event()
    samples: list[tuple[int, int]] = []
    sampler = threading.Thread(target=steal_ticks, args=(stop, samples), daemon=True)
    sampler.start()

    def acked(err: object, msg: Any) -> None:
        if err is None:
            acks.append((time.time_ns() - int(msg.value()[:20])) / 1e6)

    start = time.perf_counter()
    for i in range(total):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        value = str(time.time_ns()).encode().zfill(20) + b"x" * 80
        producer.produce(topic, value, partition=i % partitions, on_delivery=acked)
        producer.poll(0)
    producer.flush(30)
    received = results.get(timeout=120 + seconds)
    stop.set()
    sampler.join()
    reader.join(10)
    assert isinstance(received, list)
    if len(received) < total:
        raise RuntimeError(f"only {len(received)} of {total} messages arrived")
    latencies = [lat for _, lat in received]
    cuts = statistics.quantiles(latencies, n=100)
    if acks:
        ack_cuts = statistics.quantiles(acks, n=100)
        print(
            f"    produce acknowledgement: p50 {statistics.median(acks):.2f} ms, "
            f"p99 {ack_cuts[98]:.2f} ms",
            file=sys.stderr,
        )
    clean_p99, near = away_from_steal(received, samples)
    return Run(statistics.median(latencies), cuts[98], max(latencies), clean_p99, near)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> list[int]:
    """The machine's CPU ticks so far, from /proc/stat's first line: user, nice, system,
    idle, iowait, irq, softirq, steal."""
    return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def steal_share(before: list[int], after: list[int]) -> tuple[float, float]:
    """(steal, busy) as shares of all CPU time between two `machine_ticks`: steal is time the
    hypervisor ran something else while this machine wanted a CPU (a virtual CPU stands
    still: every thread on it waits, whatever it is), busy is user + system time."""
    delta = [b - a for a, b in zip(before, after, strict=True)]
    total = sum(delta) or 1
    return delta[7] / total, (delta[0] + delta[1] + delta[2] + delta[5] + delta[6]) / total


def fsync_latency_ms(directory: Path, count: int = 200) -> tuple[float, float]:
    """(median, p99) of write 16 KiB + fsync on the disk under `directory`."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    block = os.urandom(16384)
    times = []
    try:
        for _ in range(count):
            os.write(fd, block)
            t = time.perf_counter()
            os.fsync(fd)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        os.close(fd)
        path.unlink()
    return statistics.median(times), statistics.quantiles(times, n=100)[98]


@contextlib.contextmanager
def broker(workdir: Path, source: str | None, env: dict[str, str]) -> Iterator[BrokerProcess]:
    """A kafkito broker child; `env` may hold ARGS, extra `kafkito broker` arguments."""
    env = dict(env)
    args = env.pop("ARGS", "").split()
    if source:
        env["PYTHONPATH"] = source
    proc = kafkito_process(workdir / f"data-{uuid.uuid4().hex[:6]}", env=env, extra_args=args)
    proc.start()
    try:
        AdminClient({"bootstrap.servers": proc.bootstrap}).list_topics(timeout=30)
        yield proc
    finally:
        proc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 10 s per broker")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000, help="msgs/s, paced")
    parser.add_argument("--seconds", type=float, default=20.0, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", help="another source tree (its src/) to run side by side")
    parser.add_argument(
        "--variants",
        default="default:",
        help="NAME:VAR=VALUE,VAR=VALUE;NAME:... brokers of this tree with these environments",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 10.0, 1
    here = str(Path(__file__).resolve().parent.parent / "src")
    variants: list[tuple[str, str, dict[str, str]]] = []
    for spec in filter(None, args.variants.split(";")):
        name, _, assignments = spec.partition(":")
        env = dict(a.split("=", 1) for a in assignments.split(",") if a)
        variants.append((name, here, env))
    if args.against:
        variants.append((args.against, args.against, {}))
    figures: dict[str, list[Run]] = {name: [] for name, _, _ in variants}
    cpu: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        fsync = fsync_latency_ms(workdir)
        with contextlib.ExitStack() as stack:
            brokers = {
                name: stack.enter_context(broker(workdir, source, env))
                for name, source, env in variants
            }
            for round_no in range(args.rounds):
                for name, proc in brokers.items():
                    assert proc.proc is not None
                    before = cpu_seconds(proc.proc.pid)
                    ticks = machine_ticks()
                    got = latency_run(proc.bootstrap, args.partitions, args.rate, args.seconds)
                    steal, busy = steal_share(ticks, machine_ticks())
                    used = cpu_seconds(proc.proc.pid) - before
                    figures[name].append(got)
                    # broker CPU per 1,000 records (topic creation and warm-up included)
                    cpu[name].append(used / (args.rate * args.seconds) * 1000 * 1000)
                    print(
                        f"  round {round_no + 1} {name}: p50 {got[0]:.2f} ms, "
                        f"p99 {got[1]:.2f} ms, max {got[2]:.1f} ms, "
                        f"broker CPU {cpu[name][-1]:.0f} ms per 1,000 records, "
                        f"machine busy {busy:.0%}, steal {steal:.1%}; p99 of the "
                        f"{1 - got.share_near_steal:.0%} of records sent away from steal: "
                        + (f"{got.p99_away_from_steal:.2f} ms" if got.p99_away_from_steal else "-"),
                        file=sys.stderr,
                    )
                    load.append(os.getloadavg()[0])
    print(
        f"\n{args.rate:,} msgs/s over {args.partitions} partitions, linger 0, acks=all, "
        f"durability=always; {args.rounds} round(s) of {args.seconds:.0f} s; "
        f"load average {min(load):.1f}-{max(load):.1f}; "
        f"fsync 16 KiB median {fsync[0]:.2f} ms, p99 {fsync[1]:.2f} ms\n"
    )
    print(
        "| broker | p50 ms | p99 ms | max ms | p99 of each round "
        "| p99 away from steal, each round | broker CPU ms / 1,000 records |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, runs in figures.items():
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        worst = max(r[2] for r in runs)
        each = ", ".join(f"{r[1]:.1f}" for r in runs)
        clean = ", ".join(
            f"{r.p99_away_from_steal:.1f} ({1 - r.share_near_steal:.0%})"
            if r.p99_away_from_steal is not None
            else "-"
            for r in runs
        )
        cpu_ms = statistics.median(cpu[name])
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {worst:.1f} | {each} | {clean} | {cpu_ms:.0f} |")


if __name__ == "__main__":
    main()
