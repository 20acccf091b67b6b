"""Group commit: one fsync covers every produce request waiting on the same partition log.

With durability=always a Produce with acks=1/all is answered only after its batch is fsynced.
`GroupCommitter.wait_durable(log, offset)` returns once `log.durable_offset > offset`. If no
fsync is running for that log it starts one (in a worker thread, so the event loop keeps
serving); requests arriving meanwhile wait for the *next* fsync, which covers all of them.
A failed fsync poisons the log: its writes are refused from then on (fail-stop, never retry
an fsync and pretend the data is safe; RELIABILITY B9).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from kafkito.errors import StorageError
from kafkito.storage.log import PartitionLog

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _LogSync:
    running: asyncio.Future[None] | None = None
    pending: asyncio.Future[None] | None = None
    failed: BaseException | None = None
    waiters: int = field(default=0)


class GroupCommitter:
    """Batches fsyncs per partition log."""

    def __init__(self) -> None:
        self._state: dict[int, _LogSync] = {}

    def failure(self, plog: PartitionLog) -> BaseException | None:
        state = self._state.get(id(plog))
        return state.failed if state else None

    async def wait_durable(self, plog: PartitionLog, offset: int) -> None:
        """Return once every offset up to and including `offset` is fsynced."""
        state = self._state.setdefault(id(plog), _LogSync())
        while plog.durable_offset <= offset:
            if state.failed is not None:
                raise StorageError(
                    f"{plog.topic}-{plog.partition}: fsync failed earlier: {state.failed}"
                )
            if state.running is None:
                state.running = asyncio.ensure_future(self._sync(plog, state))
                await asyncio.shield(state.running)
            else:
                # An fsync is in flight but may have started before our append: wait for it,
                # then loop; the next waiter to find none running starts the one we need.
                await asyncio.shield(state.running)

    async def _sync(self, plog: PartitionLog, state: _LogSync) -> None:
        target = plog.log_end_offset
        segment = plog.segments[-1]
        try:
            await asyncio.to_thread(segment.flush)
        except OSError as exc:
            state.failed = exc
            log.error(
                "%s-%d: fsync failed, refusing further writes: %s", plog.topic, plog.partition, exc
            )
            raise StorageError(f"fsync failed: {exc}") from exc
        finally:
            state.running = None
        plog.mark_durable(target)

    def forget(self, plog: PartitionLog) -> None:
        self._state.pop(id(plog), None)
