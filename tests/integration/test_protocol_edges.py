"""Protocol edges that real clients rely on, over raw sockets (RELIABILITY B19, KAFKA-NOTES P4, P8).

Pipelined requests are answered in request order with matching correlation ids, even when a
slow request (an acks=all Produce waiting for its fsync) precedes a fast one; a Produce with
acks=0 gets no answer at all but is appended; a frame may arrive one byte at a time; bytes after
a request body are ignored; ApiVersions accepts any client software name.
"""

from __future__ import annotations

import struct
import threading
import time
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from kafkito.errors import ErrorCode
from kafkito.testing.wire import WireClient, record_batch, request_frame

PRODUCE, LIST_OFFSETS, METADATA, API_VERSIONS = 0, 2, 3, 18
SOFTWARE = {"client_software_name": "kafkito-wire", "client_software_version": "0.1"}


def produce_body(topic: str, records: bytes, *, acks: int = -1) -> Any:
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": 5000,
        "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": records}]}],
    }


def list_offsets_body(topic: str, timestamp: int = -1) -> Any:
    return {
        "replica_id": -1,
        "topics": [{"name": topic, "partitions": [{"partition_index": 0, "timestamp": timestamp}]}],
    }


def create_topic(client: WireClient, topic: str) -> None:
    metadata = client.request(
        METADATA, 4, {"topics": [{"name": topic}], "allow_auto_topic_creation": True}
    )
    assert metadata.topics[0].error_code == ErrorCode.none


def end_offset(client: WireClient, topic: str) -> int:
    answer = client.request(LIST_OFFSETS, 1, list_offsets_body(topic)).topics[0].partitions[0]
    assert answer.error_code == ErrorCode.none
    return int(answer.offset)


def test_pipelined_requests_are_answered_in_order(broker: str, topic_name: str) -> None:
    """Twelve requests in one write; Produce (fsync) interleaved with instant ones."""
    with WireClient(broker) as client:
        create_topic(client, topic_name)
        plan: list[tuple[int, int, Any]] = []
        for i in range(4):
            batch = record_batch([(f"k{i}".encode(), f"v{i}".encode(), [])])
            plan.append((PRODUCE, 9, produce_body(topic_name, batch)))
            plan.append((API_VERSIONS, 3, SOFTWARE))
            plan.append((LIST_OFFSETS, 1, list_offsets_body(topic_name)))
        frames = b"".join(
            request_frame(key, version, 100 + n, body)
            for n, (key, version, body) in enumerate(plan)
        )
        client.send_raw(frames)
        produced: list[int] = []
        watermarks = [0]
        for n, (key, version, _) in enumerate(plan):
            correlation_id, body = client.read_response(key, version)
            assert correlation_id == 100 + n
            if key == PRODUCE:
                answer = body.responses[0].partition_responses[0]
                assert answer.error_code == ErrorCode.none
                produced.append(int(answer.base_offset))
            elif key == LIST_OFFSETS:
                # As in Kafka, a request after a Produce on the same connection sees its write:
                # the latest offset is exactly the number of produces sent before it.
                offset = int(body.topics[0].partitions[0].offset)
                assert offset == len(produced)
                watermarks.append(offset)
        assert produced == [0, 1, 2, 3]


def test_megabytes_of_pipelined_requests_are_all_answered_in_order(
    broker: str, topic_name: str
) -> None:
    """Far more than the broker reads ahead (RequestStream stops reading while 128 KiB of
    requests wait for the read loop, and the loop while 100 answers are pending): reading
    pauses and resumes until every request is answered, in order, every write appended."""
    with WireClient(broker) as client:
        create_topic(client, topic_name)
        count = 600
        frames = []
        for n in range(count):
            if n % 3:
                frames.append(request_frame(API_VERSIONS, 3, n, SOFTWARE))
            else:
                batch = record_batch([(None, bytes([n % 251]) * 8000, [])])
                frames.append(request_frame(PRODUCE, 9, n, produce_body(topic_name, batch)))
        stream = b"".join(frames)
        assert len(stream) > 1_500_000
        sender = threading.Thread(target=client.send_raw, args=(stream,))
        sender.start()  # answers are read meanwhile: neither side's buffers fill for good
        produced = []
        for n in range(count):
            key, version = (API_VERSIONS, 3) if n % 3 else (PRODUCE, 9)
            correlation_id, body = client.read_response(key, version)
            assert correlation_id == n
            if key == PRODUCE:
                answer = body.responses[0].partition_responses[0]
                assert answer.error_code == ErrorCode.none
                produced.append(int(answer.base_offset))
        sender.join(10)
        assert produced == list(range(count // 3))
        assert end_offset(client, topic_name) == count // 3


def test_acks_zero_gets_no_answer_and_is_appended(broker: str, topic_name: str) -> None:
    with WireClient(broker) as client:
        create_topic(client, topic_name)
        batch = record_batch([(b"k", b"fire and forget", [])])
        client.send_raw(request_frame(PRODUCE, 9, 500, produce_body(topic_name, batch, acks=0)))
        client.send_raw(request_frame(API_VERSIONS, 3, 501, SOFTWARE))
        # The very next frame answers the ApiVersions: nothing was sent for the Produce.
        correlation_id, body = client.read_response(API_VERSIONS, 3)
        assert correlation_id == 501
        assert body.error_code == ErrorCode.none
        # The write was appended and, fsynced in the background, rises below the watermark.
        deadline = time.monotonic() + 5
        while end_offset(client, topic_name) != 1:
            assert time.monotonic() < deadline, "the acks=0 write never became visible"
            time.sleep(0.01)


def test_frame_dripped_one_byte_at_a_time_is_answered(broker: str, topic_name: str) -> None:
    with WireClient(broker) as client:
        create_topic(client, topic_name)
        frame = request_frame(
            PRODUCE, 9, 9, produce_body(topic_name, record_batch([(b"k", b"v", [])]))
        )
        for i in range(len(frame)):
            client.send_raw(frame[i : i + 1])
        correlation_id, body = client.read_response(PRODUCE, 9)
        assert correlation_id == 9
        assert body.responses[0].partition_responses[0].error_code == ErrorCode.none


def test_trailing_bytes_after_a_request_body_are_ignored(broker: str) -> None:
    """librdkafka 2.16 sends 3 extra bytes after its Metadata v12 body (KAFKA-NOTES P4)."""
    with WireClient(broker) as client:
        frame = request_frame(
            METADATA,
            12,
            77,
            {
                "topics": None,
                "allow_auto_topic_creation": False,
                "include_topic_authorized_operations": False,
            },
        )
        payload = frame[4:] + b"\x00\x00\x00"
        client.send_raw(struct.pack(">i", len(payload)) + payload)
        correlation_id, body = client.read_response(METADATA, 12)
        assert correlation_id == 77
        assert [b.port for b in body.brokers] == [int(broker.rsplit(":", 1)[1])]


def test_api_versions_accepts_any_client_software_name(broker: str) -> None:
    """Kafka answers INVALID_REQUEST to names outside its pattern; we are at least as lenient."""
    with WireClient(broker) as client:
        body = client.request(
            API_VERSIONS, 3, {"client_software_name": "my lib!", "client_software_version": ""}
        )
        assert body.error_code == ErrorCode.none


def test_produce_to_unknown_topic_keeps_the_connection(broker: str) -> None:
    with WireClient(broker) as client:
        batch = record_batch([(b"k", b"v", [])])
        answer = client.request(PRODUCE, 9, produce_body("never-created", batch))
        code = answer.responses[0].partition_responses[0].error_code
        assert code == ErrorCode.unknown_topic_or_partition
        assert client.request(API_VERSIONS, 0, {}).error_code == ErrorCode.none


def test_a_hand_built_batch_reads_back_through_librdkafka(broker: str, topic_name: str) -> None:
    """The wire helpers build what real clients build: librdkafka reads every field back."""
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes | None]]]] = [
        (b"k", b"v", [("h", b"1"), ("h", b"2")]),
        (None, b"", []),
        (b"tombstone", None, [("n", None)]),
    ]
    with WireClient(broker) as client:
        create_topic(client, topic_name)
        batch = record_batch(records, base_timestamp_ms=1_700_000_000_000)
        response = client.request(PRODUCE, 9, produce_body(topic_name, batch))
        assert response.responses[0].partition_responses[0].error_code == ErrorCode.none
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": "wire-check", "enable.auto.commit": False}
    )
    try:
        consumer.assign([TopicPartition(topic_name, 0, 0)])
        seen = []
        deadline = time.monotonic() + 15
        while len(seen) < len(records):
            assert time.monotonic() < deadline, f"only {len(seen)} records read"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            seen.append((msg.key(), msg.value(), msg.headers() or [], msg.timestamp()[1]))
    finally:
        consumer.close()
    assert seen == [(k, v, h, 1_700_000_000_000) for k, v, h in records]
