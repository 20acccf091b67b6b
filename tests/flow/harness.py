"""Run a Flow on a background thread and look at topics and committed offsets from outside."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from kafkito.flow import Flow


class Running:
    """A Flow running on its own thread (no signal handlers there)."""

    def __init__(self, flow: Flow, loop: str | None = None) -> None:
        self.flow = flow
        self.loop = loop
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.flow.run(loop=self.loop)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self, timeout_s: float = 30) -> None:
        self.flow.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the flow did not stop in time"
        if self.error is not None:
            raise self.error


def create_topic(
    bootstrap: str, topic: str, partitions: int = 1, config: dict[str, str] | None = None
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, config=config or {})])[topic].result(15)


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for key, value in records:
        producer.produce(topic, key=key, value=value, headers=headers or [])
    assert producer.flush(30) == 0


def read_all(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 30) -> list[Any]:
    """Every record of `topic` (all partitions), waiting until `expect` have arrived."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"r-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    deadline = time.monotonic() + timeout_s
    partitions: list[int] = []
    while not partitions and time.monotonic() < deadline:  # the flow may still be creating it
        metadata = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions = list(metadata.partitions)
        if not partitions:
            time.sleep(0.1)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    got: list[Any] = []
    while len(got) < expect and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error() is None:
                got.append(msg)
    # a short extra wait to catch records beyond what was expected
    for msg in consumer.consume(500, timeout=0.3):
        if msg.error() is None:
            got.append(msg)
    consumer.close()
    return got


def id_records(count: int, keys: int | None = None, prefix: str = "k") -> list[tuple[bytes, bytes]]:
    """Values `{"id": i}` for i in range(count), keyed `<prefix><i % keys>` (`<prefix><i>`
    without `keys`)."""
    return [
        (f"{prefix}{i if keys is None else i % keys}".encode(), json.dumps({"id": i}).encode())
        for i in range(count)
    ]


def total_committed(bootstrap: str, group: str, topic: str, partitions: int) -> int:
    """The group's committed offsets of `topic`, summed (partitions without a commit: 0)."""
    return sum(max(c, 0) for c in committed(bootstrap, group, topic, partitions))


def committed(bootstrap: str, group: str, topic: str, partitions: int = 1) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    consumer.close()
    return [tp.offset for tp in found]


def wait_for(condition: Callable[[], bool], timeout_s: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
