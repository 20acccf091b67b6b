"""kafkito.pubsub against the raw google-cloud-pubsub client, on the Pub/Sub emulator, one run.

    python bench/bench_pubsub.py            # 3 interleaved rounds, 5,000 messages each
    python bench/bench_pubsub.py --quick    # 1 round, 2,000 messages: rough figures

One emulator (the Cloud SDK's, started here on a free port) serves both sides; values of
100 B and 1 KiB. Rounds interleave raw and kafkito (alternating which goes first) so that a
busy machine slows both alike; each figure is the median over the rounds, and the ratio is
kafkito / raw (goal: >= 0.90).

* publish: raw `PublisherClient.publish()` per message, then every future's `result()`,
  against `Writer.write_many(values)` (which also waits for every confirmation); both with
  kafkito's batch settings (100 messages, 1 MB, 10 ms) and message ordering on;
* consume: raw `SubscriberClient.subscribe()` with a callback that acks, against
  `Reader.read_value(handler, limit=N)`; and the consume flow (`kafkito.pubsub.Flow`, a sync
  handler that takes bytes) against that Reader. Each reads its own subscription holding the
  same N messages, timed from the first handled message to the N-th.

Beside each rate, the CPU time of this process per message (all threads, client construction
and stream set-up included): the emulator pushes about 2,000 messages/s to a stream whatever
reads it, so on the consume side the rates tie and the CPU column is where overhead shows.

The emulator is a Java program on the same two cores: it is the bottleneck of both sides,
so the figures measure what kafkito adds on top of a slow server, not Pub/Sub's speed.
Nothing here asserts a speed; the figures and this command go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from google.cloud import pubsub_v1

from kafkito.pubsub import Flow, Reader, Writer
from kafkito.testing.pubsub_emulator import PubSubEmulator

SIZES = (100, 1024)
CASES = (
    "publish: raw vs Writer.write_many",
    "consume: raw subscribe vs Reader",
    "consume: Reader vs Flow",
)
PROJECT = "bench"
BATCH = pubsub_v1.types.BatchSettings(max_messages=100, max_bytes=1_000_000, max_latency=0.01)
ORDERED = pubsub_v1.types.PublisherOptions(enable_message_ordering=True)


def topic_with_subscriptions(count: int) -> tuple[str, list[str]]:
    """A new topic and `count` subscriptions on it (made before anything is published)."""
    topic = f"bench-{uuid.uuid4().hex[:10]}"
    publisher = pubsub_v1.PublisherClient()
    path = publisher.topic_path(PROJECT, topic)
    publisher.create_topic(name=path)
    publisher.stop()
    subscriptions = [f"{topic}-s{i}" for i in range(count)]
    with pubsub_v1.SubscriberClient() as subscriber:
        for name in subscriptions:
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(PROJECT, name),
                    "topic": path,
                    "ack_deadline_seconds": 60,
                }
            )
    return topic, subscriptions


def raw_publish(topic: str, values: list[bytes]) -> float:
    publisher = pubsub_v1.PublisherClient(batch_settings=BATCH, publisher_options=ORDERED)
    path = publisher.topic_path(PROJECT, topic)
    began = time.perf_counter()
    futures = [publisher.publish(path, value) for value in values]
    for future in futures:
        future.result(timeout=60)
    elapsed = time.perf_counter() - began
    publisher.stop()
    return len(values) / elapsed


def kafkito_publish(topic: str, values: list[bytes]) -> float:
    with Writer(topic, project_id=PROJECT) as writer:
        began = time.perf_counter()
        writer.write_many(values)
        elapsed = time.perf_counter() - began
    return len(values) / elapsed


class Clock:
    """First and N-th handled message; `done` is set at the N-th."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def tick(self) -> None:
        with self._lock:
            now = time.perf_counter()
            if self.count == 0:
                self.first = now
            self.count += 1
            if self.count == self.n:
                self.last = now
                self.done.set()

    def rate(self) -> float:
        if not self.done.is_set():
            raise RuntimeError(f"only {self.count} of {self.n} messages arrived")
        return (self.n - 1) / (self.last - self.first)


def raw_consume(subscription: str, n: int) -> float:
    clock = Clock(n)

    def callback(message: Any) -> None:
        clock.tick()
        message.ack()

    subscriber = pubsub_v1.SubscriberClient()
    flow = pubsub_v1.types.FlowControl(max_messages=1000)
    future = subscriber.subscribe(
        subscriber.subscription_path(PROJECT, subscription), callback, flow_control=flow
    )
    clock.done.wait(120)
    future.cancel()
    with contextlib.suppress(Exception):  # wait for the stream's threads (acks sent)
        future.result(timeout=30)
    subscriber.close()
    return clock.rate()


def kafkito_consume(subscription: str, n: int) -> float:
    clock = Clock(n)
    with Reader(subscription, project_id=PROJECT) as reader:
        reader.read_value(lambda value: clock.tick(), limit=n, handle_signals=False)
    return clock.rate()


def flow_consume(subscription: str, n: int) -> float:
    clock = Clock(n)

    def handle(value: bytes) -> None:
        clock.tick()

    flow = Flow(subscription, handle, project_id=PROJECT, create_topics=False, dead_letter=False)
    thread = threading.Thread(target=flow.run, daemon=True)
    thread.start()
    clock.done.wait(120)
    flow.stop()
    thread.join(60)
    return clock.rate()


def warm_up(n: int) -> None:
    """One untimed pass of each side: the emulator's JIT and both clients' first calls."""
    values = [b"w" * 100] * n
    topic, (subscription,) = topic_with_subscriptions(1)
    raw_publish(topic, values)
    kafkito_publish(topic, values)
    raw_consume(subscription, 2 * n)


def with_cpu(cpu: list[float], n: int, run: Callable[[], float]) -> Callable[[], float]:
    """`run`, also noting the process's CPU time per message (µs, every thread) in `cpu`:
    what a side costs the client machine, even when the emulator bounds the rate."""

    def measured() -> float:
        began = time.process_time()
        rate = run()
        cpu.append((time.process_time() - began) / n * 1e6)
        return rate

    return measured


def interleaved(
    first: Callable[[], float], second: Callable[[], float], round_: int
) -> tuple[float, float]:
    """(first's figure, second's figure), run in an order that alternates by round."""
    if round_ % 2:
        b = second()
        a = first()
    else:
        a = first()
        b = second()
    return a, b


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2,000 messages")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None)
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    n = args.messages or (2_000 if args.quick else 5_000)
    load = os.getloadavg()
    print(f"load before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {rounds} round(s) x {n}")
    rows: list[tuple[str, int, list[float], list[float], list[float], list[float]]] = []
    with PubSubEmulator() as emulator:
        os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
        warm_up(n)
        for size in SIZES:
            values = [os.urandom(size // 2).hex().encode()[:size] for _ in range(n)]
            figures = {case: ([], [], [], []) for case in CASES}  # rates, then CPU µs/msg
            for r in range(rounds):
                pub, con, flo = (figures[case] for case in CASES)
                topic_a, _ = topic_with_subscriptions(0)
                topic_b, _ = topic_with_subscriptions(0)
                raw, ours = interleaved(
                    with_cpu(pub[2], n, lambda a=topic_a, v=values: raw_publish(a, v)),
                    with_cpu(pub[3], n, lambda b=topic_b, v=values: kafkito_publish(b, v)),
                    r,
                )
                pub[0].append(raw)
                pub[1].append(ours)
                topic, (s_raw, s_reader, s_flow, s_reader2) = topic_with_subscriptions(4)
                raw_publish(topic, values)
                raw, ours = interleaved(
                    with_cpu(con[2], n, lambda s=s_raw: raw_consume(s, n)),
                    with_cpu(con[3], n, lambda s=s_reader: kafkito_consume(s, n)),
                    r,
                )
                con[0].append(raw)
                con[1].append(ours)
                reader, flow = interleaved(
                    with_cpu(flo[2], n, lambda s=s_reader2: kafkito_consume(s, n)),
                    with_cpu(flo[3], n, lambda s=s_flow: flow_consume(s, n)),
                    r,
                )
                flo[0].append(reader)
                flo[1].append(flow)
                print(f"  {size} B round {r + 1}: done", file=sys.stderr)
            rows.extend((case, size, *figures[case]) for case in CASES)
    load = os.getloadavg()
    print(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"{'case':34} {'size':>6} {'baseline msg/s':>14} {'kafkito msg/s':>13} {'ratio':>5}"
        f" {'CPU µs/msg: base':>17} {'kafkito':>7}"
    )
    for name, size, base, ours, base_cpu, our_cpu in rows:
        b, o = statistics.median(base), statistics.median(ours)
        bc, oc = statistics.median(base_cpu), statistics.median(our_cpu)
        print(f"{name:34} {size:>5}B {b:>14,.0f} {o:>13,.0f} {o / b:>5.2f} {bc:>17.0f} {oc:>7.0f}")


if __name__ == "__main__":
    main()
