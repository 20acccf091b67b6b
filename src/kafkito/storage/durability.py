"""Group commit: one round of fsyncs covers every produce request waiting on any partition log.

With durability=always (or a topic with flush.messages=1 / flush.ms=0) a Produce with acks=1/all
is answered only after its batch is fsynced. `GroupCommitter.wait_durable(log, offset)` returns
once `log.durable_offset > offset`. Logs that need an fsync join the *next round*; a round takes
every log that joined it, fsyncs them all in worker threads (the event loop keeps serving) and
hands the outcome back to the loop once, for all of them: under load the number of fsync rounds
per second is bounded by the disk, not by the number of requests or of partitions.

    append ──► wait_durable ──► a running round covers it? ──yes──► await it
                                      │ no
                                      ▼
                      join the next round (started once the loop has run what was ready, if
                      fewer than MAX_ROUNDS run; else when one ends) ──► every log of the
                      round fsynced (in parallel), the round before it ended too:
                      durable_offset = target for each, readers woken (HW moves)

Why rounds across partitions rather than fsyncs per partition: each fsync that runs in a
thread costs the loop a hand-off (an executor job, a future chained back, a self-pipe wake-up,
a task step) and a GIL hand-over from the worker. At 2,000 msgs/s over 3 partitions that was
three hand-offs where one does. Inside a round the logs are still fsynced *in parallel* (one per
thread of a small pool), because the file system merges concurrent fsyncs into shared journal
commits (on this ext4: three files fsynced in parallel took 0.56-0.63 ms at the median, one
alone 0.31 ms, the three one after another 0.9-2.3 ms); that fan-out costs thread hand-offs,
but not the loop's.

Where a round's fsyncs run. Handing a round to a worker thread and back costs the loop two
thread hand-offs, each waiting for the GIL while the loop runs Python (at 2,000 msgs/s over 3
partitions: to the thread p50 0.5 ms, back 0.3 ms, and the fan-out threads wait too: fsync of
the round p50 1.5 ms where the disk takes 0.3). So a small, plain round (at most
INLINE_MAX_LOGS logs and INLINE_MAX_BYTES written, each log only its active segment: no
sealed segment, no directory entry) is fsynced *on the loop's thread*, which releases the GIL
inside fsync: the loop stops for the fsync's duration (p50 0.6 ms there), requests that
arrive meanwhile wait in the socket buffers and make the next round larger. When no round
runs before it, such a round happens whole in the callback that starts it (no task). The
e2e latency of that workload went from p50 10 / p99 21 ms to p50 4.7 / p99 9.7 ms and the
broker's CPU per record down by a fifth (docs/benchmarks.md).

When a round starts. A request's bytes are read in one loop pass, its handler appends in a
later one (the connection's read loop and the handler are tasks, each step a pass), so a round
started at the end of the pass in which its first write joined missed the writes of requests
already read: each of those then waited for that round and a whole next one, and with the
round inline the loop stood still for both. A round's start is therefore put off, one pass at
a time, while asyncio's ready queue holds other callbacks (at most GATHER_PASSES passes and
GATHER_S): at 2,000 msgs/s over 3 partitions a quarter fewer rounds, and the e2e latency's
median halved (docs/benchmarks.md). The ready queue is asyncio's `loop._ready`; a loop without
one (uvloop) starts rounds at once.

A disk that turns slow must not stall every connection (RELIABILITY B10): an inline round
whose fsyncs took more than INLINE_LIMIT_S sends the rounds of the next THREAD_AFTER_SLOW_S to
the worker thread (twice as long after each slow inline round in a row), and while rounds in
the thread take more than SLOW_DISK_S none comes back inline. A disk that stays slow thus
stops the loop once, for one fsync; one that hiccups now and then stops it for each hiccup
that meets an inline round. The broker setting `fsync_on_loop=False`, or
`KAFKITO_FSYNC_INLINE=0`, keeps every round in the thread.

Up to MAX_ROUNDS (2) rounds may run at once. With one at a time, a write that arrives while a
round runs waits for the rest of it and then a whole second round; starting the second at once
saves the first part. The second covers every byte written before it started, but it may
finish first: it marks its targets durable only once the round before it has ended too (which
may hold a sealed segment or a directory entry of the same log), so `durable_offset` only moves
over offsets whose bytes are all on disk.

A failed fsync makes the log fail-stop (`PartitionLog.fail`): every waiter gets StorageError,
later writes are refused, and the fsync is never retried, because after a failed fsync the page
cache can no longer be trusted to hold the data (RELIABILITY B9; Rebello et al., ATC 2020). The
other logs of the round are not affected.

Logs that do not sync on ack (durability=interval) are fsynced by the broker's housekeeping
through `flush`, every `flush_interval_ms` (or the topic's flush.ms / flush.messages), which is
why that mode can lose the last interval on power loss, and never on a process crash (the page
cache survives a crash of the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

from kafkito.errors import StorageError
from kafkito.storage.fs import parallel_map
from kafkito.storage.log import PartitionLog
from kafkito.storage.segment import Segment

log = logging.getLogger(__name__)


MAX_ROUNDS = 2
"""Rounds of fsyncs that may run at once (see the module docstring)."""

GATHER_PASSES = 16
GATHER_S = 0.001
"""A round's start waits at most this many loop passes, and this long, for requests already
read to append and join it (`GroupCommitter._gather_more`)."""

INLINE_MAX_LOGS = 4
"""A round of more logs than this runs in a worker thread (the housekeeping flush of many
partitions under durability=interval, say), never on the loop."""

INLINE_MAX_BYTES = 64 * 1024
"""A round that writes more than this runs in a worker thread: a large fsync would stop the
loop longer, and under a high produce rate the loop appends the next requests meanwhile
(inline, 100-byte produce throughput fell by a fifth)."""

INLINE_LIMIT_S = 0.010
"""An inline round whose fsyncs took longer than this sends the next rounds to the thread.
Inline rounds took p50 0.6 ms, p99 1.2 ms, max 7 ms at 2,000 msgs/s here; a limit of 2 ms
sent two thirds of the rounds to the thread (8 rounds over it in 10 s, a second each)."""

THREAD_AFTER_SLOW_S = 1.0
"""How long rounds run in the worker thread after a slow inline one, before inline is tried
again; doubled after each slow inline round in a row, up to MAX_THREAD_AFTER_SLOW_S."""

MAX_THREAD_AFTER_SLOW_S = 64.0

SLOW_DISK_S = 0.050
"""A round in the worker thread that took longer than this (a slow disk) keeps rounds there.
Far above INLINE_LIMIT_S: in the thread the time also counts the waits for the GIL (up to
27-55 ms at 2,000 msgs/s on two busy cores, where the disk took under 2 ms)."""

_clock = time.monotonic
"""The clock of the windows after a slow round (a test steps its own)."""

INLINE_ENV = "KAFKITO_FSYNC_INLINE"
"""Set to 0 to fsync every round in a worker thread."""

FSYNC_THREADS = 8
"""Threads that fsync the logs of one round in parallel (beside the round's own thread)."""

_Job = tuple["_Entry", int, "queue.SimpleQueue[tuple[int, BaseException | None]]"]
_jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
"""The fan-out threads' inbox: (log, its place in the round, the round's reply queue)."""
_fan_out: list[threading.Thread] = []
_fan_out_lock = threading.Lock()


def _fan_out_worker() -> None:
    while True:
        entry, index, reply = _jobs.get()
        try:
            outcome: BaseException | None = _sync_entry(entry)
        except BaseException as exc:  # a bug, not a disk error: the caller raises it
            outcome = exc
        reply.put((index, outcome))


def _start_fan_out() -> None:
    """Start the fan-out threads on first use. Bare threads on C queues rather than a
    ThreadPoolExecutor: its submit and Future cost the loop's thread 8% of its samples when
    inline rounds handed their other logs over (a round's fsync, the caller blocked in a
    queue's get, lets them take the GIL at once)."""
    with _fan_out_lock:
        while len(_fan_out) < FSYNC_THREADS:
            thread = threading.Thread(
                target=_fan_out_worker, name=f"kafkito-fsync-{len(_fan_out)}", daemon=True
            )
            thread.start()
            _fan_out.append(thread)


def _forget_fan_out() -> None:
    """In a forked child: the parent's threads are not there; start afresh when needed."""
    global _jobs, _fan_out_lock
    _jobs = queue.SimpleQueue()
    _fan_out_lock = threading.Lock()
    _fan_out.clear()


os.register_at_fork(after_in_child=_forget_fan_out)


def flush_logs(logs: list[PartitionLog]) -> list[tuple[PartitionLog, OSError]]:
    """`flush_all` every log, several at a time, for a clean stop (blocking: off the loop);
    the logs whose fsync failed, with the error."""

    def flush(plog: PartitionLog) -> OSError | None:
        try:
            plog.flush_all()
        except OSError as exc:
            return exc
        return None

    outcomes = parallel_map(flush, logs)
    return [(plog, exc) for plog, exc in zip(logs, outcomes, strict=True) if exc is not None]


@dataclass(slots=True)
class _Entry:
    """One log's part of a round: what it makes durable, and which files."""

    plog: PartitionLog
    target: int
    segments: list[Segment]
    dir_unsynced: bool
    unsynced_bytes: int


def _sync_entry(entry: _Entry) -> OSError | None:
    """fsync one log's files (in a worker thread); the error instead of raising it."""
    try:
        entry.plog.sync_files(entry.segments, entry.dir_unsynced)
    except OSError as exc:
        return exc
    return None


def _sync_round(entries: list[_Entry]) -> list[OSError | None]:
    """fsync every log of a round, in parallel when there are several (on the loop's thread or
    a worker's)."""
    if len(entries) == 1:
        return [_sync_entry(entries[0])]
    if not _fan_out:
        _start_fan_out()
    reply: queue.SimpleQueue[tuple[int, BaseException | None]] = queue.SimpleQueue()
    for index, entry in enumerate(entries[1:], 1):
        _jobs.put((entry, index, reply))
    outcomes: list[OSError | None] = [None] * len(entries)
    unexpected: BaseException | None = None
    try:
        outcomes[0] = _sync_entry(entries[0])  # this thread takes one itself
    finally:
        for _ in range(len(entries) - 1):  # every answer, whatever happened here
            index, outcome = reply.get()
            if isinstance(outcome, OSError) or outcome is None:
                outcomes[index] = outcome
            else:
                unexpected = outcome
    if unexpected is not None:
        raise unexpected
    return outcomes


def _timed_round(entries: list[_Entry]) -> tuple[list[OSError | None], float]:
    """_sync_round in a worker thread, with the seconds its fsyncs took."""
    started = time.perf_counter()
    outcomes = _sync_round(entries)
    return outcomes, time.perf_counter() - started


@dataclass(slots=True)
class _Round:
    """The logs of one round (keyed by id), the waiters to wake when it ends."""

    logs: dict[int, PartitionLog] = field(default_factory=dict)
    targets: dict[int, int] = field(default_factory=dict)
    """Set when the round starts: log id -> offset durable once it ends."""
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    ended: asyncio.Future[None] | None = None
    """Resolved when the round has ended (the next round waits for it before marking)."""


class GroupCommitter:
    """Batches fsyncs across partition logs into rounds (see the module docstring)."""

    def __init__(self, *, inline: bool | None = None) -> None:
        self.inline = os.environ.get(INLINE_ENV, "1") != "0" if inline is None else inline
        """Whether small plain rounds may be fsynced on the loop's thread (module docstring)."""
        self._thread_until = 0.0
        """Monotonic time until which every round runs in the worker thread (after a slow one)."""
        self._backoff_s = THREAD_AFTER_SLOW_S
        self.inline_rounds = 0
        self.slow_inline_rounds = 0
        self.thread_rounds = 0
        """Rounds run on the loop's thread (of them, slower than INLINE_LIMIT_S), in a worker."""
        self._next: _Round | None = None
        """The round logs are joining; starts when fewer than MAX_ROUNDS run."""
        self._running: list[_Round] = []
        """Oldest first; each marks its targets durable only after the ones before it ended."""
        self._start_scheduled = False
        self._gathered = 0
        """Loop passes the next round's start has been put off (`_gather_more`)."""
        self._gather_since = 0.0

    def failure(self, plog: PartitionLog) -> BaseException | None:
        """The storage failure that made `plog` read-only, or None."""
        return plog.failed

    async def wait_durable(self, plog: PartitionLog, offset: int) -> None:
        """Return once every offset up to and including `offset` is fsynced.

        Returns at once for a log that does not sync on ack. Raises StorageError if the log
        failed (now or earlier).
        """
        if not plog.sync_on_ack:
            return
        while plog.durable_offset <= offset:
            if plog.failed is not None:
                raise StorageError(
                    f"{plog.topic}-{plog.partition}: the write is not durable: {plog.failed}"
                )
            await self._covering(plog, offset)

    async def flush(self, plog: PartitionLog) -> None:
        """Wait for an fsync of everything appended to `plog` so far (a running round that
        covers it, or the next). Raises StorageError if the log failed."""
        await self._covering(plog, plog.log_end_offset - 1)
        if plog.failed is not None:
            raise StorageError(f"{plog.topic}-{plog.partition} failed: {plog.failed}")

    async def _covering(self, plog: PartitionLog, offset: int) -> None:
        """Wait for one round that covers `offset`: a running one whose target for `plog` is
        past it, else the next round (which `plog` joins)."""
        key = id(plog)
        chosen = next((r for r in self._running if r.targets.get(key, -1) > offset), None)
        if chosen is None:
            chosen = self._next
            if chosen is None:
                chosen = self._next = _Round()
            chosen.logs[key] = plog
            if not self._start_scheduled and len(self._running) < MAX_ROUNDS:
                # at the end of this loop pass, so the requests read in the same pass join
                self._start_scheduled = True
                asyncio.get_running_loop().call_soon(self._start_next)
        # Our own future per waiter: a cancelled waiter (a closed connection) cancels only it.
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        chosen.waiters.append(waiter)
        await waiter

    def _start_next(self) -> None:
        """Start the next round if it has logs and fewer than MAX_ROUNDS run (on the loop)."""
        self._start_scheduled = False
        batch = self._next
        if batch is None or len(self._running) >= MAX_ROUNDS:
            return
        loop = asyncio.get_running_loop()
        if self._gather_more(loop):
            self._start_scheduled = True
            loop.call_soon(self._start_next)
            return
        self._next = None
        entries: list[_Entry] = []
        for key, plog in batch.logs.items():
            if plog.closed and plog.failed is None:  # deleted meanwhile: nothing to make durable
                plog.fail(StorageError(f"{plog.topic}-{plog.partition} was closed"))
            if plog.failed is not None:
                continue  # its waiters see `failed` when woken
            unsynced = plog.unsynced_bytes()
            target, segments, dir_unsynced = plog.begin_sync()
            batch.targets[key] = target
            entries.append(_Entry(plog, target, segments, dir_unsynced, unsynced))
        before = self._running[-1] if self._running else None
        batch.ended = loop.create_future()
        self._running.append(batch)
        if before is None and entries and self._inline_allowed(entries):
            # nothing to wait for: the whole round, fsync included, happens in this callback
            # (no task, no further loop pass before the waiters wake)
            outcomes: list[OSError | None] = []
            try:
                outcomes = self._sync_inline(entries)
                self._settle(entries, outcomes)
                self._mark(entries, outcomes)
            finally:
                self._end(batch, entries, outcomes)
            return
        task = asyncio.ensure_future(self._run(batch, entries, before))
        task.add_done_callback(_log_unexpected)

    async def _run(self, batch: _Round, entries: list[_Entry], before: _Round | None) -> None:
        outcomes: list[OSError | None] = []
        try:
            if entries:
                outcomes = await self._sync(entries)
            self._settle(entries, outcomes)
            if before is not None and before.ended is not None:
                # The round before this one may hold a sealed segment or the directory entry
                # of one of these logs: offsets count as durable only once it has ended too.
                await asyncio.shield(before.ended)
            self._mark(entries, outcomes)
        finally:
            self._end(batch, entries, outcomes)

    @staticmethod
    def _settle(entries: list[_Entry], outcomes: list[OSError | None]) -> None:
        """Give the round's files back to their logs; fail-stop the logs whose fsync failed."""
        for entry, failed in zip(entries, outcomes, strict=True):
            entry.plog.end_sync(entry.segments)
            if failed is not None:
                entry.plog.fail(failed)

    @staticmethod
    def _mark(entries: list[_Entry], outcomes: list[OSError | None]) -> None:
        for entry, failed in zip(entries, outcomes, strict=True):
            if failed is None and entry.plog.failed is None:
                entry.plog.mark_durable(entry.target)

    def _end(self, batch: _Round, entries: list[_Entry], outcomes: list[OSError | None]) -> None:
        """The round is over (done, failed or cancelled): wake its waiters, start the next."""
        if len(outcomes) != len(entries):  # cancelled (shutdown) or failed: release files
            for entry in entries:
                with contextlib.suppress(ValueError):
                    entry.plog.end_sync(entry.segments)
        self._running.remove(batch)
        assert batch.ended is not None
        if not batch.ended.done():
            batch.ended.set_result(None)
        for waiter in batch.waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self._next is not None and not self._start_scheduled:
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_next)

    def _gather_more(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether to put the round's start off by one more loop pass: while other callbacks
        are ready (requests read and not yet appended, whose writes the round would otherwise
        miss, each then waiting a whole round more), at most GATHER_PASSES passes and
        GATHER_S seconds. Reads asyncio's ready queue (`loop._ready`); on a loop without it
        (uvloop) a round starts at once, as before."""
        ready = getattr(loop, "_ready", None)
        if not ready or self._gathered >= GATHER_PASSES:
            self._gathered = 0
            return False
        now = loop.time()
        if self._gathered == 0:
            self._gather_since = now
        elif now - self._gather_since >= GATHER_S:
            self._gathered = 0
            return False
        self._gathered += 1
        return True

    def _inline_allowed(self, entries: list[_Entry]) -> bool:
        """Whether this round may fsync on the loop's thread (see the module docstring)."""
        return (
            self.inline
            and _clock() >= self._thread_until
            and len(entries) <= INLINE_MAX_LOGS
            and all(len(e.segments) == 1 and not e.dir_unsynced for e in entries)
            and sum(e.unsynced_bytes for e in entries) <= INLINE_MAX_BYTES
        )

    def _sync_inline(self, entries: list[_Entry]) -> list[OSError | None]:
        """fsync the round on this thread, and note a slow one (it stood the loop still)."""
        self.inline_rounds += 1
        started = time.perf_counter()
        outcomes = _sync_round(entries)
        if time.perf_counter() - started > INLINE_LIMIT_S:
            # Rounds go to the thread for a while, longer each time in a row, so that a disk
            # that stays slow blocks the loop only ever more rarely (RELIABILITY B10).
            self.slow_inline_rounds += 1
            self._thread_until = _clock() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, MAX_THREAD_AFTER_SLOW_S)
        else:
            self._backoff_s = THREAD_AFTER_SLOW_S
        return outcomes

    async def _sync(self, entries: list[_Entry]) -> list[OSError | None]:
        """fsync a round's logs: on this thread when it is small and plain and the disk has
        been fast (see the module docstring), else in a worker thread."""
        if self._inline_allowed(entries):
            return self._sync_inline(entries)
        self.thread_rounds += 1
        loop = asyncio.get_running_loop()
        outcomes, took = await loop.run_in_executor(None, _timed_round, entries)
        if took > SLOW_DISK_S:  # still slow: no inline round until it has been fast a while
            self._thread_until = max(self._thread_until, _clock() + self._backoff_s)
        return outcomes

    def forget(self, plog: PartitionLog) -> None:
        """Drop `plog` from the round it is waiting to join (its log is being deleted)."""
        if self._next is not None:
            self._next.logs.pop(id(plog), None)


def _log_unexpected(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("fsync round failed unexpectedly", exc_info=exc)
