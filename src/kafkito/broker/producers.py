"""Idempotent producers: producer ids, and per partition the sequence state that dedupes retries.

Theory of operation (KAFKA-NOTES §4 step 4, §6 P14; RELIABILITY B11-B13; Kafka's
ProducerStateManager, ProducerAppendInfo and ProducerStateEntry).

**Producer ids.** InitProducerId hands out ids from an allocator that never reuses one, even
across restarts: ids are reserved in blocks of `PID_BLOCK` and the end of the reserved range is
written to the metadata log (fsynced) *before* any id of the block is handed out. After a
restart allocation resumes at the persisted end, so the unused rest of the last block is skipped,
never reissued. A KIP-360 request (v3+) naming its current (pid, epoch) gets the same pid with
the epoch bumped; at the last epoch a fresh pid is issued instead.

**Per partition** (`PartitionProducers`) each producer id maps to a `ProducerEntry`: its current
epoch and the metadata of its last five batches (first/last sequence, base/last offset), which is
why clients cap in-flight requests at five. A produced batch is checked in Kafka's order:

    no entry for the pid (never seen, or all its batches fell out of retention) -> append, any seq
    same epoch and the batch equals one of the last 5  -> duplicate: answer the original offset
    epoch below the entry's                            -> INVALID_PRODUCER_EPOCH (47)
    epoch above the entry's, base sequence != 0        -> OUT_OF_ORDER_SEQUENCE_NUMBER (45)
    same epoch, base sequence != last sequence + 1     -> OUT_OF_ORDER_SEQUENCE_NUMBER (45)
      (sequences wrap from INT32_MAX to 0)
    otherwise                                          -> append

`record()` runs right after the append (same event-loop step: no other append can come
between the check and the record). A new epoch clears the five-batch window.

**Restarts.** The state of a partition is saved in a snapshot file, `producer-state.snapshot`
in the partition directory, every `SNAPSHOT_INTERVAL_S` for partitions that changed (or whose
log grew `SNAPSHOT_MAX_LAG_OFFSETS` past the snapshot), and at clean shutdown for every
partition whose snapshot is not exact. Format:
`b"KPS1" | u32 crc32c(payload) | payload`, the payload being the JSON
`{"offset": N, "producers": [[pid, epoch, [[first_seq, last_seq, base, last], ...], ts], ...]}`
where N is the log end offset when it was taken (always a batch boundary) and ts the max
timestamp of the producer's last batch. It is written to a
temporary file, fsynced and renamed (atomic). At load the snapshot is read, then the batch
headers from `max(N, log start)` to the log end are replayed, so a batch appended after the
snapshot (a crash between the append and the answer, B11) is known and its retry is answered
with the original offset. A missing, garbled or too-new snapshot (N beyond the log end: the log
lost an unsynced tail) is discarded and the state rebuilt by scanning the whole log (B13).

**Expiry.** Batches below the log start offset (removed by retention or DeleteRecords) leave
the window, and a producer with none left is dropped, as Kafka does; its next batch is then
accepted with any sequence. The state is thus a function of the batches in the log, which is
what a rebuild by scanning can restore. A producer whose last batch is older (by its max
timestamp) than `PRODUCER_ID_EXPIRATION_MS` (Kafka's `producer.id.expiration.ms`, 24 h) is
forgotten too, checked with each periodic snapshot and at load.

**Fault point (tests only).** With `KAFKITO_TEST_CRASH_AFTER_APPENDS=N` in the environment the
broker process exits with `os._exit(CRASH_EXIT_CODE)` right after the N-th recorded idempotent
append, before the Produce answer is sent and before any fsync: the crash of B11. Unset, it
costs one integer comparison.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import struct
import time
import weakref
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import crc32c as _crc32c

from kafkito.broker import embedded
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.records import BatchHeader, iter_batch_headers
from kafkito.storage.log import PartitionLog

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)

NUM_BATCHES_TO_RETAIN = 5
"""Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN; clients cap max.in.flight at 5."""
INT32_MAX = 2**31 - 1
MAX_EPOCH = 2**15 - 1
"""Kafka never hands out epoch 32767 (Short.MAX_VALUE): at 32766 a bump gives a new pid."""
PID_BLOCK = 1000
MAX_TRACKED_EPOCHS = 100_000
"""Bound on the pid -> last issued epoch map that KIP-360 bumps are checked against."""
PRODUCER_ID_EXPIRATION_MS = 24 * 3600 * 1000
"""Kafka's `producer.id.expiration.ms`: a producer idle this long (by its batches' max
timestamp) is forgotten, which bounds the state kept for short-lived producers."""
SNAPSHOT_NAME = "producer-state.snapshot"
SNAPSHOT_MAGIC = b"KPS1"
SNAPSHOT_INTERVAL_S = 30.0
SNAPSHOT_MAX_LAG_OFFSETS = 20_000
"""A periodic snapshot is also taken when the log grew this much past the last one, even with
no idempotent batch in between, so that the replay after a crash stays short (the scan reads
20,000-100,000 batches a second here, bench/bench_idempotence.py)."""
MAX_SNAPSHOT_BYTES = 256 << 20
SCAN_CHUNK_BYTES = 1 << 20
CRASH_ENV = "KAFKITO_TEST_CRASH_AFTER_APPENDS"
CRASH_EXIT_CODE = 77
_SNAP_HEAD = struct.Struct(">4sI")


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


# -- per partition ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """What is kept of one appended batch: enough to spot and answer its retry."""

    first_seq: int
    last_seq: int
    base_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerEntry:
    """One producer id's state in one partition."""

    epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )
    last_timestamp: int = -1
    """Max timestamp of the last batch (ms), for `producer.id.expiration.ms` as Kafka does."""

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """True if `next_seq` directly follows `last_seq`, wrapping at INT32_MAX."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


def batch_last_seq(base_seq: int, last_offset_delta: int) -> int:
    """The sequence of a batch's last record (Kafka's DefaultRecordBatch.incrementSequence)."""
    if base_seq > INT32_MAX - last_offset_delta:
        return base_seq + last_offset_delta - INT32_MAX - 1
    return base_seq + last_offset_delta


class PartitionProducers:
    """The producer state of one partition log: pid -> entry, and a dirty flag."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}
        self.dirty = False
        self.snapshot_offset = -1
        """Log end offset of the snapshot on disk that matches this state (-1: none)."""

    # The check and the update are plain functions of (state, batch) so that the model test
    # (tests/unit/test_producer_state*.py) drives exactly the code the broker runs.

    def check(
        self,
        producer_id: int,
        epoch: int,
        base_seq: int,
        last_offset_delta: int,
        log_start_offset: int = 0,
    ) -> BatchMetadata | None:
        """The original batch for a duplicate, None to append; raises BrokerError (45, 47)."""
        if base_seq < 0:
            raise BrokerError(
                ErrorCode.invalid_record,
                f"invalid sequence {base_seq} in a batch of producer id {producer_id}",
            )
        entry = self.entries.get(producer_id)
        if entry is not None and entry.batches[0].last_offset < log_start_offset:
            entry = self._trim(producer_id, entry, log_start_offset)
        if entry is None:
            return None
        last_seq = batch_last_seq(base_seq, last_offset_delta)
        if epoch == entry.epoch:
            duplicate = entry.find_duplicate(base_seq, last_seq)
            if duplicate is not None:
                return duplicate
        if epoch < entry.epoch:
            raise BrokerError(
                ErrorCode.invalid_producer_epoch,
                f"producer {producer_id} epoch {epoch} is older than the current {entry.epoch}",
            )
        if epoch > entry.epoch:
            if base_seq != 0:
                raise BrokerError(
                    ErrorCode.out_of_order_sequence_number,
                    f"producer {producer_id} new epoch {epoch} must start at sequence 0, "
                    f"got {base_seq}",
                )
        elif not in_sequence(entry.last_seq, base_seq):
            raise BrokerError(
                ErrorCode.out_of_order_sequence_number,
                f"producer {producer_id} epoch {epoch}: expected sequence "
                f"{(entry.last_seq + 1) % (INT32_MAX + 1)}, got {base_seq}",
            )
        return None

    def update(
        self,
        producer_id: int,
        epoch: int,
        base_seq: int,
        last_offset_delta: int,
        base_offset: int,
        max_timestamp: int = -1,
    ) -> None:
        """Remember one appended batch (also used to replay the log at load)."""
        entry = self.entries.get(producer_id)
        if entry is None:
            entry = self.entries[producer_id] = ProducerEntry(epoch)
        elif epoch != entry.epoch:
            entry.epoch = epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                base_seq,
                batch_last_seq(base_seq, last_offset_delta),
                base_offset,
                base_offset + last_offset_delta,
            )
        )
        entry.last_timestamp = max_timestamp
        self.dirty = True

    def _trim(self, pid: int, entry: ProducerEntry, log_start_offset: int) -> ProducerEntry | None:
        """Forget the batches that are no longer in the log; the entry too if none is left.

        A retry of a batch that retention removed cannot be answered with its offset, and a
        producer with no batch left has no state (Kafka expires it): its next batch is taken
        with any sequence. Trimming batch by batch keeps the state a function of the batches
        in the log, so a rebuild by scanning at a restart gives the same state (B13).
        """
        while entry.batches and entry.batches[0].last_offset < log_start_offset:
            entry.batches.popleft()
        self.dirty = True
        if not entry.batches:
            del self.entries[pid]
            return None
        return entry

    def expire_idle(self, now_ms: int, expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        """Forget producers whose last batch is older than `expiration_ms` (Kafka's rule)."""
        idle = [
            pid for pid, e in self.entries.items() if 0 <= e.last_timestamp < now_ms - expiration_ms
        ]
        for pid in idle:
            del self.entries[pid]
        if idle:
            self.dirty = True

    def expire_before(self, log_start_offset: int) -> None:
        for pid, entry in list(self.entries.items()):
            if entry.batches[0].last_offset < log_start_offset:
                self._trim(pid, entry, log_start_offset)

    # -- snapshots -----------------------------------------------------------------------

    def to_json(self, offset: int) -> dict[str, Any]:
        return {
            "offset": offset,
            "producers": [
                [
                    pid,
                    entry.epoch,
                    [
                        [b.first_seq, b.last_seq, b.base_offset, b.last_offset]
                        for b in entry.batches
                    ],
                    entry.last_timestamp,
                ]
                for pid, entry in self.entries.items()
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PartitionProducers:
        state = cls()
        for pid, epoch, batches, last_timestamp in data["producers"]:
            if not batches:
                raise ValueError(f"producer {pid} has no batch")  # never written so
            entry = ProducerEntry(int(epoch), last_timestamp=int(last_timestamp))
            for first_seq, last_seq, base, last in batches:
                entry.batches.append(
                    BatchMetadata(int(first_seq), int(last_seq), int(base), int(last))
                )
            state.entries[int(pid)] = entry
        return state


def encode_snapshot(state: PartitionProducers, offset: int) -> bytes:
    payload = json.dumps(state.to_json(offset), separators=(",", ":")).encode()
    return _SNAP_HEAD.pack(SNAPSHOT_MAGIC, _crc32c.crc32c(payload)) + payload


def decode_snapshot(data: bytes) -> tuple[PartitionProducers, int]:
    """(state, offset) from snapshot bytes; ValueError if they are not an intact snapshot."""
    if len(data) < _SNAP_HEAD.size:
        raise ValueError(f"{len(data)} bytes cannot hold a snapshot header")
    magic, crc = _SNAP_HEAD.unpack_from(data)
    payload = data[_SNAP_HEAD.size :]
    if magic != SNAPSHOT_MAGIC:
        raise ValueError(f"bad magic {magic!r}")
    if _crc32c.crc32c(payload) != crc:
        raise ValueError("crc mismatch")
    try:
        decoded = json.loads(payload)
        offset = int(decoded["offset"])
        return PartitionProducers.from_json(decoded), offset
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"malformed payload: {exc}") from exc


def scan_headers(plog: PartitionLog, start: int) -> Iterator[BatchHeader]:
    """Headers of the stored batches from `start` to the log end, read through PartitionLog."""
    offset = max(start, plog.log_start_offset)
    end = plog.log_end_offset
    while offset < end:
        data = plog.read(offset, SCAN_CHUNK_BYTES, max_offset=end)
        if not data:
            return
        last: BatchHeader | None = None
        for _, header in iter_batch_headers(data):
            last = header
            if header.last_offset >= offset:
                yield header
        if last is None:
            return
        offset = last.next_offset


def rebuild(
    plog: PartitionLog, snapshot: bytes | None, now_ms: int
) -> tuple[PartitionProducers, str]:
    """The state of `plog` from its snapshot (if usable) plus a replay of the log after it."""
    state: PartitionProducers | None = None
    start = plog.log_start_offset
    how = "scanned the whole log"
    if snapshot is not None:
        try:
            state, offset = decode_snapshot(snapshot)
        except ValueError as exc:
            log.warning(
                "%s-%d: producer-state snapshot unusable (%s); rebuilding from the log",
                plog.topic,
                plog.partition,
                exc,
            )
        else:
            if offset > plog.log_end_offset:
                log.warning(
                    "%s-%d: producer-state snapshot at offset %d is beyond the log end %d; "
                    "rebuilding from the log",
                    plog.topic,
                    plog.partition,
                    offset,
                    plog.log_end_offset,
                )
                state = None
            else:
                start = max(offset, plog.log_start_offset)
                how = f"snapshot at {offset}"
                state.snapshot_offset = offset
    if state is None:
        state = PartitionProducers()
    state.expire_before(plog.log_start_offset)
    replayed = 0
    for header in scan_headers(plog, start):
        if header.producer_id < 0 or header.is_control:
            continue
        state.update(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.last_offset_delta,
            header.base_offset,
            header.max_timestamp,
        )
        replayed += 1
    state.expire_before(plog.log_start_offset)
    state.expire_idle(now_ms)
    state.dirty = state.dirty or replayed > 0
    return state, f"{how}, replayed {replayed} batches"


# -- the broker-wide manager -------------------------------------------------------------


class ProducerStateManager:
    """`broker.producers`: the pid allocator and the state of every partition.

    Also a metadata-log participant (BrokerCore.participants): it replays and re-emits the
    `producer_ids` record, and loads every partition's state once the logs are open.
    """

    def __init__(self, broker: BrokerCore) -> None:
        self.broker = broker
        self.next_pid = 0
        self.reserved_until = 0
        """Every pid below this is reserved in the metadata log; none is ever reissued."""
        self.issued_epochs: dict[int, int] = {}
        """pid -> epoch last handed out by InitProducerId since start-up (KIP-360 checks)."""
        self.partitions: weakref.WeakKeyDictionary[PartitionLog, PartitionProducers] = (
            weakref.WeakKeyDictionary()
        )
        self._task: asyncio.Task[None] | None = None
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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self._writing is not None:
            with contextlib.suppress(BaseException):
                await self._writing
            self._writing = None
        self.write_snapshots(only_dirty=False)

    # -- producer ids ------------------------------------------------------------------

    def allocate_pid(self) -> int:
        if self.next_pid >= self.reserved_until:
            reserved = self.next_pid + PID_BLOCK
            # fsynced before any id of the block leaves the broker
            self.broker.metalog.append([{"type": "producer_ids", "reserved_until": reserved}])
            self.reserved_until = reserved
        pid = self.next_pid
        self.next_pid += 1
        return pid

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

    # -- the produce path (BrokerCore.check_producer / record_producer) ----------------

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
        if fs.exists(path):
            try:
                snapshot = fs.read_file(path)[:MAX_SNAPSHOT_BYTES]
            except OSError as exc:
                log.warning("%s: cannot read producer-state snapshot: %s", path, exc)
        state, how = rebuild(plog, snapshot, _wall_ms())
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
        now_ms = _wall_ms()
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
        written = 0
        for plog, path, data in self._pending_snapshots(only_dirty):
            if self._write(plog, path, data):
                written += 1
        return written

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
            await asyncio.sleep(SNAPSHOT_INTERVAL_S)
            # encode on the loop (consistent), write and fsync off it; shielded so that stop()
            # can wait for a write in progress instead of racing it on the same file
            for plog, path, data in self._pending_snapshots(only_dirty=True):
                self._writing = asyncio.ensure_future(
                    asyncio.to_thread(self._write, plog, path, data)
                )
                await asyncio.shield(self._writing)
                self._writing = None


def install(broker: BrokerCore) -> None:
    """Attach producer state to a fresh BrokerCore (an `embedded.INSTALLERS` entry)."""
    manager = ProducerStateManager(broker)
    broker.producers = manager
    broker.participants.append(manager)


embedded.INSTALLERS.append(install)
