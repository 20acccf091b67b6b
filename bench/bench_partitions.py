"""The 10,000-partition goals of issue #20, on one broker: creation, Metadata, memory, start.

    python bench/bench_partitions.py                    # 10,000 partitions (~1-2 minutes)
    python bench/bench_partitions.py --partitions 1000 --against /work/main/src

A fresh `python -m kafkito broker` child (its defaults: durability=always) gets one topic of
`--partitions` partitions (CreateTopics through confluent-kafka). Printed, with the load
average: the creation time (until Metadata lists every partition), how long a Metadata request
for another name took meanwhile (median and max of probes every 50 ms: the event loop's
responsiveness while the partitions are made), open descriptors and idle RSS after it, the
Metadata answer time for the topic (raw v9 request, each of 5), then the start time after a
clean stop (to the first answered Metadata; each of `--starts`) and RSS after the start. Before
the starts, one record goes into every partition and the clean stop that follows is timed
(SIGTERM to exit: every log flushed, every producer-state snapshot written).
Issue #20's goals: Metadata under 100 ms, idle RSS under 300 MB, start under 3 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench_curves import create_topic, metadata_request, restart_time, rss_mb, wait_for_metadata
from confluent_kafka import Producer

from kafkito.testing.brokers import BrokerProcess, kafkito_process


def run(partitions: int, source: str | None, starts: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-partitions-"))
    env = {"PYTHONPATH": source} if source else None
    proc = kafkito_process(workdir / "data", env=env)
    proc.start(timeout_s=120)
    try:
        wait_for_metadata(proc.bootstrap, time.monotonic())
        assert proc.proc is not None
        probes: list[float] = []
        stop = threading.Event()

        def probe() -> None:
            while not stop.is_set():
                probes.append(metadata_request(proc.bootstrap, "no-such-topic") * 1000)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            create_s = create_topic(proc.bootstrap, "wide", partitions)
        finally:
            stop.set()
            prober.join()
        time.sleep(2)
        pid = proc.proc.pid
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        idle = rss_mb(pid)
        meta = [metadata_request(proc.bootstrap, "wide") * 1000 for _ in range(5)]
        write_each(proc.bootstrap, "wide", partitions)
        stop_s = timed_stop(proc)
        start_s = [restart_time(proc) for _ in range(starts)]
        assert proc.proc is not None
        after = rss_mb(proc.proc.pid)
    finally:
        proc.stop(timeout_s=300)
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"{source or 'this tree'}: {partitions:,} partitions, load average "
        f"{os.getloadavg()[0]:.1f}\n"
        f"  create {create_s:.1f} s; Metadata meanwhile: median "
        f"{statistics.median(probes):.1f} ms, max {max(probes):.0f} ms ({len(probes)} probes)\n"
        f"  open descriptors {fds:,}; idle RSS {idle:.0f} MB\n"
        f"  Metadata of the topic: {', '.join(f'{m:.0f}' for m in meta)} ms\n"
        f"  clean stop after a record in every partition: {stop_s:.2f} s\n"
        f"  start after a clean stop: {', '.join(f'{s:.2f}' for s in start_s)} s; "
        f"RSS after start {after:.0f} MB"
    )


def write_each(bootstrap: str, topic: str, partitions: int) -> None:
    """One record into every partition (so that a stop has every log and producer state to
    write)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for partition in range(partitions):
        producer.produce(topic, b"x", partition=partition)
    if producer.flush(120):
        raise RuntimeError("records not delivered")


def timed_stop(proc: BrokerProcess) -> float:
    """SIGTERM to exit, in seconds, then start again (the start is not timed here)."""
    started = time.monotonic()
    proc.stop(timeout_s=300)
    stopped = time.monotonic() - started
    proc.start(timeout_s=300)
    wait_for_metadata(proc.bootstrap, time.monotonic())
    return stopped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--against", help="another source tree (its src/), run after this one")
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    run(args.partitions, here, args.starts)
    if args.against:
        run(args.partitions, args.against, args.starts)


if __name__ == "__main__":
    main()
