"""Compressed batches through the broker's hand-written Produce path, over TCP, real clients.

The broker decompresses every compressed batch (within a cap) to count its records, so each
codec as real clients frame it (librdkafka's raw snappy, kafka-python's xerial snappy, lz4
frames, zstd, gzip) must be accepted and read back unchanged; a compression bomb must be
refused with CORRUPT_MESSAGE without the broker's memory following it (RELIABILITY B27).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaProducer

from kafkito.errors import ErrorCode
from kafkito.protocol.records import CODEC_ZSTD, MAX_UNCOMPRESSED_BATCH_BYTES, build_batch
from kafkito.testing.brokers import BrokerProcess
from kafkito.testing.wire import WireClient

CODECS = ["gzip", "snappy", "lz4", "zstd"]
COUNT = 200


def read_back(bootstrap: str, topic: str, count: int) -> list[tuple[bytes | None, bytes | None]]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "codecs", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: list[tuple[bytes | None, bytes | None]] = []
    try:
        while len(seen) < count:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out after {len(seen)} messages"
            assert msg.error() is None, msg.error()
            seen.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return seen


def expected() -> list[tuple[bytes | None, bytes | None]]:
    return [(b"k%d" % i, (b"value-%d-" % i) * (i % 17 + 1)) for i in range(COUNT)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", CODECS)
def test_confluent_kafka_compressed_batches_round_trip(
    broker: str, topic_name: str, codec: str
) -> None:
    producer = Producer({"bootstrap.servers": broker, "compression.type": codec, "linger.ms": 20})
    errors: list[object] = []
    for key, value in expected():
        producer.produce(
            topic_name, value, key, on_delivery=lambda err, _m: errors.append(err) if err else None
        )
    assert producer.flush(20) == 0
    assert errors == []
    assert read_back(broker, topic_name, COUNT) == expected()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_compressed_batches_round_trip(
    broker: str, topic_name: str, codec: str
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=broker, compression_type=codec, linger_ms=20, acks="all"
    )
    try:
        futures = [producer.send(topic_name, value=v, key=k) for k, v in expected()]
        producer.flush(20)
        assert [f.get(10).offset for f in futures] == list(range(COUNT))
    finally:
        producer.close(5)
    assert read_back(broker, topic_name, COUNT) == expected()


def zstd_bomb(inflated_bytes: int) -> bytes:
    """A zstd frame of `inflated_bytes` zeros, compressed as a stream (bounded memory here)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    zeros = bytes(1 << 20)
    parts = [compressor.compress(zeros) for _ in range(inflated_bytes >> 20)]
    parts.append(compressor.flush())
    return b"".join(parts)


def with_payload(batch: bytes, payload: bytes) -> bytes:
    """`batch` (one zstd record) with its compressed records replaced by `payload`."""
    import struct

    import crc32c

    head = bytearray(batch[:61])
    struct.pack_into(">i", head, 8, 61 - 12 + len(payload))
    covered = bytes(head[21:]) + payload
    struct.pack_into(">I", head, 17, crc32c.crc32c(covered))
    return bytes(head) + payload


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(120)
def test_compression_bomb_is_refused_with_bounded_memory(
    broker_process: BrokerProcess, topic_name: str
) -> None:
    inflated = 1 << 30  # 1 GiB of zeros, 16 times the broker's cap
    assert inflated > 8 * MAX_UNCOMPRESSED_BATCH_BYTES
    bomb = with_payload(build_batch([(None, b"x")], codec=CODEC_ZSTD), zstd_bomb(inflated))
    assert len(bomb) < 1 << 20  # under max.message.bytes: only decompression can catch it
    assert broker_process.proc is not None
    pid = broker_process.proc.pid
    with WireClient(broker_process.bootstrap) as client:
        client.send(3, 4, {"topics": [{"name": topic_name}], "allow_auto_topic_creation": True})
        client.read_response(3, 4)
        before = peak_rss_mb(pid)
        body = {
            "acks": -1,
            "timeout": 10_000,
            "topic_data": [{"name": topic_name, "partition_data": [{"index": 0, "records": bomb}]}],
        }
        client.send(0, 9, body)
        _, answer = client.read_response(0, 9)
        partition = answer.responses[0].partition_responses[0]
        assert partition.error_code in (ErrorCode.corrupt_message, ErrorCode.invalid_record)
        assert partition.base_offset == -1
        # The connection stays usable and nothing was appended.
        client.send(
            2,
            7,
            {
                "replica_id": -1,
                "isolation_level": 0,
                "topics": [
                    {"name": topic_name, "partitions": [{"partition_index": 0, "timestamp": -1}]}
                ],
            },
        )
        _, offsets = client.read_response(2, 7)
        assert offsets.topics[0].partitions[0].offset == 0
    grown = peak_rss_mb(pid) - before
    assert grown < 2 * MAX_UNCOMPRESSED_BATCH_BYTES / (1 << 20), f"peak RSS grew {grown:.0f} MB"
