"""stamp_log_append_time: a produced batch marked LogAppendTime in place, as Kafka does."""

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
