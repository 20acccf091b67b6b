"""One log segment: a `.log` file of raw record batches plus sparse in-memory indexes.

File naming follows Kafka: `<base offset, 20 digits>.log`. The file holds record batches exactly
as produced, with baseOffset and partitionLeaderEpoch patched in. The offset index maps a batch's
base offset to its file position, one entry per `index_interval_bytes` of log, and the time index
maps the running maximum timestamp to the first offset that reached it. Both are rebuilt by
scanning the segment when it is opened (the scan also finds a torn tail).
"""

from __future__ import annotations

import bisect
import logging
import os
from dataclasses import dataclass, field

from kafkito.protocol.records import BATCH_HEADER_BYTES, BatchHeader, batch_crc, read_batch_header
from kafkito.storage.fs import FileSystem

log = logging.getLogger(__name__)

INDEX_INTERVAL_BYTES = 4096
_SCAN_CHUNK_BYTES = 1 << 20


def segment_file_name(base_offset: int) -> str:
    return f"{base_offset:020d}.log"


@dataclass(slots=True)
class ScanResult:
    """What a scan of a segment file found."""

    valid_bytes: int
    next_offset: int
    batches: int
    torn_bytes: int
    reason: str = ""


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
    index_offsets: list[int] = field(default_factory=list)
    index_positions: list[int] = field(default_factory=list)
    time_stamps: list[int] = field(default_factory=list)
    time_offsets: list[int] = field(default_factory=list)
    _bytes_since_index: int = INDEX_INTERVAL_BYTES

    @classmethod
    def create(cls, fs: FileSystem, directory: str, base_offset: int, now_ms: int) -> Segment:
        path = os.path.join(directory, segment_file_name(base_offset))
        fd = fs.open(path, create=True)
        return cls(fs, path, base_offset, fd, now_ms, next_offset=base_offset)

    @classmethod
    def open_existing(
        cls, fs: FileSystem, path: str, base_offset: int, now_ms: int, *, verify_crc: bool
    ) -> tuple[Segment, ScanResult]:
        """Open a segment and scan it, rebuilding the indexes; the caller decides on damage."""
        fd = fs.open(path, create=False)
        segment = cls(fs, path, base_offset, fd, now_ms, next_offset=base_offset)
        result = segment._scan(verify_crc=verify_crc)
        return segment, result

    def _scan(self, *, verify_crc: bool) -> ScanResult:
        file_size = self.fs.size(self.fd)
        pos, batches, reason = 0, 0, ""
        expected_offset = self.base_offset
        buf, buf_start = b"", 0
        while pos < file_size:
            if pos + BATCH_HEADER_BYTES > buf_start + len(buf):
                buf = self.fs.pread(self.fd, max(_SCAN_CHUNK_BYTES, BATCH_HEADER_BYTES), pos)
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
            if header.base_offset < expected_offset or header.last_offset_delta < 0:
                reason = f"offset {header.base_offset} out of order at position {pos}"
                break
            if verify_crc:
                if rel + size > len(buf):
                    buf = self.fs.pread(self.fd, max(_SCAN_CHUNK_BYTES, size), pos)
                    buf_start, rel = pos, 0
                if batch_crc(buf, rel, size) != header.crc:
                    reason = f"crc mismatch at position {pos}"
                    break
            self._note_batch(header, pos)
            expected_offset = header.next_offset
            pos += size
            batches += 1
        self.size = pos
        return ScanResult(pos, self.next_offset, batches, file_size - pos, reason)

    def _note_batch(self, header: BatchHeader, position: int) -> None:
        if self._bytes_since_index >= INDEX_INTERVAL_BYTES:
            self.index_offsets.append(header.base_offset)
            self.index_positions.append(position)
            self._bytes_since_index = 0
        self._bytes_since_index += header.size
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.time_stamps.append(header.max_timestamp)
            self.time_offsets.append(header.base_offset)
        self.next_offset = header.next_offset

    def append(self, data: bytes | bytearray | memoryview, header: BatchHeader) -> int:
        """Write one batch at the end; returns its file position."""
        position = self.size
        self.fs.pwrite(self.fd, data, position)
        self.size += len(data)
        self._note_batch(header, position)
        return position

    def truncate_to(self, size: int) -> None:
        """Cut the file at `size` bytes (used by recovery for a torn tail)."""
        self.fs.truncate(self.fd, size)
        self.size = size

    def lookup_position(self, offset: int) -> int:
        """File position of an indexed batch at or before the one holding `offset`."""
        i = bisect.bisect_right(self.index_offsets, offset) - 1
        return self.index_positions[i] if i >= 0 else 0

    def find_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """(position, header) of the batch holding `offset`, or the first one after it."""
        pos = self.lookup_position(offset)
        while pos + BATCH_HEADER_BYTES <= self.size:
            raw = self.fs.pread(self.fd, BATCH_HEADER_BYTES, pos)
            header = read_batch_header(raw)
            if header.last_offset >= offset:
                return pos, header
            pos += header.size
        return None

    def read(self, position: int, max_bytes: int, *, max_offset: int) -> bytes:
        """Whole batches from `position` below `max_offset`, at most `max_bytes` unless the
        first batch alone is larger."""
        first = read_batch_header(self.fs.pread(self.fd, BATCH_HEADER_BYTES, position))
        want = max(first.size, min(max_bytes, self.size - position))
        data = self.fs.pread(self.fd, want, position)
        # trim to whole batches
        end, pos = 0, 0
        while pos + BATCH_HEADER_BYTES <= len(data):
            header = read_batch_header(data, pos)
            if pos + header.size > len(data) or header.base_offset >= max_offset:
                break
            pos += header.size
            end = pos
        return data[:end]

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The first offset whose batch max timestamp is >= `timestamp`, or None."""
        i = bisect.bisect_left(self.time_stamps, timestamp)
        if i >= len(self.time_stamps):
            return None
        # The time index is sparse by batch; scan from the previous indexed point to be exact.
        start = self.time_offsets[i - 1] if i > 0 else self.base_offset
        found = self.find_batch(start)
        while found is not None:
            _, header = found
            if header.max_timestamp >= timestamp:
                return header.base_offset
            if header.next_offset >= self.next_offset:
                return None
            found = self.find_batch(header.next_offset)
        return None

    def flush(self) -> None:
        self.fs.fsync(self.fd)

    def close(self) -> None:
        self.fs.close(self.fd)
