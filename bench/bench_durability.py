"""Durability cost and crash recovery of the kafkito broker (prints figures; asserts nothing).

1. Produce throughput and latency with durability=always (ack after group-commit fsync) and
   durability=interval (periodic fsync), one after the other, same workload: confluent-kafka,
   acks=all, linger.ms=5, 1 KiB values, one partition, for a fixed time each.
2. Recovery after an unclean stop: produce about 1 GB (durability=interval, large batches),
   SIGKILL the broker, then time the restart until it answers a Metadata request; a clean start
   of an empty broker is timed as the baseline (interpreter and import cost).

    python bench/bench_durability.py [--seconds 5] [--rounds 3] [--recovery-mb 1024] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from kafkito.storage.checkpoint import read_checkpoint
from kafkito.storage.fs import OsFileSystem
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.storage.recovery import RecoveryPlan
from kafkito.testing.brokers import BrokerProcess, kafkito_process

VALUE = b"v" * 1024


def _wait_metadata(bootstrap: str, timeout_s: float = 60.0) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=1)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise


def produce_for(bootstrap: str, topic: str, seconds: float, **extra: Any) -> dict[str, float]:
    """Produce 1 KiB values for `seconds`; returns msgs/s, MB/s, p50 and p99 latency in ms."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "queue.buffering.max.kbytes": 16 * 1024,
            **extra,
        }
    )
    latencies: list[float] = []
    errors = 0

    def delivered(sent_at: float) -> Any:
        def on_delivery(err: Any, _msg: Any) -> None:
            nonlocal errors
            if err is None:
                latencies.append(time.perf_counter() - sent_at)
            else:
                errors += 1

        return on_delivery

    # warm up: topic creation, first metadata
    producer.produce(topic, VALUE)
    producer.flush(30)
    start = time.perf_counter()
    end = start + seconds
    while (now := time.perf_counter()) < end:
        try:
            producer.produce(topic, VALUE, on_delivery=delivered(now))
        except BufferError:
            producer.poll(0.001)
            continue
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "msgs_s": len(latencies) / elapsed,
        "mb_s": len(latencies) * len(VALUE) / elapsed / 1e6,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


def bench_modes(base: Path, seconds: float, rounds: int) -> dict[str, dict[str, float]]:
    """Both brokers run side by side; rounds alternate so that a busy machine slows both alike.

    Each figure is the median over the rounds.
    """
    brokers = {
        mode: kafkito_process(base / f"data-{mode}", extra_args=["--durability", mode]).start()
        for mode in ("interval", "always")
    }
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in brokers}
    try:
        for broker in brokers.values():
            _wait_metadata(broker.bootstrap)
        for i in range(rounds):
            for mode, broker in brokers.items():
                runs[mode].append(produce_for(broker.bootstrap, f"bench-{mode}-{i}", seconds))
    finally:
        for broker in brokers.values():
            broker.stop()
    return {
        mode: {key: statistics.median(r[key] for r in results) for key in results[0]}
        for mode, results in runs.items()
    }


def _timed_start(broker: BrokerProcess) -> float:
    t0 = time.perf_counter()
    broker.start(timeout_s=120)
    _wait_metadata(broker.bootstrap)
    return time.perf_counter() - t0


def _time_open(data: Path, *, use_checkpoint: bool) -> float:
    """Seconds to open the partition log as an unclean start does (storage only, in-process)."""
    fs = OsFileSystem()
    log_dir = str(data / "logs")
    (directory,) = [p for p in (data / "logs").iterdir() if p.is_dir()]
    points = read_checkpoint(fs, log_dir) if use_checkpoint else {}
    t0 = time.perf_counter()
    plog = PartitionLog.open(
        fs, str(directory), "recovery", 0, LogConfig(), recovery=RecoveryPlan(False, points)
    )
    elapsed = time.perf_counter() - t0
    plog.close()
    return elapsed


def bench_recovery(base: Path, megabytes: int) -> dict[str, float]:
    empty = kafkito_process(base / "data-empty")
    baseline = _timed_start(empty)
    empty.stop()
    data = base / "data-recovery"
    broker = kafkito_process(data, extra_args=["--durability", "interval"]).start()
    _wait_metadata(broker.bootstrap)
    producer = Producer(
        {
            "bootstrap.servers": broker.bootstrap,
            "acks": 1,
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "queue.buffering.max.kbytes": 256 * 1024,
        }
    )
    big = b"r" * (16 * 1024)
    count = megabytes * 1024 * 1024 // len(big)
    t0 = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce("recovery", big)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(600)
    fill_s = time.perf_counter() - t0
    broker.kill()  # at once: up to a checkpoint interval (1 s) of writes lies past the point
    log_bytes = sum(f.stat().st_size for f in (data / "logs").rglob("*.log"))
    with_checkpoint = _time_open(data, use_checkpoint=True)
    full_scan = _time_open(data, use_checkpoint=False)
    recovery = _timed_start(broker)
    broker.stop()
    clean = _timed_start(broker)  # and a clean restart of the same 1 GB, for comparison
    broker.stop()
    shutil.rmtree(data, ignore_errors=True)
    return {
        "log_mb": log_bytes / 1e6,
        "storage_checkpoint_s": with_checkpoint,
        "storage_full_scan_s": full_scan,
        "fill_s": fill_s,
        "unclean_start_s": recovery,
        "clean_start_s": clean,
        "empty_start_s": baseline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recovery-mb", type=int, default=1024)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--skip-modes", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="kafkito-bench-dur-", dir=args.dir))
    try:
        if not args.skip_modes:
            print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            modes = bench_modes(base, args.seconds, args.rounds)
            print(
                f"produce, acks=all, linger.ms=5, 1 KiB values, {args.seconds:.0f} s x "
                f"{args.rounds} alternating rounds, medians"
            )
            print(
                f"{'durability':<11}{'msgs/s':>10}{'MB/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'err':>5}"
            )
            for mode, r in modes.items():
                print(
                    f"{mode:<11}{r['msgs_s']:>10.0f}{r['mb_s']:>8.1f}{r['p50_ms']:>9.1f}"
                    f"{r['p99_ms']:>9.1f}{r['errors']:>5.0f}"
                )
            ratio = modes["always"]["msgs_s"] / modes["interval"]["msgs_s"]
            print(f"always / interval throughput: {ratio:.2f} (cost {100 * (1 - ratio):.0f}%)")
        if args.recovery_mb:
            r = bench_recovery(base, args.recovery_mb)
            print(f"load average after: {os.getloadavg()[0]:.1f}")
            mb, fill = r["log_mb"], r["fill_s"]
            print(f"recovery of {mb:.0f} MB of log after SIGKILL (filled in {fill:.1f} s)")
            print(
                f"  storage, from the recovery-point checkpoint  {r['storage_checkpoint_s']:6.2f} s"
            )
            print(
                f"  storage, no checkpoint (full CRC scan)       {r['storage_full_scan_s']:6.2f} s"
            )
            print(f"  broker process start to first Metadata       {r['unclean_start_s']:6.2f} s")
            print(f"  same, clean start of the same log            {r['clean_start_s']:6.2f} s")
            print(f"  same, empty broker (interpreter, imports)    {r['empty_start_s']:6.2f} s")
    finally:
        shutil.rmtree(base, ignore_errors=True)  # broker logs live in there too


if __name__ == "__main__":
    main()
