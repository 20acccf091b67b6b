"""The log cleaner (storage.cleaner) on a FaultyFileSystem: what it keeps, when it runs, formats."""

from __future__ import annotations

import math

import pytest
from compaction_kit import (
    BASE_TS,
    DIR,
    Clock,
    Model,
    append_keyed,
    compact_config,
    make_durable,
    open_compacted,
    read_all,
)

from kafkito.protocol.records import (
    CODEC_GZIP,
    CODEC_LZ4,
    CODEC_NONE,
    CODEC_SNAPPY,
    CODEC_ZSTD,
    iter_batch_headers,
    read_batch_header,
)
from kafkito.storage.cleaner import (
    ATTR_DELETE_HORIZON,
    CleanerState,
    Throttler,
    clean_now,
    plan_cleaning,
)
from kafkito.storage.recovery import RecoveryPlan
from kafkito.testing.faulty_fs import FaultyFileSystem


def _fill(plog, model: Model, clock: Clock, rounds: int, *, codec: int = 0) -> None:  # type: ignore[no-untyped-def]
    for r in range(rounds):
        for k in range(5):
            clock.now_ms += 1
            value = None if (r == rounds - 2 and k == 4) else f"r{r}k{k}".encode() * 8
            base = append_keyed(plog, [(f"k{k}".encode(), value)], clock.now_ms, codec=codec)
            model.written[base] = (f"k{k}".encode(), value, clock.now_ms)


@pytest.mark.parametrize(
    "codec", [CODEC_NONE, CODEC_GZIP, CODEC_SNAPPY, CODEC_LZ4, CODEC_ZSTD], ids=str
)
def test_cleaning_keeps_the_latest_record_per_key_at_its_offset(codec: int) -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(fs, clock)
    _fill(plog, model, clock, 12, codec=codec)
    make_durable(plog)
    before = len(plog.segments)
    result = clean_now(fs, plog, CleanerState(), clock.now_ms)
    assert result is not None and result.error is None and result.records_removed > 0
    seen = read_all(plog)
    active_base = plog.segments[-1].base_offset
    model.check(seen, durable_end=plog.log_end_offset, seed=0, fully_compacted_below=active_base)
    # Groups are sized by the segments' sizes before cleaning, as Kafka's are: the segments
    # this pass made small are merged by the next one.
    assert len(plog.segments) == before
    again = clean_now(fs, plog, CleanerState(), clock.now_ms, force=True)
    assert again is not None and again.error is None and len(plog.segments) < before
    assert read_all(plog) == seen
    for segment, nxt in zip(plog.segments, plog.segments[1:], strict=False):
        assert segment.next_offset == nxt.base_offset  # the last batch of each group stays
    # re-encoded batches keep the codec they were produced with
    for segment in plog.segments:
        data = fs.pread(segment.fd, segment.size, 0)
        for _, header in iter_batch_headers(data):
            assert header.codec in (codec, CODEC_NONE)
            if header.record_count:
                assert header.codec == codec
    # what was cleaned survives a restart, indexes and all
    plog.close()
    reopened = open_compacted(fs, clock, plan=RecoveryPlan(clean=False))
    assert read_all(reopened) == seen


def test_tombstones_stay_until_the_delete_horizon_then_go() -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(fs, clock, config=compact_config(delete_retention_ms=60_000))
    _fill(plog, model, clock, 12)
    for key in (b"k1", b"k2"):
        tomb = append_keyed(plog, [(key, None)], clock.now_ms)
        model.written[tomb] = (key, None, clock.now_ms)
    for i in range(60):  # other keys, so that the tombstones leave the active segment
        clock.now_ms += 1
        base = append_keyed(plog, [(f"f{i % 7}".encode(), b"x" * 30)], clock.now_ms)
        model.written[base] = (f"f{i % 7}".encode(), b"x" * 30, clock.now_ms)
    make_durable(plog)
    state = CleanerState()
    first = clean_now(fs, plog, state, clock.now_ms)
    assert first is not None and first.latest_horizon == clock.now_ms + 60_000
    seen = read_all(plog)
    latest = model.latest()
    tombstones = [o for k, o in latest.items() if model.written[o][1] is None]
    below = plog.segments[-1].base_offset
    assert all(o in {s[0] for s in seen} for o in tombstones if o < below)
    # the batch that kept a tombstone carries the horizon (KIP-534)
    stamped = []
    for segment in plog.segments[:-1]:
        data = fs.pread(segment.fd, segment.size, 0)
        for _, header in iter_batch_headers(data):
            if header.attributes & ATTR_DELETE_HORIZON:
                stamped.append(header.base_timestamp)
    assert stamped and set(stamped) == {clock.now_ms + 60_000}
    # nothing new is dirty: no pass before the horizon
    assert plan_cleaning(plog, state, clock.now_ms + 59_000) is None
    clock.now_ms += 60_001
    second = clean_now(fs, plog, state, clock.now_ms)
    assert second is not None and second.error is None
    model.check(
        read_all(plog), durable_end=below, seed=0, tombstones_gone=True, fully_compacted_below=below
    )


def test_the_active_segment_and_young_records_are_never_cleaned() -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    config = compact_config(min_compaction_lag_ms=1_000)
    plog = open_compacted(fs, clock, config=config)
    _fill(plog, model, clock, 10)
    make_durable(plog)
    state = CleanerState()
    assert plan_cleaning(plog, state, clock.now_ms) is None  # every record is younger than 1 s
    clock.now_ms += 2_000
    plan = plan_cleaning(plog, state, clock.now_ms)
    assert plan is not None and plog.segments[-1] not in plan.segments
    active = plog.segments[-1]
    active_bytes = fs.pread(active.fd, active.size, 0)
    clean_now(fs, plog, state, clock.now_ms)
    assert plog.segments[-1] is active and fs.pread(active.fd, active.size, 0) == active_bytes


def test_nothing_above_the_durable_offset_is_cleaned() -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(fs, clock)
    _fill(plog, model, clock, 10)
    assert plan_cleaning(plog, CleanerState(), clock.now_ms) is None  # nothing fsynced yet


def test_dirty_ratio_and_max_compaction_lag_decide_when() -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(
        fs, clock, config=compact_config(min_cleanable_dirty_ratio=0.9, max_compaction_lag_ms=5_000)
    )
    _fill(plog, model, clock, 10)
    make_durable(plog)
    state = CleanerState()
    assert clean_now(fs, plog, state, clock.now_ms) is not None  # all dirty: ratio 1.0
    _fill(plog, model, clock, 2)
    make_durable(plog)
    plan = plan_cleaning(plog, state, clock.now_ms)
    assert plan is None  # a little dirt over a clean log: below 0.9
    clock.now_ms += 10_000
    plan = plan_cleaning(plog, state, clock.now_ms)
    assert plan is not None and plan.reason == "max.compaction.lag.ms passed"


def test_a_fetch_at_a_cleaned_away_offset_gets_the_next_batch() -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(fs, clock)
    _fill(plog, model, clock, 10)
    make_durable(plog)
    clean_now(fs, plog, CleanerState(), clock.now_ms)
    present = {o for o, _, _ in read_all(plog)}
    gone = [o for o in range(plog.log_end_offset) if o not in present]
    assert gone
    for offset in gone:
        data = plog.read(offset, 1 << 20)
        header = read_batch_header(data)
        assert header.last_offset >= offset
        assert (
            header.base_offset <= min(o for o in present if o > offset) or not header.record_count
        )


def test_compact_only_topics_keep_every_segment_and_compact_delete_ones_do_not() -> None:
    for delete, survives in ((False, True), (True, False)):
        fs, clock, model = FaultyFileSystem(), Clock(), Model()
        config = compact_config(cleanup_delete=delete, retention_ms=1_000)
        plog = open_compacted(fs, clock, config=config)
        _fill(plog, model, clock, 10)
        make_durable(plog)
        clock.now_ms += 5_000
        plog.apply_retention()
        assert (plog.log_start_offset == 0) is survives


def test_keyless_records_left_from_before_compaction_are_removed() -> None:
    fs, clock = FaultyFileSystem(), Clock()
    plog = open_compacted(fs, clock)
    for i in range(40):
        append_keyed(plog, [(None, b"x" * 50), (b"k", f"{i}".encode())], BASE_TS + i)
    make_durable(plog)
    clean_now(fs, plog, CleanerState(), BASE_TS + 100)
    below = plog.segments[-1].base_offset
    assert all(key is not None for o, key, _ in read_all(plog) if o < below)


def test_the_throttler_holds_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    throttler = Throttler(1000.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(10):
        throttler.consumed(100)
    assert math.isclose(sum(slept), 1.0, rel_tol=0.05)
    unlimited = Throttler(math.inf, clock=lambda: now[0], sleep=sleep)
    unlimited.consumed(10**9)
    assert math.isclose(sum(slept), 1.0, rel_tol=0.05)


def test_recovery_completes_a_swap_and_discards_cleaned_files_as_kafka_does() -> None:
    """Kafka's LogLoader rules on crafted leftovers: `.cleaned` goes, and so does a `.swap` at
    or above the lowest `.cleaned`; any other `.swap` replaces the segments in its range."""
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(fs, clock)
    _fill(plog, model, clock, 12)
    make_durable(plog)
    segments = [(s.base_offset, s.next_offset) for s in plog.segments]
    assert len(segments) >= 5
    first, second = plog.segments[0], plog.segments[1]
    head = fs.pread(first.fd, first.size, 0) + fs.pread(second.fd, second.size, 0)
    plog.close()
    # a complete swap of segments 0 and 1 (the same batches: a cleaning that removed nothing)
    swap = f"{DIR}/{segments[0][0]:020d}.log.swap"
    fd = fs.open(swap, create=True)
    fs.pwrite(fd, head, 0)
    fs.close(fd)
    # an unfinished pass further on: its .cleaned and a .swap above it
    for name in (f"{segments[3][0]:020d}.log.cleaned", f"{segments[4][0]:020d}.log.swap"):
        fd = fs.open(f"{DIR}/{name}", create=True)
        fs.pwrite(fd, b"partial", 0)
        fs.close(fd)
    reopened = open_compacted(fs, clock, plan=RecoveryPlan(clean=False))
    names = fs.listdir(DIR)
    assert not [n for n in names if n.endswith((".cleaned", ".swap"))]
    assert f"{segments[1][0]:020d}.log" not in names  # replaced by the swap
    assert [s.base_offset for s in reopened.segments][:2] == [segments[0][0], segments[2][0]]
    model.check(read_all(reopened), durable_end=reopened.log_end_offset, seed=0)


def test_topic_configs_reach_the_log() -> None:
    from kafkito.broker.configs import log_config_for, topic_default_values
    from kafkito.broker.settings import BrokerSettings

    defaults = topic_default_values(BrokerSettings())
    config = log_config_for(
        {
            "cleanup.policy": "compact, delete",
            "min.cleanable.dirty.ratio": "0.25",
            "delete.retention.ms": "7",
            "min.compaction.lag.ms": "8",
            "max.compaction.lag.ms": "9",
        },
        defaults,
    )
    assert (config.cleanup_compact, config.cleanup_delete) == (True, True)
    assert config.min_cleanable_dirty_ratio == 0.25
    assert (config.delete_retention_ms, config.min_compaction_lag_ms) == (7, 8)
    assert config.max_compaction_lag_ms == 9
    default = log_config_for({}, defaults)
    assert (default.cleanup_compact, default.cleanup_delete) == (False, True)
    assert default.min_cleanable_dirty_ratio == 0.5
    assert default.delete_retention_ms == 86_400_000


def test_a_full_offset_map_ends_the_pass_at_a_segment_boundary_and_the_next_goes_on() -> None:
    fs, clock, model = FaultyFileSystem(), Clock(), Model()
    plog = open_compacted(fs, clock)
    _fill(plog, model, clock, 12)
    make_durable(plog)
    state = CleanerState()
    first_end = plog.segments[0].next_offset
    result = clean_now(fs, plog, state, clock.now_ms, dedupe_buffer_bytes=1)
    assert result is not None and result.error is None
    assert result.first_dirty == first_end  # one segment mapped: the budget was spent
    model.check(read_all(plog), durable_end=plog.log_end_offset, seed=0)
    while (more := clean_now(fs, plog, state, clock.now_ms, dedupe_buffer_bytes=1)) is not None:
        assert more.error is None
    below = plog.segments[-1].base_offset
    assert state.first_dirty[CleanerState.key(plog)] == below
    model.check(read_all(plog), durable_end=plog.log_end_offset, seed=0)


class _CountingFs(FaultyFileSystem):
    """Counts fsyncs per path, and the bytes of each file at each of its fsyncs."""

    def __init__(self) -> None:
        super().__init__()
        self.synced_sizes: dict[str, list[int]] = {}

    def fsync(self, fd: int) -> None:
        f, path = self._fd(fd)
        self.synced_sizes.setdefault(path, []).append(len(f.data))
        super().fsync(fd)


def test_the_cleaned_file_is_fsynced_as_it_is_written(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write-behind: at most WRITEBACK_BYTES of a cleaned file wait for the disk at a time."""
    from kafkito.storage import cleaner

    monkeypatch.setattr(cleaner, "_WRITE_CHUNK_BYTES", 256)
    monkeypatch.setattr(cleaner, "WRITEBACK_BYTES", 1024)
    fs, clock, model = _CountingFs(), Clock(), Model()
    plog = open_compacted(fs, clock, config=compact_config(segment_bytes=16_000))
    for r in range(60):  # every record keyed apart: cleaning keeps them all
        clock.now_ms += 1
        key, value = f"k{r}".encode(), f"v{r}".encode() * 20
        base = append_keyed(plog, [(key, value)], clock.now_ms)
        model.written[base] = (key, value, clock.now_ms)
    plog.roll()
    make_durable(plog)
    result = clean_now(fs, plog, CleanerState(), clock.now_ms, force=True)
    assert result is not None and result.error is None
    cleaned = [sizes for path, sizes in fs.synced_sizes.items() if path.endswith(".cleaned")]
    assert cleaned, fs.synced_sizes.keys()
    sizes = cleaned[0]
    assert len(sizes) >= 3, sizes  # write-behind on the way, the final fsync at the end
    steps = [b - a for a, b in zip([0, *sizes], sizes, strict=False)]
    assert max(steps) < 1024 + 256 + 1024, steps  # never much more than WRITEBACK_BYTES
    model.check(read_all(plog), durable_end=plog.log_end_offset, seed=0)
