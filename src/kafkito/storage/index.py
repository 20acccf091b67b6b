"""The on-disk index formats of a segment, Kafka's shape: `.index` and `.timeindex`.

`.index` is a sparse offset index of 8-byte big-endian entries

    int32 relative offset (offset - segment base) | int32 file position in the `.log`

one for the first batch after every `INDEX_INTERVAL_BYTES` of log. `.timeindex` has 12-byte
entries

    int64 timestamp | int32 relative offset

where the timestamp is the largest seen so far in the segment and the offset is that of the batch
that carried it; an entry is added at an index point only when the largest timestamp grew, and a
final one when the segment closes. So for an entry (ts, o): every batch up to `o` has timestamps
at most `ts`, which is all a lookup needs to know where to start scanning.

Entries strictly increase (relative offsets, positions, timestamps). Decoding keeps the longest
prefix that obeys that and points inside the log, and says what was wrong with the rest: a short
(torn) file, zero-filled preallocated space, or garbage. The caller rebuilds from the log.
These functions are pure: bytes in, lists out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "INDEX_INTERVAL_BYTES",
    "OFFSET_ENTRY",
    "TIME_ENTRY",
    "DecodedIndex",
    "decode_offset_index",
    "decode_time_index",
    "encode_offset_entries",
    "encode_time_entries",
]

INDEX_INTERVAL_BYTES = 4096
"""Kafka's `index.interval.bytes`: bytes of log between two offset index entries."""
OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")
_INT32_MAX = 2**31 - 1


@dataclass(slots=True)
class DecodedIndex:
    """The trusted prefix of an index file: absolute offsets, and positions or timestamps."""

    offsets: list[int]
    values: list[int]
    problem: str | None = None
    """Why the file was not entirely valid, or None."""


def encode_offset_entries(base_offset: int, offsets: list[int], positions: list[int]) -> bytes:
    return b"".join(
        OFFSET_ENTRY.pack(o - base_offset, p) for o, p in zip(offsets, positions, strict=True)
    )


def encode_time_entries(base_offset: int, timestamps: list[int], offsets: list[int]) -> bytes:
    return b"".join(
        TIME_ENTRY.pack(t, o - base_offset) for t, o in zip(timestamps, offsets, strict=True)
    )


def decode_offset_index(data: bytes, *, base_offset: int, log_size: int) -> DecodedIndex:
    """Entries of a `.index` file that are strictly increasing and inside a log of `log_size`."""
    out = DecodedIndex([], [])
    whole = len(data) - len(data) % OFFSET_ENTRY.size
    if whole != len(data):
        out.problem = f"size {len(data)} is not a multiple of {OFFSET_ENTRY.size}"
    last_rel, last_pos = -1, -1
    for rel, pos in OFFSET_ENTRY.iter_unpack(memoryview(data)[:whole]):
        if rel <= last_rel or pos <= last_pos or pos >= log_size or rel < 0:
            out.problem = (
                f"entry {len(out.offsets)} (relative offset {rel}, position {pos}) "
                "is out of order or outside the log"
            )
            break
        out.offsets.append(base_offset + rel)
        out.values.append(pos)
        last_rel, last_pos = rel, pos
    if out.offsets and out.values[0] != 0:
        return DecodedIndex([], [], "first entry does not point at position 0")
    return out


def decode_time_index(data: bytes, *, base_offset: int, max_offset: int) -> DecodedIndex:
    """Entries of a `.timeindex` file, strictly increasing, with offsets below `max_offset`."""
    out = DecodedIndex([], [])
    whole = len(data) - len(data) % TIME_ENTRY.size
    if whole != len(data):
        out.problem = f"size {len(data)} is not a multiple of {TIME_ENTRY.size}"
    last_ts, last_rel = -(2**63), -1
    for ts, rel in TIME_ENTRY.iter_unpack(memoryview(data)[:whole]):
        if ts <= last_ts or rel < last_rel or rel < 0 or base_offset + rel >= max_offset:
            out.problem = (
                f"entry {len(out.offsets)} (timestamp {ts}, relative offset {rel}) "
                "is out of order or outside the log"
            )
            break
        out.offsets.append(base_offset + rel)
        out.values.append(ts)
        last_ts, last_rel = ts, rel
    return out


def fits_relative(base_offset: int, offset: int) -> bool:
    """Whether `offset` can be stored relative to `base_offset` in an int32 index entry."""
    return 0 <= offset - base_offset <= _INT32_MAX
