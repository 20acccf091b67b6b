"""`FaultyFileSystem`: an in-memory disk that forgets what was never fsynced.

It implements the storage layer's `FileSystem` seam (kafkito.storage.fs), so a broker runs on it
unchanged: `kafkito.Broker(data_dir="/sim/data", fs=FaultyFileSystem())`. The data directory is
only a name space here; nothing touches the real disk.

The model, per file and per directory (what POSIX promises, and what SIGKILL cannot test):

* a file's bytes survive a power loss only up to its last `fsync`; what was written after may
  be lost, replaced by zeros or garbage, or partly kept (a torn write): `crash(mode=...)`;
* a directory entry (a create, rename or remove) survives only once its directory was fsynced
  (`fsync_dir`); before a directory's first fsync its entries are kept as they are (lenient,
  since a directory itself is assumed durable once made);
* faults on demand: ENOSPC once a write budget is spent (the write that crosses it is partial,
  as on a real full disk), EIO from fsync, both limited to paths a predicate picks.

`crash()` returns the disk as it is after the power comes back, as a new FaultyFileSystem, and
turns this one off: every later call on it fails with EIO, so the broker that was running on it
cannot write to the new disk. Randomness comes from a seeded `random.Random`.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["CrashMode", "FaultyFileSystem"]

CrashMode = Literal["drop", "zeros", "garbage", "partial"]
PathFilter = Callable[[str], bool]


@dataclass(eq=False, slots=True)
class _File:
    data: bytearray = field(default_factory=bytearray)
    synced: bytearray = field(default_factory=bytearray)
    """The content as of the last fsync."""
    dirty_from: int = 0
    """Lowest byte changed since the last fsync (len(data) when none)."""

    def touch(self, offset: int) -> None:
        self.dirty_from = min(self.dirty_from, offset)

    def sync(self) -> None:
        del self.synced[self.dirty_from :]
        self.synced += self.data[self.dirty_from :]
        self.dirty_from = len(self.data)


def _norm(path: str) -> str:
    return os.path.normpath(path)


class FaultyFileSystem:
    """An in-memory FileSystem with power-loss simulation and injected disk errors."""

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self._files: dict[str, _File] = {}
        self._dirs: set[str] = {"/"}
        self._durable_entries: dict[str, dict[str, _File]] = {}
        self._fds: dict[int, tuple[_File, str]] = {}
        self._fd_numbers = itertools.count(3)  # next() is atomic: threads open files too
        self._off = False
        self._write_budget: int | None = None
        self._write_filter: PathFilter | None = None
        self._fsync_filter: PathFilter | None = None
        self.fsyncs = 0
        self.bytes_written = 0

    # -- faults ------------------------------------------------------------------------------

    def fail_writes_after(self, budget_bytes: int, paths: PathFilter | None = None) -> None:
        """Disk full: writes to matching paths fail with ENOSPC after `budget_bytes` more."""
        self._write_budget = budget_bytes
        self._write_filter = paths

    def fail_fsyncs(self, paths: PathFilter | None = None) -> None:
        """fsync of matching files (all if None) fails with EIO from now on."""
        self._fsync_filter = paths or (lambda _path: True)

    def clear_faults(self) -> None:
        self._write_budget = None
        self._write_filter = None
        self._fsync_filter = None

    def unsynced_bytes(self, path: str) -> int:
        """Bytes of `path` that a power loss would take away now."""
        f = self._files[_norm(path)]
        return max(len(f.data) - f.dirty_from, 0)

    # -- power loss --------------------------------------------------------------------------

    def crash(self, mode: CrashMode = "drop") -> FaultyFileSystem:
        """Cut the power: return the disk as it comes back, and turn this instance off.

        mode: "drop" loses every unsynced byte; "zeros" / "garbage" replace the unsynced tail
        of each file by zeros / random bytes; "partial" keeps a random prefix of it.
        """
        self._check()
        self._off = True
        after = FaultyFileSystem(seed=self.rng.randrange(2**32))
        after._dirs = set(self._dirs)
        survivors: dict[str, _File] = {}
        for directory in self._dirs:
            entries = self._durable_entries.get(directory)
            if entries is None:
                entries = {
                    os.path.basename(p): f
                    for p, f in self._files.items()
                    if os.path.dirname(p) == directory
                }
            for name, f in entries.items():
                survivors[os.path.join(directory, name)] = f
        rebuilt: dict[int, _File] = {}
        for path, f in survivors.items():
            new = rebuilt.get(id(f))
            if new is None:
                new = rebuilt[id(f)] = self._after_power_loss(f, mode)
            after._files[path] = new
        for directory, entries in self._durable_entries.items():
            after._durable_entries[directory] = {
                name: rebuilt[id(f)] for name, f in entries.items() if id(f) in rebuilt
            }
        return after

    def _after_power_loss(self, f: _File, mode: CrashMode) -> _File:
        content = bytearray(f.synced)
        lost = len(f.data) - len(f.synced)
        if lost > 0 and f.dirty_from >= len(f.synced):  # only appended since the last fsync
            if mode == "zeros":
                content += bytes(lost)
            elif mode == "garbage":
                content += self.rng.randbytes(lost)
            elif mode == "partial":
                content += f.data[len(f.synced) : len(f.synced) + self.rng.randrange(lost + 1)]
        return _File(content, bytearray(content), len(content))

    def _check(self) -> None:
        if self._off:
            raise OSError(errno.EIO, "simulated power loss: this disk is gone")

    # -- the FileSystem protocol -----------------------------------------------------------

    def open(self, path: str, *, create: bool) -> int:
        self._check()
        path = _norm(path)
        f = self._files.get(path)
        if f is None:
            if not create:
                raise FileNotFoundError(errno.ENOENT, "no such file", path)
            if os.path.dirname(path) not in self._dirs:
                raise FileNotFoundError(errno.ENOENT, "no such directory", path)
            f = self._files[path] = _File()
        fd = next(self._fd_numbers)
        self._fds[fd] = (f, path)
        return fd

    def _fd(self, fd: int) -> tuple[_File, str]:
        self._check()
        try:
            return self._fds[fd]
        except KeyError:
            raise OSError(errno.EBADF, "bad file descriptor") from None

    def close(self, fd: int) -> None:
        if self._off:
            return  # nothing to lose by closing on a dead machine
        self._fd(fd)
        del self._fds[fd]

    def pwrite(self, fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
        f, path = self._fd(fd)
        payload = bytes(data)
        short = False
        if self._write_budget is not None and (
            self._write_filter is None or self._write_filter(path)
        ):
            if len(payload) > self._write_budget:
                payload, short = payload[: self._write_budget], True
            self._write_budget -= len(payload)
        f.touch(min(offset, len(f.data)))
        if offset > len(f.data):
            f.data.extend(bytes(offset - len(f.data)))
        f.data[offset : offset + len(payload)] = payload
        self.bytes_written += len(payload)
        if short:
            raise OSError(errno.ENOSPC, "no space left on device (injected)", path)
        return len(payload)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        f, _ = self._fd(fd)
        return bytes(f.data[offset : offset + size])

    def fsync(self, fd: int) -> None:
        f, path = self._fd(fd)
        if self._fsync_filter is not None and self._fsync_filter(path):
            raise OSError(errno.EIO, "input/output error on fsync (injected)", path)
        f.sync()
        self.fsyncs += 1

    def truncate(self, fd: int, size: int) -> None:
        f, _ = self._fd(fd)
        f.touch(min(size, len(f.data)))
        if size < len(f.data):
            del f.data[size:]
        else:
            f.data.extend(bytes(size - len(f.data)))

    def size(self, fd: int) -> int:
        f, _ = self._fd(fd)
        return len(f.data)

    def fsync_dir(self, path: str) -> None:
        self._check()
        path = _norm(path)
        if path not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        if self._fsync_filter is not None and self._fsync_filter(path):
            raise OSError(errno.EIO, "input/output error on fsync (injected)", path)
        self._durable_entries[path] = {
            os.path.basename(p): f for p, f in self._files.items() if os.path.dirname(p) == path
        }
        self.fsyncs += 1

    def remove(self, path: str) -> None:
        self._check()
        path = _norm(path)
        if self._files.pop(path, None) is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)

    def rename(self, src: str, dst: str) -> None:
        self._check()
        src, dst = _norm(src), _norm(dst)
        f = self._files.pop(src, None)
        if f is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", src)
        self._files[dst] = f

    def exists(self, path: str) -> bool:
        self._check()
        path = _norm(path)
        return path in self._files or path in self._dirs

    def makedirs(self, path: str) -> None:
        self._check()
        path = _norm(path)
        while path not in self._dirs:
            self._dirs.add(path)
            path = os.path.dirname(path)

    def listdir(self, path: str) -> list[str]:
        self._check()
        path = _norm(path)
        if path not in self._dirs:
            raise FileNotFoundError(errno.ENOENT, "no such directory", path)
        names = {os.path.basename(p) for p in self._files if os.path.dirname(p) == path}
        names |= {
            os.path.basename(d) for d in self._dirs if d != path and os.path.dirname(d) == path
        }
        return sorted(names)

    def read_file(self, path: str) -> bytes:
        self._check()
        f = self._files.get(_norm(path))
        if f is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", path)
        return bytes(f.data)

    def write_file_atomic(self, path: str, data: bytes) -> None:
        """Temporary file, fsync, rename over `path`, fsync the directory (as OsFileSystem)."""
        tmp = path + ".tmp"
        fd = self.open(tmp, create=True)
        try:
            self.truncate(fd, 0)
            self.pwrite(fd, data, 0)
            self.fsync(fd)
        finally:
            self.close(fd)
        self.rename(tmp, path)
        self.fsync_dir(os.path.dirname(_norm(path)) or "/")

    # -- test helpers ------------------------------------------------------------------------

    def files(self) -> list[str]:
        """Every file path, sorted."""
        return sorted(self._files)
