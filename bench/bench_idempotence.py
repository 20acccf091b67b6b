"""What idempotence costs in the embedded broker, and how fast producer state is rebuilt.

    python bench/bench_idempotence.py            # about a minute
    python bench/bench_idempotence.py --quick    # a few seconds, rough figures

Figures:

* the sequence check plus the state update per batch (`PartitionProducers.check` + `update`,
  the work added to every idempotent Produce), with 1 and with 1,000 producers in a partition;
* rebuilding a partition's producer state by scanning its log (a restart without a usable
  snapshot, B13): batches per second, for single-record idempotent batches;
* snapshot encode + decode for 1,000 producers;
* confluent-kafka producer throughput against `python -m kafkito broker` (a child process,
  durability=always), acks=all, 100-byte values, one partition: enable.idempotence off and on,
  so that the ratio shows the end-to-end cost.

Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from confluent_kafka import Producer

from kafkito.broker.producers import (
    PartitionProducers,
    decode_snapshot,
    encode_snapshot,
    rebuild,
)
from kafkito.protocol.records import validate_produced_batch
from kafkito.storage.fs import OsFileSystem
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.testing.brokers import kafkito_process
from kafkito.testing.wire import record_batch


def bench_check_update(batches: int, producers: int) -> float:
    """Microseconds per batch for check + update."""
    state = PartitionProducers()
    seqs = [0] * producers
    start = time.perf_counter()
    for i in range(batches):
        pid = i % producers
        assert state.check(pid, 0, seqs[pid], 0) is None
        state.update(pid, 0, seqs[pid], 0, i)
        seqs[pid] += 1
    return (time.perf_counter() - start) / batches * 1e6


def bench_rebuild(batches: int, workdir: Path) -> tuple[float, int]:
    """(batches per second, batches replayed) for a rebuild by scanning the whole log."""
    fs = OsFileSystem()
    plog = PartitionLog.open(fs, str(workdir / "p-0"), "bench", 0, LogConfig())
    for i in range(batches):
        raw = record_batch(
            [(b"k", b"v" * 100, [])], producer_id=i % 10, producer_epoch=0, base_sequence=i // 10
        )
        header = validate_produced_batch(raw, max_message_bytes=1 << 20)
        plog.append(bytearray(raw), header)
    plog.flush()
    start = time.perf_counter()
    state, how = rebuild(plog, None, int(time.time() * 1000))
    elapsed = time.perf_counter() - start
    plog.close()
    assert len(state.entries) == 10, how
    return batches / elapsed, batches


def bench_snapshot(producers: int) -> float:
    """Milliseconds for one snapshot encode + decode."""
    state = PartitionProducers()
    for pid in range(producers):
        for seq in range(5):
            state.update(pid, 0, seq, 0, pid * 5 + seq, 1_700_000_000_000)
    start = time.perf_counter()
    restored, _ = decode_snapshot(encode_snapshot(state, producers * 5))
    elapsed = time.perf_counter() - start
    assert len(restored.entries) == producers
    return elapsed * 1000


def bench_produce(bootstrap: str, topic: str, count: int, idempotent: bool) -> float:
    """Messages per second from the first produce() until flush() returns."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "linger.ms": 5,
            "enable.idempotence": idempotent,
        }
    )
    producer.produce(topic, b"warm-up", partition=0)
    producer.flush(30)
    value = b"x" * 100
    start = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, value, partition=0)
                break
            except BufferError:
                producer.poll(0.01)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - start
    assert remaining == 0, f"{remaining} messages not delivered"
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs, rough figures")
    args = parser.parse_args()
    scale = 1 if not args.quick else 10
    print(f"check+update, 1 producer:      {bench_check_update(200_000 // scale, 1):6.2f} µs/batch")
    per = bench_check_update(200_000 // scale, 1000)
    print(f"check+update, 1000 producers:  {per:6.2f} µs/batch")
    with tempfile.TemporaryDirectory() as tmp:
        rate, n = bench_rebuild(100_000 // scale, Path(tmp))
        print(f"rebuild by log scan:           {rate:9,.0f} batches/s ({n:,} batches)")
        print(f"snapshot encode+decode:        {bench_snapshot(1000):6.2f} ms (1000 producers)")
        proc = kafkito_process(Path(tmp) / "data").start()
        try:
            count = 100_000 // scale
            plain = bench_produce(proc.bootstrap, "plain", count, idempotent=False)
            idem = bench_produce(proc.bootstrap, "idem", count, idempotent=True)
        finally:
            proc.stop()
    print(f"produce acks=all, idempotence off: {plain:9,.0f} msg/s ({count:,} x 100 B)")
    print(f"produce acks=all, idempotence on:  {idem:9,.0f} msg/s")
    print(f"ratio on/off:                      {idem / plain:9.2f}")


if __name__ == "__main__":
    main()
