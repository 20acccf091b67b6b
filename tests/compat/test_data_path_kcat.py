"""kcat (Debian 1.7.1, librdkafka 2.0.2) against the embedded broker: the data path.

Every test but the metadata one (which checks kafkito's node id) also runs against Apache
Kafka (`any_broker`): the assertions hold for any Kafka.

This librdkafka predates the fix for default-valued tagged fields (KAFKA-NOTES P3): against a
broker that sends them it cannot even connect. It speaks Metadata v4, Produce v7, Fetch v11 and
ListOffsets v2. Covered: `-L` (metadata), `-P` with keys (`-K:`), headers (`-H`) and every codec
(`-z`), `-C -o beginning -e -J` (consume by partition, no group), `-Q` (offsets for times), a
message above message.max.bytes, and keys sticking to partitions. confluent-kafka produces the
records whose timestamps and null keys kcat cannot set itself, and kcat reads them back.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from compat.helpers import CLIENT_MAX_BYTES, CODECS, TOO_LARGE, Message, sample_messages

KCAT = shutil.which("kcat") or "/usr/bin/kcat"

pytestmark = pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")


def kcat(
    bootstrap: str, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [KCAT, "-b", bootstrap, *args],
        input=stdin,
        capture_output=True,
        timeout=30,
        check=False,
    )


def consume(bootstrap: str, topic: str, partition: int = 0) -> list[dict[str, Any]]:
    """Every record of one partition, as kcat's JSON envelopes."""
    done = kcat(
        bootstrap,
        "-C",
        "-t",
        topic,
        "-p",
        str(partition),
        "-o",
        "beginning",
        "-e",
        "-J",
        "-X",
        f"fetch.message.max.bytes={CLIENT_MAX_BYTES}",
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def as_message(envelope: dict[str, Any]) -> Message:
    flat = envelope.get("headers") or []
    headers = [(flat[i], flat[i + 1].encode()) for i in range(0, len(flat), 2)]
    key, payload = envelope["key"], envelope["payload"]
    return Message.of(
        None if key is None else key.encode(),
        None if payload is None else payload.encode(),
        headers,
        envelope["ts"],
    )


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1)
    admin.create_topics([new])[topic].result(timeout=15)


def confluent_produce(
    bootstrap: str, topic: str, messages: list[Message], *, one_by_one: bool
) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "message.max.bytes": CLIENT_MAX_BYTES, "linger.ms": 5}
    )
    for m in messages:
        producer.produce(
            topic, key=m.key, value=m.value, headers=list(m.headers), timestamp=m.timestamp_ms
        )
        if one_by_one:
            assert producer.flush(10) == 0
    assert producer.flush(15) == 0


def test_metadata_lists_the_bound_address_and_topics(broker: str, topic_name: str) -> None:
    create_topic(broker, topic_name, 3)
    done = kcat(broker, "-L", "-J")
    assert done.returncode == 0, done.stderr
    metadata = json.loads(done.stdout)
    assert metadata["brokers"] == [{"id": 0, "name": broker}]
    assert metadata["controllerid"] == 0
    (topic,) = [t for t in metadata["topics"] if t["topic"] == topic_name]
    assert [p["partition"] for p in topic["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 0 and p["isrs"] == [{"id": 0}] for p in topic["partitions"])


@pytest.mark.parametrize("codec", CODECS)
def test_produce_with_keys_and_headers_then_consume(
    any_broker: str, topic_name: str, codec: str
) -> None:
    lines = [b"k1:v1", b"k2:", b"k3:" + "ünïcödé".encode(), b"big:" + b"y" * 1_000_000, b"k5:v5"]
    before = int(time.time() * 1000)
    done = kcat(
        any_broker,
        "-P",
        "-t",
        topic_name,
        "-K:",
        "-H",
        "trace=abc",
        "-H",
        "empty=",
        "-z",
        codec,
        "-X",
        f"message.max.bytes={CLIENT_MAX_BYTES}",
        stdin=b"\n".join(lines) + b"\n",
    )
    after = int(time.time() * 1000)
    assert done.returncode == 0, done.stderr
    read = consume(any_broker, topic_name)
    assert [r["offset"] for r in read] == list(range(len(lines)))
    assert all(r["tstype"] == "create" and before - 1000 <= r["ts"] <= after for r in read)
    got = [as_message(r) for r in read]
    plain = kcat(any_broker, "-C", "-t", topic_name, "-o", "beginning", "-e", "-K:")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.splitlines() == lines
    assert [(m.key, m.value, m.headers) for m in got] == [
        (*line.split(b":", 1), (("trace", b"abc"), ("empty", b""))) for line in lines
    ]


def test_reads_what_confluent_produced_exactly(any_broker: str, topic_name: str) -> None:
    """Null key, empty value, 1 MB value, repeated headers and exact CreateTime timestamps."""
    messages = [m for m in sample_messages() if m.key != b"\x00\xffbinary"]
    confluent_produce(any_broker, topic_name, messages, one_by_one=False)
    read = consume(any_broker, topic_name)
    assert [r["offset"] for r in read] == list(range(len(messages)))
    assert [as_message(r) for r in read] == messages


def test_offsets_for_times(any_broker: str, topic_name: str) -> None:
    messages = sample_messages(big=False)
    confluent_produce(any_broker, topic_name, messages, one_by_one=True)
    base = messages[0].timestamp_ms

    def query(ts: int) -> int:
        done = kcat(any_broker, "-Q", "-t", f"{topic_name}:0:{ts}")
        assert done.returncode == 0, done.stderr
        # "<topic> [0] offset <n>"
        return int(done.stdout.split()[-1])

    assert query(base - 5000) == 0
    assert query(base + 1500) == 2
    assert query(messages[-1].timestamp_ms) == len(messages) - 1
    assert query(base + 999_999) == -1
    assert query(-2) == 0  # beginning
    assert query(-1) == len(messages)  # end


def test_too_large_is_refused_by_the_broker(any_broker: str, topic_name: str) -> None:
    ok = kcat(any_broker, "-P", "-t", topic_name, stdin=b"fits\n")
    assert ok.returncode == 0, ok.stderr
    refused = kcat(
        any_broker,
        "-P",
        "-t",
        topic_name,
        "-X",
        f"message.max.bytes={CLIENT_MAX_BYTES}",
        stdin=b"x" * TOO_LARGE + b"\n",
    )
    assert refused.returncode != 0
    assert b"Message size too large" in refused.stderr
    assert [r["payload"] for r in consume(any_broker, topic_name)] == ["fits"]


def test_same_key_same_partition_and_every_partition_reads_back(
    any_broker: str, topic_name: str
) -> None:
    create_topic(any_broker, topic_name, 4)
    lines = [f"key-{k}:v{k}-{i}".encode() for i in range(5) for k in range(12)]
    done = kcat(any_broker, "-P", "-t", topic_name, "-K:", stdin=b"\n".join(lines) + b"\n")
    assert done.returncode == 0, done.stderr
    partition_of: dict[str, set[int]] = {}
    seen = []
    for partition in range(4):
        for r in consume(any_broker, topic_name, partition):
            partition_of.setdefault(r["key"], set()).add(partition)
            seen.append(f"{r['key']}:{r['payload']}".encode())
    assert sorted(seen) == sorted(lines), "every record reads back from some partition"
    assert all(len(parts) == 1 for parts in partition_of.values()), partition_of
    assert len({p for parts in partition_of.values() for p in parts}) >= 2
