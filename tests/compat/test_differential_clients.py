"""Each client's view of the data path, kafkito vs Apache Kafka: the same calls, the same answers.

One scenario per client (confluent-kafka, aiokafka, kafka-python, kcat) produces the sample
(null key, empty value, a 1 MB value, headers, explicit timestamps), reads it back by
assignment, lists offsets every way the client can, sends a batch above message.max.bytes, and
describes the topic; what the client returned is compared with what it returns against Apache
Kafka: delivery offsets, record contents, timestamps and their types, watermarks, offsets for
times (with leader epochs where the client shows them), the exception type or error code of the
refusal, and the metadata shape.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import subprocess
import time
from typing import Any

import pytest

from compat.differential import (
    Brokers,
    Observations,
    create_topic,
    node_index,
    run_differential,
    scrub,
    unique,
)
from compat.helpers import CLIENT_MAX_BYTES, TOO_LARGE, Message, sample_messages

CODEC = "lz4"  # one codec here; tests/compat/test_data_path_* run every codec on both brokers
TOO_LARGE_VALUE = random.Random(0).randbytes(TOO_LARGE)
"""Above message.max.bytes even compressed (a run of one byte would compress to a few KiB)."""


def record(offset: int, key: Any, value: Any, headers: Any, ts_type: Any, ts: int) -> Any:
    """One record as observed: a digest stands for values above 1 KiB (the 1 MB one)."""
    if isinstance(value, bytes) and len(value) > 1024:
        value = f"{len(value)} bytes sha256 {hashlib.sha256(value).hexdigest()[:16]}"
    return [offset, key, value, [list(h) for h in headers or ()], ts_type, ts]


def _times(messages: list[Message]) -> dict[str, int]:
    base = messages[0].timestamp_ms
    return {
        "before all": base - 5000,
        "first": base,
        "between": base + 1500,
        "last": messages[-1].timestamp_ms,
        "after all": base + 999_999,
    }


# -- confluent-kafka ----------------------------------------------------------------------------


def confluent_scenario(messages: list[Message]) -> Any:
    from confluent_kafka import Consumer, Producer, TopicCollection, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    def scenario(bootstrap: str) -> Observations:
        topic = unique("ck")
        create_topic(bootstrap, topic, 2)
        seen: Observations = {}
        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": CODEC,
                "message.max.bytes": CLIENT_MAX_BYTES,
                "linger.ms": 5,
                "message.timeout.ms": 15_000,
            }
        )
        results: list[Any] = []

        def delivered(err: Any, msg: Any) -> None:
            results.append(err.name() if err else (msg.partition(), msg.offset()))

        for m in messages:
            producer.produce(
                topic,
                key=m.key,
                value=m.value,
                headers=list(m.headers),
                timestamp=m.timestamp_ms,
                partition=0,
                on_delivery=delivered,
            )
            producer.flush(15)  # one batch each, so that every timestamp is indexed
        producer.produce(topic, value=TOO_LARGE_VALUE, partition=1, on_delivery=delivered)
        assert producer.flush(20) == 0
        seen["deliveries"] = results

        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": unique("ck-assign"),
                "enable.auto.commit": False,
                "fetch.message.max.bytes": CLIENT_MAX_BYTES,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, 0, 0)])
            read: list[Any] = []
            deadline = time.monotonic() + 20
            while len(read) < len(messages) and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                ts_type, ts = msg.timestamp()
                read.append(
                    record(msg.offset(), msg.key(), msg.value(), msg.headers(), ts_type, ts)
                )
            seen["records"] = read
            seen["watermarks"] = [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
                for p in (0, 1)
            ]
            seen["offsets for times"] = {
                name: consumer.offsets_for_times([TopicPartition(topic, 0, ts)], timeout=10)[
                    0
                ].offset
                for name, ts in _times(messages).items()
            }
        finally:
            consumer.close()

        admin = AdminClient({"bootstrap.servers": bootstrap})
        specs = {
            "earliest": OffsetSpec.earliest(),
            "latest": OffsetSpec.latest(),
            "max_timestamp": OffsetSpec.max_timestamp(),
            **{name: OffsetSpec.for_timestamp(ts) for name, ts in _times(messages).items()},
        }
        listed = {}
        for name, spec in specs.items():
            (future,) = admin.list_offsets({TopicPartition(topic, 0): spec}).values()
            info = future.result(timeout=15)
            listed[name] = [info.offset, info.timestamp, info.leader_epoch]
        seen["admin list_offsets"] = listed
        described = admin.describe_topics(TopicCollection([topic]))[topic].result(timeout=15)
        cluster = admin.describe_cluster().result(timeout=15)
        # node ids are the deployment's (kafkito 0, the reference launcher 1..N): ranks
        rank = node_index([n.id for n in cluster.nodes])
        seen["describe_topics"] = {
            "internal": described.is_internal,
            "topic_id_present": described.topic_id is not None,
            "partitions": [
                [
                    p.id,
                    rank[p.leader.id],
                    [rank[r.id] for r in p.replicas],
                    [rank[r.id] for r in p.isr],
                ]
                for p in described.partitions
            ],
        }
        metadata = admin.list_topics(topic, timeout=10)
        seen["list_topics"] = {
            "brokers": len(metadata.brokers),
            "controller": rank.get(metadata.controller_id, "not a broker"),
            "partitions": sorted(metadata.topics[topic].partitions),
            "error": str(metadata.topics[topic].error),
        }
        return scrub(seen, {topic: "<topic>"})

    return scenario


def test_confluent_kafka(brokers: Brokers) -> None:
    messages = sample_messages()
    run_differential(confluent_scenario(messages), brokers)


# -- aiokafka ------------------------------------------------------------------------------


def aiokafka_scenario(messages: list[Message]) -> Any:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def run(bootstrap: str) -> Observations:
        topic = unique("aio")
        create_topic(bootstrap, topic, 2)
        seen: Observations = {}
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=CODEC,
            max_request_size=CLIENT_MAX_BYTES,
            linger_ms=5,
            request_timeout_ms=15_000,
        )
        await producer.start()
        try:
            deliveries: list[Any] = []
            for m in messages:
                md = await producer.send_and_wait(
                    topic,
                    value=m.value,
                    key=m.key,
                    headers=list(m.headers),
                    timestamp_ms=m.timestamp_ms,
                    partition=0,
                )
                deliveries.append([md.partition, md.offset, md.timestamp])
            try:
                await producer.send_and_wait(topic, value=TOO_LARGE_VALUE, partition=1)
                deliveries.append("accepted")
            except Exception as exc:  # the type is the observation
                deliveries.append(type(exc).__name__)
            seen["deliveries"] = deliveries
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=CLIENT_MAX_BYTES,
        )
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            read: list[Any] = []
            deadline = time.monotonic() + 20
            while len(read) < len(messages) and time.monotonic() < deadline:
                for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    read.append(
                        record(r.offset, r.key, r.value, r.headers, r.timestamp_type, r.timestamp)
                    )
            seen["records"] = read
            tps = [TopicPartition(topic, p) for p in (0, 1)]
            seen["beginning"] = sorted(
                (k.partition, v) for k, v in (await consumer.beginning_offsets(tps)).items()
            )
            seen["end"] = sorted(
                (k.partition, v) for k, v in (await consumer.end_offsets(tps)).items()
            )
            found = {}
            for name, ts in _times(messages).items():
                answer = (await consumer.offsets_for_times({tp: ts}))[tp]
                found[name] = None if answer is None else [answer.offset, answer.timestamp]
            seen["offsets for times"] = found
            partitions = consumer.partitions_for_topic(topic)
            seen["partitions_for_topic"] = sorted(partitions or ())
        finally:
            await consumer.stop()
        return scrub(seen, {topic: "<topic>"})

    return lambda bootstrap: asyncio.run(run(bootstrap))


def test_aiokafka(brokers: Brokers) -> None:
    messages = sample_messages()
    run_differential(aiokafka_scenario(messages), brokers)


# -- kafka-python --------------------------------------------------------------------------


def kafka_python_scenario(messages: list[Message]) -> Any:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    def scenario(bootstrap: str) -> Observations:
        topic = unique("kp")
        create_topic(bootstrap, topic, 2)
        seen: Observations = {}
        # idempotent, as kafka-python's default producer is (InitProducerId, sequences)
        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=CODEC,
            max_request_size=CLIENT_MAX_BYTES,
            linger_ms=5,
            request_timeout_ms=15_000,
        )
        try:
            deliveries: list[Any] = []
            for m in messages:
                md = producer.send(
                    topic,
                    value=m.value,
                    key=m.key,
                    headers=list(m.headers),
                    timestamp_ms=m.timestamp_ms,
                    partition=0,
                ).get(timeout=15)
                deliveries.append([md.partition, md.offset, md.timestamp])
            try:
                producer.send(topic, value=TOO_LARGE_VALUE, partition=1).get(timeout=15)
                deliveries.append("accepted")
            except Exception as exc:  # the type is the observation
                deliveries.append(type(exc).__name__)
            seen["deliveries"] = deliveries
        finally:
            producer.close(timeout=5)
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            max_partition_fetch_bytes=CLIENT_MAX_BYTES,
            request_timeout_ms=15_000,
        )
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            read: list[Any] = []
            deadline = time.monotonic() + 20
            while len(read) < len(messages) and time.monotonic() < deadline:
                for r in consumer.poll(timeout_ms=500).get(tp, []):
                    read.append(
                        record(r.offset, r.key, r.value, r.headers, r.timestamp_type, r.timestamp)
                    )
            seen["records"] = read
            tps = [TopicPartition(topic, p) for p in (0, 1)]
            seen["beginning"] = sorted(
                (k.partition, v) for k, v in consumer.beginning_offsets(tps).items()
            )
            seen["end"] = sorted((k.partition, v) for k, v in consumer.end_offsets(tps).items())
            found = {}
            for name, ts in _times(messages).items():
                answer = consumer.offsets_for_times({tp: ts})[tp]
                found[name] = (
                    None
                    if answer is None
                    else [answer.offset, answer.timestamp, getattr(answer, "leader_epoch", None)]
                )
            seen["offsets for times"] = found
            seen["partitions_for_topic"] = sorted(consumer.partitions_for_topic(topic) or ())
        finally:
            consumer.close()
        return scrub(seen, {topic: "<topic>"})

    return scenario


def test_kafka_python(brokers: Brokers) -> None:
    messages = sample_messages()
    run_differential(kafka_python_scenario(messages), brokers)


# -- kcat ----------------------------------------------------------------------------------


def kcat(
    bootstrap: str, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["kcat", "-b", bootstrap, *args], input=stdin, capture_output=True, timeout=60, check=False
    )


def kcat_scenario(messages: list[Message]) -> Any:
    def consume(bootstrap: str, topic: str, *extra: str) -> Any:
        done = kcat(
            bootstrap, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-J",
            "-X", f"fetch.message.max.bytes={CLIENT_MAX_BYTES}", *extra,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        out = []
        for line in done.stdout.splitlines():
            r = json.loads(line)
            payload = r["payload"]
            if payload is not None and len(payload) > 1024:
                payload = f"{len(payload)} chars"
            out.append([r["offset"], r["key"], payload, r.get("headers"), r["tstype"], r["ts"]])
        return out

    def scenario(bootstrap: str) -> Observations:
        topic = unique("kc")
        create_topic(bootstrap, topic, 3)
        seen: Observations = {}
        metadata = json.loads(kcat(bootstrap, "-L", "-J", "-t", topic).stdout)
        rank = node_index([b["id"] for b in metadata["brokers"]])
        # broker names carry the port, the deployment's choice: only the host is kept
        seen["-L brokers"] = [
            (rank[b["id"]], b["name"].rsplit(":", 1)[0]) for b in metadata["brokers"]
        ]
        seen["-L controller"] = rank.get(metadata["controllerid"], "not a broker")
        seen["-L topics"] = [
            {
                "topic": t["topic"],
                "partitions": [
                    [
                        p["partition"],
                        rank[p["leader"]],
                        [rank[r["id"]] for r in p["replicas"]],
                        [rank[r["id"]] for r in p["isrs"]],
                    ]
                    for p in t["partitions"]
                ],
                "error": t.get("error"),
            }
            for t in metadata["topics"]
        ]
        lines = [b"k1:v1", b"k2:", b"k3:" + "ünïcödé".encode(), b"big:" + b"y" * 1_000_000]
        done = kcat(
            bootstrap, "-P", "-t", topic, "-p", "0", "-K:", "-H", "trace=abc", "-z", CODEC,
            "-X", f"message.max.bytes={CLIENT_MAX_BYTES}", stdin=b"\n".join(lines) + b"\n",
        )  # fmt: skip
        seen["-P"] = done.returncode
        # kcat stamps CreateTime from the clock: the timestamps are compared as "recent"
        now = int(time.time() * 1000)
        read = consume(bootstrap, topic)
        for r in read:
            r[5] = "recent" if now - 120_000 <= r[5] <= now + 1000 else r[5]
        seen["-C -J"] = read
        seen["-C read_committed"] = [
            r[:2] for r in consume(bootstrap, topic, "-X", "isolation.level=read_committed")
        ]
        # records with explicit timestamps, one batch each, from confluent-kafka
        from confluent_kafka import Producer

        timed = unique("kc-ts")
        create_topic(bootstrap, timed, 1)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        for m in messages:
            if m.value is not None and len(m.value) < 1024:
                producer.produce(timed, key=m.key, value=m.value, timestamp=m.timestamp_ms)
                producer.flush(10)
        queries = {**_times(messages), "beginning": -2, "end": -1}
        answers = {}
        for name, ts in queries.items():
            q = kcat(bootstrap, "-Q", "-t", f"{timed}:0:{ts}")
            answers[name] = (
                q.stdout.decode().split()[-1] if q.returncode == 0 else q.stderr.decode()
            )
        seen["-Q"] = answers
        refused = kcat(
            bootstrap, "-P", "-t", topic, "-p", "1", "-X", f"message.max.bytes={CLIENT_MAX_BYTES}",
            stdin=b"x" * TOO_LARGE + b"\n",
        )  # fmt: skip
        seen["too large"] = [refused.returncode != 0, b"Message size too large" in refused.stderr]
        return scrub(seen, {topic: "<topic>", timed: "<timed>"})

    return scenario


@pytest.mark.skipif(shutil.which("kcat") is None, reason="kcat is not installed")
def test_kcat(brokers: Brokers) -> None:
    messages = sample_messages()
    run_differential(kcat_scenario(messages), brokers)
