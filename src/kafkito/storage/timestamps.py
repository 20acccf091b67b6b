"""Record-level timestamps inside a stored batch, for exact ListOffsets by timestamp.

A batch header only says its largest timestamp; Kafka answers ListOffsets(timestamp) with the
first *record* whose timestamp reaches the target, so we walk the records: decompress the body
when the batch is compressed (cramjam: gzip, snappy raw or xerial-framed, lz4 frame, zstd), then
read each record's length, attributes, timestamp delta and offset delta (zig-zag varints,
KAFKA-NOTES §4) and skip the rest. With LogAppendTime every record carries the batch's
maxTimestamp. Pure functions; a malformed body raises CorruptBatch.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import cramjam

from kafkito.errors import CorruptBatch
from kafkito.protocol.records import ATTR_TIMESTAMP_TYPE, BATCH_HEADER_BYTES, read_batch_header

__all__ = ["decompress_records", "iter_record_timestamps", "read_varint"]

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16
_INT32 = struct.Struct(">i")
MAX_DECOMPRESSED_BYTES = 256 << 20
"""A stored batch never inflates beyond this; larger is treated as corrupt."""


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A zig-zag varint at `pos`: (value, next position). Raises CorruptBatch when cut short."""
    shift = raw = 0
    while True:
        if pos >= len(buf):
            raise CorruptBatch("varint runs past the end of the records")
        byte = buf[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptBatch("varint longer than 10 bytes")


def _unxerial(data: bytes) -> bytes:
    out, pos = [], _XERIAL_HEADER_BYTES
    while pos + 4 <= len(data):
        (size,) = _INT32.unpack_from(data, pos)
        pos += 4
        if size < 0 or pos + size > len(data):
            raise CorruptBatch("xerial snappy block runs past the end")
        out.append(bytes(cramjam.snappy.decompress_raw(data[pos : pos + size])))
        pos += size
    return b"".join(out)


def decompress_records(codec: int, body: bytes) -> bytes:
    """The records of a batch body compressed with Kafka codec `codec` (0 = none)."""
    try:
        if codec == 0:
            out = body
        elif codec == 1:
            out = bytes(cramjam.gzip.decompress(body))
        elif codec == 2:
            if body.startswith(_XERIAL_MAGIC):
                out = _unxerial(body)
            else:
                out = bytes(cramjam.snappy.decompress_raw(body))
        elif codec == 3:
            out = bytes(cramjam.lz4.decompress(body))
        elif codec == 4:
            out = bytes(cramjam.zstd.decompress(body))
        else:
            raise CorruptBatch(f"unknown compression codec {codec}")
    except CorruptBatch:
        raise
    except Exception as exc:  # cramjam raises its own DecompressionError and ValueError
        raise CorruptBatch(f"cannot decompress codec {codec}: {exc}") from exc
    if len(out) > MAX_DECOMPRESSED_BYTES:
        raise CorruptBatch(f"batch inflates to {len(out)} bytes")
    return out


def iter_record_timestamps(batch: bytes) -> Iterator[tuple[int, int]]:
    """(offset, timestamp) of every record in one whole stored batch, in order."""
    header = read_batch_header(batch)
    if header.attributes & ATTR_TIMESTAMP_TYPE:
        for delta in range(header.last_offset_delta + 1):
            yield header.base_offset + delta, header.max_timestamp
        return
    records = decompress_records(header.codec, batch[BATCH_HEADER_BYTES : header.size])
    view = memoryview(records)
    pos = 0
    for _ in range(header.record_count):
        length, pos = read_varint(view, pos)
        end = pos + length
        if length < 0 or end > len(view):
            raise CorruptBatch("record length runs past the end of the batch")
        ts_delta, p = read_varint(view, pos + 1)  # skip the attributes byte
        offset_delta, _ = read_varint(view, p)
        yield header.base_offset + offset_delta, header.base_timestamp + ts_delta
        pos = end
