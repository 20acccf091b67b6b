"""The hand-written Fetch response encoder against kio, byte for byte, at every version served."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from kafkito.errors import ErrorCode
from kafkito.protocol import codec
from kafkito.protocol.hot.fetch import (
    FETCH_VERSIONS,
    FetchPartition,
    FetchTopic,
    encode_fetch_response,
)
from kafkito.protocol.records import CODEC_ZSTD, build_batch

VERSIONS = list(FETCH_VERSIONS)
ID_A = uuid.UUID("5f8c4b8e-0c64-4a43-9a4e-2b7d0d3c1a11")
ID_B = uuid.UUID("00000000-0000-0000-0000-00000000beef")


def data(n: int, size: int = 20, **kwargs: Any) -> bytes:
    return build_batch([(None, b"v" * size)] * n, **kwargs)


def cases() -> dict[str, list[tuple[str, uuid.UUID, list[FetchPartition]]]]:
    two_batches = data(3, base_offset=0) + data(2, base_offset=3)
    return {
        "one partition with records": [
            ("t", ID_A, [FetchPartition(0, 0, 10, 10, 0, data(10))]),
        ],
        "empty long-poll answer": [("t", ID_A, [FetchPartition(0, 0, 10, 10, 0, b"")])],
        "null records and errors": [
            (
                "alpha",
                ID_A,
                [
                    FetchPartition(0, 0, 5, 5, 0, two_batches),
                    FetchPartition(1, ErrorCode.offset_out_of_range, 5, 5, 2, None),
                    FetchPartition(2, ErrorCode.unknown_topic_or_partition, -1, -1, -1, b""),
                ],
            ),
            (
                "béta",
                ID_B,
                [FetchPartition(3, 0, 1 << 40, 1 << 40, 1 << 39, data(1, codec=CODEC_ZSTD))],
            ),
            ("none", ID_B, []),
        ],
        "aborted transactions, null and listed": [
            (
                "t",
                ID_A,
                [
                    FetchPartition(0, 0, 9, 4, 0, data(2), aborted_transactions=None),
                    FetchPartition(1, 0, 9, 4, 0, data(1), aborted_transactions=[(7, 3), (8, 4)]),
                    FetchPartition(2, 0, 9, 4, 0, b"", aborted_transactions=[]),
                ],
            )
        ],
        "preferred read replica": [
            ("t", ID_A, [FetchPartition(0, 0, 1, 1, 0, data(1), preferred_read_replica=3)])
        ],
        "large records": [("big", ID_A, [FetchPartition(0, 0, 2000, 2000, 0, data(1500, 1000))])],
        "no topics": [],
    }


def kio_dict(version: int, topics: list[tuple[str, uuid.UUID, list[FetchPartition]]]) -> Any:
    key = "topic_id" if version >= 13 else "topic"
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "session_id": 0,
        "responses": [
            {
                key: topic_id if version >= 13 else name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": ErrorCode(p.error_code),
                        "high_watermark": p.high_watermark,
                        "last_stable_offset": p.last_stable_offset,
                        "log_start_offset": p.log_start_offset,
                        "aborted_transactions": None
                        if p.aborted_transactions is None
                        else [
                            {"producer_id": pid, "first_offset": first}
                            for pid, first in p.aborted_transactions
                        ],
                        "preferred_read_replica": p.preferred_read_replica,
                        "records": None if p.records is None else bytes(p.records),
                    }
                    for p in parts
                ],
            }
            for name, topic_id, parts in topics
        ],
    }


def ours(version: int, topics: list[tuple[str, uuid.UUID, list[FetchPartition]]]) -> list[Any]:
    return encode_fetch_response(
        version,
        [
            FetchTopic(topic_id if version >= 13 else name, parts)
            for name, topic_id, parts in topics
        ],
    )


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", sorted(cases()))
def test_response_is_byte_identical_to_kio(version: int, case: str) -> None:
    topics = cases()[case]
    expected = codec.encode_response(1, version, 99, kio_dict(version, topics))
    chunks = ours(version, topics)
    assert codec.response_header(1, version, 99) + b"".join(chunks) == expected


@pytest.mark.parametrize("version", [4, 11, 12, 16])
def test_record_bytes_are_passed_through_not_copied(version: int) -> None:
    first, second = memoryview(data(4)), data(2)
    topics = [
        ("t", ID_A, [FetchPartition(0, 0, 6, 6, 0, first), FetchPartition(1, 0, 6, 6, 0, b"")]),
        ("u", ID_B, [FetchPartition(0, 0, 6, 6, 0, second)]),
    ]
    chunks = ours(version, topics)
    # [head, records, head, records, tail]: only partitions with data split the chunks.
    assert len(chunks) == 5
    assert chunks[1] is first and chunks[3] is second


def test_tagged_fields_are_never_written_at_their_defaults() -> None:
    # v12+ partitions carry three tagged fields; we emit an empty tag section (one zero byte).
    topics = [("t", ID_A, [FetchPartition(0, 0, 1, 1, 0, b"")])]
    body = b"".join(ours(16, topics))
    # throttle, error, session, 1 topic, id, 1 partition, 4 fixed fields, aborted null, replica,
    # records empty, then partition tags, topic tags, response tags: all empty.
    assert body.endswith(b"\x00" + b"\xff\xff\xff\xff" + b"\x01" + b"\x00\x00\x00")
    assert len(body) == 4 + 2 + 4 + 1 + 16 + 1 + 4 + 2 + 8 + 8 + 8 + 1 + 4 + 1 + 1 + 1 + 1


def test_the_all_zero_topic_id_is_echoed() -> None:
    # kio decodes a zero topic id as None; the answer (UNKNOWN_TOPIC_ID) must still encode.
    part = FetchPartition(0, ErrorCode.unknown_topic_id, -1, -1, -1, b"")
    plain = {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "session_id": 0,
        "responses": [
            {
                "topic_id": None,
                "partitions": [
                    {
                        "partition_index": 0,
                        "error_code": ErrorCode.unknown_topic_id,
                        "high_watermark": -1,
                        "last_stable_offset": -1,
                        "log_start_offset": -1,
                        "aborted_transactions": None,
                        "records": b"",
                    }
                ],
            }
        ],
    }
    expected = codec.encode_response(1, 16, 3, plain)
    body = b"".join(encode_fetch_response(16, [FetchTopic(None, [part])]))
    assert codec.response_header(1, 16, 3) + body == expected
