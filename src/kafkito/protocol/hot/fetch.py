"""Fetch (key 1) response encoder, v4-16, by hand, as chunks for `writelines`.

Layout (v7 adds error_code and session_id; v5 log_start_offset; v11 preferred_read_replica;
v12 turns flexible; v13 names topics by 16-byte id instead of by name):

    throttle_time_ms i32, (v7+) error_code i16, session_id i32,
    responses [topic string | topic_id uuid,
               partitions [partition_index i32, error_code i16, high_watermark i64,
                           last_stable_offset i64, (v5+) log_start_offset i64,
                           aborted_transactions [producer_id i64, first_offset i64, (tags)]?,
                           (v11+) preferred_read_replica i32, records bytes?, (tags)],
               (tags)],
    (tags)

The encoder never touches record bytes: it returns [head, records, head, records, ..., tail],
where each head holds everything up to and including a partition's records length, so the
segment bytes go to the socket as they were read. The tagged fields a version has
(diverging_epoch, current_leader, snapshot_id, node_endpoints) are never written: we only
ever hold their defaults, and tags at their default break librdkafka < 2.1.2 (P3).
"""

from __future__ import annotations

import struct
import uuid
from typing import NamedTuple

from kafkito.protocol.hot.wire import I32, write_array_len, write_string, write_uvarint

__all__ = [
    "FETCH_VERSIONS",
    "FetchPartition",
    "FetchTopic",
    "encode_fetch_response",
]

FETCH_VERSIONS = range(4, 17)
FIRST_FLEXIBLE = 12
FIRST_TOPIC_ID = 13

_PARTITION_HEAD = struct.Struct(">ihqq")
_I64 = struct.Struct(">q")
_ABORTED = struct.Struct(">qq")
_TOP_V7 = struct.Struct(">ihi")
_NULL_UUID = bytes(16)


class FetchPartition(NamedTuple):
    """One partition's answer; `records` is sent as it is (bytes or a view of segment bytes)."""

    partition_index: int
    error_code: int
    high_watermark: int
    last_stable_offset: int
    log_start_offset: int
    records: bytes | memoryview | None
    aborted_transactions: list[tuple[int, int]] | None = None
    preferred_read_replica: int = -1


class FetchTopic(NamedTuple):
    """A topic by name (v4-12) or by id (v13+; None is the all-zero id)."""

    topic: str | uuid.UUID | None
    partitions: list[FetchPartition]


def encode_fetch_response(
    version: int,
    topics: list[FetchTopic],
    *,
    throttle_time_ms: int = 0,
    error_code: int = 0,
    session_id: int = 0,
) -> list[bytes | memoryview]:
    """The Fetch response body (no header) of `version` as chunks; joined, identical to kio."""
    assert version in FETCH_VERSIONS, version
    flexible = version >= FIRST_FLEXIBLE
    by_id = version >= FIRST_TOPIC_ID
    chunks: list[bytes | memoryview] = []
    out = bytearray()
    if version >= 7:
        out += _TOP_V7.pack(throttle_time_ms, error_code, session_id)
    else:
        out += I32.pack(throttle_time_ms)
    write_array_len(out, len(topics), flexible)
    for t in topics:
        if by_id:
            # A client may send the all-zero id, which kio decodes as None: echo zeros back.
            assert t.topic is None or isinstance(t.topic, uuid.UUID), "v13+ names topics by id"
            out += t.topic.bytes if t.topic is not None else _NULL_UUID
        else:
            assert isinstance(t.topic, str), "fetch v4-12 names topics by name"
            write_string(out, t.topic, flexible)
        write_array_len(out, len(t.partitions), flexible)
        for p in t.partitions:
            out += _PARTITION_HEAD.pack(
                p.partition_index, p.error_code, p.high_watermark, p.last_stable_offset
            )
            if version >= 5:
                out += _I64.pack(p.log_start_offset)
            aborted = p.aborted_transactions
            if aborted is None:
                write_array_len(out, -1, flexible)
            else:
                write_array_len(out, len(aborted), flexible)
                for producer_id, first_offset in aborted:
                    out += _ABORTED.pack(producer_id, first_offset)
                    if flexible:
                        out.append(0)
            if version >= 11:
                out += I32.pack(p.preferred_read_replica)
            records = p.records
            if records is None:
                write_array_len(out, -1, flexible)
            else:
                size = len(records)
                if flexible:
                    write_uvarint(out, size + 1)
                else:
                    out += I32.pack(size)
                if size:
                    chunks.append(bytes(out))
                    chunks.append(records)
                    out = bytearray()
            if flexible:
                out.append(0)
        if flexible:
            out.append(0)
    if flexible:
        out.append(0)
    chunks.append(bytes(out))
    return chunks
