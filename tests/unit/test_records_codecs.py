"""records.py: varints, the record iterator, bounded decompression and the produce checks."""

from __future__ import annotations

import gzip
import struct
from typing import Any

import cramjam
import crc32c
import pytest
from kafka import codec as kafka_python_codec
from kio.records.readers import read_batch

from kafkito.errors import CorruptBatch, ErrorCode
from kafkito.protocol.records import (
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
    build_batch,
    count_records,
    decompress,
    iter_records,
    read_batch_header,
    read_varint,
    read_varlong,
    records_section,
    validate_produced_batch,
    write_varint,
)

CODECS = [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD]
LIMIT = 1 << 20

# Zigzag vectors from the protobuf spec and Kafka's ByteUtilsTest.
VARINTS = [
    (0, b"\x00"),
    (-1, b"\x01"),
    (1, b"\x02"),
    (-2, b"\x03"),
    (63, b"\x7e"),
    (-64, b"\x7f"),
    (64, b"\x80\x01"),
    (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
    (-(2**31), b"\xff\xff\xff\xff\x0f"),
]


@pytest.mark.parametrize(("value", "encoded"), VARINTS)
def test_varint_vectors(value: int, encoded: bytes) -> None:
    out = bytearray()
    write_varint(out, value)
    assert bytes(out) == encoded
    assert read_varint(encoded + b"junk", 0) == (value, len(encoded))
    assert read_varlong(encoded, 0) == (value, len(encoded))


def test_varlong_extremes() -> None:
    for value in (2**63 - 1, -(2**63), 2**40, -(2**40) - 1):
        out = bytearray()
        write_varint(out, value)
        assert read_varlong(bytes(out), 0) == (value, len(out))


@pytest.mark.parametrize(
    "encoded",
    [b"", b"\x80", b"\xff\xff\xff\xff", b"\x80\x80\x80\x80\x80\x01", b"\xff\xff\xff\xff\x1f"],
)
def test_bad_varints_raise_corrupt_batch(encoded: bytes) -> None:
    with pytest.raises(CorruptBatch):
        read_varint(encoded, 0)


def test_overlong_varlong_raises() -> None:
    with pytest.raises(CorruptBatch):
        read_varlong(b"\xff" * 10 + b"\x01", 0)
    with pytest.raises(CorruptBatch):
        read_varlong(b"\xff" * 9 + b"\x02", 0)  # 2**64 does not fit


RECORDS = [
    (b"key", b"value"),
    (None, b""),
    (b"", None),
    (b"k" * 300, bytes(range(256)) * 40),
]
HEADERS = [[("a", b"1"), ("é", None)], [], [("", b"")], [("x" * 200, b"y" * 200)]]


@pytest.mark.parametrize("codec", CODECS)
def test_records_round_trip_and_match_kio(codec: int) -> None:
    raw = build_batch(RECORDS, headers=HEADERS, codec=codec, base_timestamp=1_700_000_000_000)
    header = validate_produced_batch(raw, max_message_bytes=LIMIT)
    assert header.codec == codec and header.record_count == 4
    records = list(iter_records(records_section(raw, header, max_bytes=LIMIT), 4))
    assert [(r.key, r.value, list(r.headers)) for r in records] == [
        (k, v, h) for (k, v), h in zip(RECORDS, HEADERS, strict=True)
    ]
    assert [r.offset_delta for r in records] == [0, 1, 2, 3]
    if codec == CODEC_NONE:  # kio reads uncompressed batches only
        batch, _ = read_batch(raw, 0)
        assert [(r.key, r.value) for r in batch.records] == RECORDS
        assert [[(h.key, h.value) for h in r.headers] for r in batch.records] == [
            [(k.encode(), v) for k, v in h] for h in HEADERS
        ]


def kafka_python_blob(codec: int, data: bytes) -> bytes:
    """The records blob as kafka-python's codecs (Java-compatible framings) compress it."""
    encode: dict[int, Any] = {
        CODEC_GZIP: kafka_python_codec.gzip_encode,
        CODEC_SNAPPY: lambda d: kafka_python_codec.snappy_encode(d, xerial_compatible=True),
        CODEC_LZ4: kafka_python_codec.lz4_encode,
        CODEC_ZSTD: kafka_python_codec.zstd_encode,
    }
    return bytes(encode[codec](data))


@pytest.mark.parametrize("codec", CODECS[1:])
def test_other_clients_framings_decompress(codec: int) -> None:
    data = b"".join(bytes([i % 251]) * 97 for i in range(2000))  # 194 KB: several xerial chunks
    assert decompress(codec, kafka_python_blob(codec, data), max_bytes=LIMIT) == data


def test_gzip_from_the_standard_library_and_a_memoryview() -> None:
    data = b"0123456789" * 5000
    assert decompress(CODEC_GZIP, memoryview(gzip.compress(data)), max_bytes=LIMIT) == data


@pytest.mark.parametrize("codec", CODECS[1:])
def test_compression_bomb_is_refused_with_bounded_output(codec: int) -> None:
    bomb = kafka_python_blob(codec, b"\0" * (8 << 20))
    assert len(bomb) < 1 << 20
    with pytest.raises(CorruptBatch) as exc:
        decompress(codec, bomb, max_bytes=1 << 20)
    assert exc.value.code == ErrorCode.corrupt_message
    # Exactly at the cap is fine.
    exact = kafka_python_blob(codec, b"\1" * (1 << 20))
    assert decompress(codec, exact, max_bytes=1 << 20) == b"\1" * (1 << 20)


@pytest.mark.parametrize("codec", CODECS[1:])
def test_produced_bomb_batch_is_refused(codec: int) -> None:
    raw = build_batch([(None, b"\0" * (4 << 20))], codec=codec)
    with pytest.raises(CorruptBatch) as exc:
        validate_produced_batch(raw, max_message_bytes=LIMIT, max_uncompressed_bytes=1 << 20)
    assert exc.value.code in (ErrorCode.corrupt_message, ErrorCode.invalid_record)


@pytest.mark.parametrize("codec", CODECS[1:])
def test_garbage_does_not_decompress(codec: int) -> None:
    with pytest.raises(CorruptBatch):
        decompress(codec, b"\x00\x01garbage that is no codec's stream", max_bytes=LIMIT)


def with_count(raw: bytes, count: int) -> bytes:
    """`raw` with its record count and last offset delta replaced, CRC fixed."""
    patched = bytearray(raw)
    struct.pack_into(">i", patched, 23, count - 1)
    struct.pack_into(">i", patched, 57, count)
    struct.pack_into(">I", patched, 17, crc32c.crc32c(bytes(patched[21:])))
    return bytes(patched)


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("declared", [1, 3, 5])
def test_record_count_mismatch_is_invalid_record(codec: int, declared: int) -> None:
    raw = with_count(build_batch([(None, b"v")] * 4, codec=codec), declared)
    with pytest.raises(CorruptBatch) as exc:
        validate_produced_batch(raw, max_message_bytes=LIMIT)
    assert exc.value.code == ErrorCode.invalid_record


def test_uncompressed_count_walk_can_be_skipped() -> None:
    raw = with_count(build_batch([(None, b"v")] * 4), 5)
    header = validate_produced_batch(raw, max_message_bytes=LIMIT, check_uncompressed_records=False)
    assert header.record_count == 5
    gz = with_count(build_batch([(None, b"v")] * 4, codec=CODEC_GZIP), 5)
    with pytest.raises(CorruptBatch):
        validate_produced_batch(gz, max_message_bytes=LIMIT, check_uncompressed_records=False)


def test_count_records_stops_past_the_declared_count() -> None:
    raw = build_batch([(None, b"v")] * 50)
    section = records_section(raw, read_batch_header(raw), max_bytes=LIMIT)
    assert count_records(section, 50) == 50
    assert count_records(section, 3) == 4


def test_iter_records_refuses_overruns_and_leftovers() -> None:
    raw = build_batch([(b"k", b"v")] * 2)
    section = bytes(records_section(raw, read_batch_header(raw), max_bytes=LIMIT))
    with pytest.raises(CorruptBatch):
        list(iter_records(section, 3))
    with pytest.raises(CorruptBatch):
        list(iter_records(section, 1))
    with pytest.raises(CorruptBatch):
        list(iter_records(section[:-1], 2))
    bad_header_count = bytearray(section)
    # first record: length, attrs, ts, offset, key len 1 "k", value len 1 "v", headers count
    bad_header_count[section[0] // 2] = 0x7E  # 63 headers in 0 bytes
    with pytest.raises(CorruptBatch, match="headers"):
        list(iter_records(bytes(bad_header_count), 2))


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda b: b[:-1], ErrorCode.corrupt_message),
        (lambda b: b[:16] + b"\x01" + b[17:], ErrorCode.corrupt_message),  # magic 1
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), ErrorCode.corrupt_message),  # CRC
        (lambda b: b"\x00" * 7 + b"\x05" + b[8:], ErrorCode.invalid_record),  # base offset
    ],
)
def test_structural_checks_keep_their_codes(mutate: Any, code: ErrorCode) -> None:
    with pytest.raises(CorruptBatch) as exc:
        validate_produced_batch(mutate(build_batch([(None, b"v")])), max_message_bytes=LIMIT)
    assert exc.value.code == code


def test_message_too_large() -> None:
    raw = build_batch([(None, b"v" * 2000)])
    with pytest.raises(CorruptBatch) as exc:
        validate_produced_batch(raw, max_message_bytes=1000)
    assert exc.value.code == ErrorCode.message_too_large


def test_snappy_raw_and_cramjam_framed_both_handled() -> None:
    data = b"abc" * 10_000
    assert (
        decompress(CODEC_SNAPPY, bytes(cramjam.snappy.compress_raw(data)), max_bytes=LIMIT) == data
    )
