"""Client quotas on kafkito's broker: enforced rates, the throttle signal, persistence.

The claim under test (issue #14): a producer above its quota is throttled to it within 10%,
and others are not slowed; a consumer above its fetch quota is held below it (by Kafka's
all-or-nothing rule, at about half of it; the test's docstring says why). Rates are measured by
the clients themselves (bytes acknowledged, bytes received) over several seconds, so that a
loaded machine shifts when bytes arrive, not how many the quota lets through. The broker runs
with `quota.window.num=2` (Kafka's setting): with Kafka's default of 11 one-second samples, a
fresh client may send 10 s worth of its quota at once and again whenever that burst leaves the
window, so its rate is only the quota on average over 11 s (quotas.py explains it). The
algorithm is the same; the window makes a few seconds enough to measure it.

The answers' codes and filters are compared with Apache Kafka in
tests/compat/test_differential_apis.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkito import Broker
from kafkito.testing.wire import WireClient

ALTER, DESCRIBE = 49, 48
QUOTA = 400_000
"""Bytes per second: far below what the broker serves on a loaded machine, far above noise."""
MEASURE_S = 4.0
"""Two periods of the broker's quota window (2 samples of 1 s)."""
RUN_S = 7.0
"""The measure starts 1 s after the first byte, which client start-up may delay by a second."""
VALUE = b"x" * 4000


@pytest.fixture
def quota_broker(tmp_path: Path) -> Iterator[str]:
    with Broker(
        port=0, data_dir=str(tmp_path / "data"), extra={"quota.window.num": "2"}
    ) as bootstrap:
        yield bootstrap


def set_quota(bootstrap: str, entity: list[tuple[str, str | None]], ops: dict[str, Any]) -> None:
    body = {
        "entries": [
            {
                "entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
                "ops": [
                    {"key": k, "value": 0.0 if v is None else float(v), "remove": v is None}
                    for k, v in ops.items()
                ],
            }
        ],
        "validate_only": False,
    }
    with WireClient(bootstrap) as client:
        answer = client.request(ALTER, 1, body)
    assert [e.error_code for e in answer.entries] == [0], answer


def described(bootstrap: str) -> list[Any]:
    body = {"components": [], "strict": False}
    with WireClient(bootstrap) as client:
        answer = client.request(DESCRIBE, 1, body)
    assert answer.error_code == 0, answer
    return sorted(
        (
            sorted((e.entity_type, e.entity_name) for e in entry.entity),
            sorted((v.key, v.value) for v in entry.values),
        )
        for entry in answer.entries
    )


@dataclass
class Meter:
    """Bytes acknowledged or received, with their times, and the throttle events seen."""

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, int]] = field(default_factory=list)
    throttled_ms: list[int] = field(default_factory=list)
    ended: float = 0.0
    """When the client stopped reading or writing, from the start."""

    def add(self, size: int) -> None:
        self.events.append((time.monotonic() - self.started, size))

    def rate(self) -> float:
        """Bytes per second over two whole periods of the quota window, starting one second
        after the first byte: with two 1-second samples the throttled rate runs in 2-second
        waves (a burst when the oldest sample leaves the window, then a trickle), so whole
        waves measured from trickle to trickle give the rate the quota holds, and timing
        jitter of a loaded machine moves the edges within a trickle only."""
        assert self.events, "nothing arrived"
        start = self.events[0][0] + 1.0
        end = start + MEASURE_S
        # the client ran through the whole measure (a throttled client may get its last bytes
        # up to a window before that: waiting out a throttle is part of the rate)
        assert self.ended >= end, f"the run ended at {self.ended:.1f} s, before {end:.1f} s"
        return sum(n for t, n in self.events if start <= t < end) / MEASURE_S


def _throttle_cb(meter: Meter) -> Any:
    return lambda event: meter.throttled_ms.append(int(event.throttle_time * 1000))


def produce_for(bootstrap: str, topic: str, client_id: str, meter: Meter) -> None:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "linger.ms": 5,
            # requests well below the quota's window (the Java client's default batch size):
            # one request above it is throttled for the whole window at most, and the rest of
            # its debt leaves the window unpaid (Kafka's cap, 2 s with 2 samples)
            "batch.size": 16384,
            # one request at a time: librdkafka's default (a million in flight) queues requests
            # while the connection is muted and sends them in a burst after, so its rate moves
            # in waves of the window's length around the quota, which a few seconds cannot
            # average out (the average is the same)
            "max.in.flight.requests.per.connection": 1,
            "queue.buffering.max.kbytes": 2048,
            "throttle_cb": _throttle_cb(meter),
        }
    )

    def delivered(err: Any, msg: Any) -> None:
        if err is None:  # purged at the end of the run: not delivered, not counted
            meter.add(len(msg.value()))

    deadline = meter.started + RUN_S
    while time.monotonic() < deadline:
        try:
            producer.produce(topic, VALUE, on_delivery=delivered)
        except BufferError:
            producer.poll(0.05)
            continue
        producer.poll(0)
    meter.ended = time.monotonic() - meter.started
    # what is still queued would be delivered after the run: dropped, and not counted
    producer.purge()
    producer.flush(30)
    meter.events = [(t, n) for t, n in meter.events if t <= RUN_S]


def consume_for(bootstrap: str, topic: str, client_id: str, meter: Meter, total: int) -> None:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "group.id": client_id,
            "enable.auto.commit": False,
            "throttle_cb": _throttle_cb(meter),
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        received = 0
        deadline = meter.started + RUN_S
        while received < total and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.2):
                if message.error() is None:
                    meter.add(len(message.value()))
                    received += 1
        meter.ended = time.monotonic() - meter.started
        # a throttle callback comes with a poll: one more after the run
        consumer.poll(0.1)
    finally:
        consumer.close()


def run_both(target: Any, *args: Any) -> tuple[Meter, Meter]:
    slow, fast = Meter(), Meter()
    threads = [
        threading.Thread(target=target, args=(*args[:2], "slow", slow, *args[2:])),
        threading.Thread(target=target, args=(*args[:2], "fast", fast, *args[2:])),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RUN_S + 60)
        assert not thread.is_alive(), "a client did not finish"
    return slow, fast


def test_a_producer_above_its_quota_is_throttled_to_it(quota_broker: str) -> None:
    """Two producers at full speed; the one whose client id has a producer_byte_rate runs
    at most 10% above that rate and is told so (throttle_cb); the other is never throttled
    and runs far faster. Not far below it either (1.01 in 3 runs on a quiet machine; a loaded one
    slows the client itself, which shares its process and GIL with the other: 0.87 seen in a
    CI run), so at least 0.7 of it: the throttle is not excessive."""
    set_quota(quota_broker, [("client-id", "slow")], {"producer_byte_rate": QUOTA})
    slow, fast = run_both(produce_for, quota_broker, "q-produce")
    rate = slow.rate()
    assert 0.7 * QUOTA <= rate <= 1.1 * QUOTA, f"throttled producer at {rate:.0f} B/s"
    assert slow.throttled_ms, "the throttled producer was never told"
    assert not fast.throttled_ms, f"the other producer was throttled: {fast.throttled_ms}"
    assert fast.rate() > 3 * QUOTA, f"the other producer ran at {fast.rate():.0f} B/s only"


def test_a_consumer_above_its_quota_is_throttled_to_it(quota_broker: str) -> None:
    """Two consumers read the same backlog; the one with a consumer_byte_rate is held at or
    below it and told so; the other reads it all at once, never throttled.

    Kafka answers a Fetch over the quota with no data and takes its bytes back, and caps each
    Fetch at what the window holds: a consumer with a backlog gets either a whole capped
    answer or nothing, and waits out a throttle computed with the refused bytes counted. So it
    reads about half its quota: 0.52 of it on Apache Kafka 4.1.1 (default window, rdk
    consumer, 20 s measured, docs/broker.md) and the same on kafkito. The bounds say that: at
    most the quota, and not starved."""
    count = int(QUOTA * (RUN_S + 2) / len(VALUE))
    # batches far below the quota: a Fetch returns at least one whole batch (KIP-74), and one
    # batch above what the quota's window holds would be refused to this consumer for ever,
    # on Kafka too (its bytes are recorded, found over the quota, answered as no data)
    producer = Producer({"bootstrap.servers": quota_broker, "batch.size": 16384})
    for _ in range(count):
        producer.produce("q-fetch", VALUE)
        producer.poll(0)
    assert producer.flush(30) == 0
    set_quota(quota_broker, [("client-id", "slow")], {"consumer_byte_rate": QUOTA})
    slow, fast = run_both(consume_for, quota_broker, "q-fetch", count)
    rate = slow.rate()
    assert 0.35 * QUOTA <= rate <= 1.1 * QUOTA, f"throttled consumer at {rate:.0f} B/s"
    assert slow.throttled_ms, "the throttled consumer was never told"
    assert not fast.throttled_ms, f"the other consumer was throttled: {fast.throttled_ms}"
    assert len(fast.events) == count, "the other consumer did not read the whole backlog"
    assert fast.events[-1][0] < RUN_S / 2, f"the other consumer took {fast.events[-1][0]:.1f} s"


def test_quotas_survive_a_restart(tmp_path: Path) -> None:
    """Set, change and remove quotas; a restarted broker describes exactly what was left."""
    data = str(tmp_path / "data")
    with Broker(port=0, data_dir=data) as bootstrap:
        set_quota(bootstrap, [("user", "alice")], {"producer_byte_rate": 1000})
        set_quota(bootstrap, [("user", "alice")], {"consumer_byte_rate": 2000})
        set_quota(bootstrap, [("user", None), ("client-id", None)], {"request_percentage": 12.5})
        set_quota(bootstrap, [("client-id", "gone")], {"producer_byte_rate": 5})
        set_quota(bootstrap, [("client-id", "gone")], {"producer_byte_rate": None})
        before = described(bootstrap)
    assert before == [
        ([("client-id", None), ("user", None)], [("request_percentage", 12.5)]),
        ([("user", "alice")], [("consumer_byte_rate", 2000.0), ("producer_byte_rate", 1000.0)]),
    ]
    with Broker(port=0, data_dir=data) as bootstrap:
        assert described(bootstrap) == before
