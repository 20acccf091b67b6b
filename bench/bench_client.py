"""Client library overhead: Writer and Reader against raw confluent-kafka, one broker, one run.

    python bench/bench_client.py            # 5 interleaved rounds, a few minutes
    python bench/bench_client.py --quick    # 1 round, rough figures

kafkito's broker runs as a child process (`python -m kafkito broker`, default settings) on a
free loopback port; both sides use the same librdkafka settings (acks=all, idempotence on,
max.in.flight 5, linger.ms 5) and the same topic layout (one partition), with values of 100 B
and 1 KiB. Rounds interleave raw and kafkito (alternating which goes first) so that a busy
machine slows both alike; each figure is the median over the rounds, and the ratio is
kafkito / raw (goal: >= 0.90).

* produce, batch: raw `produce()` per record (+ `poll` on a full queue) then `flush()`,
  against `Writer.write_many(values)` (which also checks every delivery report); and again
  with the raw side checking every delivery report too (a shared `on_delivery` callback),
  which is the like-for-like comparison;
* produce, one at a time: raw `produce()` + `flush()` per record, against `Writer.write()`
  (each call waits for its confirmation): latency-bound, fewer records;
* consume, no group: raw `Consumer.assign()` + `consume(500)` loop, against
  `Reader.read_value(handler, limit=N)` without a group; timed from the first message;
* consume, group: raw subscribe + `consume(500)` + `store_offsets()` per message with
  auto-commit, against a grouped `Reader` (which stores after each handler); timed from the
  first message, so the group join is not counted.

Nothing here asserts a speed; the figures and this command go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.client import Reader, Writer
from kafkito.testing.brokers import kafkito_process

SIZES = (100, 1024)
PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "max.in.flight.requests.per.connection": 5,
    "linger.ms": 5,
}
GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def new_topic(bootstrap: str) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(30)
    return name


def raw_batch(bootstrap: str, topic: str, values: list[bytes]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    producer.list_topics(timeout=10)
    started = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()
    elapsed = time.perf_counter() - started
    return len(values) / elapsed


def raw_batch_confirmed(bootstrap: str, topic: str, values: list[bytes]) -> float:
    """Raw, but checking every record's delivery report, as a careful raw user must."""
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    producer.list_topics(timeout=10)
    failed: list[object] = []

    def report(error: object, message: object) -> None:
        if error is not None:
            failed.append(error)

    started = time.perf_counter()
    for value in values:
        while True:
            try:
                producer.produce(topic, value, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()
    elapsed = time.perf_counter() - started
    assert not failed, failed[0]
    return len(values) / elapsed


def writer_batch(bootstrap: str, topic: str, values: list[bytes]) -> float:
    with Writer(topic, brokers=bootstrap, settings=PRODUCER) as writer:
        started = time.perf_counter()
        writer.write_many(values)
        elapsed = time.perf_counter() - started
    return len(values) / elapsed


def raw_single(bootstrap: str, topic: str, values: list[bytes]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER})
    producer.list_topics(timeout=10)
    started = time.perf_counter()
    for value in values:
        producer.produce(topic, value)
        producer.flush()
    return len(values) / (time.perf_counter() - started)


def writer_single(bootstrap: str, topic: str, values: list[bytes]) -> float:
    with Writer(topic, brokers=bootstrap, settings=PRODUCER) as writer:
        started = time.perf_counter()
        for value in values:
            writer.write(value)
        return len(values) / (time.perf_counter() - started)


def make_handler() -> Callable[[bytes | None], None]:
    """The handler both sides run per message: keep the value, as a real handler would."""
    sink: list[bytes | None] = []

    def handle(value: bytes | None) -> None:
        sink.append(value)
        if len(sink) > 1000:
            sink.clear()

    return handle


def raw_consume(bootstrap: str, topic: str, count: int, group: str | None) -> float:
    settings: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "group.id": f"{group}-{uuid.uuid4().hex[:8]}" if group else "bench-raw",
        "enable.auto.commit": group is not None,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **(GROUP if group else {}),
    }
    consumer = Consumer(settings)
    if group:
        consumer.subscribe([topic])
    else:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    seen, started = 0, 0.0
    handle = make_handler()  # the same trivial handler work as the Reader's
    while seen < count:
        for msg in consumer.consume(500, 0.1):
            if msg.error() is not None:
                continue
            if not seen:
                started = time.perf_counter()
            handle(msg.value())
            seen += 1
            if group:
                consumer.store_offsets(message=msg)
    elapsed = time.perf_counter() - started
    consumer.close()
    return (count - 1) / elapsed


def reader_consume(bootstrap: str, topic: str, count: int, group: str | None) -> float:
    group_id = f"{group}-{uuid.uuid4().hex[:8]}" if group else None
    settings = GROUP if group else None
    with Reader(topic, brokers=bootstrap, group_id=group_id, settings=settings) as r:
        # the first message starts the clock (group join excluded, as for raw)
        r.read_value(lambda value: None, limit=1, handle_signals=False)
        started = time.perf_counter()
        r.read_value(make_handler(), limit=count - 1, handle_signals=False)
        elapsed = time.perf_counter() - started
    return (count - 1) / elapsed


def median_pair(
    rounds: int,
    raw: Callable[..., float],
    ours: Callable[..., float],
    *args: Any,
    fresh_topic: str | None = None,
) -> tuple[float, float]:
    """Interleave raw and ours `rounds` times, alternating which runs first; medians.

    Each run gets a fresh topic unless `fresh_topic` names one to read.
    """
    raws: list[float] = []
    oursl: list[float] = []
    for round_no in range(rounds):
        pairs = [(raw, raws), (ours, oursl)]
        for fn, out in pairs if round_no % 2 == 0 else pairs[::-1]:  # alternate who goes first
            topic = fresh_topic or new_topic(args[0])
            out.append(fn(args[0], topic, *args[1:]))
    return statistics.median(raws), statistics.median(oursl)


def bench_size(
    bootstrap: str, size: int, rounds: int, batch_n: int, single_n: int
) -> list[tuple[str, int, float, float]]:
    value = b"x" * size
    values = [value] * batch_n
    rows = []
    raw, ours = median_pair(rounds, raw_batch, writer_batch, bootstrap, values)
    rows.append(("produce, batch (write_many)", size, raw, ours))
    raw, ours = median_pair(rounds, raw_batch_confirmed, writer_batch, bootstrap, values)
    rows.append(("produce, batch, raw checks each report", size, raw, ours))
    few = [value] * single_n
    raw, ours = median_pair(rounds, raw_single, writer_single, bootstrap, few)
    rows.append(("produce, one at a time (write)", size, raw, ours))
    filled = new_topic(bootstrap)
    raw_batch(bootstrap, filled, values)
    raw, ours = median_pair(
        rounds, raw_consume, reader_consume, bootstrap, batch_n, None, fresh_topic=filled
    )
    rows.append(("consume, no group (read_value)", size, raw, ours))
    raw, ours = median_pair(
        rounds, raw_consume, reader_consume, bootstrap, batch_n, "group", fresh_topic=filled
    )
    rows.append(("consume, group, store after handler", size, raw, ours))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round, fewer records")
    args = parser.parse_args()
    rounds = 1 if args.quick else 5
    batch_n = {100: 20_000, 1024: 10_000} if args.quick else {100: 100_000, 1024: 50_000}
    single_n = 200 if args.quick else 1000

    with tempfile.TemporaryDirectory() as tmp:
        proc = kafkito_process(Path(tmp) / "data").start()
        try:
            bootstrap = proc.bootstrap
            rows: list[tuple[str, int, float, float]] = []
            for size in SIZES:
                rows.extend(bench_size(bootstrap, size, rounds, batch_n[size], single_n))
        finally:
            proc.stop()

    print(f"{'workload':40} {'size':>6} {'raw msg/s':>12} {'kafkito msg/s':>14} {'ratio':>6}")
    for name, size, raw, ours in rows:
        print(f"{name:40} {size:>6} {raw:>12,.0f} {ours:>14,.0f} {ours / raw:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
