"""Helpers for the streams tests: topics, producing, reading back, running an app."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafkito.client import Admin
from kafkito.client.errors import UnknownTopicError
from kafkito.client.raw_consumer import RawConsumer, TopicPartition, is_partition_eof
from kafkito.client.raw_producer import RawProducer
from kafkito.streams import StreamsApp


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    admin = Admin(brokers=bootstrap)
    try:
        admin.create_topic(topic, partitions)
    finally:
        admin.close()


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[Any, Any, int | None, int | None]],
) -> int:
    """(key, value, partition, timestamp_ms) -> the topic; values not bytes become JSON."""
    producer = RawProducer(brokers=bootstrap, settings={"linger.ms": 5, "acks": "all"})
    failures: list[Any] = []
    count = 0
    for key, value, partition, ts in records:
        data = value if isinstance(value, bytes | None) else json.dumps(value).encode()
        producer.produce(
            topic,
            data,
            None if key is None else str(key).encode(),
            partition=partition,
            timestamp_ms=ts,
            on_delivery=lambda err, _msg: failures.append(err) if err else None,
        )
        count += 1
    assert producer.flush(30) == 0
    producer.close()
    assert not failures, failures
    return count


def read_all(
    bootstrap: str,
    topic: str,
    *,
    expect: int | None = None,
    timeout_s: float = 60,
    raw: bool = False,
) -> list[tuple[Any, Any]]:
    """(key, JSON value) of every committed record of `topic`: until `expect` records, or
    (expect None) until every partition's end is reached once."""
    consumer = RawConsumer(
        brokers=bootstrap,
        settings={
            "group.id": f"reader-{time.monotonic_ns()}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        },
    )
    deadline = time.monotonic() + timeout_s
    while True:  # output topics appear with the app's first record
        try:
            parts = consumer.partitions(topic)
            break
        except UnknownTopicError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    consumer.assign([TopicPartition(topic, p, -2) for p in parts])
    out: list[tuple[Any, Any]] = []
    at_end: set[int] = set()
    try:
        while time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    assert is_partition_eof(msg.error()), msg.error()
                    at_end.add(msg.partition())
                    continue
                if raw:
                    out.append((msg.key(), msg.value()))
                    continue
                key = None if msg.key() is None else msg.key().decode()
                value = None if msg.value() is None else _json_or_text(msg.value())
                out.append((key, value))
            if expect is not None and len(out) >= expect:
                break
            if expect is None and at_end >= set(parts):
                break
    finally:
        consumer.close()
    return out


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # a str value is written as plain text
        return data.decode()


class Running:
    """A StreamsApp running in a thread; `stop()` joins it and re-raises its error."""

    def __init__(self, app: StreamsApp) -> None:
        self.app = app
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.app.run()
        except BaseException as exc:  # handed to the test by stop()
            self.error = exc

    def stop(self, timeout_s: float = 60) -> None:
        self.app.stop()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the app did not stop"
        if self.error is not None:
            raise self.error


def wait_for(condition: Callable[[], bool], timeout_s: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or condition}")
