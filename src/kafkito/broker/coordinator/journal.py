"""Group commit of coordinator records into the metadata log.

An OffsetCommit is acknowledged only once its record is on disk (RELIABILITY B15), but one fsync
per commit would cap a busy broker at the disk's fsync rate and block the event loop. So:

1. `write()` appends the records at once (`sync=False`, on the loop: the order of records in the
   file is the order of requests) and queues an entry with the change to apply in memory;
2. one flusher task takes every queued entry, runs a single `metalog.sync()` in a worker thread,
   then applies the entries' changes in order and wakes their writers.

State becomes visible only after its fsync, so nothing a client reads can be lost by a crash.
The one exception is `append_unsynced`, for the transaction coordinator's records whose loss
recovery handles (broker/txn/coordinator.py, "Fsyncs"): applied at once, fsynced by the next
round, which starts at once and which any later `write` waits for.
Entries written but not yet synced stay listed in `unsynced` so that a metadata-log compaction
in between keeps them (compaction rewrites the file from live state). `settle()` lets a reader
wait for writes that came before it (OffsetFetch after an OffsetCommit on the same connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafkito.errors import BrokerError, ErrorCode
from kafkito.storage.metalog import MetadataLog

log = logging.getLogger(__name__)

Record = dict[str, Any]


@dataclass(slots=True, eq=False)
class _Entry:
    records: list[Record]
    apply: Callable[[], None]
    key: str
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _applied() -> None:
    """The change of an `append_unsynced` entry: applied by its caller already."""


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # nobody awaits an unsynced append: its failure is logged, not raised


class Journal:
    """Coordinator writes to the metadata log, acknowledged after one shared fsync."""

    def __init__(self, metalog: MetadataLog, after_flush: Callable[[], None]) -> None:
        self.metalog = metalog
        self.after_flush = after_flush
        """Called on the loop after each flush round (compaction check)."""
        self.unsynced: list[_Entry] = []
        self.records_since_compaction = 0
        self._queued: list[_Entry] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.flushes = 0

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def write(self, records: list[Record], apply: Callable[[], None], key: str) -> None:
        """Append `records`, fsync (shared), then `apply()`; returns when both are done.

        Raises BrokerError(COORDINATOR_NOT_AVAILABLE) if the broker is stopping or the fsync
        failed (the client retries; nothing was acknowledged).
        """
        if self._closing:
            raise BrokerError(ErrorCode.coordinator_not_available, "broker is stopping")
        entry = _Entry(records, apply, key)
        self.metalog.append(records, sync=False)
        self.records_since_compaction += len(records)
        self.unsynced.append(entry)
        self._queued.append(entry)
        self._event().set()
        await asyncio.shield(entry.done)

    def append_unsynced(self, records: list[Record], key: str) -> None:
        """Append `records` whose change the caller has applied already, without waiting for
        their fsync: the flusher starts one at once, and any later `write` (of any key) waits
        for a sync that covers them (the file is appended in order). For records whose loss a
        crash may cause without breaking a promise (the transaction coordinator says which).
        A failed fsync is logged by the flusher; nobody waits for it here.
        """
        if self._closing:
            raise BrokerError(ErrorCode.coordinator_not_available, "broker is stopping")
        entry = _Entry(records, _applied, key)
        entry.done.add_done_callback(_retrieve)
        self.metalog.append(records, sync=False)
        self.records_since_compaction += len(records)
        self.unsynced.append(entry)
        self._queued.append(entry)
        self._event().set()

    def pending_records(self) -> Iterator[Record]:
        """Records appended but not yet applied, in order (for compaction)."""
        for entry in self.unsynced:
            yield from entry.records

    async def settle(self, key: str) -> None:
        """Wait until every write with `key` queued before this call is durable (or failed)."""
        waiting = [e.done for e in self.unsynced if e.key == key]
        if waiting:
            await asyncio.gather(*(asyncio.shield(w) for w in waiting), return_exceptions=True)

    def has_unsynced(self, key: str) -> bool:
        return any(e.key == key for e in self.unsynced)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kafkito-group-journal")

    async def stop(self) -> None:
        """Flush what is queued, then end the flusher."""
        self._closing = True
        self._event().set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        for entry in self._queued:  # only if the flusher died
            if not entry.done.done():
                entry.done.set_exception(
                    BrokerError(ErrorCode.coordinator_not_available, "broker is stopping")
                )

    async def _run(self) -> None:
        wake = self._event()
        while True:
            if not self._queued:
                if self._closing:
                    return
                await wake.wait()
                wake.clear()
                continue
            batch, self._queued = self._queued, []
            try:
                await asyncio.to_thread(self.metalog.sync)
            except OSError as exc:
                log.error("metadata log fsync failed, %d group writes refused: %s", len(batch), exc)
                error = BrokerError(ErrorCode.coordinator_not_available, f"fsync failed: {exc}")
                del self.unsynced[: len(batch)]  # batch is the front of unsynced
                for entry in batch:
                    entry.done.set_exception(error)
                    entry.done.exception()  # retrieved: a writer that went away is no error
                continue
            self.flushes += 1
            del self.unsynced[: len(batch)]
            for entry in batch:
                entry.apply()
                entry.done.set_result(None)
            self.after_flush()
