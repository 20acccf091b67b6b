"""Compacted topics over TCP with real clients, on kafkito's broker and on Apache Kafka.

One keyed workload (rounds of values for ten keys, two tombstones, one key written again after
its tombstone) goes to a topic with cleanup.policy=compact, segment.ms=100 (so each round ends
in its own segment) and a low min.cleanable.dirty.ratio. Small filler records keep rolling
segments while we wait (deadline, no fixed wait) until a reader from the beginning sees the
compacted result: the latest value of every live key at its original offset, no deleted key.
Then confluent-kafka, kafka-python and aiokafka read from the beginning and from offsets that
were cleaned away (each gets the next record), and a keyless record is refused with
INVALID_RECORD. Against
Apache Kafka 4.1.1 (one node of our own, its cleaner backoff at 200 ms) the visible result is
the same: the same values at the same offsets.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from kafkito import Broker
from kafkito.client import Admin as KafkitoAdmin

TOPIC_CONFIGS = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "delete.retention.ms": "500",
}
KEYS = [f"k{i}".encode() for i in range(10)]
Record = tuple[int, bytes | None, bytes | None]


def _create(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, 1, 1, config=TOPIC_CONFIGS)])
    futures[topic].result(30)


def _produce(producer: Producer, topic: str, records: list[tuple[bytes, bytes | None]]) -> None:
    errors: list[KafkaError] = []
    for key, value in records:
        producer.produce(
            topic, key=key, value=value, on_delivery=lambda e, m: e and errors.append(e)
        )
    assert producer.flush(30) == 0 and not errors, errors


def _workload(bootstrap: str, topic: str) -> tuple[list[Record], int, Producer]:
    """Write the rounds; returns (expected compacted records, end offset, the producer)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    written: list[tuple[bytes, bytes | None]] = []
    for round_ in range(5):
        batch: list[tuple[bytes, bytes | None]] = []
        for key in KEYS:
            value: bytes | None = f"r{round_}-{key.decode()}".encode() * 4
            if round_ == 2 and key in (b"k7", b"k8"):
                value = None  # k7 stays deleted; k8 comes back in round 4
            elif (round_ > 2 and key == b"k7") or (round_ == 3 and key == b"k8"):
                continue
            batch.append((key, value))
        _produce(producer, topic, batch)
        written += batch
        time.sleep(0.15)  # past segment.ms: the next write rolls this round's segment
    latest: dict[bytes, int] = {}
    for offset, (key, _) in enumerate(written):
        latest[key] = offset
    expected = sorted(
        (offset, key, written[offset][1])
        for key, offset in latest.items()
        if written[offset][1] is not None
    )
    return expected, len(written), producer


def _read_ck(bootstrap: str, topic: str, start: int, end: int, limit: int = 10**6) -> list[Record]:
    """Records from `start` (confluent-kafka, assign + offset) until the offset `end`."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "compaction-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    out: list[Record] = []
    try:
        consumer.assign([TopicPartition(topic, 0, start)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(out) < limit:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise AssertionError(msg.error())
            if msg.offset() >= end:
                break
            out.append((msg.offset(), msg.key(), msg.value()))
    finally:
        consumer.close()
    return out


def _read_kp(bootstrap: str, topic: str, start: int, end: int, limit: int = 10**6) -> list[Record]:
    """The same with kafka-python."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = KpTopicPartition(topic, 0)
    out: list[Record] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(out) < limit:
            polled = consumer.poll(timeout_ms=500)
            records = [r for batch in polled.values() for r in batch]
            out += [(r.offset, r.key, r.value) for r in records if r.offset < end]
            if any(r.offset >= end for r in records) or consumer.position(tp) >= end:
                break
    finally:
        consumer.close()
    return out[:limit] if limit < len(out) else out


def _read_aio(bootstrap: str, topic: str, start: int, end: int, limit: int = 10**6) -> list[Record]:
    """The same with aiokafka."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as AioTopicPartition

    async def read() -> list[Record]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        tp = AioTopicPartition(topic, 0)
        out: list[Record] = []
        try:
            consumer.assign([tp])
            consumer.seek(tp, start)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(out) < limit:
                polled = await consumer.getmany(timeout_ms=500)
                records = [r for batch in polled.values() for r in batch]
                out += [(r.offset, r.key, r.value) for r in records if r.offset < end]
                if await consumer.position(tp) >= end:
                    break
        finally:
            await consumer.stop()
        return out[:limit]

    return asyncio.run(read())


def _wait_compacted(
    bootstrap: str, topic: str, producer: Producer, expected: list[Record], end: int
) -> None:
    """Produce fillers (rolling segments, adding dirt) until the reader sees `expected`."""
    deadline = time.monotonic() + 90
    seen: list[Record] = []
    while time.monotonic() < deadline:
        _produce(producer, topic, [(b"filler", b"f")])
        seen = _read_ck(bootstrap, topic, 0, end)
        if seen == expected:
            return
        time.sleep(0.2)
    raise AssertionError(f"not compacted within 90 s: saw {seen}, want {expected}")


def _check_clients(bootstrap: str, topic: str, expected: list[Record], end: int) -> None:
    assert _read_kp(bootstrap, topic, 0, end) == expected
    assert _read_aio(bootstrap, topic, 0, end) == expected
    present = [o for o, _, _ in expected]
    gone = [o for o in range(end) if o not in present]
    assert gone
    for offset in (gone[0], gone[len(gone) // 2], gone[-1]):
        following = [r for r in expected if r[0] > offset][:1]
        assert _read_ck(bootstrap, topic, offset, end, limit=1) == following, offset
        assert _read_kp(bootstrap, topic, offset, end, limit=1) == following, offset
        assert _read_aio(bootstrap, topic, offset, end, limit=1) == following, offset


def _keyless_error(bootstrap: str, topic: str) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    errors: list[KafkaError] = []
    producer.produce(topic, value=b"no key", on_delivery=lambda e, m: errors.append(e))
    producer.flush(30)
    assert len(errors) == 1 and errors[0] is not None
    return int(errors[0].code())


def _run(bootstrap: str, topic: str) -> tuple[list[Record], int]:
    _create(bootstrap, topic)
    expected, end, producer = _workload(bootstrap, topic)
    _wait_compacted(bootstrap, topic, producer, expected, end)
    _check_clients(bootstrap, topic, expected, end)
    assert _keyless_error(bootstrap, topic) == KafkaError.INVALID_RECORD
    return expected, end


@pytest.mark.timeout(300)
def test_compacted_topic_reads_the_same_on_kafkito_and_apache_kafka(
    tmp_path: Path, topic_name: str
) -> None:
    """Both brokers: clients from the start and from cleaned-away offsets, keyless refused."""
    from kafkito.testing.apache_kafka import ApacheKafka

    data_dir = str(tmp_path / "kafkito")
    with Broker(port=0, data_dir=data_dir, log_cleaner_backoff_ms=100) as ours:
        mine, end = _run(ours, topic_name)
    with Broker(port=0, data_dir=data_dir) as again:  # cleaned segments load after a restart
        assert _read_ck(again, topic_name, 0, end) == mine
    configs = {"log.cleaner.backoff.ms": 200, "log.cleaner.dedupe.buffer.size": 16 << 20}
    with ApacheKafka(brokers=1, data_dir=tmp_path / "kafka", broker_configs=configs) as kafka:
        theirs, _ = _run(kafka.bootstrap, topic_name)
    assert mine == theirs


def test_one_pass_that_empties_many_segments_still_reads_with_librdkafka(tmp_path: Path) -> None:
    """A backlog of full segments, all superseded by later writes, cleaned in one pass: each
    becomes a segment holding one empty batch (storage.cleaner keeps the last batch of each
    group). A fetch that got only those (librdkafka doubles its fetch size on each response
    without a record and fails with MSG_SIZE_TOO_LARGE after ten) must go on to the records
    after them: confluent-kafka reads the compacted partition to the end, every record the
    latest of its key. The pass runs in the cleaner's child process (the real disk)."""
    topic = "backlog"
    broker = Broker(data_dir=str(tmp_path), port=0, log_cleaner_backoff_ms=50)
    with broker as bootstrap:
        admin = KafkitoAdmin(brokers=bootstrap)
        # Written while the topic is not compacted yet, so that one pass meets the whole backlog.
        admin.create_topic(topic, configs={"cleanup.policy": "delete", "segment.bytes": "16384"})
        # Small batches, so that segments of 16 KiB roll (a batch larger than a segment does not).
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 4096})
        keys = [f"key-{i}".encode() for i in range(40)]
        records = [(keys[i % 40], f"v{i}-".encode() + b"x" * 200) for i in range(4000)]
        _produce(producer, topic, records)
        latest = {key: offset for offset, (key, _) in enumerate(records)}
        expected = {(offset, key, records[offset][1]) for key, offset in latest.items()}
        assert broker.core is not None
        plog = broker.core.topics.partition(topic, 0)
        assert plog is not None
        admin.alter_configs(topic, {"cleanup.policy": "compact"})
        admin.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # one pass; nothing is written after it
            emptied = [s for s in plog.segments[:-1] if s.size < 100]
            if len(emptied) >= 10 and not plog.cleaning:
                break
            time.sleep(0.05)
        assert len(emptied) >= 10, [(s.base_offset, s.size) for s in plog.segments]
        # From the start to the end: the latest record of every key (the active segment is
        # never cleaned, so older records of some keys may still be there too).
        seen = _read_ck(bootstrap, topic, 0, 10**9)
        assert seen[-1][0] == len(records) - 1, "the reader stopped before the end"
        assert expected <= set(seen)
