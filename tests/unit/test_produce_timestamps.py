"""Produce-time timestamp rules on raw batches: LogAppendTime stamping, the CreateTime window."""

from __future__ import annotations

from kafkito.protocol.records import (
    ATTR_TIMESTAMP_TYPE,
    build_batch,
    read_batch_header,
    stamp_log_append_time,
    validate_produced_batch,
)

NOW_MS = 1_800_000_000_123


def test_stamp_sets_the_type_bit_and_max_timestamp_and_keeps_the_crc_valid() -> None:
    for codec in (0, 1, 4):  # none, gzip, zstd: the records section is never touched
        batch = bytearray(
            build_batch(
                [(b"k", b"v1"), (None, b"v2")], base_timestamp=1_700_000_000_000, codec=codec
            )
        )
        before = validate_produced_batch(batch, max_message_bytes=1 << 20)
        stored = stamp_log_append_time(batch, before, NOW_MS)
        again = validate_produced_batch(batch, max_message_bytes=1 << 20)  # CRC checked
        assert stored == again == read_batch_header(batch)
        assert again.attributes == before.attributes | ATTR_TIMESTAMP_TYPE
        assert again.attributes & 0x07 == codec
        assert (again.base_timestamp, again.max_timestamp) == (1_700_000_000_000, NOW_MS)
        assert (
            batch[61:]
            == build_batch(
                [(b"k", b"v1"), (None, b"v2")], base_timestamp=1_700_000_000_000, codec=codec
            )[61:]
        )


def test_timestamps_out_of_range_names_each_record_outside_the_window() -> None:
    from kafkito.protocol.records import timestamps_out_of_range

    records = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    for codec in (0, 3):  # none, lz4
        batch = build_batch(records, base_timestamp=1000, codec=codec)
        header = validate_produced_batch(batch, max_message_bytes=1 << 20)
        # build_batch gives every record the base timestamp
        assert timestamps_out_of_range(batch, header, 1000, 1000) == []
        assert timestamps_out_of_range(batch, header, 1001, 5000) == [
            (0, 1000),
            (1, 1000),
            (2, 1000),
        ]
        assert timestamps_out_of_range(batch, header, 0, 999) == [(0, 1000), (1, 1000), (2, 1000)]
