"""Producer-state snapshots: the file format, the scan of batch headers after a snapshot, and
the rebuild of a partition's state at load (snapshot plus replay, or a whole-log scan)."""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator

import crc32c as _crc32c

from kafkito.broker.producers.window import PartitionProducers
from kafkito.protocol.records import BatchHeader, iter_batch_headers
from kafkito.storage.log import PartitionLog

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "producer-state.snapshot"
SNAPSHOT_MAGIC = b"KPS1"
MAX_SNAPSHOT_BYTES = 256 << 20
SCAN_CHUNK_BYTES = 1 << 20
_SNAP_HEAD = struct.Struct(">4sI")


def encode_snapshot(state: PartitionProducers, offset: int) -> bytes:
    payload = json.dumps(state.to_json(offset), separators=(",", ":")).encode()
    return _SNAP_HEAD.pack(SNAPSHOT_MAGIC, _crc32c.crc32c(payload)) + payload


def decode_snapshot(data: bytes) -> tuple[PartitionProducers, int]:
    """(state, offset) from snapshot bytes; ValueError if they are not an intact snapshot."""
    if len(data) < _SNAP_HEAD.size:
        raise ValueError(f"{len(data)} bytes cannot hold a snapshot header")
    magic, crc = _SNAP_HEAD.unpack_from(data)
    payload = data[_SNAP_HEAD.size :]
    if magic != SNAPSHOT_MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if _crc32c.crc32c(payload) != crc:
        raise ValueError("crc mismatch")
    try:
        decoded = json.loads(payload)
        offset = int(decoded["offset"])
        return PartitionProducers.from_json(decoded), offset
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed payload: {exc}") from exc


def scan_headers(plog: PartitionLog, start: int) -> Iterator[BatchHeader]:
    """Headers of the stored batches from `start` to the log end, read through PartitionLog."""
    offset = max(start, plog.log_start_offset)
    end = plog.log_end_offset
    while offset < end:
        data = plog.read(offset, SCAN_CHUNK_BYTES, max_offset=end)
        if not data:
            return
        last: BatchHeader | None = None
        for _, header in iter_batch_headers(data):
            last = header
            if header.last_offset >= offset:
                yield header
        if last is None:
            return
        offset = last.next_offset


def rebuild(
    plog: PartitionLog, snapshot: bytes | None, now_ms: int
) -> tuple[PartitionProducers, str]:
    """The state of `plog` from its snapshot (if usable) plus a replay of the log after it."""
    state: PartitionProducers | None = None
    start = plog.log_start_offset
    how = "scanned the whole log"
    if snapshot is not None:
        try:
            state, offset = decode_snapshot(snapshot)
        except ValueError as exc:
            log.warning(
                "%s-%d: producer-state snapshot unusable (%s); rebuilding from the log",
                plog.topic,
                plog.partition,
                exc,
            )
        else:
            if offset > plog.log_end_offset:
                log.warning(
                    "%s-%d: producer-state snapshot at offset %d is beyond the log end %d; "
                    "rebuilding from the log",
                    plog.topic,
                    plog.partition,
                    offset,
                    plog.log_end_offset,
                )
                state = None
            else:
                start = max(offset, plog.log_start_offset)
                how = f"snapshot at {offset}"
                state.snapshot_offset = offset
    if state is None:
        state = PartitionProducers()
    state.expire_before(plog.log_start_offset)
    replayed = 0
    for header in scan_headers(plog, start):
        if header.producer_id < 0 or header.is_control:
            continue
        state.update(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.last_offset_delta,
            header.base_offset,
            header.max_timestamp,
        )
        replayed += 1
    state.expire_before(plog.log_start_offset)
    state.expire_idle(now_ms)
    state.dirty = state.dirty or replayed > 0
    return state, f"{how}, replayed {replayed} batches"
