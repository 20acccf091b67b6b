"""A partition's transactions: the open ones (for the last stable offset) and the aborted ones.

Theory of operation (Kafka's ProducerStateManager, TransactionIndex and LogSegment).

**Open transactions.** A producer's first transactional batch in a partition opens its
transaction there at that batch's base offset; the commit or abort marker the coordinator
writes closes it. The *last stable offset* (LSO) is the first offset of the oldest open
transaction, or the high watermark when none is open: read_committed consumers read up to it
and no further, since what lies above may still be aborted. With no transaction open the LSO
is the high watermark, so librdkafka's default read_committed consumers see everything.

**Aborted transactions.** When an abort marker is appended, (producer id, first offset, last
offset = the marker's offset, LSO after it) is recorded. A read_committed Fetch returns the
entries that overlap the fetched range; the consumer drops that producer's batches from each
first offset until it meets the abort marker. Each entry also goes to the `.txnindex` file of
the segment that holds the marker, in Kafka's layout (`AbortedTxn`, 34 bytes, big-endian):

    int16 version (0) | int64 producer id | int64 first offset | int64 last offset
    | int64 last stable offset

**Recovery.** The state is a function of the log: `scan` replays the batch headers (and
reads the one record of each control batch) to find open and aborted transactions, then any
`.txnindex` file that disagrees is rewritten. So a crash that lost an index write, or a torn
index tail, is repaired from the log itself, and the log is the one truth. To keep start-up
short, the whole state is also saved in `transactions.snapshot` in the partition directory
(`b"KTS1" | u32 crc32c(payload) | JSON payload`, written atomically, with the log end offset
it describes): at load the snapshot is taken and only the log after it is replayed. A
snapshot that is damaged, or beyond the log end (the log lost an unsynced tail), is ignored
and the whole log scanned. Entries whose last
offset falls below the log start offset (retention, DeleteRecords) are dropped, and the index
files of deleted segments are removed (`trim`).
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import crc32c as _crc32c

from kafkito.errors import CorruptBatch
from kafkito.protocol.control import read_marker
from kafkito.protocol.records import BatchHeader, iter_batch_headers
from kafkito.storage.fs import FileSystem

log = logging.getLogger(__name__)

__all__ = [
    "ENTRY_BYTES",
    "AbortedTxn",
    "PartitionTxns",
    "decode_entries",
    "encode_entries",
    "index_path",
]

_ENTRY = struct.Struct(">hqqqq")
ENTRY_BYTES = _ENTRY.size  # 34, as Kafka's AbortedTxn.TotalSize
INDEX_SUFFIX = ".txnindex"
SNAPSHOT_NAME = "transactions.snapshot"
_SNAP_MAGIC = b"KTS1"
_SNAP_HEAD = struct.Struct(">4sI")


@dataclass(frozen=True, slots=True, order=True)
class AbortedTxn:
    """One aborted transaction in one partition, ordered by its marker (last) offset."""

    last_offset: int
    producer_id: int
    first_offset: int
    last_stable_offset: int


def encode_entries(entries: Iterable[AbortedTxn]) -> bytes:
    """The `.txnindex` bytes for `entries`."""
    return b"".join(
        _ENTRY.pack(0, e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset)
        for e in entries
    )


def decode_entries(data: bytes) -> tuple[list[AbortedTxn], int]:
    """(entries, bytes of whole valid entries) from `.txnindex` bytes.

    A partial entry at the end (a torn write) ends the list; so does an entry of another
    version or one whose offsets are impossible (first > last, negative): the caller treats
    everything from there as damage to rebuild from the log.
    """
    entries = []
    pos = 0
    while len(data) - pos >= ENTRY_BYTES:
        version, pid, first, last, lso = _ENTRY.unpack_from(data, pos)
        if version != 0 or pid < 0 or first < 0 or last < first:
            break
        entries.append(AbortedTxn(last, pid, first, lso))
        pos += ENTRY_BYTES
    return entries, pos


def index_path(directory: str, base_offset: int) -> str:
    """The `.txnindex` path beside the segment with `base_offset`."""
    return os.path.join(directory, f"{base_offset:020d}{INDEX_SUFFIX}")


@dataclass(slots=True)
class PartitionTxns:
    """Open and aborted transactions of one partition; pure, persisted by the caller."""

    open: dict[int, int] = field(default_factory=dict)
    """producer id -> first offset of its open transaction."""
    epochs: dict[int, int] = field(default_factory=dict)
    """producer id -> epoch of its open transaction's batches (a recovery marker needs it)."""
    aborted: list[AbortedTxn] = field(default_factory=list)
    """Sorted by last offset (markers are appended in offset order)."""
    marked: set[int] = field(default_factory=set)
    """Producer ids that have a marker here (DescribeProducers' coordinator epoch). Bounded by
    the transactional ids: a transactional id keeps its producer id across epochs."""

    def begin(self, producer_id: int, offset: int, epoch: int) -> None:
        """A transactional batch at `offset`: opens the producer's transaction if not open."""
        self.open.setdefault(producer_id, offset)
        self.epochs[producer_id] = max(epoch, self.epochs.get(producer_id, epoch))

    def end(self, producer_id: int, marker_offset: int, commit: bool, hw: int) -> AbortedTxn | None:
        """A marker at `marker_offset` closes the producer's transaction; the abort entry, if
        it aborted one that had data here (a marker with nothing open records nothing)."""
        first = self.open.pop(producer_id, None)
        self.epochs.pop(producer_id, None)
        self.marked.add(producer_id)
        if commit or first is None:
            return None
        entry = AbortedTxn(marker_offset, producer_id, first, self.last_stable_offset(hw))
        self.aborted.append(entry)
        return entry

    def last_stable_offset(self, hw: int) -> int:
        """The first offset of the oldest open transaction, or `hw` when none is open."""
        if not self.open:
            return hw
        return min(hw, min(self.open.values()))

    def aborted_in(self, start: int, end: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [start, end): what a read_committed Fetch returns.

        Kafka's rule (LogSegment.collectAbortedTxns): last offset >= start, first < end.
        """
        i = bisect.bisect_left(self.aborted, start, key=lambda e: e.last_offset)
        return [e for e in self.aborted[i:] if e.first_offset < end]

    def trim(self, log_start_offset: int) -> list[AbortedTxn]:
        """Drop aborted entries wholly below the log start; returns the dropped ones."""
        i = bisect.bisect_left(self.aborted, log_start_offset, key=lambda e: e.last_offset)
        dropped, self.aborted = self.aborted[:i], self.aborted[i:]
        return dropped


def scan(chunks: Iterable[bytes], state: PartitionTxns, hw: int) -> int:
    """Replay stored batches (each chunk whole batches) into `state`; returns markers seen.

    A control batch that does not parse as a marker is logged and skipped: the log's CRC
    covered it when it was written, so only a bug could have put it there.
    """
    markers = 0
    for data in chunks:
        for pos, header in iter_batch_headers(data):
            apply_batch(state, data, pos, header, hw)
            markers += header.is_control
    return markers


def apply_batch(
    state: PartitionTxns, data: bytes | memoryview, pos: int, header: BatchHeader, hw: int
) -> AbortedTxn | None:
    """Apply one stored batch to `state`; the abort entry it created, if any."""
    if not header.is_transactional or header.producer_id < 0:
        return None
    if not header.is_control:
        state.begin(header.producer_id, header.base_offset, header.producer_epoch)
        return None
    try:
        commit = read_marker(memoryview(data)[pos : pos + header.size], header)
    except CorruptBatch as exc:
        log.error("control batch at offset %d does not parse: %s", header.base_offset, exc)
        return None
    return state.end(header.producer_id, header.base_offset, commit, hw)


def entries_by_segment(
    entries: Iterable[AbortedTxn], segment_bases: list[int]
) -> Iterator[tuple[int, list[AbortedTxn]]]:
    """Group `entries` by the segment (base offset) that holds each marker."""
    grouped: dict[int, list[AbortedTxn]] = {}
    for e in entries:
        i = max(bisect.bisect_right(segment_bases, e.last_offset) - 1, 0)
        grouped.setdefault(segment_bases[i], []).append(e)
    yield from sorted(grouped.items())


def sync_index_files(
    fs: FileSystem, directory: str, state: PartitionTxns, segment_bases: list[int]
) -> int:
    """Make every `.txnindex` in `directory` say what `state` says; returns files rewritten.

    Files of segments that no longer exist, and files with nothing to hold, are removed.
    """
    want = dict(entries_by_segment(state.aborted, segment_bases))
    changed = 0
    existing = {
        int(name[: -len(INDEX_SUFFIX)])
        for name in fs.listdir(directory)
        if name.endswith(INDEX_SUFFIX) and name[: -len(INDEX_SUFFIX)].isdigit()
    }
    for base in sorted(existing - set(want)):
        fs.remove(index_path(directory, base))
        changed += 1
    for base, entries in want.items():
        data = encode_entries(entries)
        path = index_path(directory, base)
        if base in existing and fs.read_file(path) == data:
            continue
        fs.write_file_atomic(path, data)
        changed += 1
    return changed


def encode_snapshot(state: PartitionTxns, offset: int) -> bytes:
    """The snapshot bytes of `state` as of log end offset `offset`."""
    payload = json.dumps(
        {
            "offset": offset,
            "open": [[pid, first, state.epochs.get(pid, 0)] for pid, first in state.open.items()],
            "aborted": [
                [e.producer_id, e.first_offset, e.last_offset, e.last_stable_offset]
                for e in state.aborted
            ],
            "marked": sorted(state.marked),
        },
        separators=(",", ":"),
    ).encode()
    return _SNAP_HEAD.pack(_SNAP_MAGIC, _crc32c.crc32c(payload)) + payload


def decode_snapshot(data: bytes) -> tuple[PartitionTxns, int]:
    """(state, offset) from snapshot bytes; ValueError if they are not an intact snapshot."""
    if len(data) < _SNAP_HEAD.size:
        raise ValueError(f"{len(data)} bytes cannot hold a snapshot header")
    magic, crc = _SNAP_HEAD.unpack_from(data)
    payload = data[_SNAP_HEAD.size :]
    if magic != _SNAP_MAGIC or _crc32c.crc32c(payload) != crc:
        raise ValueError("bad magic or crc mismatch")
    try:
        decoded = json.loads(payload)
        state = PartitionTxns()
        for pid, first, epoch in decoded["open"]:
            state.open[int(pid)] = int(first)
            state.epochs[int(pid)] = int(epoch)
        state.aborted = sorted(
            AbortedTxn(int(last), int(pid), int(first), int(lso))
            for pid, first, last, lso in decoded["aborted"]
        )
        state.marked = {int(pid) for pid in decoded["marked"]}
        return state, int(decoded["offset"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed payload: {exc}") from exc
