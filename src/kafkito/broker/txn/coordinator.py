"""The transaction coordinator: transactional ids, their producers, markers and pending offsets.

Theory of operation (Kafka's TransactionCoordinator, TransactionStateManager and
TransactionMarkerChannelManager, reduced to one node; franz-go kfake's txns.go).

**State.** Each transactional id has a `TxnMetadata`: its producer id and epoch, the transaction
timeout, its state (states.py), the partitions and consumer groups added to the open
transaction and the offsets committed in it (pending until the commit). A change is journaled
(a `txn` record, the id's whole state, into the metadata log through a group-commit `Journal`)
and applied in memory only once fsynced; meanwhile the id is *pending* and any other request
for it gets CONCURRENT_TRANSACTIONS (retriable), as in Kafka. So nothing a client was told
can be lost, and a produce can only land in a partition whose addition is on disk.

**Ending a transaction.** EndTxn journals PrepareCommit/PrepareAbort (the decision), appends a
marker to every partition of the transaction, waits until each is durable, commits the pending
offsets (on commit), journals CompleteCommit/CompleteAbort (unsynced, see "Fsyncs"), and
only then answers. Kafka answers after the prepare and writes markers in the background;
answering after the markers keeps a client that reads right after its commit from waiting on
the LSO, at the cost of the marker fsync in the EndTxn latency.

**Fsyncs.** A transaction waits for three fsyncs in turn: its data (the log's group commit,
before the Produce answer), PrepareCommit/PrepareAbort (the journal, before any marker is
written) and its markers (the logs, before CompleteCommit/CompleteAbort is journaled). Two
journal records are written *unsynced* (`Journal.append_unsynced`: current at once, fsynced by
the journal's next round, which starts at once): Complete*, and AddPartitionsToTxn of
partitions already in the journaled `txn_partitions` set (recovery scans those, so data there
cannot go unnoticed; a new partition's addition is still fsynced with that set). Losing them
can only lose a transaction that was never prepared, which recovery aborts, provided it can
tell that transaction's data from the prepared one's: the Prepare record carries each
partition's log end offset at that moment (`leo`; kept through Complete*). Every record of the
prepared transaction lies below it (EndTxn follows its Produce answers; a Produce in a
preparing transaction is refused), every record of a later one above (it starts after the
markers). So recovery commits a producer's open data in a partition only if the journal's last
word is a commit and the data starts below that `leo`; anything else it aborts. Records from
before `leo` existed keep the old rule (a journaled commit completes any open data).

**Partitions.** Per partition log a `PartitionTxns` (storage/txnindex.py) knows the open
transactions (first offset: the LSO) and the aborted ones (returned by read_committed
Fetch). The produce path calls `check_batch` before and `record_batch` after each append.

**Fencing and timeouts.** InitProducerId for an id whose transaction is open bumps the epoch,
aborts that transaction with markers of the new epoch and answers CONCURRENT_TRANSACTIONS; the
client retries and gets the epoch bumped once more (Kafka's sequence). A transaction open longer
than its timeout is aborted the same way by the ticker, which fences its producer: its next
request gets PRODUCER_FENCED (INVALID_PRODUCER_EPOCH for request versions before KIP-588).

**Recovery** (`finish_replay`, before the broker serves). The partitions that ever held
transactional data (the journaled `txn_partitions` set) get their open and aborted
transactions back from their `transactions.snapshot` plus a replay of the log after it, or
from a scan of the whole log (storage/txnindex.py). Then every transaction journaled in
PrepareCommit is completed (commit markers where its data has none yet, pending offsets
committed); every other open transaction is aborted with a bumped epoch (so a producer that
lived through the restart is fenced); and a producer still open in a partition without a
decision pending is completed as its journal says (a commit whose marker a power loss took)
or else aborted (its journal record was lost with an unsynced tail). A transaction is thus
never partly visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafkito.broker.coordinator.journal import Journal, Record
from kafkito.broker.txn.states import TxnEvent, TxnState, next_state
from kafkito.errors import BrokerError, ErrorCode, StorageError
from kafkito.protocol.control import encode_marker
from kafkito.protocol.records import BatchHeader, iter_batch_headers, read_batch_header
from kafkito.storage import txnindex
from kafkito.storage.log import PartitionLog
from kafkito.storage.txnindex import PartitionTxns

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)

MAX_EPOCH = 2**15 - 1
"""Kafka never hands out epoch 32767: at 32766 a bump gives the id a new producer id."""
DEFAULT_MAX_TIMEOUT_MS = 900_000
"""Kafka's `transaction.max.timeout.ms` default (15 minutes)."""
DEFAULT_ID_EXPIRATION_MS = 7 * 24 * 3600 * 1000
"""Kafka's `transactional.id.expiration.ms`: an idle id is forgotten after a week."""
DEFAULT_ABORT_CHECK_MS = 1_000
"""How often expired transactions are looked for. Kafka's
`transaction.abort.timed.out.transaction.cleanup.interval.ms` is 10 s; 1 s here keeps the
timeout close to what the client asked for at the cost of one scan of the ids per second."""
INDEX_SYNC_INTERVAL_S = 10.0
"""How often changed `.txnindex` files are rewritten (they are rebuilt from the log anyway)."""
MAX_PARTITIONS_PER_TXN = 100_000
"""Bound on one transaction's partitions, so that one client cannot make a journal record
(the id's whole state) unbounded. Kafka has no such bound; no real transaction comes near."""
MAX_PENDING_OFFSETS_PER_TXN = 100_000
"""The same bound for the offsets committed inside one transaction."""
COMPACT_AFTER_RECORDS = 20_000
CRASH_ENV = "KAFKITO_TEST_TXN_CRASH"
"""Test fault point: `prepared` exits right after an EndTxn decision is journaled, `marked`
right after the first marker of a transaction is appended (before its fsync). Unset, it costs
one comparison per EndTxn."""
CRASH_EXIT_CODE = 78

Partition = tuple[str, int]


@dataclass(slots=True)
class PendingOffset:
    """An offset committed inside a transaction, applied to the group at commit."""

    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(slots=True)
class TxnMetadata:
    """One transactional id's state (Kafka's TransactionMetadata)."""

    transactional_id: str
    producer_id: int
    epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: set[Partition] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    offsets: dict[str, dict[Partition, PendingOffset]] = field(default_factory=dict)
    start_ms: int = -1
    """When the open transaction began (its first addition); -1 when none is open."""
    update_ms: int = 0
    pending: bool = False
    """A journal write for this id is in flight: other requests get CONCURRENT_TRANSACTIONS."""
    leo: dict[Partition, int] | None = None
    """Each partition's log end offset when the transaction was prepared (kept through
    Complete*, cleared when the next one opens): every record of this transaction lies below
    it, every record of a later one at or above. Recovery tells the two apart with it when the
    later one's AddPartitionsToTxn was not yet durable (see "Fsyncs")."""
    last_producer_id: int = -1
    last_epoch: int = -1
    """The (pid, epoch) before the last bump: a KIP-360 InitProducerId retried after a fence
    names it, and is accepted as Kafka accepts it (TransactionMetadata.lastProducerEpoch)."""

    def record(self) -> Record:
        return {
            "type": "txn",
            "id": self.transactional_id,
            "pid": self.producer_id,
            "epoch": self.epoch,
            "timeout": self.timeout_ms,
            "state": self.state.value,
            "parts": sorted([t, p] for t, p in self.partitions),
            "groups": sorted(self.groups),
            "offsets": [
                [g, t, p, o.offset, o.leader_epoch, o.metadata]
                for g, rows in self.offsets.items()
                for (t, p), o in rows.items()
            ],
            "start": self.start_ms,
            "upd": self.update_ms,
            "last": [self.last_producer_id, self.last_epoch],
            **(
                {}
                if self.leo is None
                else {"leo": sorted([t, p, o] for (t, p), o in self.leo.items())}
            ),
        }

    @classmethod
    def from_record(cls, r: Record) -> TxnMetadata:
        meta = cls(
            str(r["id"]),
            int(r["pid"]),
            int(r["epoch"]),
            int(r["timeout"]),
            TxnState(r["state"]),
            {(str(t), int(p)) for t, p in r["parts"]},
            {str(g) for g in r["groups"]},
            start_ms=int(r["start"]),
            update_ms=int(r["upd"]),
        )
        meta.last_producer_id, meta.last_epoch = (int(x) for x in r.get("last", (-1, -1)))
        if "leo" in r:
            meta.leo = {(str(t), int(p)): int(o) for t, p, o in r["leo"]}
        for g, t, p, o, e, m in r["offsets"]:
            meta.offsets.setdefault(str(g), {})[(str(t), int(p))] = PendingOffset(int(o), int(e), m)
        return meta

    def copy(self) -> TxnMetadata:
        return TxnMetadata.from_record(self.record())


def _prepared_here(meta: TxnMetadata, partition: Partition, first_open: int) -> bool:
    """Whether a producer's data open from `first_open` in `partition` is the transaction
    `meta` journals as prepared or completed, not a later one (see "Fsyncs")."""
    if meta.leo is None:
        return True  # journaled before transactions recorded their log end offsets
    return partition in meta.leo and first_open < meta.leo[partition]


def fenced(api_version: int, first_fenced_version: int) -> ErrorCode:
    """PRODUCER_FENCED, or INVALID_PRODUCER_EPOCH for request versions before KIP-588."""
    if api_version >= first_fenced_version:
        return ErrorCode.producer_fenced
    return ErrorCode.invalid_producer_epoch


class TxnCoordinator:
    """`broker.transactions`: owner of every transactional id and partition's transactions."""

    def __init__(self, broker: BrokerCore, *, wall_ms: Callable[[], int] | None = None) -> None:
        self.broker = broker
        self.clock = broker.clock
        """The ticker's sleep and interval (kafkito.clock): a FakeClock test drives the
        transaction timeouts and id expiry without sleeping."""
        self.wall_ms = wall_ms or self.clock.wall_ms
        """Transaction start and update times (persisted, so wall time), read from the clock."""
        extra = broker.settings.extra
        self.max_timeout_ms = int(extra.get("transaction.max.timeout.ms", DEFAULT_MAX_TIMEOUT_MS))
        self.id_expiration_ms = int(
            extra.get("transactional.id.expiration.ms", DEFAULT_ID_EXPIRATION_MS)
        )
        self.abort_check_ms = int(
            extra.get(
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                DEFAULT_ABORT_CHECK_MS,
            )
        )
        self.txns: dict[str, TxnMetadata] = {}
        self.by_pid: dict[int, TxnMetadata] = {}
        self.with_offsets: set[str] = set()
        """Transactional ids holding pending offsets (what require_stable fetches look at)."""
        self.touched: set[Partition] = set()
        """Partitions that ever held transactional data: scanned at load."""
        self.partitions: weakref.WeakKeyDictionary[PartitionLog, PartitionTxns] = (
            weakref.WeakKeyDictionary()
        )
        self._index_dirty: weakref.WeakSet[PartitionLog] = weakref.WeakSet()
        self._snap_offsets: weakref.WeakKeyDictionary[PartitionLog, int] = (
            weakref.WeakKeyDictionary()
        )
        """The log end offset of each partition's `transactions.snapshot` on disk."""
        self.journal = Journal(broker.metalog, self._maybe_compact)
        self._ticker: asyncio.Task[None] | None = None
        self._crash_at = os.environ.get(CRASH_ENV, "")

    def _crash_point(self, name: str) -> None:
        if self._crash_at == name:
            log.critical("%s=%s: test fault point reached, exiting", CRASH_ENV, name)
            logging.shutdown()
            os._exit(CRASH_EXIT_CODE)

    # -- metadata-log participant ------------------------------------------------------------

    def begin_replay(self) -> None:
        self.txns.clear()
        self.by_pid.clear()
        self.touched.clear()

    def replay(self, record: Record) -> bool:
        kind = record.get("type")
        if kind == "txn":
            meta = TxnMetadata.from_record(record)
            self.txns[meta.transactional_id] = meta
        elif kind == "txn_partitions":
            self.touched.update((str(t), int(p)) for t, p in record["parts"])
        elif kind == "txn_expired":
            self.txns.pop(str(record["id"]), None)
        else:
            return False
        return True

    def finish_replay(self) -> None:
        self.by_pid = {m.producer_id: m for m in self.txns.values()}
        self.with_offsets = set()  # recovery commits or aborts every open transaction
        self._install_unstable_hook()
        self._recover()

    def live_records(self) -> Iterator[Record]:
        if self.touched:
            yield {"type": "txn_partitions", "parts": sorted([t, p] for t, p in self.touched)}
        for meta in self.txns.values():
            yield meta.record()
        yield from self.journal.pending_records()

    def _maybe_compact(self) -> None:
        if self.journal.records_since_compaction >= max(COMPACT_AFTER_RECORDS, 4 * len(self.txns)):
            self.journal.records_since_compaction = 0
            try:
                self.broker.compact_metadata()
            except OSError as exc:
                log.error("metadata log compaction failed: %s", exc)

    async def start(self) -> None:
        await self.journal.start()
        self._ticker = asyncio.create_task(self._tick(), name="kafkito-txn-timers")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(BaseException):
                await self._ticker
            self._ticker = None
        await self.journal.stop()
        self.sync_indexes()
        self.write_snapshots()

    def _install_unstable_hook(self) -> None:
        from kafkito.broker.coordinator import coordinator_of

        with contextlib.suppress(BrokerError):
            coordinator_of(self.broker).unstable_offsets = self.has_pending_offset

    # -- partitions ------------------------------------------------------------------------

    def state_for(self, plog: PartitionLog) -> PartitionTxns:
        state = self.partitions.get(plog)
        if state is None:
            state = self.partitions[plog] = PartitionTxns()
        return state

    def last_stable_offset(self, plog: PartitionLog) -> int:
        """Where read_committed consumers stop: the high watermark when nothing is open."""
        state = self.partitions.get(plog)
        hw = plog.high_watermark
        return hw if state is None else state.last_stable_offset(hw)

    def aborted_in(self, plog: PartitionLog, start: int, end: int) -> list[tuple[int, int]]:
        """(producer id, first offset) of the aborted transactions overlapping [start, end)."""
        state = self.partitions.get(plog)
        if state is None or not state.aborted:
            return []
        return [(e.producer_id, e.first_offset) for e in state.aborted_in(start, end)]

    def aborted_ranges(self, plog: PartitionLog) -> list[tuple[int, int, int]]:
        """(producer id, first offset, last offset) of every aborted transaction (the cleaner
        keeps their data out of its offset map)."""
        state = self.partitions.get(plog)
        if state is None:
            return []
        return [(e.producer_id, e.first_offset, e.last_offset) for e in state.aborted]

    def visible_end(self, plog: PartitionLog, read_committed: bool) -> int:
        """Where a Fetch at this isolation level stops: the LSO, or the high watermark."""
        return self.last_stable_offset(plog) if read_committed else plog.high_watermark

    def aborted_for_fetch(
        self, plog: PartitionLog, fetch_offset: int, data: bytes | memoryview
    ) -> list[tuple[int, int]]:
        """The aborted transactions a read_committed Fetch returns with `data` (whole batches
        from `fetch_offset`): those overlapping the fetched range, as Kafka computes it."""
        state = self.partitions.get(plog)
        if state is None or not state.aborted or not data:
            return []
        end = fetch_offset
        for _, header in iter_batch_headers(data):
            end = header.next_offset
        return [(e.producer_id, e.first_offset) for e in state.aborted_in(fetch_offset, end)]

    def _scan(self, plog: PartitionLog) -> PartitionTxns:
        """The partition's transactions: its snapshot (if usable) plus a replay of the log
        after it, else a scan of the whole log."""
        state = PartitionTxns()
        end = plog.log_end_offset
        start = plog.log_start_offset
        how = "scanned the whole log"
        path = os.path.join(plog.directory, txnindex.SNAPSHOT_NAME)
        if self.broker.fs.exists(path):
            try:
                snap, offset = txnindex.decode_snapshot(self.broker.fs.read_file(path))
                if offset > end:
                    raise ValueError(f"offset {offset} is beyond the log end {end}")
            except (OSError, ValueError) as exc:
                log.warning(
                    "%s-%d: transactions snapshot unusable (%s); scanning the log",
                    plog.topic,
                    plog.partition,
                    exc,
                )
            else:
                state, start, how = snap, max(offset, start), f"snapshot at {offset}"
                self._snap_offsets[plog] = offset

        def chunks() -> Iterator[bytes]:
            offset = start
            while offset < end:
                data = plog.read(offset, 1 << 20, max_offset=end)
                last = None
                for _, header in iter_batch_headers(data):
                    last = header
                if last is None:
                    return
                yield data
                offset = last.next_offset

        markers = txnindex.scan(chunks(), state, plog.log_end_offset)
        state.trim(plog.log_start_offset)
        log.info(
            "%s-%d: transactions loaded (%s, then %d markers replayed): %d open, %d aborted",
            plog.topic,
            plog.partition,
            how,
            markers,
            len(state.open),
            len(state.aborted),
        )
        return state

    # -- the produce path ------------------------------------------------------------------

    def check_batch(self, plog: PartitionLog, header: BatchHeader) -> None:
        """Refuse a batch that breaks the transaction rules; raises BrokerError.

        Transactional: the producer id must be the current one of an Ongoing transaction that
        holds this partition, at its epoch. Not transactional: the producer must not have a
        transaction open in this partition (Kafka's ProducerAppendInfo).
        """
        pid = header.producer_id
        key = (plog.topic, plog.partition)
        if not header.is_transactional:
            state = self.partitions.get(plog)  # never created on this hot path
            if pid >= 0 and state is not None and pid in state.open:
                raise BrokerError(
                    ErrorCode.invalid_txn_state,
                    f"non-transactional batch from producer {pid}, which has a transaction "
                    f"open in {plog.topic}-{plog.partition}",
                )
            return
        if pid < 0:
            raise BrokerError(ErrorCode.invalid_record, "transactional batch without a producer id")
        meta = self.by_pid.get(pid)
        if meta is None:
            raise BrokerError(
                ErrorCode.invalid_producer_id_mapping,
                f"producer {pid} belongs to no transactional id",
            )
        if header.producer_epoch != meta.epoch:
            raise BrokerError(
                ErrorCode.invalid_producer_epoch,
                f"producer {pid} epoch {header.producer_epoch} is not the current {meta.epoch}",
            )
        if meta.state is not TxnState.ONGOING or key not in meta.partitions:
            raise BrokerError(
                ErrorCode.invalid_txn_state,
                f"producer {pid} epoch {header.producer_epoch} has no open transaction holding "
                f"{plog.topic}-{plog.partition} (state {meta.state.value}, epoch {meta.epoch})",
            )

    def record_batch(self, plog: PartitionLog, header: BatchHeader, base_offset: int) -> None:
        """Note an appended transactional batch (opens its transaction in the partition)."""
        if header.is_transactional and header.producer_id >= 0:
            self.state_for(plog).begin(header.producer_id, base_offset, header.producer_epoch)

    # -- requests ----------------------------------------------------------------------------

    def _lookup(
        self, transactional_id: str, producer_id: int, epoch: int, fenced_code: ErrorCode
    ) -> TxnMetadata:
        meta = self.txns.get(transactional_id)
        if meta is None or meta.producer_id != producer_id:
            raise BrokerError(
                ErrorCode.invalid_producer_id_mapping,
                f"transactional id {transactional_id!r} is not mapped to producer {producer_id}",
            )
        if meta.epoch != epoch:
            raise BrokerError(
                fenced_code,
                f"transactional id {transactional_id!r}: epoch {epoch} is not the current "
                f"{meta.epoch}",
            )
        if meta.pending or meta.state.is_preparing:
            raise BrokerError(
                ErrorCode.concurrent_transactions,
                f"transactional id {transactional_id!r} is completing a transaction",
            )
        return meta

    async def _persist(
        self,
        meta: TxnMetadata,
        new: TxnMetadata,
        extra: list[Record],
        *,
        keep_pending: bool = False,
        unsynced: bool = False,
    ) -> None:
        """Journal `new` (the id's next state), then make it current; CONCURRENT meanwhile.

        `keep_pending`: `new` stays pending once current, for a caller that goes on working on
        it (EndTxn writing markers): the ticker must not take it up in between.
        `unsynced`: current at once, its fsync left to the journal's next round (only for the
        records "Fsyncs" in the module docstring allows).
        """
        new.update_ms = self.wall_ms()
        new.pending = keep_pending

        def apply() -> None:
            self.txns[new.transactional_id] = new
            if meta.producer_id != new.producer_id:
                self.by_pid.pop(meta.producer_id, None)
            self.by_pid[new.producer_id] = new
            if new.offsets:
                self.with_offsets.add(new.transactional_id)
            else:
                self.with_offsets.discard(new.transactional_id)

        if unsynced:
            assert not extra and not keep_pending
            apply()
            self.journal.append_unsynced([new.record()], new.transactional_id)
            return
        meta.pending = True
        try:
            await self.journal.write([*extra, new.record()], apply, new.transactional_id)
        finally:
            meta.pending = False

    async def init_producer_id(
        self,
        transactional_id: str,
        timeout_ms: int,
        producer_id: int,
        epoch: int,
        api_version: int,
    ) -> tuple[int, int]:
        """(producer id, epoch) for a transactional producer; raises BrokerError.

        A new id gets a new producer id at epoch 0; a known one gets its epoch bumped, which
        fences the previous producer (an open transaction is aborted first, and the answer is
        CONCURRENT_TRANSACTIONS so that the client asks again, as Kafka does).
        """
        if not transactional_id:
            raise BrokerError(ErrorCode.invalid_request, "empty transactional id")
        if not 0 < timeout_ms <= self.max_timeout_ms:
            raise BrokerError(
                ErrorCode.invalid_transaction_timeout,
                f"transaction timeout {timeout_ms} ms is not within "
                f"1..{self.max_timeout_ms} ms (transaction.max.timeout.ms)",
            )
        meta = self.txns.get(transactional_id)
        if meta is None or meta.epoch + 1 >= MAX_EPOCH:
            # the id's reservation fsynced off the loop first, so allocate_pid below (here or
            # in _bump) finds it in hand; then look again, the id may have come meanwhile
            await self.broker.producers.ensure_pid_reserved()
            meta = self.txns.get(transactional_id)
        if meta is None:
            pid = self.broker.producers.allocate_pid()
            fresh = TxnMetadata(transactional_id, pid, 0, timeout_ms)
            placeholder = TxnMetadata(transactional_id, pid, 0, timeout_ms, pending=True)
            self.txns[transactional_id] = placeholder
            try:
                await self._persist(placeholder, fresh, [])
            except BaseException:
                if self.txns.get(transactional_id) is placeholder:
                    del self.txns[transactional_id]
                raise
            return pid, 0
        if meta.pending or meta.state.is_preparing:
            raise BrokerError(
                ErrorCode.concurrent_transactions,
                f"transactional id {transactional_id!r} is completing a transaction",
            )
        named = (producer_id, epoch)
        if producer_id >= 0 and named == (meta.last_producer_id, meta.last_epoch):
            # the retry of the KIP-360 bump this producer asked for: the same answer again
            return meta.producer_id, meta.epoch
        if producer_id >= 0 and named != (meta.producer_id, meta.epoch):
            # KIP-360: the client names the (pid, epoch) it has; a stale pair is a zombie
            raise BrokerError(
                fenced(api_version, 4),
                f"transactional id {transactional_id!r}: producer {producer_id} epoch {epoch} "
                f"is not the current {meta.producer_id}/{meta.epoch}",
            )
        if meta.state is TxnState.ONGOING:
            await self._end(meta, commit=False, fence=True)
            raise BrokerError(
                ErrorCode.concurrent_transactions,
                f"transactional id {transactional_id!r}: the open transaction of the previous "
                "producer was aborted; retry",
            )
        new = meta.copy()
        new.state = next_state(meta.state, TxnEvent.INIT)
        new.timeout_ms = timeout_ms
        self._bump(new, asked_by=named if producer_id >= 0 else None)
        await self._persist(meta, new, [])
        return new.producer_id, new.epoch

    def _bump(self, meta: TxnMetadata, asked_by: tuple[int, int] | None = None) -> None:
        """A new epoch (or producer id, at the last epoch). `asked_by`: the (pid, epoch) of a
        KIP-360 request that asked for it, remembered so that its retry gets the same answer;
        a fence by another producer or a timeout remembers nothing (the old producer is out).
        """
        meta.last_producer_id, meta.last_epoch = asked_by or (-1, -1)
        if meta.epoch + 1 >= MAX_EPOCH:
            meta.producer_id = self.broker.producers.allocate_pid()
            meta.epoch = 0
        else:
            meta.epoch += 1

    async def add_partitions(
        self,
        transactional_id: str,
        producer_id: int,
        epoch: int,
        wanted: list[Partition],
        api_version: int,
    ) -> dict[Partition, ErrorCode]:
        """Add partitions to the open transaction (opening one); an error code per partition."""
        try:
            meta = self._lookup(transactional_id, producer_id, epoch, fenced(api_version, 2))
        except BrokerError as exc:
            return dict.fromkeys(wanted, exc.code)
        unknown = {(t, p) for t, p in wanted if self.broker.topics.partition(t, p) is None}
        if unknown:
            return {
                key: (
                    ErrorCode.unknown_topic_or_partition
                    if key in unknown
                    else ErrorCode.operation_not_attempted
                )
                for key in wanted
            }
        new = self._opened(meta)
        new.partitions.update(wanted)
        if len(new.partitions) > MAX_PARTITIONS_PER_TXN:
            raise BrokerError(
                ErrorCode.invalid_request,
                f"a transaction may hold at most {MAX_PARTITIONS_PER_TXN} partitions",
            )
        if new.partitions == meta.partitions and meta.state is TxnState.ONGOING:
            return dict.fromkeys(wanted, ErrorCode.none)
        fresh = set(wanted) - self.touched
        if not fresh:
            # partitions recovery scans already: a lost record only means an abort ("Fsyncs")
            await self._persist(meta, new, [], unsynced=True)
            return dict.fromkeys(wanted, ErrorCode.none)
        extra = [{"type": "txn_partitions", "parts": sorted([t, p] for t, p in fresh)}]
        await self._persist(meta, new, extra)
        self.touched.update(fresh)
        return dict.fromkeys(wanted, ErrorCode.none)

    def _opened(self, meta: TxnMetadata) -> TxnMetadata:
        new = meta.copy()
        if meta.state is not TxnState.ONGOING:
            new.partitions.clear()
            new.groups.clear()
            new.offsets.clear()
            new.start_ms = self.wall_ms()
            new.leo = None
        new.state = next_state(meta.state, TxnEvent.ADD)
        return new

    async def add_offsets(
        self, transactional_id: str, producer_id: int, epoch: int, group_id: str, api_version: int
    ) -> None:
        """Add a consumer group to the open transaction (its TxnOffsetCommits become pending)."""
        meta = self._lookup(transactional_id, producer_id, epoch, fenced(api_version, 2))
        if not group_id:
            raise BrokerError(ErrorCode.invalid_group_id, "empty group id")
        if group_id in meta.groups and meta.state is TxnState.ONGOING:
            return
        new = self._opened(meta)
        new.groups.add(group_id)
        await self._persist(meta, new, [])

    async def txn_offset_commit(
        self,
        transactional_id: str,
        group_id: str,
        producer_id: int,
        epoch: int,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        rows: list[tuple[str, int, int, int, str | None]],
        api_version: int,
    ) -> dict[Partition, ErrorCode]:
        """Offsets committed inside the transaction: pending until it commits; codes per row."""
        keys = [(t, p) for t, p, *_ in rows]
        try:
            meta = self._lookup(transactional_id, producer_id, epoch, fenced(api_version, 3))
            if meta.state is not TxnState.ONGOING or group_id not in meta.groups:
                raise BrokerError(
                    ErrorCode.invalid_txn_state,
                    f"group {group_id!r} was not added to the transaction of "
                    f"{transactional_id!r} (AddOffsetsToTxn first)",
                )
            self._validate_member(group_id, generation_id, member_id, group_instance_id)
        except BrokerError as exc:
            return dict.fromkeys(keys, exc.code)
        from kafkito.broker.coordinator.coordinator import OFFSET_METADATA_MAX_BYTES

        result: dict[Partition, ErrorCode] = {}
        new = meta.copy()
        table = new.offsets.setdefault(group_id, {})
        for topic, partition, offset, leader_epoch, metadata in rows:
            if self.broker.topics.partition(topic, partition) is None:
                result[(topic, partition)] = ErrorCode.unknown_topic_or_partition
            elif metadata is not None and len(metadata.encode()) > OFFSET_METADATA_MAX_BYTES:
                result[(topic, partition)] = ErrorCode.offset_metadata_too_large
            else:
                result[(topic, partition)] = ErrorCode.none
                table[(topic, partition)] = PendingOffset(offset, leader_epoch, metadata)
        if sum(len(r) for r in new.offsets.values()) > MAX_PENDING_OFFSETS_PER_TXN:
            return dict.fromkeys(keys, ErrorCode.invalid_request)
        await self._persist(meta, new, [])
        return result

    def _validate_member(
        self, group_id: str, generation_id: int, member_id: str, instance_id: str | None
    ) -> None:
        """Kafka checks the member only when the client names one (TxnOffsetCommit v3)."""
        if generation_id < 0 and not member_id:
            return
        from kafkito.broker.coordinator import coordinator_of

        coordinator = coordinator_of(self.broker)
        consumer_group = coordinator.consumer.groups.get(group_id)
        if consumer_group is not None:  # a KIP-848 group: its member epoch rules
            # Kafka's validateOffsetCommit skips the "OffsetCommit v9+" rule for transactional
            # commits (isTransactional): 9 here asks for exactly the member and epoch checks
            error = coordinator.consumer.validate_commit(
                consumer_group, member_id, generation_id, 9
            )
            if error is not None:
                raise BrokerError(error, f"group {group_id!r} refused member {member_id!r}")
            return
        group = coordinator.groups.get(group_id)
        if group is None:
            return
        if member_id and member_id not in group.members:
            raise BrokerError(ErrorCode.unknown_member_id, f"unknown member {member_id!r}")
        if generation_id >= 0 and generation_id != group.generation:
            raise BrokerError(
                ErrorCode.illegal_generation,
                f"generation {generation_id} is not the group's {group.generation}",
            )

    async def end_txn(
        self, transactional_id: str, producer_id: int, epoch: int, commit: bool, api_version: int
    ) -> None:
        """Commit or abort the open transaction; returns once it is complete and durable."""
        meta = self.txns.get(transactional_id)
        if (
            meta is not None
            and meta.producer_id == producer_id
            and meta.epoch == epoch
            and not meta.pending
            and meta.state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT, TxnState.EMPTY)
        ):
            if meta.state is (TxnState.COMPLETE_COMMIT if commit else TxnState.COMPLETE_ABORT):
                return  # a retry of the EndTxn that completed it
            raise BrokerError(
                ErrorCode.invalid_txn_state,
                f"transactional id {transactional_id!r} has no open transaction to "
                f"{'commit' if commit else 'abort'} (state {meta.state.value})",
            )
        meta = self._lookup(transactional_id, producer_id, epoch, fenced(api_version, 2))
        assert meta.state is TxnState.ONGOING, meta.state
        await self._end(meta, commit=commit, fence=False)

    async def _end(self, meta: TxnMetadata, *, commit: bool, fence: bool) -> None:
        """Prepare (journaled), write the markers, commit offsets, complete (journaled)."""
        prepared = meta.copy()
        if fence:
            prepared.state = next_state(meta.state, TxnEvent.FENCE)
            self._bump(prepared)
            prepared.state = next_state(prepared.state, TxnEvent.ABORT)
        else:
            prepared.state = next_state(meta.state, TxnEvent.COMMIT if commit else TxnEvent.ABORT)
        prepared.leo = {}
        for topic, partition in prepared.partitions:
            plog = self.broker.topics.partition(topic, partition)
            if plog is not None:
                prepared.leo[(topic, partition)] = plog.log_end_offset
        await self._persist(meta, prepared, [], keep_pending=True)
        self._crash_point("prepared")
        current = self.txns[prepared.transactional_id]
        assert current is prepared and current.pending
        try:
            try:
                await self._write_markers(current, commit=commit, only_open=False)
            except (StorageError, OSError) as exc:
                log.error(
                    "transactional id %r: writing %s markers failed (%s); retried by the ticker",
                    current.transactional_id,
                    "commit" if commit else "abort",
                    exc,
                )
                return
            if commit:
                await self._commit_offsets(current)
        finally:
            current.pending = False
        await self._complete(current)

    async def _complete(self, meta: TxnMetadata) -> None:
        done = meta.copy()
        done.state = next_state(meta.state, TxnEvent.COMPLETE)
        done.partitions.clear()
        done.groups.clear()
        done.offsets.clear()
        done.start_ms = -1
        # unsynced: the markers are durable, and so is the decision ("Fsyncs")
        await self._persist(meta, done, [], unsynced=True)

    def _append_marker(self, plog: PartitionLog, meta: TxnMetadata, commit: bool) -> int:
        batch = bytearray(
            encode_marker(
                producer_id=meta.producer_id,
                producer_epoch=meta.epoch,
                commit=commit,
                coordinator_epoch=0,
                timestamp_ms=self.wall_ms(),
            )
        )
        header = read_batch_header(batch)
        base = plog.append(batch, header)
        entry = self.state_for(plog).end(meta.producer_id, base, commit, plog.high_watermark)
        if entry is not None:
            self._index_dirty.add(plog)
        return base

    async def _write_markers(self, meta: TxnMetadata, *, commit: bool, only_open: bool) -> None:
        """Append a marker to each partition of the transaction and wait until all are durable.

        `only_open`: skip partitions where the producer has nothing open (a retry after a
        partial failure, or recovery: markers already written are not written twice).
        """
        waits = []
        for topic, partition in sorted(meta.partitions):
            plog = self.broker.topics.partition(topic, partition)
            if plog is None:
                continue  # deleted since: nothing left to mark
            if only_open and meta.producer_id not in self.state_for(plog).open:
                continue
            if self.broker.committer.failure(plog) is not None or plog.failed is not None:
                raise StorageError(f"{topic}-{partition} is read-only after a storage failure")
            base = self._append_marker(plog, meta, commit)
            self._crash_point("marked")
            waits.append(self._make_durable(plog, base))
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise StorageError(f"a transaction marker could not be fsynced: {outcome}")

    async def _make_durable(self, plog: PartitionLog, offset: int) -> None:
        """Wait until `offset` is fsynced, also on a log that does not sync on ack
        (durability=interval, flush.* topics): a marker must never be lost while the journal
        says its transaction is complete, or a power loss could leave it partly visible."""
        if plog.sync_on_ack:
            await self.broker.committer.wait_durable(plog, offset)
            return
        while plog.durable_offset <= offset:
            if plog.failed is not None:
                raise StorageError(f"{plog.topic}-{plog.partition}: {plog.failed}")
            await self.broker.committer.flush(plog)

    def _offset_records(self, meta: TxnMetadata) -> Iterator[tuple[str, list[Any]]]:
        from kafkito.broker.coordinator.coordinator import Committed

        now = self.wall_ms()
        for group_id, rows in meta.offsets.items():
            yield (
                group_id,
                [
                    (key, Committed(o.offset, o.leader_epoch, o.metadata, now))
                    for key, o in rows.items()
                ],
            )

    async def _commit_offsets(self, meta: TxnMetadata) -> None:
        from kafkito.broker.coordinator import coordinator_of

        coordinator = coordinator_of(self.broker)
        for group_id, accepted in self._offset_records(meta):
            records = self._group_records(coordinator, group_id, accepted)

            def apply(group_id: str = group_id, accepted: list[Any] = accepted) -> None:
                table = coordinator.offsets.setdefault(group_id, {})
                for key, committed in accepted:
                    table[key] = committed

            await coordinator.journal.write(records, apply, group_id)

    def _group_records(self, coordinator: Any, group_id: str, accepted: list[Any]) -> list[Record]:
        from kafkito.broker.coordinator.group import Group

        records: list[Record] = []
        if group_id not in coordinator.groups and group_id not in coordinator.consumer.groups:
            group = coordinator.groups[group_id] = Group(group_id, empty_since_ms=self.wall_ms())
            records.append(coordinator._group_record(group))
        records.extend(coordinator._offset_record(group_id, t, p, c) for (t, p), c in accepted)
        return records

    def has_pending_offset(self, group_id: str, topic: str, partition: int) -> bool:
        """OffsetFetch require_stable: an open transaction holds an offset for it."""
        for txn_id in self.with_offsets:
            meta = self.txns.get(txn_id)
            if meta is not None and (topic, partition) in meta.offsets.get(group_id, {}):
                return True
        return False

    # -- timers ------------------------------------------------------------------------------

    async def _tick(self) -> None:
        clock = self.clock
        next_index_sync = clock.monotonic() + INDEX_SYNC_INTERVAL_S
        while True:
            await clock.sleep(max(self.abort_check_ms, 10) / 1000)
            try:
                await self.abort_expired()
                await self.retry_prepared()
                self.expire_ids()
            except BrokerError as exc:  # a journal fsync failed: logged there; next round
                log.warning("transaction timers: %s", exc)
            if clock.monotonic() >= next_index_sync:
                next_index_sync = clock.monotonic() + INDEX_SYNC_INTERVAL_S
                await self.sync_indexes_off_loop()
                await self.write_snapshots_off_loop()

    async def abort_expired(self) -> int:
        """Abort (fencing the producer) every transaction open longer than its timeout."""
        now = self.wall_ms()
        expired = [
            m
            for m in self.txns.values()
            if m.state is TxnState.ONGOING
            and not m.pending
            and m.start_ms >= 0
            and now - m.start_ms > m.timeout_ms
        ]
        for meta in expired:
            if self.txns.get(meta.transactional_id) is not meta or meta.pending:
                continue  # changed while an earlier one was being aborted
            if meta.state is not TxnState.ONGOING:
                continue
            log.info(
                "transactional id %r: transaction open for %d ms, past its %d ms timeout: "
                "aborting it and fencing producer %d epoch %d",
                meta.transactional_id,
                now - meta.start_ms,
                meta.timeout_ms,
                meta.producer_id,
                meta.epoch,
            )
            await self._end(meta, commit=False, fence=True)
        return len(expired)

    async def retry_prepared(self) -> None:
        """Finish transactions whose markers could not be written (a storage failure)."""
        for meta in list(self.txns.values()):
            if self.txns.get(meta.transactional_id) is not meta:
                continue  # replaced while an earlier one was being completed
            if meta.pending or meta.state not in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                continue
            commit = meta.state is TxnState.PREPARE_COMMIT
            meta.pending = True
            try:
                try:
                    await self._write_markers(meta, commit=commit, only_open=True)
                except (StorageError, OSError):
                    continue
                if commit:
                    await self._commit_offsets(meta)
            finally:
                meta.pending = False
            await self._complete(meta)

    def expire_ids(self) -> int:
        """Forget idle transactional ids past `transactional.id.expiration.ms`."""
        now = self.wall_ms()
        gone = [
            m
            for m in self.txns.values()
            if m.state.is_idle and not m.pending and now - m.update_ms > self.id_expiration_ms
        ]
        records: list[Record] = []
        for meta in gone:
            next_state(meta.state, TxnEvent.EXPIRE)  # checks the table
            del self.txns[meta.transactional_id]
            if self.by_pid.get(meta.producer_id) is meta:
                del self.by_pid[meta.producer_id]
            records.append({"type": "txn_expired", "id": meta.transactional_id})
        if records:
            self.broker.metalog.append(records, sync=False)
            self.journal.records_since_compaction += len(records)
        return len(gone)

    def _index_jobs(self) -> list[tuple[PartitionLog, PartitionTxns, list[int]]]:
        """On the loop: the partitions whose `.txnindex` files are behind, with a copy of
        their aborted list and segment bases (the files are written off the loop)."""
        for plog, pstate in list(self.partitions.items()):
            if pstate.aborted and pstate.aborted[0].last_offset < plog.log_start_offset:
                self._index_dirty.add(plog)  # retention or DeleteRecords passed entries
        jobs = []
        for plog in list(self._index_dirty):
            self._index_dirty.discard(plog)
            state = self.partitions.get(plog)
            if state is None:
                continue
            state.trim(plog.log_start_offset)
            copy = PartitionTxns(aborted=list(state.aborted))
            jobs.append((plog, copy, [seg.base_offset for seg in plog.segments]))
        return jobs

    def _snapshot_jobs(self) -> list[tuple[PartitionLog, bytes, int]]:
        """On the loop: (log, snapshot bytes, offset) of every partition that held
        transactional data and grew since its snapshot (consistent: encoded on the loop)."""
        jobs = []
        for topic, partition in sorted(self.touched):
            plog = self.broker.topics.partition(topic, partition)
            if plog is None or self._snap_offsets.get(plog) == plog.log_end_offset:
                continue
            state = self.state_for(plog)
            jobs.append(
                (plog, txnindex.encode_snapshot(state, plog.log_end_offset), plog.log_end_offset)
            )
        return jobs

    def _write_snapshot(self, plog: PartitionLog, data: bytes) -> bool:
        try:
            if not self.broker.fs.exists(plog.directory):
                return False  # the topic was deleted meanwhile
            self.broker.fs.write_file_atomic(
                os.path.join(plog.directory, txnindex.SNAPSHOT_NAME), data
            )
        except OSError as exc:
            log.error("%s: cannot write the transactions snapshot: %s", plog.directory, exc)
            return False
        return True

    def write_snapshots(self) -> int:
        """Write every due snapshot now (blocking: at stop)."""
        written = 0
        for plog, data, offset in self._snapshot_jobs():
            if self._write_snapshot(plog, data):
                self._snap_offsets[plog] = offset
                written += 1
        return written

    async def write_snapshots_off_loop(self) -> int:
        written = 0
        for plog, data, offset in self._snapshot_jobs():
            if await asyncio.to_thread(self._write_snapshot, plog, data):
                self._snap_offsets[plog] = offset
                written += 1
        return written

    def _write_index(self, plog: PartitionLog, state: PartitionTxns, bases: list[int]) -> int:
        try:
            if not self.broker.fs.exists(plog.directory):
                return 0  # the topic was deleted meanwhile
            return txnindex.sync_index_files(self.broker.fs, plog.directory, state, bases)
        except OSError as exc:
            log.error("%s: cannot write .txnindex files: %s", plog.directory, exc)
            return -1  # the caller marks it dirty again, on the loop

    def sync_indexes(self) -> int:
        """Rewrite the `.txnindex` files of partitions whose aborted list changed (blocking)."""
        written = 0
        for job in self._index_jobs():
            done = self._write_index(*job)
            if done < 0:
                self._index_dirty.add(job[0])
            written += max(done, 0)
        return written

    async def sync_indexes_off_loop(self) -> int:
        written = 0
        for job in self._index_jobs():
            done = await asyncio.to_thread(self._write_index, *job)
            if done < 0:
                self._index_dirty.add(job[0])
            written += max(done, 0)
        return written

    # -- recovery ----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Rebuild partition state from the logs and finish what a crash left open."""
        logs: list[PartitionLog] = []
        for topic, partition in sorted(self.touched):
            plog = self.broker.topics.partition(topic, partition)
            if plog is None:
                continue
            self.partitions[plog] = self._scan(plog)
            self._index_dirty.add(plog)
            logs.append(plog)
        self.touched = {(p.topic, p.partition) for p in logs}
        records: list[Record] = []
        offsets: list[tuple[str, list[Any]]] = []
        decided: dict[int, bool] = {}
        for meta in list(self.txns.values()):
            if meta.state is TxnState.PREPARE_COMMIT:
                decided[meta.producer_id] = True
                offsets.extend(self._offset_records(meta))
            elif meta.state in (
                TxnState.ONGOING,
                TxnState.PREPARE_ABORT,
                TxnState.PREPARE_EPOCH_FENCE,
            ):
                if meta.state is not TxnState.PREPARE_ABORT:
                    log.info(
                        "transactional id %r: open at the crash, aborting it",
                        meta.transactional_id,
                    )
                    if meta.state is TxnState.ONGOING:
                        meta.state = next_state(meta.state, TxnEvent.FENCE)
                    self._bump(meta)
                    meta.state = next_state(meta.state, TxnEvent.ABORT)
                decided[meta.producer_id] = False
            else:
                continue
            self.by_pid[meta.producer_id] = meta
        for plog in logs:
            state = self.partitions[plog]
            for pid in sorted(state.open, key=lambda p: state.open[p]):
                known = self.by_pid.get(pid)
                here = (plog.topic, plog.partition)
                if pid in decided:
                    assert known is not None
                    commit, meta = decided[pid], known
                    if commit and not _prepared_here(known, here, state.open[pid]):
                        # a later transaction's data (its AddPartitionsToTxn not durable)
                        log.warning(
                            "%s-%d: producer %d has data of an unprepared transaction after "
                            "its prepared one; aborting it",
                            plog.topic,
                            plog.partition,
                            pid,
                        )
                        commit = False
                else:
                    # A marker lost with the journal saying the transaction completed (a power
                    # loss under durability=interval): complete it the journaled way. Anything
                    # else (its journal record lost with an unsynced tail, or a later
                    # transaction's AddPartitionsToTxn not durable) is aborted.
                    commit = (
                        known is not None
                        and known.state is TxnState.COMPLETE_COMMIT
                        and _prepared_here(known, here, state.open[pid])
                    )
                    meta = TxnMetadata("", pid, state.epochs.get(pid, 0), 1)
                    if known is not None:
                        meta.epoch = max(meta.epoch, known.epoch)
                    log.warning(
                        "%s-%d: producer %d has a transaction open with no decision pending; %s it",
                        plog.topic,
                        plog.partition,
                        pid,
                        "committing" if commit else "aborting",
                    )
                self._append_marker(plog, meta, commit)
            if plog.log_end_offset > plog.durable_offset:
                plog.flush()
                plog.mark_durable(plog.log_end_offset)
        if offsets:
            from kafkito.broker.coordinator import coordinator_of

            coordinator = coordinator_of(self.broker)
            for group_id, accepted in offsets:
                records.extend(self._group_records(coordinator, group_id, accepted))
                table = coordinator.offsets.setdefault(group_id, {})
                for key, committed in accepted:
                    table[key] = committed
        for meta in self.txns.values():
            if meta.producer_id in decided:
                meta.state = next_state(meta.state, TxnEvent.COMPLETE)
                meta.partitions.clear()
                meta.groups.clear()
                meta.offsets.clear()
                meta.start_ms = -1
                meta.update_ms = self.wall_ms()
                records.append(meta.record())
        if records:
            self.broker.metalog.append(records)

    # -- admin -------------------------------------------------------------------------------

    def list(self) -> Iterable[TxnMetadata]:
        return self.txns.values()
