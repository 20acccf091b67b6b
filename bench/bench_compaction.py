"""Log cleaner benchmark (issue #14): cleaner throughput, and produce p99 while it runs.

    python bench/bench_compaction.py                 # 1 GB of dirty log (takes minutes)
    python bench/bench_compaction.py --size 64       # a quick run, 64 MB

1. Throughput: a dirty compacted log of `--size` MB (keyed records of `--value-bytes`, over
   `--keys` keys, updated at random, in 64 MB segments) is written straight through
   PartitionLog on the real disk, fsynced, and cleaned once (storage.cleaner.clean_now, in this
   thread, unthrottled). Printed: MB of dirty log per second of cleaning (map pass and rewrite
   together), bytes in and out, records removed.
2. Produce latency: an embedded broker; a topic filled with `--size` MB through confluent-kafka
   (segments of size/8) while its cleanup.policy is `delete`, then switched to `compact`
   (IncrementalAlterConfigs), so the broker's cleaner starts. Synchronous produces (acks=all,
   one at a time) of 100-byte records to another topic are timed while the cleaner is idle
   (5,000 before the pass and 5,000 after it, pooled), then while it cleans. Printed: p50/p99
   of each, and their ratio (issue #14's goal: at most 20% worse), also over the probes sent
   away from the hypervisor's steal (bench_latency's sampling). `--rate` throttles the cleaner
   (log_cleaner_io_max_bytes_per_second).
   `--priorities` runs it once per scheduling of the cleaner's child process, side by side
   (default "idle,normal": SCHED_IDLE, the default, against the broker's own priority; add
   "thread" for the cleaner in a worker thread), `--rounds` times, alternating:

       python bench/bench_compaction.py --size 64 --skip-throughput --rounds 3
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_latency import machine_ticks, sent_away_from_steal, steal_share, steal_ticks
from confluent_kafka import Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)

from kafkito import Broker
from kafkito.protocol.records import build_batch, read_batch_header
from kafkito.storage.cleaner import CleanerState, Throttler, clean_now
from kafkito.storage.cleaner_process import PRIORITY_ENV
from kafkito.storage.fs import OsFileSystem
from kafkito.storage.log import LogConfig, PartitionLog

MB = 1 << 20


def throughput(size_mb: int, keys: int, value_bytes: int, rate: float) -> None:
    rng = random.Random(1)
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp:
        fs = OsFileSystem()
        config = LogConfig(segment_bytes=64 * MB, cleanup_compact=True, cleanup_delete=False)
        plog = PartitionLog.open(fs, f"{tmp}/t-0.x", "t", 0, config)
        value = b"v" * value_bytes
        per_batch = max(1, 16384 // (value_bytes + 20))
        t0 = time.perf_counter()
        while plog.size_bytes < size_mb * MB:
            records = [(f"key-{rng.randrange(keys)}".encode(), value) for _ in range(per_batch)]
            batch = bytearray(build_batch(records, base_timestamp=int(time.time() * 1000)))
            plog.append(batch, read_batch_header(batch))
        plog.roll()
        plog.flush()
        plog.mark_durable(plog.log_end_offset)
        fill_s = time.perf_counter() - t0
        dirty = plog.size_bytes
        t0 = time.perf_counter()
        result = clean_now(
            fs, plog, CleanerState(), int(time.time() * 1000), force=True, throttler=Throttler(rate)
        )
        clean_s = time.perf_counter() - t0
        assert result is not None and result.error is None, result
        print(f"dirty log: {dirty / MB:.0f} MB, {plog.log_end_offset:,} records over {keys:,} keys")
        print(f"  written in {fill_s:.1f} s")
        print(
            f"cleaner: {dirty / MB / clean_s:.1f} MB/s of dirty log ({clean_s:.1f} s); "
            f"read {result.bytes_read / MB:.0f} MB (map + rewrite), "
            f"wrote {result.bytes_written / MB:.1f} MB, "
            f"removed {result.records_removed:,} of {result.records_read:,} records"
        )
        plog.close()


class Probes:
    """Synchronous produce latencies (ms) with their send times, and the hypervisor's steal
    sampled meanwhile (bench_latency.steal_ticks): a probe near a stolen tick says nothing
    about the cleaner."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, float]] = []
        self.steal: list[tuple[int, int]] = []
        self.ticks: tuple[list[int], list[int]] = ([], [])

    @property
    def values(self) -> list[float]:
        return [latency for _, latency in self.sent]

    def away_from_steal(self) -> list[float]:
        """The latencies of the probes sent away from any stolen tick."""
        return sent_away_from_steal(self.sent, self.steal)

    def steal_share(self) -> float:
        return steal_share(*self.ticks)[0]


def _latencies(producer: Producer, topic: str, count: int, until: object = None) -> Probes:
    probes = Probes()
    stop = threading.Event()
    sampler = threading.Thread(target=steal_ticks, args=(stop, probes.steal), daemon=True)
    before = machine_ticks()
    sampler.start()
    try:
        for _ in range(count):
            if callable(until) and until():
                break
            sent = time.time_ns()
            t0 = time.perf_counter()
            producer.produce(topic, key=b"k", value=b"x" * 100)
            producer.flush(30)
            probes.sent.append((sent, (time.perf_counter() - t0) * 1000))
    finally:
        stop.set()
        sampler.join()
    probes.ticks = (before, machine_ticks())
    return probes


IDLE_PROBES = 5000
"""Probes with the cleaner idle, before the pass and again after it: 10,000 in all, so that
the baseline's p99 rests on about as many probes as the pass's (a 1 GB pass takes ~20,000),
and drift over the run shows as a difference between the two."""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def produce_latency(
    size_mb: int, keys: int, value_bytes: int, rate: float, *, in_process: bool
) -> None:
    print(f"-- the cleaner in a {'child process' if in_process else 'worker thread'}")
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp:
        broker = Broker(
            port=0,
            data_dir=str(Path(tmp) / "data"),
            log_cleaner_backoff_ms=100,
            log_cleaner_io_max_bytes_per_second=rate,
            log_cleaner_in_process=in_process,
        )
        with broker as bootstrap:
            admin = AdminClient({"bootstrap.servers": bootstrap})
            topics = [
                NewTopic("dirty", 1, 1, config={"segment.bytes": str(max(MB, size_mb * MB // 8))}),
                NewTopic("probe", 1, 1),
            ]
            for future in admin.create_topics(topics).values():
                future.result(30)
            fill = Producer(
                {"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20}
            )
            rng = random.Random(2)
            value = b"v" * value_bytes
            t0 = time.perf_counter()
            for _ in range(size_mb * MB // (value_bytes + 20)):
                while True:
                    try:
                        fill.produce(
                            "dirty", key=f"key-{rng.randrange(keys)}".encode(), value=value
                        )
                        break
                    except BufferError:
                        fill.poll(0.05)
            fill.flush(120)
            fill.produce("dirty", key=b"roll", value=b"x")  # seals the last full segment
            fill.flush(30)
            print(f"filled {size_mb} MB through the broker in {time.perf_counter() - t0:.1f} s")
            probe = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
            _latencies(probe, "probe", 200)  # warm-up
            before = _latencies(probe, "probe", IDLE_PROBES)
            core = broker.core
            assert core is not None
            plog = core.topics.partition("dirty", 0)
            assert plog is not None
            resource = ConfigResource("topic", "dirty")
            resource.add_incremental_config(
                ConfigEntry(
                    "cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET
                )
            )
            for future in admin.incremental_alter_configs([resource]).values():
                future.result(30)
            deadline = time.monotonic() + 60
            while not plog.cleaning and time.monotonic() < deadline:
                time.sleep(0.005)
            if not plog.cleaning:
                segments = [(x.base_offset, x.next_offset, x.size) for x in plog.segments]
                print(f"the cleaner did not start within 60 s: {segments}", file=sys.stderr)
                return
            t0 = time.perf_counter()
            busy = _latencies(probe, "probe", 10**9, until=lambda: not plog.cleaning)
            busy_s = time.perf_counter() - t0
            while plog.cleaning:
                time.sleep(0.01)
            after = _latencies(probe, "probe", IDLE_PROBES)
        idle = Probes()  # the baseline: idle before and after the pass, pooled
        idle.sent = before.sent + after.sent
        idle.steal = before.steal + after.steal
        idle.ticks = (
            [0] * len(before.ticks[0]),
            [b1 - b0 + a1 - a0 for b0, b1, a0, a1 in zip(*before.ticks, *after.ticks, strict=True)],
        )
        print(f"cleaner pass on the broker: ~{busy_s:.1f} s ({len(busy.sent)} probes during it)")
        print(
            f"idle p99 before the pass {_pct(before.values, 0.99):.2f} ms, "
            f"after it {_pct(after.values, 0.99):.2f} ms"
        )
        for name, probes in (("idle", idle), ("cleaning", busy)):
            values, clean = probes.values, probes.away_from_steal()
            print(
                f"produce {name:>8}: p50 {statistics.median(values):.2f} ms, "
                f"p99 {_pct(values, 0.99):.2f} ms ({len(values)} samples); "
                f"steal {probes.steal_share():.1%} of CPU time, p99 away from it "
                + (f"{_pct(clean, 0.99):.2f} ms ({len(clean)})" if len(clean) >= 100 else "-")
            )
        if busy.sent:
            ratio = _pct(busy.values, 0.99) / _pct(idle.values, 0.99)
            idle_clean, busy_clean = idle.away_from_steal(), busy.away_from_steal()
            clean_ratio = (
                f"{_pct(busy_clean, 0.99) / _pct(idle_clean, 0.99):.2f}"
                if min(len(idle_clean), len(busy_clean)) >= 100
                else "-"
            )
            first = _pct(busy.values, 0.99) / _pct(before.values, 0.99)
            print(
                f"p99 ratio cleaning/idle: {ratio:.2f}, away from steal {clean_ratio} (goal <= 1.2)"
                f"; against the idle probes before the pass only: {first:.2f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="dirty log in MB (default 1024)")
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--value-bytes", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=math.inf, help="cleaner I/O bytes/s (default unthrottled)"
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--priorities",
        default="idle,normal",
        help="the cleaner child's scheduling, side by side (KAFKITO_CLEANER_PRIORITY: "
        "idle, batch, normal); 'thread' runs the cleaner in a worker thread instead",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds of each")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(args.size, args.keys, args.value_bytes, args.rate)
    if not args.skip_latency:
        print(f"load average {os.getloadavg()[0]:.1f}")
        for _ in range(args.rounds):
            for priority in args.priorities.split(","):  # side by side, alternating
                os.environ[PRIORITY_ENV] = priority if priority != "thread" else "normal"
                print(f"-- priority {priority}, load average {os.getloadavg()[0]:.1f}")
                produce_latency(
                    args.size,
                    args.keys,
                    args.value_bytes,
                    args.rate,
                    in_process=priority != "thread",
                )


if __name__ == "__main__":
    main()
