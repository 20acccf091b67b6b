"""Hostile and malformed input over raw sockets (RELIABILITY B19-B21, B23).

Each test connects a bystander first, does one bad thing on another connection, then checks
three things: the broker reacted as Kafka does (an error code, or the connection closed), nothing
was appended, and the bystander, connected the whole time, is still served (it reads the end
offset, then appends a good batch at exactly that offset).
"""

from __future__ import annotations

import struct
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from kafkito.errors import ErrorCode
from kafkito.testing.wire import WireClient, record_batch, request_frame

PRODUCE, LIST_OFFSETS, METADATA, API_VERSIONS = 0, 2, 3, 18
GOOD = [(b"k", b"v", [("h", b"1")])]
SOFTWARE = {"client_software_name": "kafkito-wire", "client_software_version": "0.1"}


def produce_body(topic: str, records: bytes, *, acks: int = -1, partition: int = 0) -> Any:
    return {
        "transactional_id": None,
        "acks": acks,
        "timeout": 5000,
        "topic_data": [
            {"name": topic, "partition_data": [{"index": partition, "records": records}]}
        ],
    }


def produce_error(client: WireClient, version: int, body: Any) -> ErrorCode:
    response = client.request(PRODUCE, version, body)
    return ErrorCode(response.responses[0].partition_responses[0].error_code)


@dataclass
class Scene:
    """A broker with one topic holding one batch, and a bystander connected to it."""

    bootstrap: str
    topic: str
    bystander: WireClient

    def end_offset(self) -> int:
        response = self.bystander.request(
            LIST_OFFSETS,
            1,
            {
                "replica_id": -1,
                "topics": [
                    {"name": self.topic, "partitions": [{"partition_index": 0, "timestamp": -1}]}
                ],
            },
        )
        answer = response.topics[0].partitions[0]
        assert answer.error_code == ErrorCode.none
        return int(answer.offset)

    def assert_untouched_and_serving(self, end_offset: int = 1) -> None:
        """Nothing was appended, and the bystander can still read and write."""
        versions = self.bystander.request(API_VERSIONS, 3, SOFTWARE)
        assert versions.error_code == ErrorCode.none
        assert self.end_offset() == end_offset
        response = self.bystander.request(PRODUCE, 9, produce_body(self.topic, record_batch(GOOD)))
        answer = response.responses[0].partition_responses[0]
        assert (answer.error_code, answer.base_offset) == (ErrorCode.none, end_offset)

    def connect(self) -> WireClient:
        return WireClient(self.bootstrap, timeout_s=5)


@pytest.fixture
def scene(broker: str, topic_name: str) -> Iterator[Scene]:
    with WireClient(broker, timeout_s=5) as bystander:
        metadata = bystander.request(
            METADATA, 4, {"topics": [{"name": topic_name}], "allow_auto_topic_creation": True}
        )
        assert metadata.topics[0].error_code == ErrorCode.none
        assert produce_error(bystander, 3, produce_body(topic_name, record_batch(GOOD))) == 0
        yield Scene(broker, topic_name, bystander)


def _header(api_key: int, version: int, correlation_id: int = 7, client_id: bytes = b"t") -> bytes:
    return struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


MALFORMED = {
    # A size that cannot hold api_key, api_version and correlation_id.
    "frame shorter than a header": _framed(b"\x00\x03\x00"),
    # The client_id claims 100 bytes; 3 follow.
    "truncated client id": _framed(struct.pack(">hhih", 3, 4, 7, 100) + b"abc"),
    # Produce v3 whose topic array claims 2^31-1 entries and has none.
    "huge array count": _framed(_header(0, 3) + struct.pack(">hhii", -1, 1, 1000, 0x7FFFFFFF)),
    # Produce v3 with a body of junk bytes.
    "garbage body": _framed(_header(0, 3) + b"\xff\xfe\xfd\x00\x01"),
    "unknown api key": _framed(_header(999, 0)),
    "unsupported version of Metadata": _framed(_header(3, 99)),
    "Produce below the served range": _framed(_header(0, 2)),
}


@pytest.mark.parametrize("frame", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_frame_closes_that_connection_only(scene: Scene, frame: bytes) -> None:
    with scene.connect() as hostile:
        hostile.send_raw(frame)
        assert hostile.closed_by_peer()
    scene.assert_untouched_and_serving()


@pytest.mark.parametrize(
    "size",
    [-1, -(2**31), 2**31 - 1, 100 * 1024 * 1024 + 1],
    ids=["minus one", "int32 min", "int32 max", "above socket.request.max.bytes"],
)
def test_lying_frame_size_closes_at_once(scene: Scene, size: int) -> None:
    """Refused from the 4-byte prefix: the broker does not wait for (or allocate) the body."""
    with scene.connect() as hostile:
        hostile.send_raw(struct.pack(">i", size) + b"\x00" * 16)
        assert hostile.closed_by_peer(timeout_s=3)
    scene.assert_untouched_and_serving()


def test_api_versions_above_range_answers_v0_with_unsupported_version(scene: Scene) -> None:
    """KIP-511: the answer is in the v0 layout with error 35 and our ranges; the connection
    stays open so that the client can retry at a version we serve."""
    with scene.connect() as client:
        client.send_raw(_framed(_header(API_VERSIONS, 99, correlation_id=4242) + b"\x00" * 8))
        correlation_id, body = client.read_response(API_VERSIONS, 0)
        assert correlation_id == 4242
        assert body.error_code == ErrorCode.unsupported_version
        ranges = {k.api_key: (k.min_version, k.max_version) for k in body.api_keys}
        assert ranges[API_VERSIONS] == (0, 4)
        assert ranges[PRODUCE][0] <= 3 <= 9 <= ranges[PRODUCE][1]
        retried = client.request(API_VERSIONS, 3, SOFTWARE)
        assert retried.error_code == ErrorCode.none
        assert {k.api_key for k in retried.api_keys} == set(ranges)
    scene.assert_untouched_and_serving()


def _bad_batches() -> dict[str, tuple[bytes, ErrorCode]]:
    two = [(b"a", b"1", []), (b"b", b"2", [])]
    good = record_batch(two)
    (crc,) = struct.unpack_from(">I", good, 17)
    return {
        "crc mismatch": (record_batch(two, crc=crc ^ 1), ErrorCode.corrupt_message),
        "above max.message.bytes": (
            record_batch([(None, b"x" * 1_048_576, [])]),
            ErrorCode.message_too_large,
        ),
        "record count mismatch": (record_batch(two, record_count=3), ErrorCode.invalid_record),
        "last offset delta mismatch": (
            record_batch(two, last_offset_delta=5),
            ErrorCode.invalid_record,
        ),
        "client base offset not zero": (
            record_batch(two, base_offset=7),
            ErrorCode.invalid_record,
        ),
        "client control batch": (
            record_batch([(b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00", [])], attributes=0x20),
            ErrorCode.invalid_record,
        ),
        "batch length beyond the bytes sent": (good[:-3], ErrorCode.corrupt_message),
        "two batches in one partition": (good + good, ErrorCode.corrupt_message),
    }


BAD_BATCHES = _bad_batches()


@pytest.mark.parametrize("version", [3, 7, 9])
@pytest.mark.parametrize(("batch", "code"), BAD_BATCHES.values(), ids=list(BAD_BATCHES.keys()))
def test_bad_batch_is_refused_with_kafka_error(
    scene: Scene, version: int, batch: bytes, code: ErrorCode
) -> None:
    with scene.connect() as client:
        assert produce_error(client, version, produce_body(scene.topic, batch)) == code
        # A per-partition error leaves the connection usable.
        assert client.request(API_VERSIONS, 3, SOFTWARE).error_code == ErrorCode.none
    scene.assert_untouched_and_serving()


def test_acks_two_is_invalid_required_acks(scene: Scene) -> None:
    with scene.connect() as client:
        body = produce_body(scene.topic, record_batch(GOOD), acks=2)
        assert produce_error(client, 9, body) == ErrorCode.invalid_required_acks
    scene.assert_untouched_and_serving()


def test_produce_to_consumer_offsets_is_invalid_topic(scene: Scene) -> None:
    with scene.connect() as client:
        body = produce_body("__consumer_offsets", record_batch(GOOD))
        assert produce_error(client, 9, body) == ErrorCode.invalid_topic_exception
    scene.assert_untouched_and_serving()


def test_one_bad_partition_does_not_fail_its_neighbour(scene: Scene) -> None:
    """Two topics in one request: the good batch is appended, the corrupt one refused."""
    good = record_batch(GOOD)
    body = produce_body(scene.topic, good)
    body["topic_data"].append(
        {"name": "no-such-topic", "partition_data": [{"index": 0, "records": good}]}
    )
    body["topic_data"].append(
        {
            "name": scene.topic,
            "partition_data": [{"index": 1, "records": good}],
        }
    )
    with scene.connect() as client:
        response = client.request(PRODUCE, 9, body)
    answers = [
        (t.name, p.index, ErrorCode(p.error_code), p.base_offset)
        for t in response.responses
        for p in t.partition_responses
    ]
    assert answers == [
        (scene.topic, 0, ErrorCode.none, 1),
        ("no-such-topic", 0, ErrorCode.unknown_topic_or_partition, -1),
        (scene.topic, 1, ErrorCode.unknown_topic_or_partition, -1),
    ]
    scene.assert_untouched_and_serving(end_offset=2)


def test_acks_zero_with_an_error_closes_the_connection(scene: Scene) -> None:
    """Kafka closes an acks=0 connection on error: the client has no other way to learn."""
    with scene.connect() as client:
        good = record_batch(GOOD)
        (crc,) = struct.unpack_from(">I", good, 17)
        client.send_raw(
            request_frame(
                PRODUCE, 9, 1, produce_body(scene.topic, record_batch(GOOD, crc=crc ^ 1), acks=0)
            )
        )
        assert client.closed_by_peer(timeout_s=5)
    scene.assert_untouched_and_serving()


def test_declared_sizes_reserve_no_memory(scene: Scene) -> None:
    """Twenty sockets each declare a frame just under the 100 MiB limit, send 1 KiB and stall:
    memory grows with the bytes received, not the bytes promised, and others are served."""
    declared = 100 * 1024 * 1024 - 1
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        stalled = [scene.connect() for _ in range(20)]
        for sock in stalled:
            sock.send_raw(struct.pack(">i", declared) + b"\x00" * 1024)
        scene.assert_untouched_and_serving()
        grown = tracemalloc.get_traced_memory()[0] - before
        for sock in stalled:
            assert not sock.closed_by_peer(timeout_s=0.01), "a valid size prefix was refused"
            sock.close()
    finally:
        tracemalloc.stop()
    assert grown < 16 * 1024 * 1024, f"{grown} bytes held for 20 KiB received"
