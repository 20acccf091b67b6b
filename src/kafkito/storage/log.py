"""A partition's log: an ordered list of segments, one writer, many readers.

Offsets are assigned here: a produced batch is patched in place with the log end offset and the
leader epoch (KAFKA-NOTES §4) and appended to the active segment. The segment rolls when it
reaches `segment_bytes`, when it is older than `segment_ms` (by the injected clock, counted from
its creation or from when this process opened it),
or before a relative offset would overflow its int32 index entry. Rolling does no fsync on the
event loop: the sealed segment, its indexes and the directory entry of the new segment are
fsynced by the next sync (`begin_sync` / `sync_files` in a worker thread), before any offset
past them counts as durable; until then retention may not delete the sealed segment. Retention
deletes whole closed segments (never the active one) by time and by size, moving the log start
offset forward; a segment is first renamed to `.deleted` so that a crash mid-way leaves a
leftover that recovery removes, never a half-deleted segment that looks alive.

With `compact` in cleanup.policy the cleaner (`storage.cleaner`) rewrites closed, fsynced
segments in a worker thread and swaps them in with `replace_segments`; offsets never change,
so within a segment batch offsets grow with gaps. `compact` alone switches retention off.

Opening is `storage.recovery.open_segments`: load below the recovery point, scan above it.

Durability: `durable_offset` is how far the log is fsynced. When acks wait for fsync
(`sync_on_ack`: the broker's durability=always, or a topic with flush.messages=1 or flush.ms=0)
the high watermark is the durable offset, so consumers never read a record that could vanish.
A failed write or fsync sets `failed`: from then on the log refuses writes (KAFKA_STORAGE_ERROR)
and keeps serving reads of what it had (RELIABILITY B8, B9).

Readers are woken through `wait_for_append`, a future per waiting Fetch, so long polls never
sleep in loops.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafkito.errors import StorageError
from kafkito.protocol.records import BatchHeader, iter_batch_headers, patch_batch
from kafkito.storage.fs import FileSystem
from kafkito.storage.index import fits_relative
from kafkito.storage.recovery import RecoveryPlan, open_segments
from kafkito.storage.segment import Segment

log = logging.getLogger(__name__)


PATCHED_BYTES = 16
"""A batch's base offset, length and partition leader epoch: what the log patches (outside
the CRC)."""
SPLIT_WRITE_BYTES = 64 * 1024
"""From this size a batch handed over as a view is written as its patched first PATCHED_BYTES
and the rest straight from the request (two pwrites) rather than copied whole to be patched:
one copy of every produced byte less at high throughput, where a small batch's copy costs
less than a second system call."""


@dataclass(slots=True)
class LogConfig:
    """The per-topic settings the log acts on."""

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    max_message_bytes: int = 1048588
    flush_messages: int = -1
    """Topic `flush.messages`; -1 (or Kafka's Long.MAX default) leaves it to the broker."""
    flush_ms: int = -1
    """Topic `flush.ms`; -1 (or Kafka's Long.MAX default) leaves it to the broker."""
    cleanup_delete: bool = True
    """`cleanup.policy` holds `delete`: retention by time and size applies."""
    cleanup_compact: bool = False
    """`cleanup.policy` holds `compact`: the cleaner keeps the latest record per key."""
    delete_retention_ms: int = 24 * 3600 * 1000
    """How long a tombstone stays once the cleaner has seen it (KIP-534 delete horizon)."""
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = 2**63 - 1
    min_cleanable_dirty_ratio: float = 0.5
    log_append_time: bool = False
    """`message.timestamp.type=LogAppendTime`: the broker stamps each batch it appends."""
    timestamp_before_max_ms: int = 2**63 - 1
    """`message.timestamp.before.max.ms`: how far in the past a record's time may be."""
    timestamp_after_max_ms: int = 3_600_000
    """`message.timestamp.after.max.ms` (Kafka 4: one hour): how far in the future."""

    def __post_init__(self) -> None:
        if self.flush_messages >= _UNSET_FLUSH:
            self.flush_messages = -1
        if self.flush_ms >= _UNSET_FLUSH:
            self.flush_ms = -1


_UNSET_FLUSH = 2**62


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class PartitionLog:
    """The segments of one topic partition."""

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        leader_epoch: int = 0,
        clock_ms: Callable[[], int] = _wall_ms,
    ) -> None:
        self.fs = fs
        self.directory = directory
        self.topic = topic
        self.partition = partition
        self.config = config
        self.leader_epoch = leader_epoch
        self._clock_ms = clock_ms
        self.segments: list[Segment] = []
        self.log_start_offset = 0
        self.durable_offset = 0
        """Offsets below this are on disk (fsynced); with durability=always it is the HW."""
        self.broker_always = True
        """The broker-wide durability is `always` (topics may override with flush.*)."""
        self.failed: BaseException | None = None
        """Set by a failed write or fsync: the log is read-only from then on."""
        self.last_flush_ms = clock_ms()
        self._waiters: list[asyncio.Future[None]] = []
        self._sealed_unsynced: list[Segment] = []
        """Segments rolled but not yet fsynced (the next sync takes them)."""
        self._syncing: list[Segment] = []
        """Segments a sync in a worker thread is working on: never deleted meanwhile."""
        self._dir_unsynced = False
        self._sync_began_at = (-1, 0)
        """(base offset, size) of the active segment when the last sync began."""
        self.closed = False
        self.cleaning: list[Segment] = []
        """Segments a cleaning pass reads (storage.cleaner): never deleted meanwhile."""

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(
        cls,
        fs: FileSystem,
        directory: str,
        topic: str,
        partition: int,
        config: LogConfig,
        *,
        leader_epoch: int = 0,
        log_start_offset: int = 0,
        clock_ms: Callable[[], int] = _wall_ms,
        recovery: RecoveryPlan | None = None,
    ) -> PartitionLog:
        """Open (or create) the log in `directory`.

        `recovery` says whether the broker stopped cleanly and how far each log was fsynced;
        without one every segment is scanned (an unclean start with no checkpoint).
        Raises CorruptLog for damage below the recovery point.
        """
        self = cls(
            fs, directory, topic, partition, config, leader_epoch=leader_epoch, clock_ms=clock_ms
        )
        if not fs.exists(directory):  # one stat; makedirs on an existing one raises inside
            fs.makedirs(directory)
        plan = recovery or RecoveryPlan(clean=False)
        now = clock_ms()
        self.segments = open_segments(
            fs, directory, f"{topic}-{partition}", plan.point_for(directory), now
        )
        if not self.segments:
            # No fsync of the directory here: the first sync of this log does it
            # (`_dir_unsynced`) before any offset counts as durable. An empty log lost to a
            # power cut before then is made again, empty, at the next start (its topic record
            # is in the metadata log), so creating a topic costs no fsync per partition.
            self.segments.append(Segment.create(fs, directory, log_start_offset, now))
            self._dir_unsynced = True
        self.log_start_offset = max(log_start_offset, self.segments[0].base_offset)
        self.durable_offset = self.log_end_offset
        return self

    @property
    def hw_is_durable(self) -> bool:
        """Whether acks wait for fsync and the high watermark is the durable offset."""
        return self.sync_on_ack

    @hw_is_durable.setter
    def hw_is_durable(self, broker_always: bool) -> None:
        self.broker_always = broker_always

    @property
    def sync_on_ack(self) -> bool:
        """Acks wait for fsync: broker durability=always unless the topic sets flush.*."""
        if self.config.flush_messages == 1 or self.config.flush_ms == 0:
            return True
        if self.config.flush_messages > 1 or self.config.flush_ms > 0:
            return False
        return self.broker_always

    def flush_due(self, now_ms: int, default_interval_ms: int) -> bool:
        """For logs not synced on ack: whether the periodic fsync is due."""
        if self.durable_offset >= self.log_end_offset:
            return False
        if (
            self.config.flush_messages > 0
            and self.log_end_offset - self.durable_offset >= self.config.flush_messages
        ):
            return True
        interval = self.config.flush_ms if self.config.flush_ms > 0 else default_interval_ms
        return now_ms - self.last_flush_ms >= interval

    def close(self) -> None:
        self.closed = True
        for segment in self.segments:
            segment.close()
        self._wake_readers()  # a long poll looks again and finds the log gone

    # -- offsets ---------------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        return self.segments[-1].next_offset

    @property
    def high_watermark(self) -> int:
        """What consumers may read: only fsynced data when acks wait for fsync."""
        return self.durable_offset if self.hw_is_durable else self.log_end_offset

    def mark_durable(self, offset: int) -> None:
        """Record that every offset below `offset` is fsynced; wakes long-polling readers."""
        self.last_flush_ms = self._clock_ms()
        if offset > self.durable_offset:
            self.durable_offset = offset
            if self.hw_is_durable:
                self._wake_readers()

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # -- writing ---------------------------------------------------------------------------

    def append(self, batch: bytearray | memoryview, header: BatchHeader) -> int:
        """Assign offsets to one validated batch and append it; returns its base offset.

        A bytearray is patched in place. A memoryview (a view into the request) is left as it
        was: below SPLIT_WRITE_BYTES it is copied and patched, from there on only its first
        PATCHED_BYTES are, and the rest goes to the file from the view.

        Raises StorageError if the log failed earlier or this write fails (disk full, I/O
        error); a failed write leaves no partial batch and the log read-only.
        """
        if self.failed is not None:
            raise StorageError(
                f"{self.topic}-{self.partition} is read-only after a storage failure: {self.failed}"
            )
        base_offset = self.log_end_offset
        head: bytearray | None = None
        if isinstance(batch, memoryview):
            if len(batch) < SPLIT_WRITE_BYTES:
                batch = bytearray(batch)
            else:
                head = bytearray(batch[:PATCHED_BYTES])
        patched = batch if head is None else head  # a bytearray either way
        patch_batch(patched, 0, base_offset=base_offset, leader_epoch=self.leader_epoch)
        try:
            self._maybe_roll(len(batch), header.last_offset_delta)
        except OSError as exc:
            self.fail(exc)
            raise StorageError(f"cannot roll {self.topic}-{self.partition}: {exc}") from exc
        stored = BatchHeader(
            base_offset,
            header.batch_length,
            self.leader_epoch,
            header.magic,
            header.crc,
            header.attributes,
            header.last_offset_delta,
            header.base_timestamp,
            header.max_timestamp,
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
            header.record_count,
        )
        try:
            self.segments[-1].append(batch, stored, head=head)
        except OSError as exc:
            self.fail(exc)
            raise StorageError(f"write to {self.topic}-{self.partition} failed: {exc}") from exc
        if not self.sync_on_ack:
            self._wake_readers()
        return base_offset

    def fail(self, exc: BaseException) -> None:
        """Make the log read-only after a storage failure (never retried, never guessed)."""
        if self.failed is None:
            self.failed = exc
            log.error(
                "%s-%d: storage failure, the log now refuses writes (reads go on): %s",
                self.topic,
                self.partition,
                exc,
            )

    def _maybe_roll(self, incoming_bytes: int, last_offset_delta: int) -> None:
        active = self.segments[-1]
        if active.size == 0:
            return
        too_big = active.size + incoming_bytes > min(self.config.segment_bytes, 2**31 - 1)
        # Age counts from when the segment was created (or opened) by the broker's clock, not
        # from record timestamps: a producer's old timestamps must not roll every batch.
        too_old = self._clock_ms() - active.created_ms >= self.config.segment_ms
        overflow = not fits_relative(active.base_offset, active.next_offset + last_offset_delta)
        if too_big or too_old or overflow:
            self.roll()

    def roll(self) -> None:
        """Seal the active segment and start a new one at the log end offset.

        No fsync here, on the event loop: the next sync (`begin_sync` / `sync_files`, in a
        worker thread) fsyncs the sealed segment, its indexes and the directory before any
        offset in the new segment counts as durable.
        """
        active = self.segments[-1]
        active.add_final_time_entry()
        active.persist_indexes()
        segment = Segment.create(self.fs, self.directory, active.next_offset, self._clock_ms())
        self._sealed_unsynced.append(active)
        self._dir_unsynced = True
        self.segments.append(segment)

    def unsynced_bytes(self) -> int:
        """Bytes appended to the active segment since the last sync began (what the next
        fsync of it writes, sealed segments aside)."""
        active = self.segments[-1]
        base, size = self._sync_began_at
        return active.size - size if active.base_offset == base else active.size

    def begin_sync(self) -> tuple[int, list[Segment], bool]:
        """On the loop: (offset durable once synced, segments to fsync, directory too?).

        Pass the result to `sync_files` (any thread), then call `end_sync` on the loop.
        """
        target = self.log_end_offset
        self._sync_began_at = (self.segments[-1].base_offset, self.segments[-1].size)
        segments = [*self._sealed_unsynced, self.segments[-1]]
        self._sealed_unsynced = []
        dir_unsynced, self._dir_unsynced = self._dir_unsynced, False
        self._syncing.extend(segments)
        return target, segments, dir_unsynced

    def sync_files(self, segments: list[Segment], dir_unsynced: bool) -> None:
        """fsync sealed segments (log and indexes), the active log, then the directory."""
        for sealed in segments[:-1]:
            sealed.flush()
            sealed.sync_indexes()
        segments[-1].flush()
        if dir_unsynced:
            self.fs.fsync_dir(self.directory)

    def end_sync(self, segments: list[Segment]) -> None:
        for segment in segments:
            self._syncing.remove(segment)

    def flush(self) -> None:
        """fsync everything appended so far, synchronously (callers mark it durable)."""
        _, segments, dir_unsynced = self.begin_sync()
        try:
            self.sync_files(segments, dir_unsynced)
        finally:
            self.end_sync(segments)

    def flush_all(self) -> None:
        """`flush`, and the active segment's indexes too (a clean stop loads them)."""
        active = self.segments[-1]
        active.add_final_time_entry()
        active.persist_indexes()
        self.flush()
        active.sync_indexes()

    def _pinned(self, segment: Segment) -> bool:
        """Whether a sync or a cleaning pass still needs `segment`'s files (keep them)."""
        return any(segment is s for s in (*self._sealed_unsynced, *self._syncing, *self.cleaning))

    def replace_segments(self, old: list[Segment], new: Segment) -> bool:
        """Put a cleaned segment in place of the consecutive segments `old` (on the loop).

        The files were already swapped on disk (storage.cleaner); this swaps the list and
        costs no I/O. The caller closes the old segments' descriptors, off the loop: they are
        the last references to unlinked files, so closing them frees their blocks and page
        cache (24 ms for 64 MB here). Returns False, and leaves the list as it was, if `old`
        is no longer a run of this log's segments (the log was closed).
        """
        starts = [i for i, s in enumerate(self.segments) if s is old[0]]
        if not starts or self.closed:
            return False
        start = starts[0]
        run = self.segments[start : start + len(old)]
        same = len(run) == len(old) and all(a is b for a, b in zip(run, old, strict=True))
        if not same or start + len(old) >= len(self.segments):  # never the active segment
            return False
        self.segments[start : start + len(old)] = [new]
        return True

    def prepare_checkpoint(self) -> tuple[int, Segment]:
        """On the loop: write pending index entries; returns (recovery point, segment to sync).

        Once the returned segment's indexes are fsynced (`Segment.sync_indexes`, off the loop)
        the recovery point may be checkpointed: every offset below it and its index entries
        are on disk.
        """
        point = self.durable_offset
        active = self.segments[-1]
        active.persist_indexes()
        return point, active

    # -- reading ---------------------------------------------------------------------------

    def _segment_for(self, offset: int) -> int:
        bases = [s.base_offset for s in self.segments]
        return max(bisect.bisect_right(bases, offset) - 1, 0)

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> bytes:
        """Whole batches from the one holding `offset`; at least one batch if any (KIP-74).

        Batches at or above `max_offset` (the high watermark) are left out. The caller checks
        `offset` against [log_start_offset, log_end_offset] first.
        """
        data = self.read_view(offset, max_bytes, max_offset=max_offset)
        return data if isinstance(data, bytes) else bytes(data)

    def read_view(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None
    ) -> bytes | memoryview:
        """`read`, possibly as a view of the bytes read from the segment (no second copy):
        for the Fetch path, which hands it to the socket unchanged."""
        limit = self.log_end_offset if max_offset is None else max_offset
        i = self._segment_for(offset)
        out: bytes | memoryview = b""
        while i < len(self.segments):
            segment = self.segments[i]
            found = segment.find_batch(offset)
            if found is not None:
                if found[1].base_offset >= limit:
                    return out
                data = segment.read_view(found[0], max_bytes - len(out), max_offset=limit)
                out = bytes(out) + bytes(data) if out else data
                # A segment the cleaner left with only empty batches (storage.cleaner keeps
                # the last batch of each group, header only) must not be all a fetch gets:
                # librdkafka doubles its fetch size on every response without a record and
                # fails with MSG_SIZE_TOO_LARGE after ten of them. Go on into the next segment,
                # as Kafka, whose cleaner leaves such segments without any batch, does.
                ends = _past_empty_batches(data)
                if ends is None or len(out) >= max_bytes:
                    return out
                offset = ends
            i += 1
        return out

    def lookup_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """(offset, timestamp) of the first record whose timestamp is >= `timestamp`, at or
        above the log start offset; None if there is none."""
        for segment in self.segments:
            if segment.next_offset <= self.log_start_offset:
                continue
            found = segment.lookup_timestamp(timestamp, self.log_start_offset)
            if found is not None:
                return found
        return None

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The offset of the first record whose timestamp is >= `timestamp`, or None."""
        found = self.lookup_timestamp(timestamp)
        return None if found is None else found[0]

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, offset) of the first record with the largest timestamp, or (-1, -1)."""
        best: Segment | None = None
        for segment in self.segments:
            if segment.max_timestamp > (best.max_timestamp if best else -1):
                best = segment
        return best.max_timestamp_record() if best is not None else (-1, -1)

    # -- long polls ------------------------------------------------------------------------

    def wait_for_append(self, fut: asyncio.Future[None] | None = None) -> asyncio.Future[None]:
        """A future resolved at the next append or when the log closes: `fut`,
        when given (one future a long poll over several logs shares), else a new one."""
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
        # Drop waiters whose Fetch gave up (timed out, or its client left), or an idle
        # partition would keep every abandoned long poll's future until its next append.
        self._waiters = [w for w in self._waiters if not w.done()]
        self._waiters.append(fut)
        return fut

    def _wake_readers(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- retention and deletion --------------------------------------------------------------

    def delete_records_before(self, offset: int) -> None:
        """Move the log start offset to `offset`, dropping segments wholly below it."""
        self.log_start_offset = max(self.log_start_offset, offset)
        while (
            len(self.segments) > 1
            and self.segments[1].base_offset <= self.log_start_offset
            and not self._pinned(self.segments[0])
        ):
            self._delete_segment(self.segments.pop(0))

    def apply_retention(self) -> int:
        """Delete closed segments past retention.ms or beyond retention.bytes; returns count.

        Only with `delete` in cleanup.policy: a `compact`-only topic keeps every segment.
        """
        deleted = 0
        if not self.config.cleanup_delete:
            return 0
        now = self._clock_ms()
        while len(self.segments) > 1 and not self._pinned(self.segments[0]):
            oldest = self.segments[0]
            expired = (
                self.config.retention_ms >= 0
                and oldest.max_timestamp >= 0
                and now - oldest.max_timestamp > self.config.retention_ms
            )
            oversized = (
                self.config.retention_bytes >= 0
                and self.size_bytes - oldest.size >= self.config.retention_bytes
            )
            if not (expired or oversized):
                break
            self.segments.pop(0)
            self._delete_segment(oldest)
            self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
            deleted += 1
        return deleted

    def _delete_segment(self, segment: Segment) -> None:
        """Rename to `.deleted` first (atomic), then remove indexes and the renamed log."""
        segment.close()
        deleted = segment.path + ".deleted"
        self.fs.rename(segment.path, deleted)
        for path in segment.file_paths()[1:]:
            if self.fs.exists(path):
                self.fs.remove(path)
        self.fs.remove(deleted)
        log.info("%s-%d: deleted segment %s", self.topic, self.partition, segment.path)

    def delete_files(self) -> None:
        """Remove every file of this log (topic deletion)."""
        self.close()
        for segment in self.segments:
            for path in segment.file_paths():
                if self.fs.exists(path):
                    self.fs.remove(path)


def _past_empty_batches(data: bytes | memoryview) -> int | None:
    """The offset after `data` if it holds batches and none with a record, else None."""
    end = None
    for _, header in iter_batch_headers(data):
        if header.record_count or header.is_control:
            return None
        end = header.next_offset
    return end
