"""PartitionLog and Segment on the FileSystem seam: indexes, recovery, retention, disk faults.

Most tests run on `FaultyFileSystem` (in memory: fast, and able to lose unsynced bytes); the
file-damage tests edit real files through `OsFileSystem`, as an operator's disk would be damaged.
Randomised tests are seeded and say their seed when they fail (RELIABILITY B3-B9, B17).
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from test_storage_formats import make_batch

from kafkito.errors import CorruptLog, StorageError
from kafkito.protocol.records import build_batch, iter_batch_headers, read_batch_header
from kafkito.storage.checkpoint import read_checkpoint, write_checkpoint
from kafkito.storage.durability import GroupCommitter
from kafkito.storage.fs import FileSystem, OsFileSystem
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.storage.recovery import RecoveryPlan
from kafkito.storage.segment import Segment, index_paths
from kafkito.storage.timestamps import iter_record_timestamps
from kafkito.testing.faulty_fs import FaultyFileSystem

LOGS = "/data/logs"
DIR = f"{LOGS}/t-0.abc"


class Clock:
    def __init__(self, now_ms: int = 1_000_000) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def open_log(
    fs: FileSystem,
    directory: str = DIR,
    *,
    plan: RecoveryPlan | None = None,
    clock: Callable[[], int] | None = None,
    **config: int,
) -> PartitionLog:
    cfg = LogConfig(**{"segment_bytes": 6000, **config})  # type: ignore[arg-type]
    return PartitionLog.open(fs, directory, "t", 0, cfg, clock_ms=clock or Clock(), recovery=plan)


def append(plog: PartitionLog, timestamps: list[int], *, codec: int = 0, size: int = 40) -> int:
    batch = bytearray(make_batch(timestamps, codec=codec, value_size=size))
    return plog.append(batch, read_batch_header(batch))


def fill(plog: PartitionLog, batches: int, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(0)
    for _ in range(batches):
        n = rng.randrange(1, 6)
        append(plog, [rng.randrange(1000, 9000) for _ in range(n)], codec=rng.choice([0, 0, 4]))


def all_batches(plog: PartitionLog) -> list[bytes]:
    out, offset = [], plog.log_start_offset
    while offset < plog.log_end_offset:
        data = plog.read(offset, 1 << 20)
        assert data, f"nothing read at offset {offset}"
        for pos, header in iter_batch_headers(data):
            out.append(data[pos : pos + header.size])
            offset = header.next_offset
    return out


def make_durable(plog: PartitionLog, fs: FileSystem, log_dir: str = LOGS) -> None:
    """What group commit and the housekeeping checkpoint do, synchronously."""
    plog.flush()
    plog.mark_durable(plog.log_end_offset)
    point, segment = plog.prepare_checkpoint()
    segment.sync_indexes()
    write_checkpoint(fs, log_dir, {os.path.basename(plog.directory): point})


def unclean(fs: FileSystem, log_dir: str = LOGS) -> RecoveryPlan:
    return RecoveryPlan(clean=False, points=read_checkpoint(fs, log_dir))


def index_state(plog: PartitionLog) -> list[tuple[list[int], list[int], list[int], list[int]]]:
    return [
        (s.index_offsets, s.index_positions, s.time_stamps, s.time_offsets) for s in plog.segments
    ]


# -- clean restart: indexes loaded, not rebuilt -------------------------------------------------


def test_clean_restart_loads_indexes_instead_of_scanning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fs = FaultyFileSystem()
    plog = open_log(fs)
    fill(plog, 300)
    assert len(plog.segments) > 5
    before, batches, end = index_state(plog), all_batches(plog), plog.log_end_offset
    plog.flush_all()
    plog.close()

    def no_scan(*_: object, **__: object) -> None:
        raise AssertionError("a clean restart must not scan the log")

    monkeypatch.setattr(Segment, "_scan", no_scan)
    again = open_log(fs, plan=RecoveryPlan(clean=True))
    assert again.log_end_offset == end
    assert index_state(again) == before
    assert all_batches(again) == batches


@pytest.mark.parametrize("which", ["closed", "active"])
@pytest.mark.parametrize("damage", ["delete", "zero", "garble", "halve", "append_garbage"])
def test_damaged_index_is_detected_and_rebuilt(tmp_path: Path, which: str, damage: str) -> None:
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 200)
    plog.flush_all()
    before, batches = index_state(plog), all_batches(plog)
    answers = [plog.lookup_timestamp(ts) for ts in range(900, 9100, 250)]
    plog.close()
    segment = plog.segments[1 if which == "closed" else -1]
    rng = random.Random(7)
    for path in index_paths(segment.path):
        size = os.path.getsize(path)
        if damage == "delete":
            os.remove(path)
        elif damage == "zero":
            Path(path).write_bytes(bytes(size + 24))
        elif damage == "garble":
            Path(path).write_bytes(rng.randbytes(size))
        elif damage == "halve":
            os.truncate(path, size // 2)
        else:
            with open(path, "ab") as f:
                f.write(rng.randbytes(rng.randrange(1, 1024)))
    again = open_log(fs, directory, plan=RecoveryPlan(clean=True))
    assert index_state(again) == before
    assert all_batches(again) == batches
    assert [again.lookup_timestamp(ts) for ts in range(900, 9100, 250)] == answers
    again.close()
    # ... and the rebuilt indexes were written back: the next start loads them as they are.
    third = open_log(fs, directory, plan=RecoveryPlan(clean=True))
    assert index_state(third) == before


# -- unclean restart: torn tails are cut, damage below the recovery point refuses ------------


def test_torn_tail_at_random_positions_is_cut_at_the_last_good_batch(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    fs = OsFileSystem()
    for trial in range(12):
        directory = str(tmp_path / f"t-{trial}.abc")
        plog = open_log(fs, directory)
        fill(plog, 60, rng)
        make_durable(plog, fs, str(tmp_path))
        durable = plog.log_end_offset
        fill(plog, rng.randrange(1, 8), rng)  # written after the recovery point
        batches = all_batches(plog)
        plog.close()
        active = plog.segments[-1]
        headers = [h for _, h in iter_batch_headers(Path(active.path).read_bytes())]
        cut = rng.randrange(active.size - headers[-1].size + 1, active.size)
        os.truncate(active.path, cut)
        again = open_log(fs, directory, plan=unclean(fs, str(tmp_path)))
        kept = all_batches(again)
        assert kept == batches[: len(kept)], f"seed {seed}"
        assert len(kept) == len(batches) - 1, f"seed {seed}: only the torn batch goes"
        assert again.log_end_offset >= durable
        assert append(again, [5000]) == again.log_end_offset - 1 == headers[-1].base_offset
        again.close()


@pytest.mark.parametrize("target", ["log", "index"])
def test_random_garbage_appended_is_cut(tmp_path: Path, target: str) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 80, rng)
    make_durable(plog, fs, str(tmp_path))
    batches, end = all_batches(plog), plog.log_end_offset
    plog.close()
    active = plog.segments[-1]
    path = active.path if target == "log" else index_paths(active.path)[0]
    with open(path, "ab") as f:
        f.write(rng.randbytes(rng.randrange(1, 1025)))
    again = open_log(fs, directory, plan=unclean(fs, str(tmp_path)))
    assert again.log_end_offset == end, f"seed {seed}"
    assert all_batches(again) == batches
    assert os.path.getsize(active.path) == active.size


def flip_bit(path: str, position: int, bit: int = 3) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)[0]
        f.seek(position)
        f.write(bytes([byte ^ (1 << bit)]))


def test_bit_flip_in_the_last_batch_above_the_recovery_point_truncates_from_it(
    tmp_path: Path,
) -> None:
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 50)
    make_durable(plog, fs, str(tmp_path))
    durable = plog.log_end_offset
    fill(plog, 3)
    batches = all_batches(plog)
    plog.close()
    active = plog.segments[-1]
    positions = [p for p, _ in iter_batch_headers(Path(active.path).read_bytes())]
    last_pos = positions[-1]
    flip_bit(active.path, last_pos + 70)
    again = open_log(fs, directory, plan=unclean(fs, str(tmp_path)))
    assert again.log_end_offset >= durable
    assert all_batches(again) == batches[:-1]


def test_bit_flip_below_the_recovery_point_refuses_to_start(tmp_path: Path) -> None:
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 60)
    make_durable(plog, fs, str(tmp_path))
    plog.close()
    active = plog.segments[-1]
    positions = [p for p, _ in iter_batch_headers(Path(active.path).read_bytes())]
    flip_bit(active.path, positions[len(positions) // 2] + 65)
    for path in index_paths(active.path):
        os.remove(path)  # nothing trusted: the whole active segment is scanned
    with pytest.raises(CorruptLog) as raised:
        open_log(fs, directory, plan=unclean(fs, str(tmp_path)))
    message = str(raised.value)
    assert active.path in message
    assert f"byte position {positions[len(positions) // 2]}" in message
    assert "restore" in message


def test_bit_flip_in_an_older_segment_is_never_served(tmp_path: Path) -> None:
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 200)
    batches = all_batches(plog)
    make_durable(plog, fs, str(tmp_path))
    plog.close()
    older = plog.segments[1]
    flip_bit(older.path, 62)  # inside the first batch's records
    again = open_log(fs, directory, plan=unclean(fs, str(tmp_path)))
    with pytest.raises(CorruptLog, match="crc mismatch"):
        again.read(older.base_offset, 1 << 20)
    assert again.read(plog.segments[2].base_offset, 1 << 20)  # the rest is served
    again.close()
    for path in index_paths(older.path):
        os.remove(path)  # now the segment must be rebuilt, and the rebuild finds the damage
    with pytest.raises(CorruptLog, match=older.path):
        open_log(fs, directory, plan=unclean(fs, str(tmp_path)))
    assert batches  # nothing was silently dropped: the files are untouched
    assert os.path.getsize(older.path) == older.size


def test_log_ending_before_the_recovery_point_refuses_to_start(tmp_path: Path) -> None:
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 60)
    make_durable(plog, fs, str(tmp_path))
    plog.close()
    active = plog.segments[-1]
    os.truncate(active.path, 0)
    with pytest.raises(CorruptLog, match="fsynced"):
        open_log(fs, directory, plan=unclean(fs, str(tmp_path)))


def test_leftovers_of_interrupted_operations_are_removed(tmp_path: Path) -> None:
    fs, directory = OsFileSystem(), str(tmp_path / "t-0.abc")
    plog = open_log(fs, directory)
    fill(plog, 100)
    batches = all_batches(plog)
    plog.flush_all()
    plog.close()
    leftovers = [
        "00000000000000099999.log.deleted",
        "00000000000000099999.index",
        "00000000000000099999.timeindex",
        "producer.snapshot.tmp",
    ]
    for name in leftovers:
        Path(directory, name).write_bytes(b"junk")
    again = open_log(fs, directory, plan=RecoveryPlan(clean=True))
    assert not set(leftovers) & set(os.listdir(directory))
    assert all_batches(again) == batches


# -- power loss: only unsynced bytes go ---------------------------------------------------------


@pytest.mark.parametrize("mode", ["drop", "zeros", "garbage", "partial"])
def test_power_loss_keeps_every_fsynced_batch(mode: str) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    fs = FaultyFileSystem(seed=seed)
    plog = open_log(fs)
    durable: list[bytes] = []
    for _ in range(8):
        fill(plog, rng.randrange(5, 40), rng)
        plog.flush()
        plog.mark_durable(plog.log_end_offset)
        durable = all_batches(plog)
        if rng.random() < 0.5:
            make_durable(plog, fs)
    fill(plog, rng.randrange(1, 30), rng)  # never fsynced
    after = fs.crash(mode)  # type: ignore[arg-type]
    again = open_log(after, plan=unclean(after))
    got = all_batches(again)
    assert got[: len(durable)] == durable, f"seed {seed}"
    assert append(again, [1]) == again.log_end_offset - 1


# -- retention and rolling (B17) ------------------------------------------------------------------


def test_retention_by_time_deletes_whole_closed_segments_only() -> None:
    fs, clock = FaultyFileSystem(), Clock(10_000)
    plog = open_log(fs, clock=clock, retention_ms=5_000)
    for i in range(120):
        append(plog, [1_000 + i * 100])
    segments = list(plog.segments)
    clock.now_ms = 1_000 + 60 * 100 + 5_001  # batches up to ~offset 60 are older than 5 s
    assert plog.apply_retention() == 0  # rolled but not yet fsynced: kept for the sync
    plog.flush()
    deleted = plog.apply_retention()
    assert deleted > 0
    assert plog.segments == segments[deleted:]
    assert plog.log_start_offset == plog.segments[0].base_offset
    for gone in segments[:deleted]:
        assert gone.max_timestamp < clock.now_ms - 5_000
        assert not fs.exists(gone.path)
        assert not any(fs.exists(p) for p in index_paths(gone.path))
    assert plog.segments[0].max_timestamp >= clock.now_ms - 5_000
    clock.now_ms += 10**9
    plog.apply_retention()
    assert plog.segments == [segments[-1]]  # the active segment stays, however old


def test_retention_by_size_keeps_at_least_retention_bytes() -> None:
    plog = open_log(FaultyFileSystem(), retention_bytes=20_000)
    fill(plog, 400)
    plog.flush()
    plog.apply_retention()
    assert plog.size_bytes >= 20_000
    assert plog.size_bytes - plog.segments[0].size < 20_000
    assert plog.log_start_offset == plog.segments[0].base_offset


def test_segment_rolls_by_age_on_the_injected_clock() -> None:
    clock = Clock(50_000)
    plog = open_log(FaultyFileSystem(), clock=clock, segment_ms=1_000, segment_bytes=1 << 30)
    append(plog, [50_000])
    append(plog, [50_100])
    assert len(plog.segments) == 1
    clock.now_ms = 51_001
    append(plog, [51_001])
    assert [s.base_offset for s in plog.segments] == [0, 2]


# -- exact ListOffsets by timestamp ---------------------------------------------------------------


def test_lookup_timestamp_finds_the_first_record_reaching_the_target() -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    plog = open_log(FaultyFileSystem())
    fill(plog, 150, rng)
    records = [r for batch in all_batches(plog) for r in iter_record_timestamps(batch)]
    for target in [0, *(rng.randrange(900, 9100) for _ in range(60)), 10_000]:
        expected = next(((o, ts) for o, ts in records if ts >= target), None)
        assert plog.lookup_timestamp(target) == expected, f"seed {seed} target {target}"
    best = max(ts for _, ts in records)
    assert plog.max_timestamp() == (best, next(o for o, ts in records if ts == best))
    plog.delete_records_before(records[40][0])
    expected = next(((o, ts) for o, ts in records[40:] if ts >= 0), None)
    assert plog.lookup_timestamp(0) == expected


# -- disk full and fsync failure (B8, B9) --------------------------------------------------------


def test_disk_full_on_append_leaves_no_partial_batch_and_the_log_read_only() -> None:
    fs = FaultyFileSystem()
    plog = open_log(fs, segment_bytes=1 << 20)
    fill(plog, 30)
    batches, end = all_batches(plog), plog.log_end_offset
    active = plog.segments[-1]
    fs.fail_writes_after(50, lambda path: path.endswith(".log"))
    with pytest.raises(StorageError):
        append(plog, [1, 2, 3])
    assert plog.failed is not None
    assert fs.read_file(active.path) == b"".join(batches)  # cut back: no partial batch
    assert plog.log_end_offset == end
    fs.clear_faults()
    with pytest.raises(StorageError, match="read-only"):
        append(plog, [4])  # fail-stop until restart, even with space again
    assert all_batches(plog) == batches  # reads go on
    plog.close()
    again = open_log(fs, plan=RecoveryPlan(clean=False))
    assert all_batches(again) == batches
    assert append(again, [5]) == end


async def test_fsync_failure_is_never_acknowledged_and_stops_writes() -> None:
    fs = FaultyFileSystem()
    plog = open_log(fs)
    committer = GroupCommitter()
    fill(plog, 5)
    await committer.wait_durable(plog, plog.log_end_offset - 1)
    durable = plog.durable_offset
    fs.fail_fsyncs(lambda path: path.endswith(".log"))
    fill(plog, 3)
    waits = [committer.wait_durable(plog, plog.log_end_offset - 1) for _ in range(4)]
    outcomes = await asyncio.gather(*waits, return_exceptions=True)
    assert all(isinstance(o, StorageError) for o in outcomes)
    assert plog.durable_offset == plog.high_watermark == durable  # nothing unsynced is visible
    assert committer.failure(plog) is not None
    with pytest.raises(StorageError):
        append(plog, [1])
    fs.clear_faults()
    with pytest.raises(StorageError):
        await committer.wait_durable(plog, plog.log_end_offset - 1)  # never retried


async def test_group_commit_covers_many_waiters_with_few_fsyncs() -> None:
    fs = FaultyFileSystem()
    plog = open_log(fs, segment_bytes=1 << 30)
    committer = GroupCommitter()
    before = fs.fsyncs
    waits = []
    for _ in range(50):
        append(plog, [1])
        waits.append(committer.wait_durable(plog, plog.log_end_offset - 1))
    await asyncio.gather(*waits)
    assert plog.durable_offset == plog.log_end_offset
    assert fs.fsyncs - before <= 2


# -- per-topic flush.messages / flush.ms ------------------------------------------------------


@pytest.mark.parametrize(
    ("broker_always", "flush_messages", "flush_ms", "syncs_on_ack"),
    [
        (True, -1, -1, True),
        (False, -1, -1, False),
        (False, 1, -1, True),
        (False, -1, 0, True),
        (True, 10, -1, False),
        (True, -1, 5000, False),
        (True, 2**63 - 1, 2**63 - 1, True),  # Kafka's defaults mean "not set"
    ],
)
def test_topic_flush_configs_decide_whether_acks_wait_for_fsync(
    broker_always: bool, flush_messages: int, flush_ms: int, syncs_on_ack: bool
) -> None:
    plog = open_log(FaultyFileSystem(), flush_messages=flush_messages, flush_ms=flush_ms)
    plog.hw_is_durable = broker_always
    assert plog.sync_on_ack is syncs_on_ack
    append(plog, [1])
    assert plog.high_watermark == (0 if syncs_on_ack else 1)


def test_flush_is_due_after_flush_messages_or_flush_ms() -> None:
    clock = Clock(0)
    plog = open_log(FaultyFileSystem(), clock=clock, flush_messages=10, flush_ms=500)
    plog.hw_is_durable = False
    append(plog, [1] * 9)
    assert not plog.flush_due(clock.now_ms, 1000)
    append(plog, [1])
    assert plog.flush_due(clock.now_ms, 1000)
    plog.flush()
    plog.mark_durable(plog.log_end_offset)
    append(plog, [1])
    clock.now_ms = 499
    assert not plog.flush_due(clock.now_ms, 1000)
    clock.now_ms = 500
    assert plog.flush_due(clock.now_ms, 1000)


def test_roll_does_no_fsync_on_the_event_loop_and_the_next_sync_covers_it() -> None:
    fs = FaultyFileSystem()
    plog = open_log(fs)
    before = fs.fsyncs
    fill(plog, 150)
    assert len(plog.segments) > 3
    assert fs.fsyncs == before  # rolls wrote indexes and created files, fsynced nothing
    batches = all_batches(plog)
    plog.flush()
    after = fs.crash("garbage")
    again = open_log(after, plan=RecoveryPlan(clean=False))  # no checkpoint: all scanned
    assert all_batches(again) == batches


# -- batches handed over as views (the produce path) ---------------------------------------------


def test_a_large_view_is_written_from_the_request_with_only_its_head_patched(
    tmp_path: Path,
) -> None:
    """From SPLIT_WRITE_BYTES on, the log writes a view's bytes as they are but for the offset
    and epoch it patches in a copy of the first bytes; the request's bytes stay untouched."""
    from kafkito.storage.log import SPLIT_WRITE_BYTES

    plog = PartitionLog.open(OsFileSystem(), str(tmp_path / "t-0"), "t", 0, LogConfig())
    small = build_batch([(None, b"s")])
    big = build_batch([(None, bytes([i % 251]) * 1000) for i in range(SPLIT_WRITE_BYTES // 900)])
    assert len(big) >= SPLIT_WRITE_BYTES > len(small)
    frames = [bytes(small), bytes(big), bytes(small)]
    for frame in frames:
        plog.append(memoryview(frame), read_batch_header(frame))
    assert frames == [bytes(small), bytes(big), bytes(small)]  # nothing patched in place
    stored = plog.read(0, 1 << 22)
    headers = list(iter_batch_headers(stored))
    offsets = [header.base_offset for _, header in headers]
    assert offsets == [0, 1, 1 + read_batch_header(big).record_count]
    for frame, (pos, header) in zip(frames, headers, strict=True):
        written = stored[pos : pos + len(frame)]
        assert written[16:] == frame[16:]  # the rest is the request's bytes, CRC included
        assert written[8:12] == frame[8:12]  # the length, as sent
        assert header.base_offset == int.from_bytes(written[:8], "big")
    plog.close()


def test_a_failed_second_write_of_a_split_batch_leaves_no_partial_batch(tmp_path: Path) -> None:
    from kafkito.storage.log import SPLIT_WRITE_BYTES

    fs = FaultyFileSystem()
    plog = PartitionLog.open(fs, DIR, "t", 0, LogConfig())
    first = build_batch([(None, b"first")])
    plog.append(bytearray(first), read_batch_header(first))
    size = plog.size_bytes
    big = build_batch([(None, b"x" * 1000) for _ in range(SPLIT_WRITE_BYTES // 900)])
    fs.fail_writes_after(100)  # the 16-byte head passes, the body's write runs out of space
    with pytest.raises(StorageError):
        plog.append(memoryview(big), read_batch_header(big))
    fs.clear_faults()
    assert plog.size_bytes == size and plog.failed is not None
    assert fs.size(plog.segments[-1].fd) == size  # cut back to the batch before
