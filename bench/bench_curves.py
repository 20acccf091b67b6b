"""Cost curves of kafkito's broker: how throughput, latency, memory and start time grow with
its work (partitions, connections, consumers in one group, retained data).

    python bench/bench_curves.py                       # every curve, small sizes (~5 minutes)
    python bench/bench_curves.py --only partitions --partitions 1,10,100,1000,10000
    python bench/bench_curves.py --only retained --retained-gb 1,5,20   # ~20 GB of disk
    python bench/bench_curves.py --png curves.png      # the chart (matplotlib, bench extra)

Each point runs against a fresh `python -m kafkito broker` child with its defaults
(durability=always) and the confluent-kafka client:

* partitions (1, 10, 100, 1,000; 10,000 on request): time to create the topic, Metadata
  answer time for it (raw request, median of 5), produce throughput (100 B, acks=all,
  linger 5 ms, records spread over every partition), consume throughput (all partitions
  assigned), end-to-end p99 at a paced 1,000 msgs/s spread over the partitions, RSS idle and
  after the load, start time to the first Metadata answer after a clean stop;
* connections (1, 10, 100, 1,000 idle raw connections, each having sent ApiVersions): produce
  throughput and end-to-end p99 of one more client meanwhile, RSS;
* consumers in one group (1, 5, 10, 25, 50 confluent-kafka consumers, one thread each, on a
  50-partition topic holding 100,000 records): time until every partition is assigned, time
  for the group to read every record, RSS;
* retained data (1 GB by default; `--retained-gb` asks for more): the start time after a clean
  stop and after a kill -9 (recovery), RSS after start, and the time to the first record and
  throughput of a consumer reading from the oldest offset.

It prints one Markdown table per curve, with the load average, and draws them into one PNG.
Nothing here asserts a speed; figures go to docs/benchmarks.md with the command used.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench_latency import latency_run
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.testing.brokers import BrokerProcess, kafkito_process
from kafkito.testing.wire import WireClient

VALUE = b"x" * 100


@dataclass
class Curve:
    """One curve: the x values and, per measured figure, the y values (None: not measured)."""

    name: str
    x_label: str
    xs: list[int] = field(default_factory=list)
    ys: dict[str, list[float | None]] = field(default_factory=dict)

    def add(self, x: int, figures: dict[str, float | None]) -> None:
        self.xs.append(x)
        for key, value in figures.items():
            self.ys.setdefault(key, [None] * (len(self.xs) - 1)).append(value)
        for values in self.ys.values():
            values.extend([None] * (len(self.xs) - len(values)))
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items())
        print(f"  {self.name} {x:,}: {shown} (load {os.getloadavg()[0]:.1f})", file=sys.stderr)

    def table(self) -> str:
        keys = list(self.ys)
        lines = [f"| {self.x_label} | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for i, x in enumerate(self.xs):
            lines.append(f"| {x:,} | " + " | ".join(_fmt(self.ys[k][i]) for k in keys) + " |")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pid_of(proc: BrokerProcess) -> int:
    assert proc.proc is not None
    return proc.proc.pid


def metadata_request(bootstrap: str, topic: str | None) -> float:
    """Seconds for one Metadata v9 round trip (for `topic`, or all topics), on a new socket."""
    body = {
        "topics": None if topic is None else [{"name": topic}],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": False,
    }
    with WireClient(bootstrap, timeout_s=60) as client:
        start = time.perf_counter()
        client.request(3, 9, body)
        return time.perf_counter() - start


def wait_for_metadata(bootstrap: str, started: float, timeout_s: float = 300) -> float:
    """Seconds from `started` (time.monotonic) until the broker answers Metadata."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            metadata_request(bootstrap, None)
            return time.monotonic() - started
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("the broker did not answer Metadata")


@contextlib.contextmanager
def broker(data_dir: Path, *args: str) -> Iterator[BrokerProcess]:
    proc = kafkito_process(data_dir, extra_args=list(args))
    proc.start(timeout_s=300)
    try:
        wait_for_metadata(proc.bootstrap, time.monotonic())
        yield proc
    finally:
        proc.stop(timeout_s=120)


def restart_time(proc: BrokerProcess, *, kill: bool = False) -> float:
    """Stop (cleanly, or with SIGKILL) and start again; seconds to the first Metadata answer."""
    if kill:
        proc.kill()
    else:
        proc.stop(timeout_s=120)
    started = time.monotonic()
    proc.start(timeout_s=300)
    return wait_for_metadata(proc.bootstrap, started)


def create_topic(bootstrap: str, name: str, partitions: int) -> float:
    """Create the topic; seconds until Metadata lists every partition."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    start = time.perf_counter()
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[
        name
    ].result(600)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        topics = admin.list_topics(topic=name, timeout=60).topics
        if name in topics and len(topics[name].partitions) == partitions:
            return time.perf_counter() - start
        time.sleep(0.05)
    raise RuntimeError(f"topic {name} did not appear")


def produce(bootstrap: str, topic: str, partitions: int, count: int, size: int = 100) -> float:
    """msgs/s for `count` records of `size` bytes spread over `partitions` (acks=all)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
            "batch.size": 1_000_000,
        }
    )
    value = b"x" * size
    failed = 0

    def delivered(err: object, _msg: object) -> None:
        nonlocal failed
        failed += err is not None

    start = time.perf_counter()
    for i in range(count):
        while True:
            try:
                producer.produce(topic, value, partition=i % partitions, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.001)
    left = producer.flush(600)
    elapsed = time.perf_counter() - start
    if left or failed:
        raise RuntimeError(f"{left} undelivered, {failed} failed")
    return count / elapsed


def consume(bootstrap: str, topic: str, partitions: int, count: int) -> tuple[float, float]:
    """(seconds to the first record, msgs/s after it) reading `count` records from offset 0."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"curve-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            # librdkafka pauses fetching for fetch.queue.backoff.ms (1 s) once its queue holds
            # queued.min.messages: at 100 B that, not the broker, bounds a default consumer.
            "fetch.queue.backoff.ms": 10,
        }
    )
    start = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen, first = 0, 0.0
    deadline = time.monotonic() + 600
    try:
        while seen < count and time.monotonic() < deadline:
            for msg in consumer.consume(min(10_000, count - seen), 1.0):
                if msg.error() is not None:
                    continue
                if seen == 0:
                    first = time.perf_counter()
                seen += 1
    finally:
        consumer.close()
    if seen < count:
        raise RuntimeError(f"read {seen} of {count} records")
    return first - start, (seen - 1) / max(time.perf_counter() - first, 1e-9)


def partitions_curve(workdir: Path, counts: list[int], records: int, latency_s: float) -> Curve:
    curve = Curve("partitions", "partitions")
    for count in counts:
        with broker(workdir / f"p{count}") as proc:
            topic = "curve"
            create_s = create_topic(proc.bootstrap, topic, count)
            time.sleep(1)
            idle = rss_mb(pid_of(proc))
            meta_ms = statistics.median(
                metadata_request(proc.bootstrap, topic) * 1000 for _ in range(5)
            )
            n = max(records, count * 10)
            produce_rate = produce(proc.bootstrap, topic, count, n)
            _, consume_rate = consume(proc.bootstrap, topic, count, n)
            p99 = latency_run(proc.bootstrap, count, 1000, latency_s)[1] if latency_s else None
            loaded = rss_mb(pid_of(proc))
            start_s = restart_time(proc)
            curve.add(
                count,
                {
                    "create s": create_s,
                    "Metadata ms": meta_ms,
                    "produce msgs/s": produce_rate,
                    "consume msgs/s": consume_rate,
                    "e2e p99 ms @1,000/s": p99,
                    "RSS idle MB": idle,
                    "RSS loaded MB": loaded,
                    "start s": start_s,
                    "RSS after start MB": rss_mb(pid_of(proc)),
                },
            )
    return curve


def idle_connections(bootstrap: str, count: int) -> list[WireClient]:
    """`count` raw connections that each sent ApiVersions and then stay idle."""
    clients = []
    for _ in range(count):
        client = WireClient(bootstrap, timeout_s=30)
        client.request(18, 3, {"client_software_name": "curve", "client_software_version": "1"})
        clients.append(client)
    return clients


def connections_curve(workdir: Path, counts: list[int], records: int, latency_s: float) -> Curve:
    curve = Curve("connections", "idle connections")
    # All from 127.0.0.1: the per-address cap (1,000 by default) must not refuse them.
    with broker(workdir / "connections", "--max-connections-per-ip", "5000") as proc:
        base = rss_mb(pid_of(proc))
        for count in counts:
            clients = idle_connections(proc.bootstrap, count)
            try:
                topic = f"c{count}"
                create_topic(proc.bootstrap, topic, 3)
                rate = produce(proc.bootstrap, topic, 3, records)
                p99 = latency_run(proc.bootstrap, 3, 1000, latency_s)[1] if latency_s else None
                rss = rss_mb(pid_of(proc))
                curve.add(
                    count,
                    {
                        "produce msgs/s": rate,
                        "e2e p99 ms @1,000/s": p99,
                        "RSS MB": rss,
                        "RSS per connection KB": (rss - base) * 1024 / count,
                    },
                )
            finally:
                for client in clients:
                    client.close()
            time.sleep(0.5)
    return curve


def group_read(bootstrap: str, topic: str, members: int, total: int) -> tuple[float, float]:
    """(seconds until every partition is assigned, seconds until all records are read) for
    `members` consumers of one group, each in its own thread."""
    group = f"g-{uuid.uuid4().hex[:6]}"
    lock = threading.Lock()
    seen = [0]
    assigned: dict[int, int] = {}
    stop = threading.Event()
    start = time.perf_counter()
    times: dict[str, float] = {}

    def member(i: int) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "fetch.queue.backoff.ms": 10,
            }
        )

        def on_assign(c: object, parts: list[TopicPartition]) -> None:
            with lock:
                assigned[i] = len(parts)

        consumer.subscribe([topic], on_assign=on_assign)
        try:
            while not stop.is_set():
                msgs = consumer.consume(1000, 0.2)
                with lock:
                    if sum(assigned.values()) >= 50 and "assigned" not in times:
                        times["assigned"] = time.perf_counter() - start
                    seen[0] += sum(1 for m in msgs if m.error() is None)
                    if seen[0] >= total:
                        times.setdefault("read", time.perf_counter() - start)
                        stop.set()
        finally:
            consumer.close()

    threads = [threading.Thread(target=member, args=(i,), daemon=True) for i in range(members)]
    for thread in threads:
        thread.start()
    stop.wait(300)
    stop.set()
    for thread in threads:
        thread.join(60)
    if "read" not in times:
        raise RuntimeError(f"{members} members read {seen[0]} of {total} records")
    return times.get("assigned", float("nan")), times["read"]


def consumers_curve(workdir: Path, counts: list[int], records: int) -> Curve:
    curve = Curve("consumers", "consumers in one group")
    with broker(workdir / "groups") as proc:
        topic = "grouped"
        create_topic(proc.bootstrap, topic, 50)
        produce(proc.bootstrap, topic, 50, records)
        for count in counts:
            assigned_s, read_s = group_read(proc.bootstrap, topic, count, records)
            curve.add(
                count,
                {
                    "all assigned s": assigned_s,
                    "all read s": read_s,
                    "group msgs/s": records / read_s,
                    "RSS MB": rss_mb(pid_of(proc)),
                },
            )
    return curve


def retained_curve(workdir: Path, sizes_gb: list[float]) -> Curve:
    curve = Curve("retained", "retained MB")
    with broker(workdir / "retained") as proc:
        topic = "retained"
        create_topic(proc.bootstrap, topic, 1)
        written, records = 0.0, 0
        for gb in sizes_gb:
            count = int((gb - written) * 1e9 / 1024)
            rate = produce(proc.bootstrap, topic, 1, count, size=1024) if count > 0 else 0.0
            written, records = gb, records + max(count, 0)
            clean_s = restart_time(proc)
            rss = rss_mb(pid_of(proc))
            killed_s = restart_time(proc, kill=True)
            first_s, consume_rate = consume(proc.bootstrap, topic, 1, min(200_000, records))
            curve.add(
                int(gb * 1000),
                {
                    "produce msgs/s (1 KiB)": rate,
                    "start after clean stop s": clean_s,
                    "start after kill -9 s": killed_s,
                    "RSS after start MB": rss,
                    "first record from oldest s": first_s,
                    "consume from oldest msgs/s": consume_rate,
                },
            )
    return curve


def draw(curves: list[Curve], path: Path) -> None:
    """One row of panels per curve: throughput, latency/time, memory (log-scaled x)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: list[tuple[str, Callable[[str], bool]]] = [
        ("throughput, msgs/s", lambda k: "msgs/s" in k),
        ("time (s) or latency (ms), log scale", lambda k: "msgs/s" not in k and "MB" not in k),
        ("memory, MB", lambda k: "MB" in k and "KB" not in k),
    ]
    fig, axes = plt.subplots(len(curves), 3, figsize=(15, 4 * len(curves)), squeeze=False)
    for row, curve in zip(axes, curves, strict=True):
        for ax, (title, wanted) in zip(row, groups, strict=True):
            for key, values in curve.ys.items():
                points = [(x, y) for x, y in zip(curve.xs, values, strict=True) if y is not None]
                if wanted(key) and points:
                    ax.plot(*zip(*points, strict=True), marker="o", label=key)
            ax.set_xscale("log" if max(curve.xs) / max(min(curve.xs), 1) >= 50 else "linear")
            if title.startswith("time") and ax.get_legend_handles_labels()[0]:
                ax.set_yscale("log")
            ax.set_xlabel(curve.x_label)
            ax.set_title(f"{curve.name}: {title}")
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"chart: {path}", file=sys.stderr)


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated: partitions,connections,consumers,retained")
    parser.add_argument("--partitions", default="1,10,100,1000", help="partition counts")
    parser.add_argument("--connections", default="1,10,100,1000", help="idle connections")
    parser.add_argument("--consumers", default="1,5,10,25,50", help="members of one group")
    parser.add_argument("--retained-gb", default="1", help="retained data sizes, GB")
    parser.add_argument("--records", type=int, default=200_000, help="records per throughput run")
    parser.add_argument("--latency-seconds", type=float, default=3.0, help="0: skip the p99")
    parser.add_argument("--png", default="bench_curves.png", help="where to draw the chart")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else {"partitions", "connections", "consumers"}
    if not args.only:
        only.add("retained")
    load = [os.getloadavg()[0]]
    curves: list[Curve] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-curves-") as tmp:
        workdir = Path(tmp)
        if "partitions" in only:
            curves.append(
                partitions_curve(
                    workdir, _ints(args.partitions), args.records, args.latency_seconds
                )
            )
            load.append(os.getloadavg()[0])
        if "connections" in only:
            curves.append(
                connections_curve(
                    workdir, _ints(args.connections), args.records, args.latency_seconds
                )
            )
            load.append(os.getloadavg()[0])
        if "consumers" in only:
            curves.append(consumers_curve(workdir, _ints(args.consumers), 100_000))
            load.append(os.getloadavg()[0])
        if "retained" in only:
            sizes = [float(x) for x in args.retained_gb.split(",") if x]
            curves.append(retained_curve(workdir, sizes))
            load.append(os.getloadavg()[0])
    print(
        f"\nkafkito broker cost curves ({time.monotonic() - started:.0f} s; "
        f"load average {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs)\n"
    )
    for curve in curves:
        print(f"### {curve.name}\n\n{curve.table()}\n")
    if curves and args.png:
        draw(curves, Path(args.png))


if __name__ == "__main__":
    main()
