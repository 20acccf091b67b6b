"""`broker.producers`: the broker-wide idempotent-producer state (kafkito.broker.producers).

The pid allocator (blocks reserved in the metadata log before use), the produce-path hooks
`check` and `record` that BrokerCore calls around an append, and the periodic snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kafkito.broker.producers.snapshot import (
    MAX_SNAPSHOT_BYTES,
    SNAPSHOT_NAME,
    encode_snapshot,
    rebuild,
)
from kafkito.broker.producers.window import PartitionProducers
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.records import BatchHeader
from kafkito.storage.fs import off_loop, parallel_map
from kafkito.storage.log import PartitionLog

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)

MAX_EPOCH = 2**15 - 1
"""Kafka never hands out epoch 32767 (Short.MAX_VALUE): at 32766 a bump gives a new pid."""
PID_BLOCK = 1000
MAX_TRACKED_EPOCHS = 100_000
"""Bound on the pid -> last issued epoch map that KIP-360 bumps are checked against."""
SNAPSHOT_INTERVAL_S = 30.0
SNAPSHOT_MAX_LAG_OFFSETS = 20_000
"""A periodic snapshot is also taken when the log grew this much past the last one, even with
no idempotent batch in between, so that the replay after a crash stays short (the scan reads
20,000-100,000 batches a second here, bench/bench_idempotence.py)."""
CRASH_ENV = "KAFKITO_TEST_CRASH_AFTER_APPENDS"
CRASH_EXIT_CODE = 77


class ProducerStateManager:
    """`broker.producers`: the pid allocator and the state of every partition.

    Also a metadata-log participant (BrokerCore.participants): it replays and re-emits the
    `producer_ids` record, and loads every partition's state once the logs are open.
    """

    def __init__(self, broker: BrokerCore) -> None:
        self.broker = broker
        self.clock = broker.clock
        """Wall time for `producer.id.expiration.ms` and the snapshot loop's sleep
        (kafkito.clock; a FakeClock in tests)."""
        self.next_pid = 0
        self.reserved_until = 0
        """Every pid below this is reserved in the metadata log; none is ever reissued."""
        self.issued_epochs: dict[int, int] = {}
        """pid -> epoch last handed out by InitProducerId since start-up (KIP-360 checks)."""
        self.partitions: weakref.WeakKeyDictionary[PartitionLog, PartitionProducers] = (
            weakref.WeakKeyDictionary()
        )
        self._task: asyncio.Task[None] | None = None
        self._reserving = asyncio.Lock()
        self._ahead: asyncio.Task[None] | None = None
        """The background reservation of the next block of ids, while it runs."""
        self._writing: asyncio.Future[bool] | None = None
        crash = os.environ.get(CRASH_ENV)
        self._crash_after = int(crash) if crash else 0
        self._recorded = 0

    # -- metadata-log participant ------------------------------------------------------

    def begin_replay(self) -> None:
        self.reserved_until = 0

    def replay(self, record: dict[str, Any]) -> bool:
        if record.get("type") != "producer_ids":
            return False
        self.reserved_until = max(self.reserved_until, int(record["reserved_until"]))
        return True

    def finish_replay(self) -> None:
        self.next_pid = self.reserved_until
        for topic in list(self.broker.topics.by_name.values()):
            for plog in topic.partitions:
                self.state_for(plog)

    def live_records(self) -> Iterable[dict[str, Any]]:
        if self.reserved_until:
            yield {"type": "producer_ids", "reserved_until": self.reserved_until}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._snapshot_loop())

    async def stop(self) -> None:
        if self._ahead is not None:
            with contextlib.suppress(BaseException):
                await self._ahead
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._writing is not None:
            with contextlib.suppress(BaseException):
                await self._writing
            self._writing = None
        # encoded on the loop, written several at a time off it (10,000 partitions: 11 s one
        # by one on the loop, the longest part of a clean stop)
        await off_loop(self._write_all, self._pending_snapshots(only_dirty=False))

    # -- producer ids ------------------------------------------------------------------

    def allocate_pid(self) -> int:
        """A new producer id, for callers that cannot await (an epoch bump at the last epoch).

        Its block is normally reserved already: `ensure_pid_reserved` before, or the
        reservation of the next block that starts in the background, off the loop, once half
        of a block is used. Only a burst that uses the rest of a block before that lands
        writes the reservation here, fsynced on the caller's thread: never an id that is not
        durably reserved.
        """
        if self.next_pid >= self.reserved_until:
            reserved = self.next_pid + PID_BLOCK
            # fsynced before any id of the block leaves the broker
            self.broker.metalog.append([{"type": "producer_ids", "reserved_until": reserved}])
            self.reserved_until = reserved
        pid = self.next_pid
        self.next_pid += 1
        self._maybe_reserve_ahead()
        return pid

    async def allocate_pid_durably(self) -> int:
        """`allocate_pid` for the event loop: a new block's reservation is fsynced off it."""
        await self.ensure_pid_reserved()
        pid = self.next_pid
        self.next_pid += 1
        self._maybe_reserve_ahead()
        return pid

    async def ensure_pid_reserved(self) -> None:
        """Return once the next id is durably reserved (a new block fsynced off the loop).

        Requests that find the block used up wait for one reservation (the lock) instead of
        each writing their own.
        """
        while self.next_pid >= self.reserved_until:
            async with self._reserving:
                if self.next_pid >= self.reserved_until:
                    reserved = self.next_pid + PID_BLOCK
                    record = {"type": "producer_ids", "reserved_until": reserved}
                    await self.broker.metalog.append_durable([record])
                    self.reserved_until = max(self.reserved_until, reserved)

    def _maybe_reserve_ahead(self) -> None:
        """Reserve the next block in the background once half of this one is used."""
        if self._ahead is not None or self.reserved_until - self.next_pid > PID_BLOCK // 2:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (start-up replay, tools): allocate_pid reserves when it must
        self._ahead = loop.create_task(self._reserve_ahead())

    async def _reserve_ahead(self) -> None:
        try:
            async with self._reserving:
                if self.reserved_until - self.next_pid <= PID_BLOCK // 2:
                    reserved = max(self.reserved_until, self.next_pid) + PID_BLOCK
                    record = {"type": "producer_ids", "reserved_until": reserved}
                    await self.broker.metalog.append_durable([record])
                    self.reserved_until = max(self.reserved_until, reserved)
        except OSError as exc:  # the ids in hand stay valid; allocation reserves when it must
            log.error("could not reserve the next block of producer ids: %s", exc)
        finally:
            self._ahead = None

    async def init_idempotent(self) -> tuple[int, int]:
        """(pid, 0) for an idempotent producer (InitProducerId without a transactional id)."""
        pid = await self.allocate_pid_durably()
        self._issue(pid, 0)
        return pid, 0

    def init_producer_id(self, producer_id: int, epoch: int) -> tuple[int, int]:
        """(pid, epoch) for an idempotent producer; a KIP-360 bump when it names its pid.

        Raises BrokerError(INVALID_PRODUCER_EPOCH) if the named pid was never issued or the
        epoch is not the one last issued to it (kafka-python then asks for a fresh pid).
        """
        if producer_id < 0:
            pid = self.allocate_pid()
            self._issue(pid, 0)
            return pid, 0
        known = self.issued_epochs.get(producer_id)
        if producer_id >= self.next_pid or epoch < 0 or (known is not None and known != epoch):
            raise BrokerError(
                ErrorCode.invalid_producer_epoch,
                f"cannot bump producer {producer_id} epoch {epoch}: not the current one",
            )
        if epoch + 1 >= MAX_EPOCH:
            pid = self.allocate_pid()
            self.issued_epochs.pop(producer_id, None)
            self._issue(pid, 0)
            return pid, 0
        self._issue(producer_id, epoch + 1)
        return producer_id, epoch + 1

    def _issue(self, pid: int, epoch: int) -> None:
        self.issued_epochs.pop(pid, None)
        self.issued_epochs[pid] = epoch  # dicts keep insertion order: oldest first
        if len(self.issued_epochs) > MAX_TRACKED_EPOCHS:
            # forget the longest-unbumped pid; a later bump of it is taken on trust, as after
            # a restart
            del self.issued_epochs[next(iter(self.issued_epochs))]

    # -- the produce path (AppendGuard.check / record) ----------------

    def state_for(self, plog: PartitionLog) -> PartitionProducers:
        state = self.partitions.get(plog)
        if state is None:
            state = self._load(plog)
            self.partitions[plog] = state
        return state

    def _load(self, plog: PartitionLog) -> PartitionProducers:
        path = os.path.join(plog.directory, SNAPSHOT_NAME)
        snapshot: bytes | None = None
        fs = self.broker.fs
        try:  # no exists() first: a start reads this for every partition
            snapshot = fs.read_file(path)[:MAX_SNAPSHOT_BYTES]
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("%s: cannot read producer-state snapshot: %s", path, exc)
        state, how = rebuild(plog, snapshot, self.clock.wall_ms())
        if state.entries or snapshot is not None:
            log.info(
                "%s-%d: producer state of %d producer ids loaded (%s)",
                plog.topic,
                plog.partition,
                len(state.entries),
                how,
            )
        return state

    def check(self, plog: PartitionLog, header: BatchHeader) -> int | None:
        found = self.state_for(plog).check(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.last_offset_delta,
            plog.log_start_offset,
        )
        if found is None:
            return None
        log.debug(
            "%s-%d: duplicate batch of producer %d (seq %d-%d) answered with offset %d",
            plog.topic,
            plog.partition,
            header.producer_id,
            found.first_seq,
            found.last_seq,
            found.base_offset,
        )
        return found.base_offset

    def record(self, plog: PartitionLog, header: BatchHeader, base_offset: int) -> None:
        self.state_for(plog).update(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.last_offset_delta,
            base_offset,
            header.max_timestamp,
        )
        if self._crash_after:
            self._recorded += 1
            if self._recorded == self._crash_after:
                log.critical("%s: test fault point reached, exiting", CRASH_ENV)
                logging.shutdown()
                os._exit(CRASH_EXIT_CODE)

    # -- snapshots -------------------------------------------------------------------------

    def _pending_snapshots(self, only_dirty: bool) -> list[tuple[PartitionLog, str, bytes]]:
        out = []
        now_ms = self.clock.wall_ms()
        # Every partition, also those created since start-up that never saw an idempotent
        # batch (their state is made here, from at most one interval of log).
        logs = [p for topic in self.broker.topics.by_name.values() for p in topic.partitions]
        for plog in logs:
            state = self.state_for(plog)
            state.expire_idle(now_ms)
            state.expire_before(plog.log_start_offset)
            end = plog.log_end_offset
            if state.snapshot_offset == end and not state.dirty:
                continue  # the snapshot on disk is exact
            if not state.entries and not state.dirty and end == plog.log_start_offset:
                # An empty log with no producer: a start rebuilds that from nothing, so no
                # file (10,000 idle partitions made 10,000 snapshots at each stop, two fsyncs
                # each, and as many reads at the next start).
                continue
            lagging = end - state.snapshot_offset >= SNAPSHOT_MAX_LAG_OFFSETS
            if only_dirty and not state.dirty and not lagging:
                continue  # only batches of non-idempotent producers since: cheap to replay
            data = encode_snapshot(state, plog.log_end_offset)
            state.snapshot_offset = plog.log_end_offset
            out.append((plog, os.path.join(plog.directory, SNAPSHOT_NAME), data))
            state.dirty = False
        return out

    def write_snapshots(self, *, only_dirty: bool) -> int:
        """Write the snapshot of every (changed) partition now; returns how many."""
        return self._write_all(self._pending_snapshots(only_dirty))

    def _write_all(self, pending: list[tuple[PartitionLog, str, bytes]]) -> int:
        """Write `pending` snapshots, several at a time (blocking); returns how many."""
        return sum(parallel_map(lambda job: self._write(*job), pending))

    def _write(self, plog: PartitionLog, path: str, data: bytes) -> bool:
        try:
            if not self.broker.fs.exists(plog.directory):
                return False  # the topic was deleted meanwhile
            self.broker.fs.write_file_atomic(path, data)
        except OSError as exc:
            log.error("%s: cannot write producer-state snapshot: %s", path, exc)
            state = self.partitions.get(plog)
            if state is not None:
                state.dirty = True
            return False
        return True

    async def _snapshot_loop(self) -> None:
        while True:
            await self.clock.sleep(SNAPSHOT_INTERVAL_S)
            # encode on the loop (consistent), write and fsync off it; shielded so that stop()
            # can wait for a write in progress instead of racing it on the same file
            for plog, path, data in self._pending_snapshots(only_dirty=True):
                self._writing = asyncio.ensure_future(
                    asyncio.to_thread(self._write, plog, path, data)
                )
                await asyncio.shield(self._writing)
                self._writing = None


def install(broker: BrokerCore) -> None:
    """Attach producer state to a fresh BrokerCore (called by kafkito.broker.assembly)."""
    manager = ProducerStateManager(broker)
    broker.producers = manager
    broker.participants.append(manager)
