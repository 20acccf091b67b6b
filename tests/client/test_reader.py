"""Reader over TCP on kafkito's broker and Tansu: commit after success, AckOnConsume, stopping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from clientkit import Cluster
from confluent_kafka import Consumer, TopicPartition

from kafkito.client import Message, Reader, Writer, current_message, message_key
from kafkito.client.reader import consume_ready


def write_keyed(cluster: Cluster, topic: str, count: int) -> None:
    """m0..m{count-1}, all with one key so they share a partition and keep their order."""
    with Writer(topic, brokers=cluster.bootstrap) as writer:
        writer.write_many([_rec(i) for i in range(count)])


def _rec(i: int) -> Any:
    from kafkito.client import Record

    return Record(f"m{i}".encode(), key=b"same", headers={"n": str(i)})


def committed(cluster: Cluster, topic: str, group: str) -> dict[int, int]:
    """The group's committed offset per partition (only partitions with a commit)."""
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        result = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return {tp.partition: tp.offset for tp in result if tp.offset >= 0}
    finally:
        consumer.close()


def reader(cluster: Cluster, topic: str, group: str | None, **kwargs: Any) -> Reader:
    return Reader(
        topic, brokers=cluster.bootstrap, group_id=group, settings=cluster.settings, **kwargs
    )


def test_handler_gets_value_headers_and_key(group_cluster: Cluster, topic: str, group: str) -> None:
    write_keyed(group_cluster, topic, 3)
    seen: list[tuple[bytes | None, dict[str, str], bytes | None]] = []
    with reader(group_cluster, topic, group, config={"key": "kafka_key"}) as r:
        handled = r.read(
            lambda value, headers: seen.append((value, headers, message_key.get())), limit=3
        )
    assert handled == 3
    assert seen == [
        (f"m{i}".encode(), {"n": str(i), "kafka_key": "same"}, b"same") for i in range(3)
    ]
    assert message_key.get() is None  # reset after each handler


def test_read_message_and_read_value(cluster: Cluster, topic: str) -> None:
    write_keyed(cluster, topic, 4)
    messages: list[Message] = []
    values: list[bytes | None] = []

    def on_message(message: Message) -> None:
        assert current_message.get() is message
        messages.append(message)

    with reader(cluster, topic, None) as r:  # no group: every partition, nothing committed
        assert r.read_message(on_message, limit=2) == 2
        assert r.read_value(values.append, limit=2) == 2
    assert [m.value for m in messages] == [b"m0", b"m1"]
    assert [m.offset for m in messages] == [0, 1]
    assert messages[0].key == b"same"
    assert messages[0].headers == {"n": "0"}
    assert messages[0].raw_headers == [("n", b"0")]
    assert messages[0].timestamp_ms is not None
    assert values == [b"m2", b"m3"]  # limit leaves nothing skipped between reads


def test_handler_failure_leaves_the_message_uncommitted(
    group_cluster: Cluster, topic: str, group: str
) -> None:
    write_keyed(group_cluster, topic, 5)
    handled: list[bytes | None] = []

    def fail_on_m2(value: bytes | None, headers: dict[str, str]) -> None:
        if value == b"m2":
            raise RuntimeError("handler failed")
        handled.append(value)

    with reader(group_cluster, topic, group) as r, pytest.raises(RuntimeError, match="handler"):
        r.read(fail_on_m2)
    assert handled == [b"m0", b"m1"]
    assert list(committed(group_cluster, topic, group).values()) == [2]

    # a restart reads the failed message again, then the rest
    again: list[bytes | None] = []
    with reader(group_cluster, topic, group) as r:
        r.read_value(again.append, limit=3)
    assert again == [b"m2", b"m3", b"m4"]
    assert list(committed(group_cluster, topic, group).values()) == [5]


def test_ack_on_consume_is_at_most_once(group_cluster: Cluster, topic: str, group: str) -> None:
    write_keyed(group_cluster, topic, 5)

    def fail_on_m2(value: bytes | None) -> None:
        if value == b"m2":
            raise RuntimeError("handler failed")

    with (
        reader(group_cluster, topic, group, ack_on_consume=True) as r,
        pytest.raises(RuntimeError),
    ):
        r.read_value(fail_on_m2)
    # committed *before* the handler ran: m2 counts as consumed although it failed
    assert list(committed(group_cluster, topic, group).values()) == [3]
    again: list[bytes | None] = []
    with reader(group_cluster, topic, group) as r:
        r.read_value(again.append, limit=2)
    assert again == [b"m3", b"m4"]  # m2 is lost: that is what at-most-once means


def test_stop_from_another_thread_is_prompt(cluster: Cluster, topic: str) -> None:
    write_keyed(cluster, topic, 1)
    r = reader(cluster, topic, None)
    first = threading.Event()
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(r.read_value(lambda v: first.set())))
    thread.start()
    assert first.wait(20)
    started = time.monotonic()
    r.stop()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2.0
    assert result == [1]
    r.close()
    r.close()  # idempotent


def test_consume_ready_returns_what_is_there_without_waiting_for_a_full_batch(
    cluster: Cluster, topic: str
) -> None:
    """consume(500, timeout) alone waits for 500 messages or the whole timeout; consume_ready
    hands over the 3 that are there at once, and on an empty topic the first that arrives."""
    write_keyed(cluster, topic, 3)
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "cr", "auto.offset.reset": "earliest"}
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        got: list[Any] = []
        started = time.monotonic()
        while len(got) < 3 and time.monotonic() - started < 20:
            got += consume_ready(consumer, 500, 30.0)  # a timeout the old call would sit out
        assert [m.value() for m in got] == [b"m0", b"m1", b"m2"]
        assert time.monotonic() - started < 15.0

        later = threading.Timer(0.5, write_keyed, (cluster, topic, 1))
        later.start()
        started = time.monotonic()
        fourth = consume_ready(consumer, 500, 30.0)
        later.join()
        assert [m.value() for m in fourth] == [b"m0"]
        assert time.monotonic() - started < 15.0
        assert consume_ready(consumer, 500, 0) == []
    finally:
        consumer.close()


READER_SCRIPT = textwrap.dedent(
    """
    import sys
    from kafkito.client import Reader
    bootstrap, topic, group = sys.argv[1:4]
    settings = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 500}
    with Reader(topic, brokers=bootstrap, group_id=group, settings=settings) as reader:
        def handle(value):
            print("handled", value.decode(), flush=True)
        count = reader.read_value(handle)
    print("stopped after", count, flush=True)
    """
)


def test_sigterm_stops_commits_and_leaves(group_cluster: Cluster, topic: str, group: str) -> None:
    write_keyed(group_cluster, topic, 3)
    proc = subprocess.Popen(
        [sys.executable, "-c", READER_SCRIPT, group_cluster.bootstrap, topic, group],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines == ["handled m0", "handled m1", "handled m2"]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=20)[0]
        assert proc.returncode == 0
        assert time.monotonic() - started < 10
        assert "stopped after 3" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert list(committed(group_cluster, topic, group).values()) == [3]
