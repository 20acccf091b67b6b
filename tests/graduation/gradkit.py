"""Helpers of the graduation tests (imported by bare name: `from gradkit import ...`).

Plain confluent-kafka looks at the cluster from outside (metadata, committed offsets, whole
topics), so that what the tests check does not depend on the kafkito code under test.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkito.flow import Flow

# Rebalances and group joins on Apache Kafka are quick with these (the session default of
# 45 s only matters when a member dies without leaving).
FAST_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}


def wait_for(condition: Callable[[], bool], timeout_s: float = 60, what: str = "it") -> None:
    """Poll `condition` until true; fail naming `what` after `timeout_s` (a hang guard)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.05)


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """A topic with the cluster's default replication factor (3 on the test clusters)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions)], operation_timeout=30)[topic].result(60)
    # the controller has created it; wait until every broker's metadata has its leaders
    # (a consumer subscribing to a topic its broker does not know yet looks again only at
    # librdkafka's periodic refresh, minutes later)
    wait_for(
        lambda: (
            len(leaders(bootstrap, topic)) == partitions
            and all(leader >= 0 for leader in leaders(bootstrap, topic).values())
            and all(known_to_every_broker(bootstrap, [topic]).values())
        ),
        what=f"leaders of {topic}",
    )


def known_to_every_broker(bootstrap: str, topics: list[str]) -> dict[int, bool]:
    """broker id -> whether that broker's own metadata lists every one of `topics` with a
    leader per partition. librdkafka picks the broker it asks; a fresh client bootstrapped
    from one broker mostly asks that one, so fresh clients are made until one has."""
    cluster = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    answers: dict[int, bool] = {}
    for node, broker in cluster.brokers.items():
        address = f"{broker.host}:{broker.port}"
        for _ in range(50):
            meta = AdminClient({"bootstrap.servers": address}).list_topics(timeout=10)
            if meta.orig_broker_name.rpartition("/")[0] == address:
                break
        else:
            raise AssertionError(f"no answer from broker {node} at {address} in 50 tries")
        found = [meta.topics.get(name) for name in topics]
        answers[node] = all(
            t is not None
            and t.error is None
            and bool(t.partitions)
            and all(p.leader >= 0 for p in t.partitions.values())
            for t in found
        )
    return answers


def leaders(bootstrap: str, topic: str) -> dict[int, int]:
    """partition -> leader node id, from the cluster's metadata."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return {}
    return {p.id: p.leader for p in meta.partitions.values()}


def read_all(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 60) -> list[Any]:
    """Every record of `topic` from offset 0 (all partitions), waiting for `expect` of them,
    then a short extra wait to catch any beyond them (duplicates)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"r-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    deadline = time.monotonic() + timeout_s
    try:
        partitions: list[int] = []
        while not partitions:  # the flow may not have created it yet
            partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
            if not partitions and time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} not created within {timeout_s:g}s")
            if not partitions:
                time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        got: list[Any] = []
        while len(got) < expect and time.monotonic() < deadline:
            got += [m for m in consumer.consume(500, timeout=0.5) if m.error() is None]
        got += [m for m in consumer.consume(500, timeout=0.5) if m.error() is None]
        return got
    finally:
        consumer.close()


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    """The group's committed offset per partition (-1001 where none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=15
        )
    finally:
        consumer.close()
    return [tp.offset for tp in found]


def fully_committed(bootstrap: str, group: str, topic: str, partitions: int) -> bool:
    """Whether the group's commits reach the end of every partition of `topic`."""
    return committed(bootstrap, group, topic, partitions) == end_offsets(
        bootstrap, topic, partitions
    )


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"w-{uuid.uuid4().hex}"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=15)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


class Running:
    """A Flow on its own thread (no signal handlers there); stop() re-raises its error."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.flow.run()
        except BaseException as exc:
            self.error = exc

    def stop(self, timeout_s: float = 60) -> None:
        self.flow.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the flow did not stop in time"
        if self.error is not None:
            raise self.error


@dataclass
class Seen:
    """What handlers saw, thread-safe: (key, sequence number) in handling order."""

    items: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, seq: int) -> None:
        with self.lock:
            self.items.append((key, seq))

    def __len__(self) -> int:
        with self.lock:
            return len(self.items)

    def distinct(self) -> set[tuple[str, int]]:
        with self.lock:
            return set(self.items)

    def order_violations(self) -> list[str]:
        """Per key, each record must follow its predecessor or repeat an earlier one (an
        at-least-once redelivery); a record handled before its predecessor is a violation."""
        per_key: dict[str, list[int]] = {}
        with self.lock:
            for key, seq in self.items:
                per_key.setdefault(key, []).append(seq)
        bad = []
        for key, seqs in per_key.items():
            highest = -1
            for seq in seqs:
                if seq > highest + 1:
                    bad.append(f"key {key}: {seq} handled before {highest + 1} (order {seqs})")
                    break
                highest = max(highest, seq)
        return bad
