"""Record batch v2 (magic 2): the header layout, checks and in-place offset assignment.

Layout (KAFKA-NOTES §4), big-endian:

    0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
    21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
    43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records

The CRC (CRC-32C) covers bytes [21, end), so the broker assigns offsets and stamps its leader
epoch by patching bytes [0, 8) and [12, 16) in place: no re-encoding, no CRC recomputation.
Batches are stored and served exactly as received, compressed ones included.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import crc32c as _crc32c

from kafkito.errors import CorruptBatch, ErrorCode

__all__ = [
    "BATCH_HEADER_BYTES",
    "LOG_OVERHEAD",
    "BatchHeader",
    "iter_batch_headers",
    "patch_batch",
    "read_batch_header",
    "validate_produced_batch",
]

_HEADER = struct.Struct(">qiibIhiqqqhii")
BATCH_HEADER_BYTES = _HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: what batchLength does not count
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_EPOCH = struct.Struct(">i")
_BASE_OFFSET = struct.Struct(">q")

ATTR_CODEC_MASK = 0x07
ATTR_TIMESTAMP_TYPE = 0x08
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20
MAX_CODEC = 4  # zstd


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fixed 61-byte header of a v2 record batch."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies, header included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.last_offset_delta + 1

    @property
    def codec(self) -> int:
        return self.attributes & ATTR_CODEC_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record, wrapping at INT32_MAX as Kafka does."""
        return (self.base_sequence + self.last_offset_delta) % (2**31)


def read_batch_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Unpack the batch header at `pos`. Raises CorruptBatch if fewer than 61 bytes remain."""
    if len(buf) - pos < BATCH_HEADER_BYTES:
        raise CorruptBatch(f"{len(buf) - pos} bytes cannot hold a record batch header")
    return BatchHeader(*_HEADER.unpack_from(buf, pos))


def batch_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC-32C of the batch at `pos` over bytes [21, size)."""
    return int(_crc32c.crc32c(memoryview(buf)[pos + 21 : pos + size]))


def validate_produced_batch(
    records: bytes | bytearray | memoryview, *, max_message_bytes: int
) -> BatchHeader:
    """Check a produced partition's records in Kafka's order; return the one batch's header.

    Raises CorruptBatch with the error code to answer: CORRUPT_MESSAGE for a bad length or CRC,
    MESSAGE_TOO_LARGE above `max_message_bytes`, INVALID_RECORD for a wrong magic, codec, count,
    a non-zero client base offset or a client-sent control batch (KAFKA-NOTES §4).
    """
    total = len(records)
    if total < BATCH_HEADER_BYTES:
        raise CorruptBatch(f"records of {total} bytes cannot hold a batch header")
    base_offset, batch_length = _OFFSET_AND_LENGTH.unpack_from(records, 0)
    size = batch_length + LOG_OVERHEAD
    if batch_length < BATCH_HEADER_BYTES - LOG_OVERHEAD or size != total:
        raise CorruptBatch(
            f"batch length {batch_length} does not match the {total} bytes sent "
            "(exactly one batch per partition is accepted)"
        )
    if size > max_message_bytes:
        raise CorruptBatch(
            f"batch of {size} bytes exceeds max.message.bytes {max_message_bytes}",
            code=ErrorCode.message_too_large,
        )
    header = read_batch_header(records)
    if header.magic != 2:
        raise CorruptBatch(f"magic {header.magic} is not supported", code=ErrorCode.corrupt_message)
    if batch_crc(records, 0, size) != header.crc:
        raise CorruptBatch("record batch CRC mismatch")
    if header.codec > MAX_CODEC:
        raise CorruptBatch(
            f"unknown compression codec {header.codec}", code=ErrorCode.invalid_record
        )
    if header.is_control:
        raise CorruptBatch("clients may not send control batches", code=ErrorCode.invalid_record)
    if base_offset != 0:
        raise CorruptBatch(
            f"client batch base offset must be 0, got {base_offset}", code=ErrorCode.invalid_record
        )
    if header.record_count <= 0 or header.last_offset_delta != header.record_count - 1:
        raise CorruptBatch(
            f"record count {header.record_count} does not match last offset delta "
            f"{header.last_offset_delta}",
            code=ErrorCode.invalid_record,
        )
    return header


def patch_batch(
    buf: bytearray | memoryview, pos: int, *, base_offset: int, leader_epoch: int
) -> None:
    """Assign `base_offset` and stamp `leader_epoch` in place; both lie outside the CRC."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)
    _EPOCH.pack_into(buf, pos + 12, leader_epoch)


def iter_batch_headers(
    buf: bytes | bytearray | memoryview, start: int = 0
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield (position, header) for each complete batch in `buf` from `start`.

    Stops silently at the first incomplete batch; structural checks are the caller's.
    """
    pos, end = start, len(buf)
    while end - pos >= BATCH_HEADER_BYTES:
        header = read_batch_header(buf, pos)
        if header.batch_length < BATCH_HEADER_BYTES - LOG_OVERHEAD or pos + header.size > end:
            return
        yield pos, header
        pos += header.size
