"""Record batch v2 (magic 2): the header layout, checks and in-place offset assignment.

Layout (KAFKA-NOTES §4), big-endian:

    0 baseOffset i64 | 8 batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8 | 17 crc u32
    21 attributes i16 | 23 lastOffsetDelta i32 | 27 baseTimestamp i64 | 35 maxTimestamp i64
    43 producerId i64 | 51 producerEpoch i16 | 53 baseSequence i32 | 57 recordCount i32 | 61 records

The CRC (CRC-32C) covers bytes [21, end), so the broker assigns offsets and stamps its leader
epoch by patching bytes [0, 8) and [12, 16) in place: no re-encoding, no CRC recomputation.
Batches are stored and served exactly as received, compressed ones included.

Inside a batch, each record is (all varints zigzag-encoded, as in protobuf):

    length varint | attributes i8 | timestampDelta varlong | offsetDelta varint
    keyLength varint (-1 = null) | key | valueLength varint (-1 = null) | value
    headerCount varint | [headerKeyLength varint | key | headerValueLength varint | value]...

When the codec bits (attributes & 7) are set, everything after the 61-byte header is one
compressed blob: gzip, snappy (raw, or Java's xerial framing), lz4 (frame format) or zstd.
The broker never recompresses; it decompresses only to check the record count, and always
into a buffer of bounded size, so that a compression bomb is refused with bounded memory
(RELIABILITY B27) instead of inflating. Every reader here raises CorruptBatch (a
ProtocolError) on bad input and never allocates from an untrusted count.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cramjam
import crc32c as _crc32c

from kafkito.errors import CorruptBatch, ErrorCode

__all__ = [
    "BATCH_HEADER_BYTES",
    "LOG_OVERHEAD",
    "BatchHeader",
    "Record",
    "build_batch",
    "count_records",
    "decompress",
    "encode_record",
    "iter_batch_headers",
    "iter_records",
    "patch_batch",
    "read_batch_header",
    "read_varint",
    "read_varlong",
    "records_section",
    "stamp_log_append_time",
    "timestamps_out_of_range",
    "validate_produced_batch",
    "write_varint",
]

_HEADER = struct.Struct(">qiibIhiqqqhii")
_new_header = tuple.__new__
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
CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD = range(5)

MAX_UNCOMPRESSED_BATCH_BYTES = 64 << 20
"""The most a produced batch may inflate to before it is refused as a compression bomb.
Kafka has no such cap; 64 MiB is 64 times the default max.message.bytes."""


class BatchHeader(NamedTuple):
    """The fixed 61-byte header of a v2 record batch.

    A NamedTuple rather than a frozen dataclass: it is built for every produced, scanned and
    fetched batch, and a frozen dataclass's __init__ (13 object.__setattr__ calls) cost ten
    times the struct unpack it wraps.
    """

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
    return _new_header(BatchHeader, _HEADER.unpack_from(buf, pos))


def batch_crc(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """CRC-32C of the batch at `pos` over bytes [21, size)."""
    return int(_crc32c.crc32c(memoryview(buf)[pos + 21 : pos + size]))


def validate_produced_batch(
    records: bytes | bytearray | memoryview,
    *,
    max_message_bytes: int,
    check_records: bool = True,
    check_uncompressed_records: bool = True,
    max_uncompressed_bytes: int = MAX_UNCOMPRESSED_BATCH_BYTES,
) -> BatchHeader:
    """Check a produced partition's records in Kafka's order; return the one batch's header.

    Raises CorruptBatch with the error code to answer: CORRUPT_MESSAGE for a bad length or CRC,
    MESSAGE_TOO_LARGE above `max_message_bytes`, INVALID_RECORD for a wrong magic, codec, count,
    a non-zero client base offset or a client-sent control batch (KAFKA-NOTES §4). With
    `check_records`, the records are walked (decompressed first, within
    `max_uncompressed_bytes`) and their number must match the header's count, as Kafka's
    LogValidator iterates them: INVALID_RECORD on a mismatch, CORRUPT_MESSAGE when the
    records do not parse or do not decompress within the cap. `check_uncompressed_records`
    False skips that walk for uncompressed batches (it costs ~0.4 µs per record).
    """
    total = len(records)
    if total < BATCH_HEADER_BYTES:
        raise CorruptBatch(f"records of {total} bytes cannot hold a batch header")
    # One unpack into locals: this runs for every produced batch (see BatchHeader).
    fields = _HEADER.unpack_from(records, 0)
    base_offset, batch_length, _, magic, crc, attributes, last_offset_delta = fields[:7]
    record_count = fields[12]
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
    if magic != 2:
        raise CorruptBatch(f"magic {magic} is not supported", code=ErrorCode.corrupt_message)
    if _crc32c.crc32c(memoryview(records)[21:size]) != crc:
        raise CorruptBatch("record batch CRC mismatch")
    codec = attributes & ATTR_CODEC_MASK
    if codec > MAX_CODEC:
        raise CorruptBatch(f"unknown compression codec {codec}", code=ErrorCode.invalid_record)
    if attributes & ATTR_CONTROL:
        raise CorruptBatch("clients may not send control batches", code=ErrorCode.invalid_record)
    if base_offset != 0:
        raise CorruptBatch(
            f"client batch base offset must be 0, got {base_offset}", code=ErrorCode.invalid_record
        )
    if record_count <= 0 or last_offset_delta != record_count - 1:
        raise CorruptBatch(
            f"record count {record_count} does not match last offset delta {last_offset_delta}",
            code=ErrorCode.invalid_record,
        )
    header: BatchHeader = _new_header(BatchHeader, fields)
    if check_records and (codec != CODEC_NONE or check_uncompressed_records):
        section = records_section(records, header, max_bytes=max_uncompressed_bytes)
        found = count_records(section, record_count)
        if found != record_count:
            raise CorruptBatch(
                f"batch declares {record_count} records but holds {found}",
                code=ErrorCode.invalid_record,
            )
    return header


def patch_batch(
    buf: bytearray | memoryview, pos: int, *, base_offset: int, leader_epoch: int
) -> None:
    """Assign `base_offset` and stamp `leader_epoch` in place; both lie outside the CRC."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)
    _EPOCH.pack_into(buf, pos + 12, leader_epoch)


_ATTRIBUTES = struct.Struct(">h")
_TIMESTAMP = struct.Struct(">q")
_CRC = struct.Struct(">I")


def stamp_log_append_time(batch: bytearray, header: BatchHeader, now_ms: int) -> BatchHeader:
    """Mark a whole produced batch as LogAppendTime, as Kafka does for a topic with
    message.timestamp.type=LogAppendTime: the timestamp-type attribute is set, max_timestamp
    becomes the broker's `now_ms` (every record then reads as that time; the records' own
    deltas stay, unread), and the CRC, which covers both, is computed again. Pure; in place.
    Returns the header as now stored.
    """
    attributes = header.attributes | ATTR_TIMESTAMP_TYPE
    _ATTRIBUTES.pack_into(batch, 21, attributes)
    _TIMESTAMP.pack_into(batch, 35, now_ms)
    crc = int(_crc32c.crc32c(memoryview(batch)[21 : header.size]))
    _CRC.pack_into(batch, 17, crc)
    return header._replace(attributes=attributes, max_timestamp=now_ms, crc=crc)


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


# -- varints ------------------------------------------------------------------------------------


def read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint of at most 5 bytes (a signed 32-bit value); returns (value, next pos)."""
    return _read_zigzag(buf, pos, 5)


def read_varlong(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varlong of at most 10 bytes (a signed 64-bit value); returns (value, next pos)."""
    return _read_zigzag(buf, pos, 10)


def _read_unsigned(buf: bytes | bytearray | memoryview, pos: int, max_len: int) -> tuple[int, int]:
    """The raw (still zigzag-encoded) varint at `pos`: at most `max_len` bytes, in range."""
    raw = 0
    shift = 0
    end = len(buf)
    for _ in range(max_len):
        if pos >= end:
            raise CorruptBatch("varint runs past the end of the record data")
        byte = buf[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if raw >> (32 if max_len == 5 else 64):
                raise CorruptBatch("varint overflows its width")
            return raw, pos
        shift += 7
    raise CorruptBatch(f"varint longer than {max_len} bytes")


def _read_zigzag(buf: bytes | bytearray | memoryview, pos: int, max_len: int) -> tuple[int, int]:
    raw, pos = _read_unsigned(buf, pos, max_len)
    return (raw >> 1) ^ -(raw & 1), pos


def write_varint(out: bytearray, value: int) -> None:
    """Append `value` as a zigzag varint (64-bit zigzag; also right for 32-bit values)."""
    raw = (value << 1) ^ (value >> 63)
    raw &= (1 << 64) - 1
    while raw >= 0x80:
        out.append((raw & 0x7F) | 0x80)
        raw >>= 7
    out.append(raw)


# -- records ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a batch; offset and timestamp are relative to the batch's base values."""

    attributes: int
    timestamp_delta: int
    offset_delta: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def _read_blob(
    data: bytes | bytearray | memoryview, pos: int, end: int
) -> tuple[bytes | None, int]:
    n, pos = _read_zigzag(data, pos, 5)
    if n < 0:
        return None, pos
    if pos + n > end:
        raise CorruptBatch(f"field of {n} bytes runs past the end of its record")
    return bytes(data[pos : pos + n]), pos + n


def iter_records(data: bytes | bytearray | memoryview, count: int) -> Iterator[Record]:
    """Decode the `count` records of an uncompressed records section (see records_section).

    Raises CorruptBatch when a record does not parse or its fields overrun its length, and
    when the section holds fewer or more records than `count`.
    """
    pos, end = 0, len(data)
    for i in range(count):
        if pos >= end:
            raise CorruptBatch(f"records section ends after {i} of {count} records")
        length, pos = _read_zigzag(data, pos, 5)
        stop = pos + length
        if length < 0 or stop > end:
            raise CorruptBatch(f"record {i} of {length} bytes runs past the section")
        if pos >= stop:
            raise CorruptBatch(f"record {i} is empty")
        attributes = data[pos]
        ts_delta, p = _read_zigzag(data, pos + 1, 10)
        offset_delta, p = _read_zigzag(data, p, 5)
        key, p = _read_blob(data, p, stop)
        value, p = _read_blob(data, p, stop)
        n_headers, p = _read_zigzag(data, p, 5)
        if n_headers < 0 or n_headers * 2 > stop - p:
            raise CorruptBatch(f"record {i} declares {n_headers} headers in {stop - p} bytes")
        headers = []
        for _ in range(n_headers):
            hkey, p = _read_blob(data, p, stop)
            if hkey is None:
                raise CorruptBatch(f"record {i} has a header with a null key")
            hvalue, p = _read_blob(data, p, stop)
            try:
                headers.append((hkey.decode(), hvalue))
            except UnicodeDecodeError as exc:
                raise CorruptBatch(f"record {i} has a header key that is not UTF-8") from exc
        if p != stop:
            raise CorruptBatch(f"record {i} has {stop - p} bytes beyond its fields")
        yield Record(attributes, ts_delta, offset_delta, key, value, tuple(headers))
        pos = stop
    if pos != end:
        raise CorruptBatch(f"{end - pos} bytes follow the last of {count} records")


def count_records(data: bytes | bytearray | memoryview, limit: int) -> int:
    """How many records an uncompressed records section holds, walking only their lengths.

    Stops counting past `limit` (the declared count), so the walk is bounded by what the
    header promised. Raises CorruptBatch if a length overruns the section.
    """
    pos, end, n = 0, len(data), 0
    while pos < end:
        if n > limit:
            return n
        # One- and two-byte lengths (records under 8 KiB) without the general loop.
        b0 = data[pos]
        if b0 < 0x80:
            raw, pos = b0, pos + 1
        elif pos + 1 < end and data[pos + 1] < 0x80:
            raw, pos = (b0 & 0x7F) | (data[pos + 1] << 7), pos + 2
        else:
            raw, pos = _read_unsigned(data, pos, 5)
        length = (raw >> 1) ^ -(raw & 1)
        if length <= 0 or pos + length > end:
            raise CorruptBatch(f"record {n} of {length} bytes runs past the records section")
        pos += length
        n += 1
    return n


# -- compression --------------------------------------------------------------------------------

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER_BYTES = 16  # magic, version i32, compatible version i32
_GUESS_RATIO = 4
_MIN_GUESS_BYTES = 64 << 10
_CODECS = {
    CODEC_GZIP: cramjam.gzip,
    CODEC_LZ4: cramjam.lz4,
    CODEC_ZSTD: cramjam.zstd,
}


def decompress(codec: int, data: bytes | bytearray | memoryview, *, max_bytes: int) -> bytes:
    """Inflate a batch's records blob, refusing output above `max_bytes` (B27).

    Output goes into a buffer of bounded size that doubles from a guess up to `max_bytes`,
    so memory stays bounded whatever the input claims. Raises CorruptBatch (CORRUPT_MESSAGE)
    for data that does not decompress, or decompresses to more than `max_bytes`.
    """
    if codec == CODEC_NONE:
        return bytes(data)
    if codec == CODEC_SNAPPY:
        return _snappy(bytes(data), max_bytes)
    module = _CODECS.get(codec)
    if module is None:
        raise CorruptBatch(f"unknown compression codec {codec}", code=ErrorCode.invalid_record)
    src = bytes(data)
    size = min(max_bytes, max(_MIN_GUESS_BYTES, _GUESS_RATIO * len(src)))
    while True:
        out = bytearray(size + 1)  # one spare byte: filling it means the output is too big
        try:
            n = int(module.decompress_into(src, out))
        except cramjam.DecompressionError as exc:
            if size >= max_bytes:
                raise CorruptBatch(
                    f"codec {codec} records do not decompress within {max_bytes} bytes: {exc}"
                ) from exc
            n = size + 1
        if n <= size:
            del out[n:]
            return bytes(out)
        if size >= max_bytes:
            raise CorruptBatch(f"codec {codec} records inflate beyond {max_bytes} bytes")
        del out  # free this buffer before allocating the next: peak memory stays ~max_bytes
        size = min(max_bytes, size * 2)


def _snappy_block(block: bytes, budget: int) -> bytes:
    try:
        declared = int(cramjam.snappy.decompress_raw_len(block))
    except cramjam.DecompressionError as exc:
        raise CorruptBatch(f"snappy block does not parse: {exc}") from exc
    if declared > budget:
        raise CorruptBatch(f"snappy records inflate to {declared} bytes, above the cap")
    out = bytearray(declared)
    try:
        n = int(cramjam.snappy.decompress_raw_into(block, out))
    except cramjam.DecompressionError as exc:
        raise CorruptBatch(f"snappy block does not decompress: {exc}") from exc
    del out[n:]
    return bytes(out)


def _snappy(src: bytes, max_bytes: int) -> bytes:
    """Raw snappy (librdkafka) or xerial-framed snappy (the Java client)."""
    if not src.startswith(_XERIAL_MAGIC):
        return _snappy_block(src, max_bytes)
    parts: list[bytes] = []
    used = 0
    pos = _XERIAL_HEADER_BYTES
    if len(src) < pos:
        raise CorruptBatch("xerial snappy header is truncated")
    while pos < len(src):
        if pos + 4 > len(src):
            raise CorruptBatch("xerial snappy chunk length is truncated")
        (n,) = _EPOCH.unpack_from(src, pos)
        pos += 4
        if n < 0 or pos + n > len(src):
            raise CorruptBatch(f"xerial snappy chunk of {n} bytes runs past the end")
        part = _snappy_block(src[pos : pos + n], max_bytes - used)
        used += len(part)
        parts.append(part)
        pos += n
    return b"".join(parts)


def _compress(codec: int, data: bytes) -> bytes:
    if codec == CODEC_NONE:
        return data
    if codec == CODEC_SNAPPY:
        return bytes(cramjam.snappy.compress_raw(data))
    return bytes(_CODECS[codec].compress(data))


def records_section(
    batch: bytes | bytearray | memoryview, header: BatchHeader, *, max_bytes: int
) -> bytes | memoryview:
    """The uncompressed records of one whole batch (a view when it is not compressed)."""
    body = memoryview(batch)[BATCH_HEADER_BYTES : header.size]
    if header.codec == CODEC_NONE:
        return body
    return decompress(header.codec, body, max_bytes=max_bytes)


def timestamps_out_of_range(
    batch: bytes | bytearray | memoryview,
    header: BatchHeader,
    lowest_ms: int,
    highest_ms: int,
    *,
    max_bytes: int = MAX_UNCOMPRESSED_BATCH_BYTES,
) -> list[tuple[int, int]]:
    """(index, timestamp) of each record whose CreateTime lies outside [lowest_ms, highest_ms]:
    Kafka's message.timestamp.before/after.max.ms check (LogValidator, per record since
    KIP-937). Walks the records (decompressing within `max_bytes`); a caller skips it when the
    bounds are unlimited, as they are by default. Pure."""
    section = records_section(batch, header, max_bytes=max_bytes)
    out = []
    for i, record in enumerate(iter_records(section, header.record_count)):
        timestamp = header.base_timestamp + record.timestamp_delta
        if not lowest_ms <= timestamp <= highest_ms:
            out.append((i, timestamp))
    return out


# -- building batches (tests, benchmarks, control records) --------------------------------------


def encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] = (),
) -> bytes:
    """One record as it sits in a batch: length, attributes, deltas, key, value, headers."""
    one = bytearray(b"\x00")
    write_varint(one, timestamp_delta)
    write_varint(one, offset_delta)
    for blob in (key, value):
        if blob is None:
            write_varint(one, -1)
        else:
            write_varint(one, len(blob))
            one += blob
    write_varint(one, len(headers))
    for hkey, hvalue in headers:
        encoded = hkey.encode()
        write_varint(one, len(encoded))
        one += encoded
        if hvalue is None:
            write_varint(one, -1)
        else:
            write_varint(one, len(hvalue))
            one += hvalue
    out = bytearray()
    write_varint(out, len(one))
    return bytes(out + one)


def build_batch(
    records: Sequence[tuple[bytes | None, bytes | None]],
    *,
    headers: Sequence[Sequence[tuple[str, bytes | None]]] | None = None,
    codec: int = CODEC_NONE,
    base_offset: int = 0,
    base_timestamp: int = 0,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = -1,
) -> bytes:
    """Encode one v2 batch of (key, value) records, as a producer would.

    `headers`, if given, holds one header list per record.
    """
    body = bytearray()
    for i, (key, value) in enumerate(records):
        body += encode_record(i, 0, key, value, headers[i] if headers is not None else ())
    payload = _compress(codec, bytes(body))
    count = len(records)
    attrs = (attributes & ~ATTR_CODEC_MASK) | codec
    after_crc = (
        struct.pack(
            ">hiqqqhii",
            attrs,
            count - 1,
            base_timestamp,
            base_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
        + payload
    )
    crc = _crc32c.crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)
    return struct.pack(">qiibI", base_offset, length, partition_leader_epoch, 2, crc) + after_crc
