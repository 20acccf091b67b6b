"""State stores: one LMDB environment per store and partition, a compacted changelog behind it.

Theory of operation
-------------------
The **changelog topic** (`<app>-<store>-changelog`, compacted, one partition per partition of
the store's input topic) is the truth; the local LMDB file is a cache of it up to a
**checkpoint**, the changelog offset from which a restore must continue. Writes go to an
in-memory map first (`put`, `delete`): at each commit the app sends the latest value of
every dirty key to the changelog (one record per key per commit interval, not per update),
commits (in exactly-once mode: changelog records, outputs and input offsets in one
transaction), and only then writes the dirty keys and the new checkpoint to LMDB in one LMDB
transaction. So the local file is never ahead of what Kafka committed: after a crash, an
abort, or on another machine, `restore` replays the changelog from the checkpoint (from the
start with an empty state dir) and reaches exactly the committed state.

Why LMDB: measured on this machine for 200k keys, write batches of 1,000 (commit
intervals), then random point reads (bench numbers in docs/streams.md): SQLite (stdlib)
300k writes/s and 94k reads/s, LMDB (py-lmdb) 1.7M/s and 454k/s, RocksDB (rocksdict)
2.7M/s and 418k/s. LMDB and RocksDB are both ~5x SQLite; LMDB is one small C library with
wheels for every platform, transactional (data and checkpoint commit together), needs no
background compaction threads, and reads from a memory map. RocksDB's write edge matters
little behind the write cache.

TTL: with `ttl_ms`, a key not written for that long (wall-clock time) reads as absent and
is deleted, with a tombstone to the changelog, by `sweep`. Restore re-derives each key's
deadline from its changelog record's timestamp (the time it was written).
"""

from __future__ import annotations

import logging
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lmdb

from kafkito.errors import KafkitoError

log = logging.getLogger(__name__)

__all__ = ["PartitionStore", "StateError"]

MAP_SIZE_BYTES = 1 << 30
"""Initial LMDB map (address space, not disk: the file grows as data does); doubled when full."""
CACHE_ENTRIES_MAX = 200_000
"""Clean entries kept in memory between commits; past this the read cache is dropped."""
_CHECKPOINT = b"checkpoint"
_U64 = struct.Struct(">Q")
_NEVER = 0


class StateError(KafkitoError):
    """A state store cannot be opened, restored or written."""


class PartitionStore:
    """One store's state for one partition: an LMDB file, a write cache and a checkpoint.

    Keys and values are bytes (the nodes pack them with msgpack). Not thread-safe: the app's
    loop owns it.
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        partition: int,
        ttl_ms: int | None = None,
        map_size_bytes: int = MAP_SIZE_BYTES,
    ) -> None:
        self.path = path
        self.name = name
        self.partition = partition
        self.ttl_ms = ttl_ms
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._env = lmdb.open(
                str(path), map_size=map_size_bytes, max_dbs=4, sync=False, metasync=False
            )
        except lmdb.Error as exc:
            raise StateError(f"cannot open state store {name!r} at {path}: {exc}") from exc
        self._data = self._env.open_db(b"data")
        self._meta = self._env.open_db(b"meta")
        # expires: key -> deadline; by_deadline: deadline+key -> b"" (sorted, for sweep)
        self._expires = self._env.open_db(b"expires")
        self._by_deadline = self._env.open_db(b"by_deadline")
        # key -> (value or None for deleted, deadline or _NEVER)
        self._cache: dict[bytes, tuple[bytes | None, int]] = {}
        self._dirty: dict[bytes, int] = {}  # key -> write time (ms)
        self.clock_ms = 0
        """The wall clock as the app's loop last read it (one clock read per batch, not
        per record); 0: read the clock at each call."""
        with self._env.begin(db=self._meta) as txn:
            raw = txn.get(_CHECKPOINT)
        self.checkpoint: int | None = None if raw is None else _U64.unpack(raw)[0]
        """The next changelog offset to restore from; None: nothing restored or written yet."""

    # -- reads and writes ------------------------------------------------------------------

    def get(self, key: bytes, now_ms: int | None = None) -> bytes | None:
        entry = self._cache.get(key)
        if entry is None:
            entry = self._load(key)
            self._cache[key] = entry
        value, deadline = entry
        if deadline and value is not None and deadline <= (now_ms or self.clock_ms or _now_ms()):
            return None
        return value

    def _load(self, key: bytes) -> tuple[bytes | None, int]:
        with self._env.begin() as txn:
            value = txn.get(key, db=self._data)
            if value is None or not self.ttl_ms:
                return value, _NEVER
            raw = txn.get(key, db=self._expires)
        return value, (_U64.unpack(raw)[0] if raw else _NEVER)

    def put(self, key: bytes, value: bytes, now_ms: int | None = None) -> None:
        now = now_ms or self.clock_ms or _now_ms()
        self._cache[key] = (value, now + self.ttl_ms if self.ttl_ms else _NEVER)
        self._dirty[key] = now

    def delete(self, key: bytes, now_ms: int | None = None) -> None:
        self._cache[key] = (None, _NEVER)
        self._dirty[key] = now_ms or self.clock_ms or _now_ms()

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every live key and value (disk merged with uncommitted writes), in key order on
        disk then the new keys; used to rebuild in-memory indexes after a restore."""
        seen: set[bytes] = set()
        with self._env.begin(db=self._data) as txn:
            for key, value in txn.cursor():
                seen.add(key)
                live = self._cache.get(key, (value, _NEVER))[0] if key in self._dirty else value
                if live is not None:
                    yield key, live
        for key in self._dirty:
            pending = self._cache[key][0]
            if key not in seen and pending is not None:
                yield key, pending

    def sweep(self, now_ms: int) -> int:
        """Delete the keys whose TTL has run out (tombstones follow at the next commit)."""
        if not self.ttl_ms:
            return 0
        gone = [
            key
            for key, (value, dl) in self._cache.items()
            if dl and dl <= now_ms and value is not None
        ]
        with self._env.begin(db=self._by_deadline) as txn:
            for entry, _ in txn.cursor():
                deadline = _U64.unpack_from(entry)[0]
                if deadline > now_ms:
                    break
                key = entry[_U64.size :]
                cached = self._cache.get(key)
                if cached is None or (cached[1] and cached[1] <= now_ms):
                    gone.append(key)
        for key in set(gone):
            self.delete(key, now_ms)
        return len(gone)

    # -- commits ---------------------------------------------------------------------------

    def dirty(self) -> list[tuple[bytes, bytes | None, int]]:
        """(key, value or None for a tombstone, write time ms) of every key written since the
        last `flush`: what the changelog gets at this commit."""
        return [(key, self._cache[key][0], ts) for key, ts in self._dirty.items()]

    def flush(self, next_offset: int | None) -> None:
        """After the commit: write the dirty keys and the new checkpoint in one LMDB txn."""
        entries = self.dirty()
        self._write(entries, next_offset)
        self._dirty.clear()
        if len(self._cache) > CACHE_ENTRIES_MAX:
            self._cache.clear()

    def discard(self) -> None:
        """Forget uncommitted writes (the transaction that carried them was aborted)."""
        self._dirty.clear()
        self._cache.clear()

    def restore(self, entries: list[tuple[bytes, bytes | None, int]], next_offset: int) -> None:
        """Apply changelog records (key, value or None, timestamp ms) read from the changelog
        up to `next_offset` (exclusive)."""
        self._write(entries, next_offset)
        for key, _, _ in entries:
            self._cache.pop(key, None)

    def _write(
        self, entries: list[tuple[bytes, bytes | None, int]], next_offset: int | None
    ) -> None:
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    if self.ttl_ms:
                        for key, value, ts in entries:
                            self._apply(txn, key, value, ts)
                    else:
                        self._apply_many(txn, entries)
                    if next_offset is not None:
                        txn.put(_CHECKPOINT, _U64.pack(next_offset), db=self._meta)
                break
            except lmdb.MapFullError:
                size = self._env.info()["map_size"] * 2
                log.info(
                    "state store %s[%d]: growing its map to %d bytes",
                    self.name,
                    self.partition,
                    size,
                )
                self._env.set_mapsize(size)
        if next_offset is not None:
            self.checkpoint = next_offset

    def _apply_many(self, txn: Any, entries: list[tuple[bytes, bytes | None, int]]) -> None:
        """Without TTL: the last value of each key, the puts in one C call (restores and big
        commits write many keys; per-key Python calls were most of a restore's time)."""
        latest = {key: value for key, value, _ in entries}
        puts = [(key, value) for key, value in latest.items() if value is not None]
        if puts:
            txn.cursor(db=self._data).putmulti(puts)
        for key, value in latest.items():
            if value is None:
                txn.delete(key, db=self._data)

    def _apply(self, txn: Any, key: bytes, value: bytes | None, ts: int) -> None:
        if self.ttl_ms:
            old = txn.get(key, db=self._expires)
            if old is not None:
                txn.delete(old + key, db=self._by_deadline)
                txn.delete(key, db=self._expires)
        if value is None:
            txn.delete(key, db=self._data)
            return
        txn.put(key, value, db=self._data)
        if self.ttl_ms:
            deadline = _U64.pack(ts + self.ttl_ms)
            txn.put(key, deadline, db=self._expires)
            txn.put(deadline + key, b"", db=self._by_deadline)

    def wipe(self) -> None:
        """Drop every key and the checkpoint (the changelog no longer matches this file)."""
        with self._env.begin(write=True) as txn:
            for db in (self._data, self._meta, self._expires, self._by_deadline):
                txn.drop(db, delete=False)
        self.checkpoint = None
        self.discard()

    def close(self) -> None:
        self._env.close()

    def destroy(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def __len__(self) -> int:
        with self._env.begin(db=self._data) as txn:
            return int(txn.stat(self._data)["entries"])

    def __repr__(self) -> str:
        return f"PartitionStore({self.name!r}, partition={self.partition})"


def _now_ms() -> int:
    return int(time.time() * 1000)
