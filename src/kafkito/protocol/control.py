"""Transaction markers: the control batches that end a transaction in each partition it touched.

Layout (KAFKA-NOTES §4; Kafka's EndTransactionMarker and ControlRecordType): a v2 batch with
attributes transactional | control, the transaction's producer id and epoch, base sequence -1,
holding exactly one record whose

    key   = int16 version 0 | int16 type (0 ABORT, 1 COMMIT)
    value = int16 version 0 | int32 coordinator epoch

The broker writes markers itself, so they are built here, never accepted from a producer (a
produced control batch is refused by validate_produced_batch). Readers of a log use
`read_marker` to learn whether a control batch commits or aborts; consumers skip control
batches (they never reach the application) but still advance past their offset.
"""

from __future__ import annotations

import struct

from kafkito.errors import CorruptBatch
from kafkito.protocol.records import (
    ATTR_CONTROL,
    ATTR_TRANSACTIONAL,
    BATCH_HEADER_BYTES,
    BatchHeader,
    build_batch,
    iter_records,
)

__all__ = ["ABORT", "COMMIT", "encode_marker", "read_marker"]

ABORT, COMMIT = 0, 1
_KEY = struct.Struct(">hh")
_VALUE = struct.Struct(">hi")
MARKER_ATTRIBUTES = ATTR_TRANSACTIONAL | ATTR_CONTROL


def encode_marker(
    *,
    producer_id: int,
    producer_epoch: int,
    commit: bool,
    coordinator_epoch: int,
    timestamp_ms: int,
) -> bytes:
    """One control batch (offset 0, leader epoch -1: the log patches both when appending)."""
    key = _KEY.pack(0, COMMIT if commit else ABORT)
    value = _VALUE.pack(0, coordinator_epoch)
    return build_batch(
        [(key, value)],
        attributes=MARKER_ATTRIBUTES,
        base_timestamp=timestamp_ms,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=-1,
    )


def read_marker(batch: bytes | bytearray | memoryview, header: BatchHeader) -> bool:
    """Whether the control batch `batch` (starting at its header) commits (True) or aborts.

    Raises CorruptBatch if it is not an uncompressed control batch of one well-formed marker.
    """
    if not header.is_control or header.codec != 0 or header.record_count != 1:
        raise CorruptBatch(
            f"not a transaction marker: attributes {header.attributes:#x}, "
            f"{header.record_count} records"
        )
    body = memoryview(batch)[BATCH_HEADER_BYTES : header.size]
    (record,) = iter_records(body, 1)
    if record.key is None or len(record.key) < _KEY.size:
        raise CorruptBatch("control record without a 4-byte key")
    version, kind = _KEY.unpack_from(record.key)
    assert isinstance(kind, int)
    if version != 0 or kind not in (ABORT, COMMIT):
        raise CorruptBatch(f"control record of version {version}, type {kind}: not a marker")
    return bool(kind == COMMIT)
