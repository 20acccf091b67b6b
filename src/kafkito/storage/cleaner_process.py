"""A cleaning pass in a child process, so that the cleaner never holds the broker's GIL.

In a worker thread, the cleaner's record scanning and re-encoding is Python code that holds the
GIL; the event loop then waits for it on every request (up to the interpreter's 5 ms switch
interval), which made produce p99 1.8x worse while a pass ran (docs/benchmarks.md). Here the
whole pass (offset map, rewrite, fsyncs, the swap of files) runs in a spawned process that
shares nothing with the broker but the files; the broker's loop only waits on a future.

The child gets plain data (`_ChildJob`: segment paths, offsets and sizes, and the plan's
numbers), carries out `storage.cleaner.clean` exactly as the thread would, with the same file
order and fsyncs (so the same crash safety: recovery completes or discards a swap), and sends
back where each cleaned segment is (`_ChildResult`). The parent opens those segments from the
indexes the child wrote (`Segment.load`) and installs them on the loop, as after a thread pass.

The child dies with the broker: on Linux it asks for SIGKILL when its parent thread ends
(prctl PR_SET_PDEATHSIG), so a broker killed with -9 never leaves a child renaming files under
the next broker's recovery; elsewhere it checks its parent before each pass. A child that dies
(its pool breaks) fails the pass like an I/O error: the partition is no longer cleaned until a
restart, whose recovery completes whatever swap the child had decided.

One process per pass: passes are rare (the cleaner backs off when nothing is dirty enough) and
a spawned interpreter costs about 0.2 s, while an idle pool would cost RSS all the time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pickle
import signal
import sys
from dataclasses import dataclass, field
from functools import partial

from kafkito.errors import CorruptLog, KafkitoError
from kafkito.storage.cleaner import CleanJob, CleanPlan, CleanResult, Throttler, clean
from kafkito.storage.cleaner_child import PRIORITY_ENV
from kafkito.storage.fs import FileSystem, OsFileSystem, off_loop
from kafkito.storage.segment import Segment

__all__ = ["PRIORITY_ENV", "clean_in_process"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class _ChildJob:
    segments: list[tuple[str, int, int, int]]
    """(path, base offset, next offset, size) of each segment of the plan."""
    first_dirty: int
    end: int
    now_ms: int
    delete_retention_ms: int
    segment_bytes: int
    aborted: dict[int, list[tuple[int, int]]]
    bytes_per_second: float
    dedupe_buffer_bytes: int
    parent_pid: int


@dataclass(slots=True)
class _ChildResult:
    replacements: list[tuple[list[int], str]] = field(default_factory=list)
    """(base offsets of the old segments, path of the cleaned one), in swap order."""
    first_dirty: int = 0
    latest_horizon: int = -1
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_removed: int = 0
    error: tuple[str, int, str] | None = None
    """(kind "os" | "corrupt", errno, message): exceptions cross the pipe as plain data."""


def _die_with_parent(parent_pid: int) -> None:
    """In the child: be killed when the broker goes (see the module docstring)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _clean_in_child(job: _ChildJob) -> _ChildResult:
    """The child's side: rebuild the job around descriptor-less segments, clean, report."""
    fs = OsFileSystem()
    # The cleaner opens descriptors of its own to read (storage.cleaner._iter_batches): these
    # Segment objects only carry where each segment is.
    segments = [
        Segment(fs, path, base, -1, job.now_ms, size=size, next_offset=next_offset)
        for path, base, next_offset, size in job.segments
    ]
    plan = CleanJob(
        segments,
        job.first_dirty,
        job.end,
        job.now_ms,
        job.delete_retention_ms,
        job.segment_bytes,
        job.aborted,
    )
    result = clean(
        fs, plan, Throttler(job.bytes_per_second), dedupe_buffer_bytes=job.dedupe_buffer_bytes
    )
    out = _ChildResult(
        first_dirty=result.first_dirty,
        latest_horizon=result.latest_horizon,
        bytes_read=result.bytes_read,
        bytes_written=result.bytes_written,
        records_read=result.records_read,
        records_removed=result.records_removed,
    )
    for old, new in result.replacements:
        out.replacements.append(([s.base_offset for s in old], new.path))
        new.close()
    if isinstance(result.error, OSError):
        out.error = ("os", result.error.errno or 0, str(result.error))
    elif result.error is not None:
        out.error = ("corrupt", 0, str(result.error))
    return out


def _error_of(kind: str, number: int, message: str) -> BaseException:
    if kind == "os":
        return OSError(number or errno.EIO, message)
    return CorruptLog(message)


async def clean_in_process(
    fs: FileSystem, plan: CleanPlan, bytes_per_second: float, dedupe_buffer_bytes: int
) -> CleanResult:
    """Carry out `plan` in a spawned child; the CleanResult a thread pass would give.

    Never raises for the child's failures (they are in `result.error`). `run_pass` shields
    it: once started it runs to the end, since the child may be renaming files.
    """
    job = _ChildJob(
        [(s.path, s.base_offset, s.next_offset, s.size) for s in plan.segments],
        plan.first_dirty,
        plan.end,
        plan.now_ms,
        plan.delete_retention_ms,
        plan.segment_bytes,
        plan.aborted,
        bytes_per_second,
        dedupe_buffer_bytes,
        os.getpid(),
    )
    try:
        child = await _run_child(job)
    except _CannotStart as exc:
        # Nothing was touched yet: clean in a worker thread instead (slower produce latency
        # while it runs, but compaction goes on), and say why once per pass.
        log.warning("cannot start the cleaner's child process (%s); cleaning in a thread", exc)
        throttler = Throttler(bytes_per_second)
        return await off_loop(
            partial(clean, fs, plan, throttler, dedupe_buffer_bytes=dedupe_buffer_bytes)
        )
    except OSError as exc:  # the child failed or died part-way: fail the pass
        result = CleanResult(first_dirty=plan.first_dirty)
        result.error = exc
        return result
    return await _adopt(fs, plan, child)


class _CannotStart(KafkitoError, OSError):
    """The child process could not be started (no interpreter, no processes allowed)."""


async def _run_child(job: _ChildJob) -> _ChildResult:
    """`python -m kafkito.storage.cleaner_child` (which lowers its priority first, then runs
    `_main`): the job in on stdin, the result out on
    stdout (pickles between two copies of our own code). A plain child process rather than
    multiprocessing: spawn would import the embedding program's main module again (programs
    without a __main__ guard would start a second broker) and fork is unsafe with threads."""
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable or "python3",
            "-m",
            "kafkito.storage.cleaner_child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except (OSError, RuntimeError, NotImplementedError) as exc:
        raise _CannotStart(errno.EAGAIN, str(exc)) from exc
    out, err = await process.communicate(pickle.dumps(job))
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise OSError(
            errno.EIO,
            f"the cleaner's child process exited with {process.returncode}: {' | '.join(tail)}",
        )
    try:
        result = pickle.loads(out)
    except Exception as exc:  # any unreadable answer fails the pass alike
        raise OSError(errno.EIO, f"the cleaner's child process answered garbage: {exc}") from exc
    if not isinstance(result, _ChildResult):
        raise OSError(errno.EIO, "the cleaner's child process answered something else")
    return result


async def _adopt(fs: FileSystem, plan: CleanPlan, child: _ChildResult) -> CleanResult:
    """The parent's CleanResult: the child's numbers, and its cleaned segments opened here."""
    result = CleanResult(
        first_dirty=child.first_dirty,
        latest_horizon=child.latest_horizon,
        bytes_read=child.bytes_read,
        bytes_written=child.bytes_written,
        records_read=child.records_read,
        records_removed=child.records_removed,
    )
    by_base = {s.base_offset: s for s in plan.segments}
    for bases, path in child.replacements:
        try:
            new = await off_loop(Segment.load, fs, path, bases[0], plan.now_ms)
        except (OSError, CorruptLog) as exc:
            # Swapped on disk but not openable here: the old descriptors still read the same
            # records (unlinked files stay readable); a restart's recovery sees the new files.
            result.error = exc
            return result
        result.replacements.append(([by_base[b] for b in bases], new))
    if child.error is not None:
        result.error = _error_of(*child.error)
    return result


def _main() -> None:
    """The child, at its lowered priority (storage.cleaner_child): read a job from stdin,
    clean, write the result to stdout."""
    job = pickle.loads(sys.stdin.buffer.read())
    if not isinstance(job, _ChildJob):
        raise SystemExit("kafkito.storage.cleaner_process: expected a cleaning job on stdin")
    _die_with_parent(job.parent_pid)
    sys.stdout.buffer.write(pickle.dumps(_clean_in_child(job)))
    sys.stdout.buffer.flush()
