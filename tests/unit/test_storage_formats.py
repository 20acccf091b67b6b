"""Pure functions of the storage layer: index and checkpoint formats, record timestamps."""

from __future__ import annotations

import struct

import cramjam
import crc32c
import pytest

from kafkito.errors import CorruptBatch
from kafkito.protocol.records import ATTR_TIMESTAMP_TYPE
from kafkito.storage.checkpoint import decode_checkpoint, encode_checkpoint
from kafkito.storage.index import (
    decode_offset_index,
    decode_time_index,
    encode_offset_entries,
    encode_time_entries,
)
from kafkito.storage.timestamps import iter_record_timestamps
from kafkito.testing.wire import encode_record

_PREFIX = struct.Struct(">qiibI")
_COVERED = struct.Struct(">hiqqqhii")


def make_batch(
    timestamps: list[int],
    *,
    base_offset: int = 0,
    codec: int = 0,
    attributes: int = 0,
    value_size: int = 10,
) -> bytes:
    """A v2 batch whose records carry `timestamps`, compressed with Kafka codec `codec`."""
    base_ts = min(timestamps)
    records = b"".join(
        encode_record(i, ts - base_ts, None, bytes([i % 256]) * value_size)
        for i, ts in enumerate(timestamps)
    )
    if codec == 1:
        records = bytes(cramjam.gzip.compress(records))
    elif codec == 2:
        records = bytes(cramjam.snappy.compress_raw(records))
    elif codec == 3:
        records = bytes(cramjam.lz4.compress(records))
    elif codec == 4:
        records = bytes(cramjam.zstd.compress(records))
    n = len(timestamps)
    covered = (
        _COVERED.pack(codec | attributes, n - 1, base_ts, max(timestamps), -1, -1, -1, n) + records
    )
    length = _PREFIX.size - 12 + len(covered)
    return _PREFIX.pack(base_offset, length, 0, 2, crc32c.crc32c(covered)) + covered


# -- offset and time index ------------------------------------------------------------------


def test_offset_index_round_trips() -> None:
    data = encode_offset_entries(100, [100, 130, 170], [0, 4100, 8300])
    assert len(data) == 24
    decoded = decode_offset_index(data, base_offset=100, log_size=9000)
    assert (decoded.offsets, decoded.values, decoded.problem) == (
        [100, 130, 170],
        [0, 4100, 8300],
        None,
    )


@pytest.mark.parametrize(
    ("tail", "kept"),
    [
        (bytes(8 * 3), 3),  # zero-filled preallocated space
        (b"\x01\x02\x03", 3),  # a torn entry
        (struct.pack(">ii", 5, 9000), 3),  # points past the log
        (struct.pack(">ii", 20, 100), 3),  # goes backwards
    ],
)
def test_offset_index_keeps_the_sound_prefix_and_names_the_problem(tail: bytes, kept: int) -> None:
    data = encode_offset_entries(0, [0, 30, 70], [0, 4100, 8300]) + tail
    decoded = decode_offset_index(data, base_offset=0, log_size=9000)
    assert decoded.offsets == [0, 30, 70][:kept]
    assert decoded.problem is not None


def test_offset_index_whose_first_entry_is_not_position_zero_is_rejected() -> None:
    decoded = decode_offset_index(encode_offset_entries(0, [5], [64]), base_offset=0, log_size=999)
    assert decoded.offsets == []
    assert decoded.problem is not None


def test_time_index_round_trips_and_rejects_non_increasing_timestamps() -> None:
    data = encode_time_entries(10, [1000, 2000], [10, 15])
    decoded = decode_time_index(data, base_offset=10, max_offset=100)
    assert (decoded.values, decoded.offsets, decoded.problem) == ([1000, 2000], [10, 15], None)
    bad = decode_time_index(
        data + encode_time_entries(10, [2000], [20]), base_offset=10, max_offset=100
    )
    assert bad.values == [1000, 2000]
    assert bad.problem is not None


# -- recovery-point checkpoint ----------------------------------------------------------------


def test_checkpoint_round_trips() -> None:
    points = {"orders-0.abc": 1200, "orders-1.abc": 0}
    assert decode_checkpoint(encode_checkpoint(points)) == points


@pytest.mark.parametrize(
    "data",
    [b"", b"0\n", b"0\n2\na-0 1\n", b"1\n0\n", b"0\n1\na-0 -5\n", b"0\n1\na-0 x\n", b"\xff\xfe"],
)
def test_checkpoint_garbage_raises_value_error(data: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)):
        decode_checkpoint(data)


# -- record timestamps ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4])
def test_record_timestamps_of_every_codec(codec: int) -> None:
    timestamps = [5000, 4000, 7000, 6000, 7000]
    batch = make_batch(timestamps, base_offset=40, codec=codec)
    assert list(iter_record_timestamps(batch)) == [(40 + i, ts) for i, ts in enumerate(timestamps)]


def test_record_timestamps_of_xerial_framed_snappy() -> None:
    plain = make_batch([10, 20, 30])
    records = plain[61:]
    block = bytes(cramjam.snappy.compress_raw(records))
    xerial = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1) + struct.pack(">i", len(block)) + block
    covered = bytearray(plain[21:61]) + xerial
    covered[0:2] = struct.pack(">h", 2)
    length = _PREFIX.size - 12 + len(covered)
    batch = _PREFIX.pack(0, length, 0, 2, crc32c.crc32c(bytes(covered))) + bytes(covered)
    assert [ts for _, ts in iter_record_timestamps(batch)] == [10, 20, 30]


def test_log_append_time_gives_every_record_the_batch_max_timestamp() -> None:
    batch = make_batch([1, 2, 3], attributes=ATTR_TIMESTAMP_TYPE)
    assert [ts for _, ts in iter_record_timestamps(batch)] == [3, 3, 3]


def test_undecompressable_records_raise_corrupt_batch() -> None:
    batch = bytearray(make_batch([1, 2, 3], codec=4))
    batch[70:80] = bytes(10)
    with pytest.raises(CorruptBatch):
        list(iter_record_timestamps(bytes(batch)))
