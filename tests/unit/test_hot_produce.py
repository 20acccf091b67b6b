"""The hand-written Produce codecs against kio, byte for byte, at every version served."""

from __future__ import annotations

import io
from typing import Any

import pytest
from kio.index import load_request_schema
from kio.serial import entity_reader, entity_writer

from kafkito.errors import CorruptFrame, ErrorCode
from kafkito.protocol import codec
from kafkito.protocol.hot.produce import (
    PRODUCE_VERSIONS,
    ProducePartitionResult,
    encode_produce_response,
    parse_produce_request,
)
from kafkito.protocol.records import CODEC_GZIP, build_batch
from kafkito.testing.wire import produce_response_data

VERSIONS = list(PRODUCE_VERSIONS)


def kio_request(version: int, body: dict[str, Any], *, client_id: str | None) -> bytes:
    """Encode a Produce request frame (no size prefix) with kio."""
    schema = load_request_schema(0, version)
    header_schema = schema.__header_schema__
    header = codec.build(
        header_schema,
        {
            "request_api_key": 0,
            "request_api_version": version,
            "correlation_id": 4242,
            "client_id": client_id,
        },
    )
    buf = io.BytesIO()
    entity_writer(header_schema)(buf, header)
    entity_writer(schema)(buf, codec.build(schema, body))
    return buf.getvalue()


def batch(n: int, size: int = 10, **kwargs: Any) -> bytes:
    return build_batch([(b"k%d" % i, bytes([i % 256]) * size) for i in range(n)], **kwargs)


REQUESTS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "one partition": (
        "rdkafka",
        {
            "acks": -1,
            "timeout": 30000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": batch(3)}]}],
        },
    ),
    "several topics and partitions, transactional": (
        "producer-1",
        {
            "transactional_id": "txn-é",
            "acks": 1,
            "timeout": 5,
            "topic_data": [
                {
                    "name": "alpha",
                    "partition_data": [
                        {"index": 0, "records": batch(1)},
                        {"index": 7, "records": batch(5, codec=CODEC_GZIP)},
                    ],
                },
                {"name": "béta", "partition_data": [{"index": 2, "records": batch(2)}]},
                {"name": "empty", "partition_data": []},
            ],
        },
    ),
    "null and empty records, null client id": (
        None,
        {
            "acks": 0,
            "timeout": 0,
            "topic_data": [
                {
                    "name": "x" * 249,
                    "partition_data": [
                        {"index": 1, "records": None},
                        {"index": 2, "records": b""},
                    ],
                }
            ],
        },
    ),
    "no topics": ("c", {"acks": -1, "timeout": 1, "topic_data": []}),
    "large batch": (
        "big",
        {
            "acks": -1,
            "timeout": 1000,
            "topic_data": [
                {"name": "big", "partition_data": [{"index": 0, "records": batch(300, 1000)}]}
            ],
        },
    ),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(REQUESTS))
def test_request_parses_like_kio(version: int, case: str) -> None:
    client_id, body = REQUESTS[case]
    frame = kio_request(version, body, client_id=client_id)
    schema = load_request_schema(0, version)
    header, used = entity_reader(schema.__header_schema__)(frame, 0)
    expected, _ = entity_reader(schema)(frame, used)

    parsed = parse_produce_request(frame)

    assert parsed.api_version == version
    assert parsed.correlation_id == header.correlation_id == 4242
    assert parsed.client_id == header.client_id
    assert parsed.transactional_id == expected.transactional_id
    assert parsed.acks == expected.acks
    assert parsed.timeout_ms == codec.ms(expected.timeout)
    got = [
        (
            t.name,
            [(p.partition, None if p.records is None else bytes(p.records)) for p in t.partitions],
        )
        for t in parsed.topics
    ]
    want = [
        (
            t.name,
            [(p.index, None if p.records is None else bytes(p.records)) for p in t.partition_data],
        )
        for t in expected.topic_data
    ]
    assert got == want


@pytest.mark.parametrize("version", [3, 8, 9, 11])
def test_records_are_views_into_the_frame_not_copies(version: int) -> None:
    frame = bytearray(kio_request(version, REQUESTS["one partition"][1], client_id="c"))
    records = parse_produce_request(frame).topics[0].partitions[0].records
    assert records is not None
    assert records.obj is frame  # a view of the frame itself
    offset = bytes(frame).index(bytes(records))
    frame[offset] ^= 0xFF  # and it sees later changes to the frame
    assert records[0] == frame[offset]


@pytest.mark.parametrize("version", VERSIONS)
def test_trailing_bytes_are_ignored(version: int) -> None:
    frame = kio_request(version, REQUESTS["one partition"][1], client_id="c")
    clean = parse_produce_request(frame)
    assert parse_produce_request(frame + b"\x01\x02\x03") == clean


@pytest.mark.parametrize("version", VERSIONS)
def test_every_truncation_raises_corrupt_frame(version: int) -> None:
    frame = kio_request(
        version, REQUESTS["several topics and partitions, transactional"][1], client_id="c"
    )
    for cut in range(len(frame)):
        with pytest.raises(CorruptFrame):
            parse_produce_request(frame[:cut])


def test_unknown_tagged_fields_in_header_and_body_are_skipped() -> None:
    # Produce v9 by hand: header with one tag, topic and partition entries with tags.
    records = batch(1)
    frame = (
        b"\x00\x00\x00\x09\x00\x00\x00\x07\x00\x01c"
        + b"\x01\x05\x02hi"  # header tags: tag 5, two bytes
        + b"\x00"  # null transactional id
        + b"\xff\xff\x00\x00\x03\xe8"  # acks -1, timeout 1000
        + b"\x02\x02t"  # one topic "t"
        + b"\x02\x00\x00\x00\x00"  # one partition, index 0
        + bytes([len(records) + 1])
        + records
        + b"\x01\x00\x01z"  # partition tags: tag 0, one byte
        + b"\x00"  # topic tags
        + b"\x01\x09\x00"  # body tags: tag 9, empty
    )
    parsed = parse_produce_request(frame)
    assert parsed.client_id == "c" and parsed.acks == -1 and parsed.timeout_ms == 1000
    assert [(t.name, [(p.partition, p.records) for p in t.partitions]) for t in parsed.topics] == [
        ("t", [(0, memoryview(records))])
    ]


def test_other_apis_and_versions_are_refused() -> None:
    frame = kio_request(9, REQUESTS["no topics"][1], client_id="c")
    for key, version in ((1, 9), (0, 2), (0, 12)):
        bad = key.to_bytes(2, "big") + version.to_bytes(2, "big") + frame[4:]
        with pytest.raises(CorruptFrame):
            parse_produce_request(bad)


def test_impossible_array_counts_are_refused_before_allocating() -> None:
    # v3: client_id "c", null txn id, acks, timeout, then a topic count of 2**31 - 1.
    frame = b"\x00\x00\x00\x03\x00\x00\x00\x01\x00\x01c\xff\xff\xff\xff\x00\x00\x00\x01"
    with pytest.raises(CorruptFrame, match="topic count"):
        parse_produce_request(frame + b"\x7f\xff\xff\xff" + b"\x00" * 64)


# -- the response --------------------------------------------------------------------------------

RESPONSES: dict[str, list[tuple[str, list[ProducePartitionResult]]]] = {
    "one partition": [("t", [ProducePartitionResult(0, 0, 41, log_start_offset=0)])],
    "errors and messages": [
        (
            "alpha",
            [
                ProducePartitionResult(0, 0, 1_000_000_000_000, log_start_offset=12),
                ProducePartitionResult(
                    3,
                    ErrorCode.corrupt_message,
                    error_message="record batch CRC mismatch",
                ),
                ProducePartitionResult(
                    4,
                    ErrorCode.invalid_record,
                    record_errors=[(0, "bad key"), (7, None)],
                    error_message="é",
                ),
            ],
        ),
        ("béta", [ProducePartitionResult(9, ErrorCode.unknown_topic_or_partition)]),
        ("nothing", []),
    ],
    "log append time": [
        ("t", [ProducePartitionResult(1, 0, 5, log_append_time_ms=1_700_000_000_123)])
    ],
    "no topics": [],
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(RESPONSES))
def test_response_is_byte_identical_to_kio(version: int, case: str) -> None:
    topics = RESPONSES[case]
    expected = codec.encode_response(0, version, 77, produce_response_data(topics))
    header = codec.response_header(0, version, 77)
    assert header + encode_produce_response(version, topics) == expected


def test_response_throttle_time_is_written() -> None:
    body = encode_produce_response(3, [], throttle_time_ms=250)
    assert body == b"\x00\x00\x00\x00\x00\x00\x00\xfa"
