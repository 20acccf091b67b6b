"""Issue #14's compaction property: random keyed writes and tombstones, cleaning passes cut by
a crash (kill -9 or power loss, every crash mode) at random points, then recovery.

After every round, reading the log from the beginning gives only records that were written, at
their original offsets, and the latest record of every live key; at the end, once every
tombstone's delete.retention.ms has passed and the cleaner has run, exactly the latest value of
every live key at its original offset and nothing of the deleted keys. Seeded: the seed is
printed, and KAFKITO_COMPACTION_SEED replays one.
"""

from __future__ import annotations

import os
import random

import pytest
from compaction_kit import (
    CUT_MODES,
    Clock,
    CutFS,
    Model,
    PowerCut,
    append_keyed,
    compact_config,
    make_durable,
    open_compacted,
    random_workload,
    read_all,
)

from kafkito.protocol.records import CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_ZSTD
from kafkito.storage.cleaner import CleanerState, clean_now
from kafkito.storage.recovery import RecoveryPlan

SEED = int(os.environ.get("KAFKITO_COMPACTION_SEED", random.randrange(2**32)))
RETENTION_MS = 5_000


@pytest.mark.parametrize("run", range(8))
def test_latest_value_per_key_survives_cleaning_and_crashes(run: int) -> None:
    seed = SEED + run
    print(f"compaction property seed {seed} (KAFKITO_COMPACTION_SEED={SEED}, run {run})")
    rng = random.Random(seed)
    fs, clock, model = CutFS(seed), Clock(), Model()
    config = compact_config(
        segment_bytes=rng.choice([700, 1500, 4000]), delete_retention_ms=RETENTION_MS
    )
    plog = open_compacted(fs, clock, config=config)  # type: ignore[arg-type]
    state = CleanerState()
    crashes = 0
    for _ in range(10):
        random_workload(
            plog,
            model,
            rng,
            clock,
            batches=rng.randrange(5, 30),
            codecs=(CODEC_NONE, CODEC_GZIP, CODEC_LZ4, CODEC_ZSTD),
        )
        make_durable(plog)
        clock.now_ms += rng.randrange(0, 3 * RETENTION_MS // 2)
        if rng.random() < 0.6:
            fs.arm(rng.randrange(1, 120), rng.choice(CUT_MODES))
        try:
            clean_now(fs, plog, state, clock.now_ms, force=rng.random() < 0.3)  # type: ignore[arg-type]
        except PowerCut:
            crashes += 1
            fs.revive()
            plog = open_compacted(fs, clock, config=config, plan=RecoveryPlan(clean=False))  # type: ignore[arg-type]
            state = CleanerState()  # its checkpoint is only an optimisation
        fs.cut_at = -1
        assert plog.log_end_offset == max(model.written) + 1, f"seed {seed}: offsets moved"
        model.check(read_all(plog), durable_end=plog.log_end_offset, seed=seed)
    # Everything out of the active segment, every tombstone past its horizon, two passes: the
    # first stamps horizons on tombstones not yet seen, the second removes them.
    base = append_keyed(plog, [(b"end", b"end")], clock.now_ms)
    model.written[base] = (b"end", b"end", clock.now_ms)
    plog.roll()
    make_durable(plog)
    clean_now(fs, plog, state, clock.now_ms, force=True)  # type: ignore[arg-type]
    clock.now_ms += RETENTION_MS + 1
    clean_now(fs, plog, state, clock.now_ms, force=True)  # type: ignore[arg-type]
    end = plog.log_end_offset
    seen = read_all(plog)
    model.check(seen, durable_end=end, seed=seed, tombstones_gone=True, fully_compacted_below=end)
    live = {k: model.written[o][1] for k, o in model.latest().items() if model.written[o][1]}
    assert {key: value for _, key, value in seen} == live, f"seed {seed}"
    assert len(seen) == len(live), f"seed {seed}: {crashes} crashes"
