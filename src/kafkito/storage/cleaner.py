"""Log compaction: keep the latest record of every key, in a worker thread, crash-safe.

This follows Kafka's LogCleaner, Cleaner, LogCleanerManager and OffsetMap, scaled to one node.

Choosing a log (`plan_cleaning`, on the event loop, cheap: segment metadata only).
A partition whose topic has `compact` in cleanup.policy is split at two offsets:

    [log start ........ first dirty) [first dirty ......... first uncleanable) [... active]
          clean: cleaned before            dirty: written since                 never touched

*first dirty* comes from `cleaner-offset-checkpoint` (Kafka's file name; the lines are those of
our recovery-point checkpoint, partition directory and offset, where Kafka writes topic,
partition and offset), written after each pass. *First uncleanable* is the base offset of the first
segment that is the active one, is not yet fsynced (above the durable offset, or still owed a
sync after its roll), or holds a record younger than `min.compaction.lag.ms` (the segment's
largest timestamp, as Kafka does). The log is cleaned when dirty bytes / (clean + dirty bytes)
reaches `min.cleanable.dirty.ratio`, or when the first dirty segment's first record is older
than `max.compaction.lag.ms`, or when a tombstone's delete horizon has passed (KIP-534: Kafka's
`latestDeleteHorizon`), so tombstones go even from a log nobody writes to.

Cleaning (`clean`, in a worker thread, throttled to `io_max_bytes_per_second` of reads and
writes together, like Kafka's `log.cleaner.io.max.bytes.per.second`):

1. The offset map: key -> offset of its latest record, built from the dirty range. Kafka's map
   holds 16-byte MD5 digests in a fixed buffer; ours holds the keys themselves, bounded by
   `dedupe_buffer_bytes` (Kafka's `log.cleaner.dedupe.buffer.size`): when the budget is spent
   the map stops at the end of a segment, and the pass cleans only up to there.
2. The segments from the log start to first uncleanable are grouped, consecutive segments
   together while their sizes add up to at most `segment.bytes` and their offsets fit a relative
   int32 (Kafka's groupSegmentsBySize): small cleaned segments merge into one.
3. Each group is rewritten batch by batch (Kafka's MemoryRecords.filterTo). A record is kept if
   it has a key and no later record of that key is in the map. A tombstone (null value) is kept
   until its batch's delete horizon has passed: the first pass that keeps it stamps the horizon
   (now + `delete.retention.ms`) into the batch, attribute bit 6 and the horizon in
   baseTimestamp (KIP-534); a later pass after the horizon drops it. A batch whose records all
   stay is copied byte for byte. Otherwise a new batch is written with the original codec,
   base offset, last offset delta, producer id, epoch, base sequence and leader epoch, holding
   the kept records byte for byte (same offset and timestamp deltas, so offsets never change;
   Kafka's builder rebases timestamps on the first kept record, any base reads the same), or,
   when the batch gets a delete horizon, with each record's timestamp delta re-encoded against
   it. Consumers see the same offsets, and
   producer state can still be read from the headers. A batch left with no record is dropped,
   except, written as an empty batch (header only, record count 0, as Kafka's
   `writeEmptyHeader`), when it is the last batch of its producer id in the range (Kafka keeps
   those for producer state) or the last batch of its group. Kafka drops the latter; we keep
   it so that a cleaned segment always ends where the next one begins, which keeps recovery's
   "each segment ends where the next starts" check, and tells crash recovery exactly which old
   segments a `.swap` replaces. Clients skip empty batches (they exist in Kafka logs too).
   Records without a key (written before the topic became compacted) are dropped, as Kafka's
   cleaner does. Transaction markers and aborted data are copied unchanged for now: once
   transactions exist, markers follow Kafka's rules here (see `_filter_batch`).

Crash safety, per group, in Kafka's order (LogCleaner.cleanSegments, Log.replaceSegments):

    write <base>.log.cleaned, fsync it          crash: recovery deletes the .cleaned file
    rename it to <base>.log.swap, fsync dir     crash from here on: recovery completes the swap
    rename the old segments' .log to .deleted,  (storage.recovery.complete_swaps: deletes the old
      remove their indexes, fsync dir            segments inside the swap's offset range, then
    rename .swap to .log, write and fsync        renames the .swap to .log)
      its indexes, fsync dir
    remove the .deleted files

Readers never notice: the old Segment objects keep their open descriptors (POSIX keeps an
unlinked file readable) until the event loop swaps the segment list (`PartitionLog.
replace_segments`, no I/O; the old descriptors are then closed in a worker thread). Segments
being cleaned are pinned:
retention and DeleteRecords wait for the pass. The active segment is never read or written,
and nothing above the durable offset is cleaned, so appends and group-commit fsyncs go on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import struct
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import crc32c as _crc32c

from kafkito.errors import CorruptBatch, CorruptLog
from kafkito.protocol.records import (
    ATTR_CODEC_MASK,
    ATTR_CONTROL,
    ATTR_TIMESTAMP_TYPE,
    ATTR_TRANSACTIONAL,
    BATCH_HEADER_BYTES,
    MAX_UNCOMPRESSED_BATCH_BYTES,
    BatchHeader,
    _compress,
    batch_crc,
    read_batch_header,
    records_section,
    write_varint,
)
from kafkito.storage.checkpoint import decode_checkpoint, encode_checkpoint
from kafkito.storage.fs import FileSystem, off_loop
from kafkito.storage.log import PartitionLog
from kafkito.storage.recovery import CLEANED_SUFFIX, SWAP_SUFFIX
from kafkito.storage.segment import Segment, index_paths

__all__ = [
    "ATTR_DELETE_HORIZON",
    "CLEANER_CHECKPOINT_NAME",
    "CleanJob",
    "CleanPlan",
    "CleanResult",
    "CleanerState",
    "Throttler",
    "clean",
    "clean_now",
    "install",
    "keyless_record_errors",
    "plan_cleaning",
    "run_pass",
]

log = logging.getLogger(__name__)

CLEANER_CHECKPOINT_NAME = "cleaner-offset-checkpoint"
ATTR_DELETE_HORIZON = 0x40
"""Batch attribute bit 6 (KIP-534): baseTimestamp holds the tombstones' delete horizon."""
_READ_CHUNK_BYTES = 1 << 20
_WRITE_CHUNK_BYTES = 1 << 20
WRITEBACK_BYTES = 4 << 20
"""The cleaned file is fsynced every this many bytes as it is written, not once at its end:
never more than this much of the cleaner's data waits in the page cache for the disk, so a
Produce's fsync queues behind at most that (produce p99 while a 64 MB pass ran: 1.9-2.0 ms
against 2.3-3.4 ms with one fsync at the end; idle 1.2-1.6 ms; docs/benchmarks.md)."""
_MAP_ENTRY_OVERHEAD_BYTES = 80
"""What one dict entry costs beside its key (pointer slots, the int, the bytes header)."""
_AFTER_CRC = struct.Struct(">hiqqqhii")


class Throttler:
    """Sleeps the calling (worker) thread so that bytes per second stay under a rate."""

    def __init__(
        self,
        bytes_per_second: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bytes_per_second = bytes_per_second
        self._clock, self._sleep = clock, sleep
        self._start = clock()
        self._bytes = 0
        self.slept_s = 0.0

    def consumed(self, n: int) -> None:
        """Count `n` bytes read or written; sleep if they came faster than the rate."""
        if math.isinf(self.bytes_per_second) or self.bytes_per_second <= 0:
            return
        self._bytes += n
        ahead = self._bytes / self.bytes_per_second - (self._clock() - self._start)
        if ahead > 0.01:
            self._sleep(ahead)
            self.slept_s += ahead
        if self._clock() - self._start > 1.0:  # a fresh window: no credit from idle time
            self._start, self._bytes = self._clock(), 0


@dataclass(slots=True)
class CleanerState:
    """Per partition directory: where the dirty range starts, and the latest delete horizon."""

    first_dirty: dict[str, int] = field(default_factory=dict)
    latest_horizon: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def key(plog: PartitionLog) -> str:
        return os.path.basename(plog.directory.rstrip("/"))

    @classmethod
    def load(cls, fs: FileSystem, log_dir: str) -> CleanerState:
        """Read `cleaner-offset-checkpoint`; an unreadable file only costs a bigger pass."""
        path = os.path.join(log_dir, CLEANER_CHECKPOINT_NAME)
        state = cls()
        if fs.exists(path):
            try:
                state.first_dirty = decode_checkpoint(fs.read_file(path))
            except (ValueError, UnicodeDecodeError) as exc:
                log.warning("ignoring unreadable %s (%s): cleaning from the log start", path, exc)
        return state

    def save(self, fs: FileSystem, log_dir: str) -> None:
        fs.makedirs(log_dir)
        path = os.path.join(log_dir, CLEANER_CHECKPOINT_NAME)
        fs.write_file_atomic(path, encode_checkpoint(self.first_dirty))


@dataclass(slots=True)
class CleanJob:
    """What one pass reads and writes: plain data, which a child process can carry out."""

    segments: list[Segment]
    """Closed, durable segments from the log start up to first uncleanable."""
    first_dirty: int
    end: int
    """First uncleanable offset: the base of the first segment not cleaned."""
    now_ms: int
    delete_retention_ms: int
    segment_bytes: int
    aborted: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    """producer id -> (first, last) offsets of its aborted transactions in the plan's range:
    their batches are kept as they are and never enter the offset map, so an aborted record
    can never make the cleaner drop a committed one of the same key (Kafka's rule)."""

    def is_aborted(self, header: BatchHeader) -> bool:
        """Whether `header` is a data batch of an aborted transaction."""
        if not header.is_transactional or header.is_control:
            return False
        ranges = self.aborted.get(header.producer_id)
        return ranges is not None and any(
            first <= header.base_offset <= last for first, last in ranges
        )


@dataclass(slots=True, kw_only=True)
class CleanPlan(CleanJob):
    """A job and the log it is for, with why it was chosen: decided on the loop."""

    plog: PartitionLog
    dirty_ratio: float
    reason: str


@dataclass(slots=True)
class CleanResult:
    replacements: list[tuple[list[Segment], Segment]] = field(default_factory=list)
    first_dirty: int = 0
    """Where the next pass's dirty range starts (the map's end)."""
    latest_horizon: int = -1
    """The latest delete horizon of a tombstone still kept (-1: none)."""
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_removed: int = 0
    error: BaseException | None = None
    """A failure part-way: the groups already swapped are in `replacements`."""


def keyless_record_errors(
    batch: bytes | bytearray | memoryview, header: BatchHeader, partition: str
) -> list[tuple[int, str | None]]:
    """Produce on a compacted topic: Kafka's record errors for records without a key.

    Kafka's LogValidator refuses the whole batch with INVALID_RECORD and one record error per
    keyless record (batch index, "Compacted topic cannot accept message without key in topic
    partition <tp>."). Raises CorruptBatch if the records do not decompress or parse.
    """
    message = f"Compacted topic cannot accept message without key in topic partition {partition}."
    return [
        (i, message)
        for i, record in enumerate(_scan_records(header, batch, yield_gil=False))
        if record.key is None
    ]


def plan_cleaning(
    plog: PartitionLog,
    state: CleanerState,
    now_ms: int,
    *,
    force: bool = False,
    stable_offset: int | None = None,
    aborted: Sequence[tuple[int, int, int]] = (),
) -> CleanPlan | None:
    """The pass to run on `plog` now, or None (see the module docstring). On the loop.

    `stable_offset` (the last stable offset) bounds the pass as Kafka's first unstable offset
    does: no segment holding data of a still-open transaction is cleaned. `aborted` lists the
    (producer id, first offset, last offset) of aborted transactions (CleanPlan.aborted).
    """
    config = plog.config
    if not config.cleanup_compact or plog.failed is not None or plog.cleaning:
        return None
    candidates: list[Segment] = []
    pinned = {id(s) for s in (*plog._sealed_unsynced, *plog._syncing)}
    for segment in plog.segments[:-1]:
        if id(segment) in pinned or segment.next_offset > plog.durable_offset:
            break
        if stable_offset is not None and segment.next_offset > stable_offset:
            break
        if config.min_compaction_lag_ms > 0 and (
            segment.max_timestamp > now_ms - config.min_compaction_lag_ms
        ):
            break
        candidates.append(segment)
    if not candidates:
        return None
    key = CleanerState.key(plog)
    start, end = candidates[0].base_offset, candidates[-1].next_offset
    first_dirty = state.first_dirty.get(key, start)
    if not start <= first_dirty <= plog.log_end_offset:
        first_dirty = start  # a checkpoint from before a truncation or a re-creation
    first_dirty = min(first_dirty, end)
    clean_bytes = sum(s.size for s in candidates if s.next_offset <= first_dirty)
    dirty_bytes = sum(s.size for s in candidates if s.next_offset > first_dirty)
    total = clean_bytes + dirty_bytes
    ratio = dirty_bytes / total if total else 0.0
    reason = ""
    if dirty_bytes and ratio >= config.min_cleanable_dirty_ratio:
        reason = f"dirty ratio {ratio:.2f}"
    elif (
        dirty_bytes
        and _first_dirty_timestamp(candidates, first_dirty) >= 0
        and (
            now_ms - _first_dirty_timestamp(candidates, first_dirty) > config.max_compaction_lag_ms
        )
    ):
        reason = "max.compaction.lag.ms passed"
    elif 0 <= state.latest_horizon.get(key, -1) <= now_ms:
        reason = "tombstones past their delete horizon"
    elif force:
        reason = "forced"
    if not reason:
        return None
    plan = CleanPlan(
        segments=candidates,
        first_dirty=first_dirty,
        end=end,
        now_ms=now_ms,
        delete_retention_ms=config.delete_retention_ms,
        segment_bytes=config.segment_bytes,
        plog=plog,
        dirty_ratio=ratio,
        reason=reason,
    )
    for pid, first, last in aborted:
        if first < end:
            plan.aborted.setdefault(pid, []).append((first, last))
    return plan


def _first_dirty_timestamp(segments: list[Segment], first_dirty: int) -> int:
    for segment in segments:
        if segment.next_offset > first_dirty:
            return segment.first_timestamp
    return -1


# -- reading -------------------------------------------------------------------------------


def _iter_batches(
    fs: FileSystem, segment: Segment, throttler: Throttler, result: CleanResult
) -> Iterator[tuple[BatchHeader, bytes]]:
    """Every batch of a closed segment, CRC-checked, through a descriptor of our own.

    Our own descriptor: the loop may close the segment's (topic deletion) while we read.
    Raises CorruptLog on a batch that does not check out: nothing damaged is copied on.
    """
    fd = fs.open(segment.path, create=False)
    try:
        size = segment.size
        pos = 0
        while pos < size:
            chunk = fs.pread(fd, min(_READ_CHUNK_BYTES, size - pos), pos)
            if len(chunk) < BATCH_HEADER_BYTES:
                raise CorruptLog(f"{segment.path}: short read at byte position {pos}")
            rel = 0
            while len(chunk) - rel >= BATCH_HEADER_BYTES:
                header = read_batch_header(chunk, rel)
                if header.size < BATCH_HEADER_BYTES:
                    raise CorruptLog(f"{segment.path}: bad batch length at byte position {pos}")
                if len(chunk) - rel < header.size:
                    if rel == 0:  # one batch larger than the chunk
                        chunk = fs.pread(fd, header.size, pos)
                    else:
                        break
                data = chunk[rel : rel + header.size]
                if header.magic != 2 or batch_crc(data, 0, header.size) != header.crc:
                    raise CorruptLog(
                        f"{segment.path}: crc mismatch in the batch at byte position {pos}; "
                        "the cleaner will not copy damaged data"
                    )
                throttler.consumed(header.size)
                result.bytes_read += header.size
                # Let the event loop's thread have the GIL between batches: otherwise it waits
                # up to the interpreter's switch interval (5 ms) for it, on every request.
                time.sleep(0)
                yield header, data
                rel += header.size
                pos += header.size
                if rel >= len(chunk):
                    break
    finally:
        fs.close(fd)


class _Scanned(NamedTuple):
    """One record as the cleaner needs it: where it lies and what decides its fate."""

    offset_delta: int
    key: bytes | None
    tombstone: bool
    timestamp_delta: int
    start: int
    """Where the record's length prefix begins in the section."""
    after_timestamp: int
    """Where the offset delta begins: the rest of the record, copied as it is."""
    end: int


def _varint(buf: bytes | memoryview, pos: int, end: int) -> tuple[int, int]:
    """A zigzag varint (up to 10 bytes) at `pos`; CorruptBatch if it runs past `end`."""
    raw = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise CorruptBatch("varint runs past its record")
        byte = buf[pos]
        pos += 1
        raw |= (byte & 0x7F) << shift
        if byte < 0x80:
            return (raw >> 1) ^ -(raw & 1), pos
        shift += 7


def _scan_records(
    header: BatchHeader, data: bytes | bytearray | memoryview, *, yield_gil: bool = True
) -> list[_Scanned]:
    """The records of a batch, reading only lengths, deltas, key and the value's length.

    Several times faster than decoding whole records (values and headers are never copied):
    the cleaner reads every record of the log twice. Raises CorruptBatch if the records do
    not add up to the section or to the header's count.
    """
    section = records_section(data, header, max_bytes=MAX_UNCOMPRESSED_BATCH_BYTES)
    buf = section if isinstance(section, bytes) else bytes(section)
    out: list[_Scanned] = []
    pos, total = 0, len(buf)
    while pos < total:
        length, p = _varint(buf, pos, total)
        end = p + length
        if length <= 0 or end > total:
            raise CorruptBatch(f"record of {length} bytes runs past the records section")
        ts_delta, after_ts = _varint(buf, p + 1, end)
        offset_delta, p = _varint(buf, after_ts, end)
        key_len, p = _varint(buf, p, end)
        key = None
        if key_len >= 0:
            key = buf[p : p + key_len]
            p += key_len
        value_len, p = _varint(buf, p, end)
        if p > end:
            raise CorruptBatch("record fields run past the record")
        out.append(_Scanned(offset_delta, key, value_len < 0, ts_delta, pos, after_ts, end))
        pos = end
        if yield_gil and not len(out) & 63:
            time.sleep(0)  # a big batch takes ms to scan: let the event loop's thread in
    if len(out) != header.record_count:
        raise CorruptBatch(f"batch declares {header.record_count} records, holds {len(out)}")
    return out


def _section_bytes(header: BatchHeader, data: bytes | bytearray | memoryview) -> bytes:
    section = records_section(data, header, max_bytes=MAX_UNCOMPRESSED_BATCH_BYTES)
    return section if isinstance(section, bytes) else bytes(section)


# -- the offset map ----------------------------------------------------------------------------


def _build_map(
    fs: FileSystem,
    plan: CleanJob,
    budget_bytes: int,
    throttler: Throttler,
    result: CleanResult,
) -> tuple[dict[bytes, int], int, dict[int, int]]:
    """(key -> latest offset over the dirty range, where the map ends, pid -> last batch).

    The map ends at a segment boundary: the first segment that would overflow the budget is
    still mapped whole (a segment is bounded by segment.bytes), the next is not. The last
    batch of each producer id is tracked over every segment of the plan.
    """
    offsets: dict[bytes, int] = {}
    last_of_pid: dict[int, int] = {}
    used = 0
    map_end = plan.first_dirty
    full = False
    for segment in plan.segments:
        dirty = segment.next_offset > plan.first_dirty and not full
        for header, data in _iter_batches(fs, segment, throttler, result):
            if header.producer_id >= 0:
                last_of_pid[header.producer_id] = header.base_offset
            if not dirty or header.is_control or header.last_offset < plan.first_dirty:
                continue
            if plan.is_aborted(header):
                continue
            try:
                records = _scan_records(header, data)
            except CorruptBatch as exc:
                raise CorruptLog(
                    f"{segment.path}: batch at offset {header.base_offset}: {exc}"
                ) from exc
            for record in records:
                offset = header.base_offset + record.offset_delta
                if record.key is None or offset < plan.first_dirty:
                    continue
                if record.key not in offsets:
                    used += len(record.key) + _MAP_ENTRY_OVERHEAD_BYTES
                offsets[record.key] = offset
        if dirty:
            map_end = segment.next_offset
            full = used >= budget_bytes
    return offsets, map_end, last_of_pid


# -- filtering and re-encoding ---------------------------------------------------------------


def encode_batch(
    header: BatchHeader,
    attributes: int,
    base_timestamp: int,
    max_timestamp: int,
    records: list[bytes],
    *,
    compress: bool = True,
) -> bytes:
    """A v2 batch with `header`'s offsets, producer fields and leader epoch, new records."""
    codec = attributes & ATTR_CODEC_MASK
    payload = b"".join(records)
    if compress and records:
        payload = _compress(codec, payload)
    after_crc = (
        _AFTER_CRC.pack(
            attributes,
            header.last_offset_delta,
            base_timestamp,
            max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            len(records),
        )
        + payload
    )
    crc = _crc32c.crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)
    return (
        struct.pack(">qiibI", header.base_offset, length, header.partition_leader_epoch, 2, crc)
        + after_crc
    )


def empty_batch(header: BatchHeader) -> bytes:
    """Kafka's `writeEmptyHeader`: the batch's offsets and producer fields, no records."""
    attributes = header.attributes & (ATTR_TIMESTAMP_TYPE | ATTR_TRANSACTIONAL | ATTR_CONTROL)
    return encode_batch(header, attributes, header.max_timestamp, header.max_timestamp, [])


def _filter_batch(
    header: BatchHeader,
    data: bytes,
    offsets: dict[bytes, int],
    plan: CleanJob,
    *,
    retain_empty: bool,
    result: CleanResult,
) -> bytes | None:
    """The batch as it stays after cleaning (maybe `data` itself), or None to drop it."""
    if header.is_control:
        # Transaction markers are copied as they are (Kafka drops a marker once its delete
        # horizon passed and no data of its transaction is left: not done here yet).
        return data
    if plan.is_aborted(header):
        # Aborted data is copied as it is (Kafka drops it): read_committed readers skip it
        # through the abort index, whose offsets do not change.
        return data
    records = _scan_records(header, data)
    result.records_read += len(records)
    has_horizon = bool(header.attributes & ATTR_DELETE_HORIZON)
    horizon = header.base_timestamp if has_horizon else -1
    kept: list[_Scanned] = []
    tombstones = False
    for record in records:
        offset = header.base_offset + record.offset_delta
        if record.key is None:
            continue  # written before the topic was compacted: Kafka's cleaner drops it too
        latest = offsets.get(record.key)
        if latest is not None and offset < latest:
            continue
        if record.tombstone:
            if has_horizon and horizon <= plan.now_ms:
                continue
            tombstones = True
        kept.append(record)
    result.records_removed += len(records) - len(kept)
    if tombstones:
        if not has_horizon:
            horizon = plan.now_ms + plan.delete_retention_ms
        result.latest_horizon = max(result.latest_horizon, horizon)
    if len(kept) == len(records) and (has_horizon or not tombstones):
        return data
    if not kept:
        return empty_batch(header) if retain_empty else None
    section = _section_bytes(header, data)
    attributes = header.attributes
    base_timestamp = header.base_timestamp
    if tombstones:
        # The horizon goes into baseTimestamp (KIP-534), so each record's timestamp delta is
        # re-encoded against it; everything after the delta is copied as it is.
        attributes |= ATTR_DELETE_HORIZON
        base_timestamp = horizon
        encoded = []
        for r in kept:
            body = bytearray()
            body.append(section[_attributes_position(section, r)])
            write_varint(body, header.base_timestamp + r.timestamp_delta - base_timestamp)
            body += section[r.after_timestamp : r.end]
            prefix = bytearray()
            write_varint(prefix, len(body))
            encoded.append(bytes(prefix + body))
    else:
        # Kept records are copied byte for byte: same base timestamp, same deltas. (Kafka's
        # builder would rebase on the first kept record; any base is valid, the reader adds.)
        attributes &= ~ATTR_DELETE_HORIZON
        encoded = [section[r.start : r.end] for r in kept]
    if header.attributes & ATTR_TIMESTAMP_TYPE:
        max_timestamp = header.max_timestamp  # LogAppendTime: the append time stays
    else:
        max_timestamp = max(header.base_timestamp + r.timestamp_delta for r in kept)
    return encode_batch(header, attributes, base_timestamp, max_timestamp, encoded)


def _attributes_position(section: bytes, record: _Scanned) -> int:
    """Where a record's attributes byte is: right after its length varint."""
    _, pos = _varint(section, record.start, record.end)
    return pos


# -- grouping, writing and swapping ----------------------------------------------------------


def group_segments(segments: list[Segment], max_bytes: int) -> list[list[Segment]]:
    """Consecutive segments whose sizes add up to at most `max_bytes` (Kafka's
    groupSegmentsBySize), and whose offsets fit an int32 relative to the group's base."""
    groups: list[list[Segment]] = []
    for segment in segments:
        if groups:
            last = groups[-1]
            size = sum(s.size for s in last) + segment.size
            if size <= max_bytes and segment.next_offset - last[0].base_offset <= 2**31 - 1:
                last.append(segment)
                continue
        groups.append([segment])
    return groups


class _Writer:
    """Buffered appends to a `.cleaned` file, noting each batch in the new Segment."""

    def __init__(self, fs: FileSystem, segment: Segment, throttler: Throttler) -> None:
        self.fs, self.segment, self.throttler = fs, segment, throttler
        self.buffer = bytearray()
        self.flushed = 0
        self.synced = 0

    def add(self, data: bytes) -> None:
        header = read_batch_header(data)
        self.segment._note_batch(header, self.flushed + len(self.buffer))
        self.buffer += data
        if len(self.buffer) >= _WRITE_CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.fs.pwrite(self.segment.fd, self.buffer, self.flushed)
            self.throttler.consumed(len(self.buffer))
            self.flushed += len(self.buffer)
            self.buffer = bytearray()
            if self.flushed - self.synced >= WRITEBACK_BYTES:
                self.fs.fsync(self.segment.fd)  # write-behind, see WRITEBACK_BYTES
                self.synced = self.flushed
        self.segment.size = self.flushed


def _clean_group(
    fs: FileSystem,
    plan: CleanJob,
    group: list[Segment],
    offsets: dict[bytes, int],
    last_of_pid: dict[int, int],
    throttler: Throttler,
    result: CleanResult,
) -> Segment:
    directory = os.path.dirname(group[0].path)
    base = group[0].base_offset
    log_path = os.path.join(directory, f"{base:020d}.log")
    cleaned_path = log_path + CLEANED_SUFFIX
    swap_path = log_path + SWAP_SUFFIX
    keep_pid_batches = set(last_of_pid.values())
    group_last = group[-1].next_offset
    fd = fs.open(cleaned_path, create=True)
    fs.truncate(fd, 0)
    new = Segment(fs, cleaned_path, base, fd, plan.now_ms, next_offset=base)
    try:
        writer = _Writer(fs, new, throttler)
        for segment in group:
            for header, data in _iter_batches(fs, segment, throttler, result):
                retain = header.next_offset == group_last or header.base_offset in keep_pid_batches
                try:
                    kept = _filter_batch(
                        header, data, offsets, plan, retain_empty=retain, result=result
                    )
                except CorruptBatch as exc:
                    raise CorruptLog(
                        f"{segment.path}: batch at offset {header.base_offset}: {exc}"
                    ) from exc
                if kept is not None:
                    writer.add(kept)
        writer.flush()
        assert new.next_offset == group_last, (new.next_offset, group_last)
        fs.fsync(fd)
        result.bytes_written += new.size
        # From here on the swap is decided: recovery completes it (storage.recovery).
        fs.rename(cleaned_path, swap_path)
        fs.fsync_dir(directory)
        deleted = []
        for old in group:
            fs.rename(old.path, old.path + ".deleted")
            deleted.append(old.path + ".deleted")
            for path in index_paths(old.path):
                if fs.exists(path):
                    fs.remove(path)
        fs.fsync_dir(directory)
        fs.rename(swap_path, log_path)
        new.path = log_path
        new.add_final_time_entry()
        new.reset_index_files()
        new.persist_indexes()
        new.sync_indexes()
        fs.fsync_dir(directory)
        for path in deleted:
            fs.remove(path)
    except BaseException:
        new.close()
        raise
    return new


def clean(
    fs: FileSystem,
    plan: CleanJob,
    throttler: Throttler,
    *,
    dedupe_buffer_bytes: int = 128 << 20,
) -> CleanResult:
    """Carry out `plan` (in a worker thread); see the module docstring.

    Never raises for a failure part-way: it is in `result.error`, and the groups already
    swapped on disk are in `result.replacements` for `install` to put in the segment list.
    """
    result = CleanResult(first_dirty=plan.first_dirty)
    try:
        offsets, map_end, last_of_pid = _build_map(fs, plan, dedupe_buffer_bytes, throttler, result)
        result.first_dirty = map_end
        segments = [s for s in plan.segments if s.next_offset <= max(map_end, plan.first_dirty)]
        for group in group_segments(segments, plan.segment_bytes):
            new = _clean_group(fs, plan, group, offsets, last_of_pid, throttler, result)
            result.replacements.append((group, new))
    except (OSError, CorruptLog) as exc:
        result.error = exc
    return result


def install(plan: CleanPlan, result: CleanResult, state: CleanerState) -> list[Segment]:
    """On the loop: swap the cleaned segments into the log's list and note the new offsets.
    Returns the segments to close now (`close_segments`): the replaced ones, or a cleaned
    one that found its log closed."""
    plog = plan.plog
    retired: list[Segment] = []
    for old, new in result.replacements:
        if plog.replace_segments(old, new):
            retired.extend(old)
        else:
            retired.append(new)  # the log was closed meanwhile (topic deleted, broker stopping)
    plog.cleaning = []
    if result.error is None:
        key = CleanerState.key(plog)
        state.first_dirty[key] = result.first_dirty
        if result.latest_horizon >= 0:
            state.latest_horizon[key] = result.latest_horizon
        else:
            state.latest_horizon.pop(key, None)
    return retired


def close_segments(segments: list[Segment]) -> None:
    """Close retired segments' descriptors (in a worker thread when called by `run_pass`: the
    last close of an unlinked file frees its blocks and page cache, 24 ms for 64 MB here,
    which on the loop stood every connection still)."""
    for segment in segments:
        segment.close()


def clean_now(
    fs: FileSystem,
    plog: PartitionLog,
    state: CleanerState,
    now_ms: int,
    *,
    force: bool = False,
    throttler: Throttler | None = None,
    dedupe_buffer_bytes: int = 128 << 20,
) -> CleanResult | None:
    """Plan, clean and install in the calling thread (tests, tools); None if nothing is due."""
    plan = plan_cleaning(plog, state, now_ms, force=force)
    if plan is None:
        return None
    plog.cleaning = list(plan.segments)
    result = clean(
        fs, plan, throttler or Throttler(math.inf), dedupe_buffer_bytes=dedupe_buffer_bytes
    )
    close_segments(install(plan, result, state))
    return result


async def run_pass(
    fs: FileSystem,
    plan: CleanPlan,
    state: CleanerState,
    throttler: Throttler,
    *,
    dedupe_buffer_bytes: int = 128 << 20,
    isolated: bool = False,
) -> CleanResult:
    """Run `plan` in a worker thread, or with `isolated` in a child process
    (storage.cleaner_process: the broker's loop then never waits for the GIL), and install it
    on the loop.

    Cancelling waits for the pass (it may be renaming files) and still installs what it
    swapped, so a stopping broker closes the segments that are really on disk.
    """
    plan.plog.cleaning = list(plan.segments)
    work: Awaitable[CleanResult]
    if isolated:
        from kafkito.storage.cleaner_process import clean_in_process  # it imports this module

        work = clean_in_process(fs, plan, throttler.bytes_per_second, dedupe_buffer_bytes)
    else:
        work = off_loop(
            partial(clean, fs, plan, throttler, dedupe_buffer_bytes=dedupe_buffer_bytes)
        )
    task = asyncio.ensure_future(work)
    try:
        result = await asyncio.shield(task)
    except asyncio.CancelledError:
        close_segments(install(plan, await task, state))
        raise
    await off_loop(close_segments, install(plan, result, state))
    return result
