"""The metadata log: one CRC-framed, append-only file of JSON records.

Topic metadata (names, stable topic ids, partition counts, configs), log start offsets, group
state and committed offsets live here. Each record is framed as

    u32 length | u32 crc32c(payload) | payload (UTF-8 JSON object with a "type" key)

and the file is replayed in order at start-up. A torn or corrupt record at the tail (a crash
mid-write) ends the replay and is cut off; everything before it is intact because each append
is fsynced before it is acknowledged. `compact()` rewrites the file from the live state
(write to a temporary file, fsync, rename, fsync the directory), so the log never grows without
bound.

`append_durable()` is the event loop's way to write: the records are written on the loop (so
the file keeps the order of requests) and fsynced in a worker thread, so that an admin operation
does not stop the broker for the ~ms of an fsync. Until that fsync returns the records are
*pending*: a compaction in between writes them into the new file too (the caller applies them
to memory only once they are durable, so live state does not hold them yet), and the file
descriptor the worker syncs is not closed under it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import struct
from collections.abc import Iterable, Iterator
from typing import Any

import crc32c as _crc32c

from kafkito.storage.fs import FileSystem, off_loop

log = logging.getLogger(__name__)

_FRAME = struct.Struct(">II")
MAX_RECORD_BYTES = 64 << 20


def encode_record(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    return _FRAME.pack(len(payload), _crc32c.crc32c(payload)) + payload


def decode_records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Records from the start of `data` and the byte length of the valid prefix."""
    records: list[dict[str, Any]] = []
    pos = 0
    while len(data) - pos >= _FRAME.size:
        length, crc = _FRAME.unpack_from(data, pos)
        start = pos + _FRAME.size
        if length > MAX_RECORD_BYTES or start + length > len(data):
            break
        payload = data[start : start + length]
        if _crc32c.crc32c(payload) != crc:
            break
        try:
            record = json.loads(payload)
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        pos = start + length
    return records, pos


class MetadataLog:
    """Append-only JSON record log with replay and compaction; fsynced on every append."""

    def __init__(self, fs: FileSystem, path: str) -> None:
        self.fs = fs
        self.path = path
        self._fd = -1
        self._size = 0
        self.appended_since_compaction = 0
        self._pending: dict[int, list[dict[str, Any]]] = {}
        """Records of append_durable calls whose fsync has not returned, by call."""
        self._tokens = itertools.count()
        self._syncing = 0
        self._retired: list[int] = []
        """Descriptors replaced by a compaction while a worker may still fsync them."""

    def open(self) -> list[dict[str, Any]]:
        """Open the file and return every intact record; a torn tail is cut off."""
        self.fs.makedirs(os.path.dirname(self.path) or ".")
        self._fd = self.fs.open(self.path, create=True)
        size = self.fs.size(self._fd)
        data = self.fs.pread(self._fd, size, 0) if size else b""
        records, valid = decode_records(data)
        if valid < size:
            log.warning("metadata log %s: cutting %d bytes of torn tail", self.path, size - valid)
            self.fs.truncate(self._fd, valid)
            self.fs.fsync(self._fd)
        self._size = valid
        return records

    def append(self, records: Iterable[dict[str, Any]], *, sync: bool = True) -> None:
        data = b"".join(encode_record(r) for r in records)
        if not data:
            return
        self.fs.pwrite(self._fd, data, self._size)
        self._size += len(data)
        self.appended_since_compaction += 1
        if sync:
            self.fs.fsync(self._fd)

    def sync(self) -> None:
        self.fs.fsync(self._fd)

    async def append_durable(self, records: Iterable[dict[str, Any]]) -> None:
        """Append on the loop and fsync in a worker thread; returns once the records are durable.

        Raises OSError (as `append`) if the write or the fsync fails; the caller then leaves
        its in-memory state unchanged.
        """
        batch = list(records)
        if not batch:
            return
        self.append(batch, sync=False)
        token = next(self._tokens)
        self._pending[token] = batch
        self._syncing += 1
        try:
            await off_loop(self.fs.fsync, self._fd)
        finally:
            self._syncing -= 1
            del self._pending[token]
            if not self._syncing:
                self._close_retired()

    def pending_records(self) -> Iterator[dict[str, Any]]:
        """Records of append_durable calls still waiting for their fsync, in append order."""
        for token in sorted(self._pending):
            yield from self._pending[token]

    def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for fd in retired:
            self.fs.close(fd)

    def compact(self, live: Iterator[dict[str, Any]] | Iterable[dict[str, Any]]) -> None:
        """Replace the file by the given live records (and the pending ones), atomically."""
        data = b"".join(encode_record(r) for r in itertools.chain(live, self.pending_records()))
        # Write the new file first: if that fails (disk full) the old one and its fd stay valid.
        self.fs.write_file_atomic(self.path, data)
        old, self._fd = self._fd, self.fs.open(self.path, create=False)
        if self._syncing:
            self._retired.append(old)  # a worker may be in fsync(old): close it after
        else:
            self.fs.close(old)
        self._size = len(data)
        self.appended_since_compaction = 0

    @property
    def size_bytes(self) -> int:
        return self._size

    def close(self) -> None:
        self._close_retired()
        if self._fd >= 0:
            self.fs.close(self._fd)
            self._fd = -1
