"""Produce (key 0) request decoder and response encoder, v3-11, by hand.

Request layout (header v1 up to v8, header v2 from v9, when the body turns flexible):

    header: api_key i16, api_version i16, correlation_id i32, client_id legacy string,
            [v2: tagged fields]
    body:   transactional_id string?, acks i16, timeout_ms i32,
            topic_data [name string, partition_data [index i32, records bytes?, (tags)], (tags)],
            (tags)

Strings, arrays and bytes are int16/int32-length up to v8 and compact (uvarint length + 1)
from v9. Each partition's records come back as a memoryview into the request frame: the
bytes are copied exactly once, later, into the bytearray the log patches and appends.
Trailing bytes after the body are ignored, as Kafka does (KAFKA-NOTES §6 P4).

Response layout, v3-11 (v5 adds log_start_offset, v8 record_errors and error_message, v9 is
flexible; v10's tagged current_leader and node_endpoints stay at their defaults, so they are
never written, P3):

    responses [name string, partition_responses [index i32, error_code i16, base_offset i64,
               log_append_time_ms i64, (v5+) log_start_offset i64,
               (v8+) record_errors [batch_index i32, message string?], error_message string?,
               (tags)], (tags)],
    throttle_time_ms i32, (tags)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import NamedTuple

from kafkito.errors import CorruptFrame
from kafkito.protocol.hot.wire import (
    I16,
    I32,
    I64,
    check_count,
    read_uvarint,
    skip_tagged_fields,
    write_array_len,
    write_string,
)

__all__ = [
    "PRODUCE_VERSIONS",
    "PartitionProduce",
    "ProducePartitionResult",
    "ProduceRequest",
    "TopicProduce",
    "encode_produce_response",
    "parse_produce_request",
]

PRODUCE_VERSIONS = range(3, 12)
FIRST_FLEXIBLE = 9

_HEAD = I16.size * 2 + I32.size


class PartitionProduce(NamedTuple):
    """One partition's data: `records` is a view into the request frame (None if null).

    Kafka calls the partition field `index`; a NamedTuple cannot (tuple.index exists).
    """

    partition: int
    records: memoryview | None


class TopicProduce(NamedTuple):
    name: str
    partitions: list[PartitionProduce]


class ProduceRequest(NamedTuple):
    """A decoded Produce request, header included.

    NamedTuples, not frozen dataclasses, for the parsed parts: a frozen dataclass's __init__
    sets each field through object.__setattr__, which here cost more than the parsing.
    """

    api_version: int
    correlation_id: int
    client_id: str | None
    transactional_id: str | None
    acks: int
    timeout_ms: int
    topics: list[TopicProduce]


_HEADER = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length
_ACKS_TIMEOUT = struct.Struct(">hi")
_INDEX_SIZE = struct.Struct(">ii")  # partition index, records length (v3-8)
_I16_AT = I16.unpack_from
_I32_AT = I32.unpack_from


def _text(frame: bytes | bytearray | memoryview, pos: int, n: int, end: int) -> str:
    if pos + n > end:
        raise CorruptFrame(f"string of {n} bytes at {pos} runs past the end ({end} bytes)")
    try:
        return str(frame[pos : pos + n], "utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFrame(f"string at {pos} is not UTF-8") from exc


def parse_produce_request(frame: bytes | bytearray | memoryview) -> ProduceRequest:
    """Decode a Produce request frame (without its size prefix), records zero-copy.

    Raises CorruptFrame for anything that does not parse, including a frame that is not a
    Produce v3-11 request (the dispatcher routes only those here).
    """
    # Written flat, with one-byte fast paths for varints and empty tag sections: each Python
    # call costs about as much as the work it does here, and this runs once per Produce.
    # Reads past the end raise IndexError or struct.error, turned into CorruptFrame below;
    # slices, which would silently come up short, are bounds-checked by hand.
    try:
        return _parse(frame)
    except (IndexError, struct.error) as exc:
        raise CorruptFrame(f"produce request truncated ({len(frame)} bytes): {exc}") from None


def _parse(frame: bytes | bytearray | memoryview) -> ProduceRequest:
    end = len(frame)
    if end < _HEAD:
        raise CorruptFrame(f"request of {end} bytes is too short for a header")
    api_key, version, correlation_id, n = _HEADER.unpack_from(frame, 0)
    if api_key != 0 or version not in PRODUCE_VERSIONS:
        raise CorruptFrame(f"not a Produce v3-11 request: api_key={api_key} v{version}")
    pos = _HEADER.size
    client_id = None
    if n >= 0:
        client_id = _text(frame, pos, n, end)
        pos += n
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    topics: list[TopicProduce] = []
    if version >= FIRST_FLEXIBLE:
        pos = skip_tagged_fields(frame, pos) if frame[pos] else pos + 1
        n = frame[pos]  # compact nullable string: length + 1, 0 = null
        if n < 0x80:
            pos += 1
        else:
            n, pos = read_uvarint(frame, pos)
        transactional_id = None
        if n:
            transactional_id = _text(frame, pos, n - 1, end)
            pos += n - 1
        acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(frame, pos)
        pos += 6
        n_topics = frame[pos]
        if n_topics < 0x80:
            pos += 1
        else:
            n_topics, pos = read_uvarint(frame, pos)
        n_topics -= 1
        if n_topics < 0:
            raise CorruptFrame("produce request with a null topic array")
        check_count(n_topics, pos, frame, 3, "topic")
        for _ in range(n_topics):
            n = frame[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = read_uvarint(frame, pos)
            if n == 0:
                raise CorruptFrame("produce request with a null topic name")
            name = _text(frame, pos, n - 1, end)
            pos += n - 1
            n_parts = frame[pos]
            if n_parts < 0x80:
                pos += 1
            else:
                n_parts, pos = read_uvarint(frame, pos)
            n_parts -= 1
            if n_parts < 0:
                raise CorruptFrame(f"topic {name!r} has a null partition array")
            check_count(n_parts, pos, frame, 6, "partition")
            partitions: list[PartitionProduce] = []
            for _ in range(n_parts):
                index = _I32_AT(frame, pos)[0]
                pos += 4
                n = frame[pos]
                if n < 0x80:
                    pos += 1
                else:
                    n, pos = read_uvarint(frame, pos)
                records = None
                if n:
                    stop = pos + n - 1
                    if stop > end:
                        raise CorruptFrame(f"records of {n - 1} bytes at {pos} run past the end")
                    records = view[pos:stop]
                    pos = stop
                pos = skip_tagged_fields(frame, pos) if frame[pos] else pos + 1
                partitions.append(PartitionProduce(index, records))
            pos = skip_tagged_fields(frame, pos) if frame[pos] else pos + 1
            topics.append(TopicProduce(name, partitions))
        if frame[pos]:
            skip_tagged_fields(frame, pos)
    else:
        n = _I16_AT(frame, pos)[0]
        pos += 2
        transactional_id = None
        if n >= 0:
            transactional_id = _text(frame, pos, n, end)
            pos += n
        acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(frame, pos)
        pos += 6
        n_topics = _I32_AT(frame, pos)[0]
        pos += 4
        if n_topics < 0:
            raise CorruptFrame("produce request with a null topic array")
        check_count(n_topics, pos, frame, 6, "topic")
        for _ in range(n_topics):
            n = _I16_AT(frame, pos)[0]
            pos += 2
            if n < 0:
                raise CorruptFrame("produce request with a null topic name")
            name = _text(frame, pos, n, end)
            pos += n
            n_parts = _I32_AT(frame, pos)[0]
            pos += 4
            if n_parts < 0:
                raise CorruptFrame(f"topic {name!r} has a null partition array")
            check_count(n_parts, pos, frame, 8, "partition")
            partitions = []
            for _ in range(n_parts):
                index, n = _INDEX_SIZE.unpack_from(frame, pos)
                pos += 8
                records = None
                if n >= 0:
                    stop = pos + n
                    if stop > end:
                        raise CorruptFrame(f"records of {n} bytes at {pos} run past the end")
                    records = view[pos:stop]
                    pos = stop
                partitions.append(PartitionProduce(index, records))
            topics.append(TopicProduce(name, partitions))
    return ProduceRequest(
        version, correlation_id, client_id, transactional_id, acks, timeout_ms, topics
    )


@dataclass(slots=True)
class ProducePartitionResult:
    """One partition's answer; mutable so that a later fsync failure can rewrite it."""

    index: int
    error_code: int = 0
    base_offset: int = -1
    log_append_time_ms: int = -1
    log_start_offset: int = -1
    error_message: str | None = None
    record_errors: list[tuple[int, str | None]] = field(default_factory=list)


_PARTITION_FIXED = struct.Struct(">ihqq")


def encode_produce_response(
    version: int,
    topics: list[tuple[str, list[ProducePartitionResult]]],
    *,
    throttle_time_ms: int = 0,
) -> bytes:
    """The Produce response body (no header) of `version`, byte-identical to kio's."""
    assert version in PRODUCE_VERSIONS, version
    flexible = version >= FIRST_FLEXIBLE
    out = bytearray()
    write_array_len(out, len(topics), flexible)
    for name, partitions in topics:
        write_string(out, name, flexible)
        write_array_len(out, len(partitions), flexible)
        for p in partitions:
            out += _PARTITION_FIXED.pack(p.index, p.error_code, p.base_offset, p.log_append_time_ms)
            if version >= 5:
                out += I64.pack(p.log_start_offset)
            if version >= 8:
                write_array_len(out, len(p.record_errors), flexible)
                for batch_index, message in p.record_errors:
                    out += I32.pack(batch_index)
                    write_string(out, message, flexible)
                    if flexible:
                        out.append(0)
                write_string(out, p.error_message, flexible)
            if flexible:
                out.append(0)
        if flexible:
            out.append(0)
    out += I32.pack(throttle_time_ms)
    if flexible:
        out.append(0)
    return bytes(out)
