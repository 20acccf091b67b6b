"""One log segment: a `.log` file of raw record batches and its `.index` and `.timeindex`.

File naming follows Kafka: `<base offset, 20 digits>.log|.index|.timeindex`. The `.log` holds
record batches exactly as produced, with baseOffset and partitionLeaderEpoch patched in. The
indexes (formats in `storage.index`) live in memory as sorted lists and are written to disk:

* while the segment is active, pending entries are appended by `persist_indexes` (the log calls
  it before each recovery-point checkpoint and fsyncs them with `sync_indexes`), so every entry
  below a checkpointed recovery point is on disk;
* when the segment rolls the final time-index entry is added and written, and the partition
  log's next sync fsyncs the sealed log and both index files (off the event loop);
* a segment holds one descriptor, its `.log`'s: the index files are opened for each write and
  fsync and closed after (`_on_index_files`), so 10,000 partitions need 10,000 descriptors.
  An empty segment's indexes are not read when it is loaded (there is nothing to index).

Opening, three ways (the partition log picks one per segment, see `storage.log`):

* `load` a segment wholly below the recovery point (or after a clean shutdown): its indexes are
  read instead of the log; the few batches after the last offset-index entry are walked to find
  the end. A missing, short, zero-filled or garbled index is rebuilt from the log, CRCs checked;
  any damage found there raises CorruptLog, because those bytes were fsynced.
* `recover` the segment holding the recovery point, or one above it: index entries below the
  recovery point are kept, the rest of the file is scanned with CRCs from the last kept entry,
  and the caller decides between cutting a torn tail and refusing to start.

Appends write at the end; a failed write is cut back so no partial batch stays behind. Reads
check each batch's CRC before serving it: a batch that rotted on disk is never served.
"""

from __future__ import annotations

import bisect
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

import crc32c as _crc32c

from kafkito.errors import CorruptBatch, CorruptLog
from kafkito.protocol.records import BATCH_HEADER_BYTES, BatchHeader, batch_crc, read_batch_header
from kafkito.storage.fs import FileSystem
from kafkito.storage.index import (
    INDEX_INTERVAL_BYTES,
    OFFSET_ENTRY,
    TIME_ENTRY,
    decode_offset_index,
    decode_time_index,
    encode_offset_entries,
    encode_time_entries,
)
from kafkito.storage.timestamps import iter_record_timestamps

log = logging.getLogger(__name__)

_SCAN_CHUNK_BYTES = 1 << 20
_MAX_READ_HINTS = 256
_READ_HEAD = struct.Struct(">qi4xbI2xi")
"""base offset, batch length, magic, crc, last offset delta: what a read checks per batch."""
"""Read hints kept per segment (one per consumer position, roughly); cleared when full."""


def segment_file_name(base_offset: int) -> str:
    return f"{base_offset:020d}.log"


def index_paths(log_path: str) -> tuple[str, str]:
    """(.index path, .timeindex path) of the segment whose `.log` is `log_path`."""
    stem = log_path[: -len(".log")]
    return stem + ".index", stem + ".timeindex"


@dataclass(slots=True)
class ScanResult:
    """What a scan of a segment file found."""

    valid_bytes: int
    next_offset: int
    batches: int
    torn_bytes: int
    reason: str = ""
    start_position: int = 0
    """Where the scan began (earlier bytes were trusted from the index)."""


@dataclass(slots=True)
class Segment:
    """A `.log` file and its sparse indexes; owned by one PartitionLog."""

    fs: FileSystem
    path: str
    base_offset: int
    fd: int
    created_ms: int
    size: int = 0
    next_offset: int = 0
    max_timestamp: int = -1
    max_timestamp_offset: int = -1
    first_timestamp: int = -1
    index_offsets: list[int] = field(default_factory=list)
    index_positions: list[int] = field(default_factory=list)
    time_stamps: list[int] = field(default_factory=list)
    time_offsets: list[int] = field(default_factory=list)
    index_persisted: int = 0
    time_persisted: int = 0
    index_dirty: bool = False
    """Index entries were written since the last `sync_indexes`."""
    _bytes_since_index: int = INDEX_INTERVAL_BYTES
    _read_hints: dict[int, int] = field(default_factory=dict)
    """Offset -> file position of the batch that starts there, for the batch after each
    read served: a consumer reading on finds its next batch with one pread instead of
    walking up to INDEX_INTERVAL_BYTES of headers from the sparse index entry. A hint is
    only a guess, checked against the header found there (bounded by _MAX_READ_HINTS)."""

    # -- creating and opening ----------------------------------------------------------------

    @classmethod
    def create(cls, fs: FileSystem, directory: str, base_offset: int, now_ms: int) -> Segment:
        """A new empty segment; the caller fsyncs the directory."""
        path = os.path.join(directory, segment_file_name(base_offset))
        fd = fs.open(path, create=True)
        if fs.size(fd):
            fs.truncate(fd, 0)  # a stale file of that name can only be a leftover
        segment = cls(fs, path, base_offset, fd, now_ms, next_offset=base_offset)
        segment.reset_index_files()
        return segment

    def reset_index_files(self) -> None:
        """Make both index files exist and be empty (`persist_indexes` writes them)."""
        fs = self.fs
        self._on_index_files(lambda index_fd, time_fd: _truncate_both(fs, index_fd, time_fd, 0, 0))

    def _on_index_files(self, work: Callable[[int, int], None]) -> None:
        """Open both index files, run `work(index_fd, time_fd)`, close them.

        Index files hold no descriptor between uses: they are written only at a roll, a
        recovery-point checkpoint and a clean stop, and fsynced after, so opening them then
        costs a few system calls per checkpoint interval, while keeping them open cost two
        descriptors per segment (at 10,000 partitions 20,000 of the 30,000 a broker held,
        above a common `ulimit -n`). fsync through a descriptor other than the writer's is
        fine on Linux (it flushes the file, not the descriptor's writes; an unseen writeback
        error is reported to the next fsync since 4.16), and the indexes are a cache of the
        log anyway: an index that does not match its log is rebuilt at load.
        """
        index_path, time_path = index_paths(self.path)
        index_fd = self.fs.open(index_path, create=True)
        try:
            time_fd = self.fs.open(time_path, create=True)
            try:
                work(index_fd, time_fd)
            finally:
                self.fs.close(time_fd)
        finally:
            self.fs.close(index_fd)

    def _read_index_file(self, path: str) -> bytes | None:
        try:  # one system call fewer than exists() first: starts open every segment's indexes
            return self.fs.read_file(path)
        except FileNotFoundError:
            return None

    @classmethod
    def load(cls, fs: FileSystem, path: str, base_offset: int, now_ms: int) -> Segment:
        """Open a segment whose bytes were all fsynced, from its indexes where they are sound.

        Raises CorruptLog if the log itself is damaged.
        """
        fd = fs.open(path, create=False)
        segment = cls(fs, path, base_offset, fd, now_ms, next_offset=base_offset)
        segment.size = fs.size(fd)
        problem = segment._load_indexes()
        if problem is not None:
            if segment.size:
                log.warning("%s: rebuilding indexes (%s)", path, problem)
            segment._reset_indexes()
            result = segment._scan(0, verify_crc=True)
            if result.torn_bytes:
                raise corrupt_log_error(path, result)
            segment.add_final_time_entry()
            segment.reset_index_files()
            segment.persist_indexes()
            segment.sync_indexes()
        else:
            segment.index_persisted = len(segment.index_offsets)
            segment.time_persisted = len(segment.time_stamps)
        return segment

    def _load_indexes(self) -> str | None:
        """Fill the indexes from their files and walk to the end; None if all is sound."""
        if self.size == 0:
            return None  # nothing to index (an idle partition): its index files are not read
        index_path, time_path = index_paths(self.path)
        raw_index = self._read_index_file(index_path)
        raw_time = self._read_index_file(time_path)
        if raw_index is None or raw_time is None:
            return "index file missing"
        offsets = decode_offset_index(raw_index, base_offset=self.base_offset, log_size=self.size)
        if offsets.problem:
            return f"offset index: {offsets.problem}"
        if not offsets.offsets:
            return "offset index empty" if self.size else None
        times = decode_time_index(raw_time, base_offset=self.base_offset, max_offset=2**63 - 1)
        if times.problem:
            return f"time index: {times.problem}"
        self.index_offsets, self.index_positions = offsets.offsets, offsets.values
        self.time_offsets, self.time_stamps = times.offsets, times.values
        if self.time_stamps:
            self.max_timestamp = self.time_stamps[-1]
            self.max_timestamp_offset = self.time_offsets[-1]
        # Walk from the last indexed batch to the end: finds next_offset, proves the entry.
        pos = self.index_positions[-1]
        expected = self.index_offsets[-1]
        walked_max = -1
        while pos < self.size:
            if self.size - pos < BATCH_HEADER_BYTES:
                return f"partial batch at position {pos}"
            header = read_batch_header(self.fs.pread(self.fd, BATCH_HEADER_BYTES, pos))
            # The indexed batch must carry the offset its entry names; later ones may skip
            # offsets (the cleaner removes batches, storage.cleaner) but never go back.
            indexed = pos == self.index_positions[-1]
            if (
                header.magic != 2
                or (header.base_offset != expected if indexed else header.base_offset < expected)
                or pos + header.size > self.size
            ):
                return f"offset index entry does not match the batch at position {pos}"
            walked_max = max(walked_max, header.max_timestamp)
            if pos == self.index_positions[-1]:
                self._bytes_since_index = 0
            elif self._bytes_since_index >= INDEX_INTERVAL_BYTES:
                return f"offset index is short: no entry for the batch at position {pos}"
            self._bytes_since_index += header.size
            expected = header.next_offset
            pos += header.size
        if walked_max > self.max_timestamp:
            return "time index is behind the log"
        if self.time_offsets and self.time_offsets[-1] >= expected:
            return "time index points past the log"
        self.next_offset = expected
        if self.size:
            first = read_batch_header(self.fs.pread(self.fd, BATCH_HEADER_BYTES, 0))
            self.first_timestamp = first.max_timestamp
        return None

    def _reset_indexes(self) -> None:
        self.index_offsets, self.index_positions = [], []
        self.time_stamps, self.time_offsets = [], []
        self.max_timestamp = self.max_timestamp_offset = self.first_timestamp = -1
        self.next_offset = self.base_offset
        self._bytes_since_index = INDEX_INTERVAL_BYTES
        self.index_persisted = self.time_persisted = 0

    @classmethod
    def recover(
        cls, fs: FileSystem, path: str, base_offset: int, now_ms: int, *, from_offset: int
    ) -> tuple[Segment, ScanResult]:
        """Open a segment holding or above the recovery point `from_offset` and scan its tail.

        Index entries below `from_offset` are trusted (they were fsynced before the recovery
        point was checkpointed); the log is scanned with CRCs from the last of them. The caller
        decides what to do with a damaged tail (ScanResult.torn_bytes).
        """
        fd = fs.open(path, create=False)
        segment = cls(fs, path, base_offset, fd, now_ms, next_offset=base_offset)
        segment.size = fs.size(fd)
        start = segment._trusted_prefix(from_offset)
        result = segment._scan(start, verify_crc=True)
        index_bytes = segment.index_persisted * OFFSET_ENTRY.size
        time_bytes = segment.time_persisted * TIME_ENTRY.size
        segment._on_index_files(
            lambda index_fd, time_fd: _truncate_both(fs, index_fd, time_fd, index_bytes, time_bytes)
        )
        return segment, result

    def _trusted_prefix(self, from_offset: int) -> int:
        """Keep the index entries below `from_offset`; returns the position to scan from."""
        if from_offset <= self.base_offset:
            return 0
        index_path, time_path = index_paths(self.path)
        raw_index = self._read_index_file(index_path) or b""
        raw_time = self._read_index_file(time_path) or b""
        offsets = decode_offset_index(raw_index, base_offset=self.base_offset, log_size=self.size)
        keep = bisect.bisect_left(offsets.offsets, from_offset)
        if keep == 0:
            return 0
        # Rescan from the last kept entry (it is re-added by the scan); check that it points
        # at the batch it names, or trust nothing.
        restart_offset, restart_pos = offsets.offsets[keep - 1], offsets.values[keep - 1]
        if self.size - restart_pos < BATCH_HEADER_BYTES:
            return 0
        header = read_batch_header(self.fs.pread(self.fd, BATCH_HEADER_BYTES, restart_pos))
        if header.magic != 2 or header.base_offset != restart_offset:
            log.warning("%s: offset index does not match the log; scanning it all", self.path)
            return 0
        times = decode_time_index(raw_time, base_offset=self.base_offset, max_offset=2**63 - 1)
        tkeep = bisect.bisect_left(times.offsets, restart_offset)
        self.index_offsets = offsets.offsets[: keep - 1]
        self.index_positions = offsets.values[: keep - 1]
        self.time_offsets, self.time_stamps = times.offsets[:tkeep], times.values[:tkeep]
        if self.time_stamps:
            self.max_timestamp = self.time_stamps[-1]
            self.max_timestamp_offset = self.time_offsets[-1]
        self.index_persisted, self.time_persisted = keep - 1, tkeep
        self.next_offset = restart_offset
        first = read_batch_header(self.fs.pread(self.fd, BATCH_HEADER_BYTES, 0))
        self.first_timestamp = first.max_timestamp
        return restart_pos

    def _scan(self, start: int, *, verify_crc: bool) -> ScanResult:
        file_size = self.fs.size(self.fd)
        pos, batches, reason = start, 0, ""
        expected_offset = self.next_offset
        buf, buf_start = b"", start
        while pos < file_size:
            if pos + BATCH_HEADER_BYTES > buf_start + len(buf):
                buf = self.fs.pread(self.fd, _SCAN_CHUNK_BYTES, pos)
                buf_start = pos
            rel = pos - buf_start
            if len(buf) - rel < BATCH_HEADER_BYTES:
                reason = f"partial batch header at position {pos}"
                break
            header = read_batch_header(buf, rel)
            size = header.size
            if header.magic != 2 or size < BATCH_HEADER_BYTES or pos + size > file_size:
                reason = f"invalid or incomplete batch at position {pos}"
                break
            # Offsets only grow: a compacted segment has gaps where the cleaner removed
            # batches (storage.cleaner), so a later base offset is fine, an earlier one is not.
            if header.base_offset < expected_offset or header.last_offset_delta < 0:
                reason = (
                    f"batch at position {pos} has offset {header.base_offset}, "
                    f"expected {expected_offset}"
                )
                break
            if verify_crc:
                if rel + size > len(buf):
                    buf = self.fs.pread(self.fd, max(_SCAN_CHUNK_BYTES, size), pos)
                    buf_start, rel = pos, 0
                if batch_crc(buf, rel, size) != header.crc:
                    reason = f"crc mismatch in the batch at position {pos}"
                    break
            self._note_batch(header, pos)
            expected_offset = header.next_offset
            pos += size
            batches += 1
        self.size = pos
        return ScanResult(pos, self.next_offset, batches, file_size - pos, reason, start)

    def _note_batch(self, header: BatchHeader, position: int) -> None:
        if position == 0:
            self.first_timestamp = header.max_timestamp
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.max_timestamp_offset = header.base_offset
        if self._bytes_since_index >= INDEX_INTERVAL_BYTES:
            self.index_offsets.append(header.base_offset)
            self.index_positions.append(position)
            self._bytes_since_index = 0
            self._maybe_time_entry()
        self._bytes_since_index += header.size
        self.next_offset = header.next_offset

    def add_final_time_entry(self) -> None:
        """Record the segment's largest timestamp (at a roll or a clean stop)."""
        self._maybe_time_entry()

    def _maybe_time_entry(self) -> None:
        if self.max_timestamp >= 0 and (
            not self.time_stamps or self.max_timestamp > self.time_stamps[-1]
        ):
            self.time_stamps.append(self.max_timestamp)
            self.time_offsets.append(self.max_timestamp_offset)

    # -- index persistence -------------------------------------------------------------------

    def persist_indexes(self) -> None:
        """Append index entries not yet in the files (no fsync; see `sync_indexes`)."""
        if self.index_persisted < len(self.index_offsets) or self.time_persisted < len(
            self.time_stamps
        ):
            self._on_index_files(self._write_index_entries)

    def _write_index_entries(self, index_fd: int, time_fd: int) -> None:
        if self.index_persisted < len(self.index_offsets):
            data = encode_offset_entries(
                self.base_offset,
                self.index_offsets[self.index_persisted :],
                self.index_positions[self.index_persisted :],
            )
            self.fs.pwrite(index_fd, data, self.index_persisted * OFFSET_ENTRY.size)
            self.index_persisted = len(self.index_offsets)
            self.index_dirty = True
        if self.time_persisted < len(self.time_stamps):
            data = encode_time_entries(
                self.base_offset,
                self.time_stamps[self.time_persisted :],
                self.time_offsets[self.time_persisted :],
            )
            self.fs.pwrite(time_fd, data, self.time_persisted * TIME_ENTRY.size)
            self.time_persisted = len(self.time_stamps)
            self.index_dirty = True

    def sync_indexes(self) -> None:
        """fsync both index files (may run off the event loop)."""
        self.index_dirty = False  # before the fsync: an entry written meanwhile re-dirties it
        self._on_index_files(self._fsync_both)

    def _fsync_both(self, index_fd: int, time_fd: int) -> None:
        self.fs.fsync(index_fd)
        self.fs.fsync(time_fd)

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        data: bytes | bytearray | memoryview,
        header: BatchHeader,
        *,
        head: bytes | bytearray | None = None,
    ) -> int:
        """Write one batch at the end; returns its file position. With `head`, the file gets
        `head` in place of the batch's first len(head) bytes (the log's patched offset and
        epoch, so that a large batch is written from the request without a copy).

        On a failed write the file is cut back to where it was, so no partial batch remains;
        the exception propagates (the log then refuses writes).
        """
        position = self.size
        try:
            if head is None:
                self.fs.pwrite(self.fd, data, position)
            else:
                self.fs.pwrite(self.fd, head, position)
                self.fs.pwrite(self.fd, memoryview(data)[len(head) :], position + len(head))
        except OSError:
            try:
                self.fs.truncate(self.fd, position)
            except OSError as exc:
                log.error("%s: cannot cut back a failed write: %s", self.path, exc)
            raise
        self.size += len(data)
        self._note_batch(header, position)
        return position

    def truncate_to(self, size: int) -> None:
        """Cut the log at `size` bytes, a batch boundary (recovery of a torn tail)."""
        self.fs.truncate(self.fd, size)
        self.size = size
        self._read_hints.clear()

    # -- reading -----------------------------------------------------------------------------

    def lookup_position(self, offset: int) -> int:
        """File position of an indexed batch at or before the one holding `offset`."""
        i = bisect.bisect_right(self.index_offsets, offset) - 1
        return self.index_positions[i] if i >= 0 else 0

    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """(position, header) of the batch holding `offset`, or the first one after it."""
        hinted = self._read_hints.get(offset)
        if hinted is not None and hinted + BATCH_HEADER_BYTES <= self.size:
            header = read_batch_header(self.fs.pread(self.fd, BATCH_HEADER_BYTES, hinted))
            if header.base_offset == offset:
                return hinted, header
        pos = self.lookup_position(offset)
        while pos + BATCH_HEADER_BYTES <= self.size:
            raw = self.fs.pread(self.fd, BATCH_HEADER_BYTES, pos)
            header = read_batch_header(raw)
            if header.last_offset >= offset:
                return pos, header
            pos += header.size
        return None

    def read(self, position: int, max_bytes: int, *, max_offset: int) -> bytes:
        """Whole, CRC-checked batches from `position` below `max_offset`, at most `max_bytes`
        unless the first batch alone is larger. Raises CorruptLog if the first batch is bad."""
        data = self.read_view(position, max_bytes, max_offset=max_offset)
        return data if isinstance(data, bytes) else bytes(data)

    def read_view(self, position: int, max_bytes: int, *, max_offset: int) -> bytes | memoryview:
        """`read` without the copy: when the read ends inside a batch (the usual case for a
        full Fetch) the whole batches are a view of the bytes read, not a second copy of up
        to a MiB per partition; the Fetch path sends it to the socket as it is."""
        want = max(min(max_bytes, self.size - position), BATCH_HEADER_BYTES)
        data = self.fs.pread(self.fd, want, position)
        first_size = _READ_HEAD.unpack_from(data, 0)[1] + 12 if len(data) >= 12 else 0
        if first_size > len(data):  # KIP-74: the first batch whole, even above max_bytes
            data = self.fs.pread(self.fd, first_size, position)
        # One struct unpack and one CRC call per batch, no BatchHeader: with small batches
        # (linger 0) this loop is most of a Fetch's cost.
        view = memoryview(data)
        unpack, crc32 = _READ_HEAD.unpack_from, _crc32c.crc32c
        end, pos, next_offset, limit = 0, 0, 0, len(data) - BATCH_HEADER_BYTES
        while pos <= limit:
            base_offset, length, magic, crc, last_delta = unpack(data, pos)
            size = length + 12
            if pos + size > len(data) or base_offset >= max_offset:
                break
            if magic != 2 or size < BATCH_HEADER_BYTES or crc32(view[pos + 21 : pos + size]) != crc:
                if end == 0:
                    log.error(
                        "%s: crc mismatch in the batch at position %d; not serving it",
                        self.path,
                        position + pos,
                    )
                    raise CorruptLog(
                        f"{self.path}: crc mismatch in the batch at byte position "
                        f"{position + pos} (offset {base_offset}); the file is damaged, "
                        "restore it from a backup or delete the segment to drop its records"
                    )
                break
            pos += size
            end = pos
            next_offset = base_offset + last_delta + 1
        if end:
            if len(self._read_hints) >= _MAX_READ_HINTS:
                self._read_hints.clear()
            self._read_hints[next_offset] = position + end
        return data if end == len(data) else memoryview(data)[:end]

    def lookup_timestamp(self, timestamp: int, min_offset: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record at or above `min_offset` whose timestamp
        is >= `timestamp`, or None if this segment has none."""
        if self.max_timestamp < timestamp:
            return None
        # Every batch up to the offset of the last entry below the target is below it too.
        i = bisect.bisect_left(self.time_stamps, timestamp)
        start = self.time_offsets[i - 1] if i > 0 else self.base_offset
        found = self.find_batch(max(start, min_offset))
        while found is not None:
            position, header = found
            if header.max_timestamp >= timestamp and header.last_offset >= min_offset:
                batch = self.fs.pread(self.fd, header.size, position)
                try:
                    for offset, ts in iter_record_timestamps(batch):
                        if ts >= timestamp and offset >= min_offset:
                            return offset, ts
                except CorruptBatch as exc:
                    log.error("%s: unreadable batch at %d: %s", self.path, position, exc)
                    return header.base_offset, header.max_timestamp
            if header.next_offset >= self.next_offset:
                return None
            found = self.find_batch(header.next_offset)
        return None

    def max_timestamp_record(self) -> tuple[int, int]:
        """(timestamp, offset) of the first record carrying the segment's largest timestamp."""
        if self.max_timestamp < 0:
            return -1, -1
        found = self.find_batch(self.max_timestamp_offset)
        if found is not None:
            position, header = found
            try:
                for offset, ts in iter_record_timestamps(
                    self.fs.pread(self.fd, header.size, position)
                ):
                    if ts == self.max_timestamp:
                        return ts, offset
            except CorruptBatch:
                pass
        return self.max_timestamp, self.max_timestamp_offset

    # -- lifecycle ---------------------------------------------------------------------------

    def flush(self) -> None:
        self.fs.fsync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            self.fs.close(self.fd)
        self.fd = -1

    def file_paths(self) -> list[str]:
        return [self.path, *index_paths(self.path)]


def corrupt_log_error(path: str, result: ScanResult) -> CorruptLog:
    """The CorruptLog that names the file, the byte position and what to do."""
    return CorruptLog(
        f"{path}: damaged at byte position {result.valid_bytes} ({result.reason}) in data that "
        "was fsynced before the crash, so this is not a torn write. kafkito will not guess: "
        "restore the file from a backup, or, to accept losing the records from that position "
        f"on, truncate the file to {result.valid_bytes} bytes (truncate -s {result.valid_bytes} "
        "FILE), delete the later segments of this partition and their .index/.timeindex files, "
        "and start again"
    )


def _truncate_both(
    fs: FileSystem, index_fd: int, time_fd: int, index_size: int, time_size: int
) -> None:
    fs.truncate(index_fd, index_size)
    fs.truncate(time_fd, time_size)
