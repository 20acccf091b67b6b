"""A partition's log: an ordered list of segments, one writer, many readers.

Offsets are assigned here: a produced batch is patched in place with the log end offset and the
leader epoch (KAFKA-NOTES §4) and appended to the active segment. The segment rolls when it
reaches `segment_bytes` or gets older than `segment_ms`. Retention deletes whole closed segments
(never the active one) by time and by size, moving the log start offset forward.

Readers are woken through `wait_for_append`, a future per waiting Fetch, so long polls never
sleep in loops.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafkito.protocol.records import BatchHeader, patch_batch
from kafkito.storage.fs import FileSystem
from kafkito.storage.segment import Segment

log = logging.getLogger(__name__)


@dataclass(slots=True)
class LogConfig:
    """The per-topic settings the log acts on."""

    segment_bytes: int = 1 << 30
    segment_ms: int = 7 * 24 * 3600 * 1000
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    max_message_bytes: int = 1048588


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
        self.hw_is_durable = True
        self._waiters: list[asyncio.Future[None]] = []

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
    ) -> PartitionLog:
        """Open (or create) the log in `directory`, scanning segments and cutting a torn tail."""
        self = cls(
            fs, directory, topic, partition, config, leader_epoch=leader_epoch, clock_ms=clock_ms
        )
        fs.makedirs(directory)
        names = sorted(n for n in fs.listdir(directory) if n.endswith(".log"))
        now = clock_ms()
        for i, name in enumerate(names):
            base = int(name[:-4])
            segment, scan = Segment.open_existing(
                fs, os.path.join(directory, name), base, now, verify_crc=True
            )
            if scan.torn_bytes:
                if i != len(names) - 1:
                    log.error(
                        "%s-%d: segment %s is damaged (%s) but is not the last one",
                        topic,
                        partition,
                        name,
                        scan.reason,
                    )
                log.warning(
                    "%s-%d: cutting %d bytes of torn tail from %s (%s)",
                    topic,
                    partition,
                    scan.torn_bytes,
                    name,
                    scan.reason,
                )
                segment.truncate_to(scan.valid_bytes)
            self.segments.append(segment)
        if not self.segments:
            self.segments.append(Segment.create(fs, directory, log_start_offset, now))
            fs.fsync_dir(directory)
        self.log_start_offset = max(log_start_offset, self.segments[0].base_offset)
        self.durable_offset = self.log_end_offset
        return self

    def close(self) -> None:
        for segment in self.segments:
            segment.close()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.cancel()
        self._waiters.clear()

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
        if offset > self.durable_offset:
            self.durable_offset = offset
            if self.hw_is_durable:
                self._wake_readers()

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    # -- writing ---------------------------------------------------------------------------

    def append(self, batch: bytearray, header: BatchHeader) -> int:
        """Assign offsets to one validated batch and append it; returns its base offset."""
        base_offset = self.log_end_offset
        patch_batch(batch, 0, base_offset=base_offset, leader_epoch=self.leader_epoch)
        self._maybe_roll(len(batch))
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
        self.segments[-1].append(batch, stored)
        if not self.hw_is_durable:
            self._wake_readers()
        return base_offset

    def _maybe_roll(self, incoming_bytes: int) -> None:
        active = self.segments[-1]
        if active.size == 0:
            return
        too_big = active.size + incoming_bytes > self.config.segment_bytes
        too_old = self._clock_ms() - active.created_ms >= self.config.segment_ms
        if too_big or too_old:
            self.roll()

    def roll(self) -> None:
        """Close the active segment for writes and start a new one at the log end offset."""
        active = self.segments[-1]
        active.flush()
        segment = Segment.create(self.fs, self.directory, active.next_offset, self._clock_ms())
        self.fs.fsync_dir(self.directory)
        self.segments.append(segment)

    def flush(self) -> None:
        """fsync the active segment (closed segments were fsynced when they rolled)."""
        self.segments[-1].flush()

    # -- reading ---------------------------------------------------------------------------

    def _segment_for(self, offset: int) -> int:
        bases = [s.base_offset for s in self.segments]
        return max(bisect.bisect_right(bases, offset) - 1, 0)

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> bytes:
        """Whole batches from the one holding `offset`; at least one batch if any (KIP-74).

        Batches at or above `max_offset` (the high watermark) are left out. The caller checks
        `offset` against [log_start_offset, log_end_offset] first.
        """
        limit = self.log_end_offset if max_offset is None else max_offset
        i = self._segment_for(offset)
        while i < len(self.segments):
            segment = self.segments[i]
            found = segment.find_batch(offset)
            if found is not None:
                if found[1].base_offset >= limit:
                    return b""
                return segment.read(found[0], max_bytes, max_offset=limit)
            i += 1
        return b""

    def offset_for_timestamp(self, timestamp: int) -> int | None:
        """The first offset with a batch max timestamp >= `timestamp`, or None if none."""
        for segment in self.segments:
            if segment.max_timestamp >= timestamp:
                found = segment.offset_for_timestamp(timestamp)
                if found is not None:
                    return max(found, self.log_start_offset)
        return None

    def max_timestamp(self) -> tuple[int, int]:
        """(timestamp, offset) of the batch with the largest timestamp, or (-1, -1)."""
        best_ts, best_offset = -1, -1
        for segment in self.segments:
            if segment.time_stamps and segment.time_stamps[-1] > best_ts:
                best_ts = segment.time_stamps[-1]
                best_offset = segment.time_offsets[-1]
        return best_ts, best_offset

    # -- long polls ------------------------------------------------------------------------

    def wait_for_append(self) -> asyncio.Future[None]:
        """A future resolved at the next append (or cancelled when the log closes)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
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
        while len(self.segments) > 1 and self.segments[1].base_offset <= self.log_start_offset:
            self._delete_segment(self.segments.pop(0))

    def apply_retention(self) -> int:
        """Delete closed segments past retention.ms or beyond retention.bytes; returns count."""
        deleted = 0
        now = self._clock_ms()
        while len(self.segments) > 1:
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
        segment.close()
        self.fs.remove(segment.path)
        log.info("%s-%d: deleted segment %s", self.topic, self.partition, segment.path)

    def delete_files(self) -> None:
        """Remove every file of this log (topic deletion)."""
        self.close()
        for segment in self.segments:
            if self.fs.exists(segment.path):
                self.fs.remove(segment.path)
