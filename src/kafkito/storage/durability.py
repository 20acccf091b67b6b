"""Group commit: one fsync covers every produce request waiting on the same partition log.

With durability=always (or a topic with flush.messages=1 / flush.ms=0) a Produce with acks=1/all
is answered only after its batch is fsynced. `GroupCommitter.wait_durable(log, offset)` returns
once `log.durable_offset > offset`. If no fsync is running for that log it starts one, in a
worker thread so the event loop keeps serving; requests that append meanwhile wait for the
*next* fsync, which covers all of them: under load the number of fsyncs per second is bounded by
the disk, not by the number of requests.

    append ──► wait_durable ──► fsync running? ──no──► start fsync(target = log end now)
                                      │ yes                   │ done: durable_offset = target,
                                      ▼                       ▼ readers woken (HW moves)
                               await it, then check again ◄───┘

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
import logging
from dataclasses import dataclass

from kafkito.errors import StorageError
from kafkito.storage.log import PartitionLog

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _LogSync:
    running: asyncio.Future[None] | None = None


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
            await self.flush(plog)

    async def flush(self, plog: PartitionLog) -> None:
        """Wait for an fsync of `plog`: the one running, or a new one if none is."""
        state = self._state.setdefault(id(plog), _LogSync())
        if state.running is None:
            state.running = asyncio.ensure_future(self._sync(plog, state))
        # shield: a cancelled waiter (a closed connection) must not cancel the shared fsync.
        await asyncio.shield(state.running)

    async def _sync(self, plog: PartitionLog, state: _LogSync) -> None:
        target, segments, dir_unsynced = plog.begin_sync()
        try:
            if plog.failed is None:
                await asyncio.to_thread(plog.sync_files, segments, dir_unsynced)
        except OSError as exc:
            plog.fail(exc)
            raise StorageError(f"fsync of {plog.topic}-{plog.partition} failed: {exc}") from exc
        finally:
            plog.end_sync(segments)
            state.running = None
        if plog.failed is not None:
            raise StorageError(f"{plog.topic}-{plog.partition} failed: {plog.failed}")
        plog.mark_durable(target)

    def forget(self, plog: PartitionLog) -> None:
        self._state.pop(id(plog), None)
