"""Helpers shared by the cleaner tests: a keyed workload, a model of what must survive, readers.

The model is Kafka's promise for a compacted log: reading from the beginning gives, for every
key, its latest record at its original offset (and older ones only where the cleaner has not
been yet); a tombstone goes once its delete horizon has passed; offsets never change.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from kafkito.protocol.records import (
    build_batch,
    iter_batch_headers,
    iter_records,
    read_batch_header,
    records_section,
)
from kafkito.storage.fs import FileSystem
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.storage.recovery import RecoveryPlan
from kafkito.testing.faulty_fs import FaultyFileSystem

DIR = "/data/logs/c-0.abc"
BASE_TS = 1_700_000_000_000


class Clock:
    def __init__(self, now_ms: int = BASE_TS) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def compact_config(**overrides: object) -> LogConfig:
    values: dict[str, object] = {
        "segment_bytes": 1500,
        "cleanup_compact": True,
        "cleanup_delete": False,
        "min_cleanable_dirty_ratio": 0.0,
        "delete_retention_ms": 10_000,
    }
    values.update(overrides)
    return LogConfig(**values)  # type: ignore[arg-type]


def open_compacted(
    fs: FileSystem,
    clock: Callable[[], int],
    *,
    plan: RecoveryPlan | None = None,
    config: LogConfig | None = None,
) -> PartitionLog:
    plog = PartitionLog.open(
        fs, DIR, "c", 0, config or compact_config(), clock_ms=clock, recovery=plan
    )
    return plog


def append_keyed(
    plog: PartitionLog,
    records: list[tuple[bytes | None, bytes | None]],
    ts: int,
    *,
    codec: int = 0,
    producer_id: int = -1,
) -> int:
    batch = bytearray(
        build_batch(
            records,
            codec=codec,
            base_timestamp=ts,
            producer_id=producer_id,
            producer_epoch=0 if producer_id >= 0 else -1,
            base_sequence=0 if producer_id >= 0 else -1,
        )
    )
    return plog.append(batch, read_batch_header(batch))


def make_durable(plog: PartitionLog) -> None:
    plog.flush()
    plog.mark_durable(plog.log_end_offset)


def read_all(plog: PartitionLog) -> list[tuple[int, bytes | None, bytes | None]]:
    """(offset, key, value) of every record from the log start, through PartitionLog.read."""
    out: list[tuple[int, bytes | None, bytes | None]] = []
    offset = plog.log_start_offset
    while offset < plog.log_end_offset:
        data = plog.read(offset, 1 << 20)
        assert data, f"no batch at or after offset {offset} below {plog.log_end_offset}"
        last = offset
        for _, header in iter_batch_headers(data):
            section = records_section(data[_ : _ + header.size], header, max_bytes=64 << 20)
            for record in iter_records(section, header.record_count):
                o = header.base_offset + record.offset_delta
                if o >= offset:
                    out.append((o, record.key, record.value))
            last = header.next_offset
        offset = last
    return out


@dataclass
class Model:
    """Every record written, by offset; what a reader may and must see."""

    written: dict[int, tuple[bytes, bytes | None, int]] = field(default_factory=dict)
    """offset -> (key, value, timestamp)."""

    def latest(self) -> dict[bytes, int]:
        latest: dict[bytes, int] = {}
        for offset in sorted(self.written):
            latest[self.written[offset][0]] = offset
        return latest

    def check(
        self,
        seen: list[tuple[int, bytes | None, bytes | None]],
        *,
        durable_end: int,
        seed: int,
        tombstones_gone: bool = False,
        fully_compacted_below: int = 0,
    ) -> None:
        """Raise AssertionError, naming the seed, if `seen` breaks the promise.

        `durable_end`: every latest record below it must be there. `fully_compacted_below`:
        below this offset no superseded record may remain.
        """
        offsets = [o for o, _, _ in seen]
        assert offsets == sorted(set(offsets)), f"seed {seed}: offsets repeat or go back"
        latest = self.latest()
        for offset, key, value in seen:
            assert offset in self.written, f"seed {seed}: offset {offset} was never written"
            wkey, wvalue, _ = self.written[offset]
            assert (key, value) == (wkey, wvalue), f"seed {seed}: offset {offset} changed"
            if offset < fully_compacted_below:
                assert latest[wkey] == offset or latest[wkey] >= fully_compacted_below, (
                    f"seed {seed}: superseded offset {offset} of key {wkey!r} survived cleaning"
                )
        present = set(offsets)
        for key, offset in latest.items():
            if offset >= durable_end:
                continue
            value = self.written[offset][1]
            if value is None and tombstones_gone:
                assert offset not in present, f"seed {seed}: tombstone of {key!r} not removed"
            elif value is not None:
                assert offset in present, (
                    f"seed {seed}: latest record of key {key!r} at offset {offset} is missing"
                )


def random_workload(
    plog: PartitionLog,
    model: Model,
    rng: random.Random,
    clock: Clock,
    *,
    batches: int,
    keys: int = 12,
    codecs: tuple[int, ...] = (0,),
) -> None:
    """Keyed batches of 1-4 records over a small key space, with tombstones (~15%)."""
    for _ in range(batches):
        clock.now_ms += rng.randrange(1, 50)
        records: list[tuple[bytes | None, bytes | None]] = []
        for _ in range(rng.randrange(1, 5)):
            key = f"k{rng.randrange(keys)}".encode()
            value = None if rng.random() < 0.15 else f"v{rng.randrange(10**6)}".encode() * 3
            records.append((key, value))
        base = append_keyed(plog, records, clock.now_ms, codec=rng.choice(codecs))
        for i, (key, value) in enumerate(records):
            assert key is not None
            model.written[base + i] = (key, value, clock.now_ms)


class PowerCut(Exception):
    """Raised by CutFS right after the call it cut the power (or killed the process) at."""


_MUTATING = ("open", "pwrite", "fsync", "truncate", "fsync_dir", "remove", "rename", "makedirs")
CUT_MODES = ("kill", "drop", "zeros", "garbage", "partial")
"""kill: the process dies, every write stays (kill -9); the others: power loss, by how the
unsynced bytes come back (FaultyFileSystem.crash)."""


class CutFS:
    """A FileSystem over a FaultyFileSystem that can crash right after its n-th mutating call.

    After a cut the proxy points at the disk as it comes back, so the caller reopens the log on
    the same object; the log that was running is abandoned, never used again.
    """

    def __init__(self, seed: int) -> None:
        self.inner = FaultyFileSystem(seed=seed)
        self.calls = 0
        self.cut_at = -1
        self.mode = "drop"

    def arm(self, after_calls: int, mode: str) -> None:
        self.cut_at, self.mode = self.calls + after_calls, mode

    dead = False
    """Between a cut and `revive`: the crashed process may not touch the disk any more."""

    def revive(self) -> None:
        """The machine (or the process) is back: the caller reopens the log now."""
        self.dead = False

    def __getattr__(self, name: str) -> object:
        if self.dead:
            if name == "close":
                return lambda fd: None
            raise PowerCut(f"{name} after the crash")
        attr = getattr(self.inner, name)
        if name not in _MUTATING:
            return attr

        def counted(*args: object, **kwargs: object) -> object:
            result = attr(*args, **kwargs)  # type: ignore[operator]
            self.calls += 1
            if self.calls == self.cut_at:
                self.cut_at = -1
                self.dead = True
                if self.mode != "kill":
                    self.inner = self.inner.crash(self.mode)  # type: ignore[arg-type]
                raise PowerCut
            return result

        return counted
