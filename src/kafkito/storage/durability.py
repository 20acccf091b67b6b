"""Group commit: one fsync covers every produce request waiting on the same partition log.

With durability=always (or a topic with flush.messages=1 / flush.ms=0) a Produce with acks=1/all
is answered only after its batch is fsynced. `GroupCommitter.wait_durable(log, offset)` returns
once `log.durable_offset > offset`. If no fsync is running for that log it starts one, in a
worker thread so the event loop keeps serving; requests that append meanwhile wait for the
*next* fsync, which covers all of them: under load the number of fsyncs per second is bounded by
the disk, not by the number of requests.

    append ──► wait_durable ──► a running fsync covers it? ──yes──► await it
                                      │ no
                                      ▼
                        fewer than MAX_SYNCS_PER_LOG running? ──no──► await the newest, ask again
                                      │ yes
                                      ▼
                        start fsync(target = log end now) ──► done, and the one before it done:
                                                              durable_offset = target, readers
                                                              woken (HW moves)

Up to MAX_SYNCS_PER_LOG (2) fsyncs of one log may run at once. With one at a time, a write
that arrives while an fsync runs waits for the rest of that fsync and then a whole second one;
starting the second at once saves the first part, and the file system merges concurrent
fsyncs into shared journal commits (on this ext4: three files fsynced in parallel took 0.56 ms
at the median, one alone 0.31 ms, the three one after another 2.3 ms). The second fsync covers
every byte written before it started, but it may finish first: it marks its target durable
only once the one before it has ended too (which may hold a sealed segment or a directory
entry), so `durable_offset` only moves over offsets whose bytes are all on disk.

A failed fsync makes the log fail-stop (`PartitionLog.fail`): every waiter gets StorageError,
later writes are refused, and the fsync is never retried, because after a failed fsync the page
cache can no longer be trusted to hold the data (RELIABILITY B9; Rebello et al., ATC 2020).

Logs that do not sync on ack (durability=interval) are fsynced by the broker's housekeeping
through `flush`, every `flush_interval_ms` (or the topic's flush.ms / flush.messages), which is
why that mode can lose the last interval on power loss, and never on a process crash (the page
cache survives a crash of the process).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from kafkito.errors import StorageError
from kafkito.storage.log import PartitionLog
from kafkito.storage.segment import Segment

log = logging.getLogger(__name__)


MAX_SYNCS_PER_LOG = 2
"""fsyncs of one log that may run at once (see the module docstring)."""


@dataclass(slots=True)
class _Sync:
    """One fsync of a log: what it makes durable, and its task."""

    target: int
    task: asyncio.Future[None]


@dataclass(slots=True)
class _LogSync:
    running: list[_Sync] = field(default_factory=list)
    """Oldest first; each marks its target durable only after the ones before it ended."""


class GroupCommitter:
    """Batches fsyncs per partition log."""

    def __init__(self) -> None:
        self._state: dict[int, _LogSync] = {}

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
        """Wait for an fsync of everything appended to `plog` so far (a running one that
        covers it, or a new one). Raises StorageError if the log failed."""
        await self._covering(plog, plog.log_end_offset - 1)
        if plog.failed is not None:
            raise StorageError(f"{plog.topic}-{plog.partition} failed: {plog.failed}")

    async def _covering(self, plog: PartitionLog, offset: int) -> None:
        """Wait for one fsync that covers `offset`: a running one whose target is past it,
        else a new one if fewer than MAX_SYNCS_PER_LOG run, else the newest running one
        (the caller then asks again)."""
        state = self._state.setdefault(id(plog), _LogSync())
        running = state.running
        sync = next((s for s in running if s.target > offset), None)
        if sync is None and len(running) < MAX_SYNCS_PER_LOG:
            target, segments, dir_unsynced = plog.begin_sync()
            before = running[-1].task if running else None
            task = asyncio.ensure_future(
                self._sync(plog, state, target, segments, dir_unsynced, before)
            )
            sync = _Sync(target, task)
            running.append(sync)
        elif sync is None:
            sync = running[-1]
        # shield: a cancelled waiter (a closed connection) must not cancel the shared fsync.
        with contextlib.suppress(StorageError):  # the caller looks at plog.failed
            await asyncio.shield(sync.task)

    async def _sync(
        self,
        plog: PartitionLog,
        state: _LogSync,
        target: int,
        segments: list[Segment],
        dir_unsynced: bool,
        before: asyncio.Future[None] | None,
    ) -> None:
        try:
            try:
                if plog.failed is None:
                    await asyncio.to_thread(plog.sync_files, segments, dir_unsynced)
            except OSError as exc:
                plog.fail(exc)
                raise StorageError(f"fsync of {plog.topic}-{plog.partition} failed: {exc}") from exc
            finally:
                plog.end_sync(segments)
            if before is not None:
                # The fsync before this one may hold a sealed segment or the directory entry
                # of this one's segment: offsets count as durable only once it has ended too.
                with contextlib.suppress(StorageError):
                    await asyncio.shield(before)
            if plog.failed is not None:
                raise StorageError(f"{plog.topic}-{plog.partition} failed: {plog.failed}")
            plog.mark_durable(target)
        finally:
            state.running = [s for s in state.running if s.task is not asyncio.current_task()]

    def forget(self, plog: PartitionLog) -> None:
        self._state.pop(id(plog), None)
