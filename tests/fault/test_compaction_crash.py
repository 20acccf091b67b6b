"""Crash at every file-system step of a cleaning pass (storage.cleaner), kill -9 and power loss.

One deterministic compacted log (seeded: keyed batches over a few keys, tombstones, four codecs,
small segments) is cleaned once; the run is repeated once per mutating file-system call of that
pass, cut right after the k-th call, in a crash mode that rotates through kill -9 (every write
kept) and the four power-loss modes of FaultyFileSystem. After each cut the log is reopened as
an unclean start would, and must hold: no leftover `.cleaned`/`.swap`/`.deleted` file, segments
that neither overlap nor leave a hole between them (no duplicate segment), every record at its
original offset with its original key and value, the latest record of every key, the same log
end offset; and a new pass must then clean it completely. A second test does the same to a
real `kafkito broker` process with SIGKILL at random moments while its cleaner runs.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from compaction_kit import (
    CUT_MODES,
    DIR,
    Clock,
    CutFS,
    Model,
    PowerCut,
    compact_config,
    make_durable,
    open_compacted,
    random_workload,
    read_all,
)

from kafkito.protocol.records import CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_SNAPPY
from kafkito.storage.cleaner import CleanerState, clean_now
from kafkito.storage.recovery import RecoveryPlan

SEED = int(os.environ.get("KAFKITO_FAULT_SEED", random.randrange(2**32)))


def _prepare(seed: int) -> tuple[CutFS, Clock, Model, object]:
    fs, clock, model = CutFS(seed), Clock(), Model()
    plog = open_compacted(fs, clock, config=compact_config(segment_bytes=1200))  # type: ignore[arg-type]
    rng = random.Random(seed)
    random_workload(
        plog,
        model,
        rng,
        clock,
        batches=40,
        keys=8,
        codecs=(CODEC_NONE, CODEC_GZIP, CODEC_LZ4, CODEC_SNAPPY),
    )
    make_durable(plog)
    clock.now_ms += 1_000
    return fs, clock, model, plog


@pytest.mark.timeout(300)
def test_a_crash_at_any_step_of_a_cleaning_pass_loses_nothing_live() -> None:
    fs, clock, model, plog = _prepare(SEED)
    before = fs.calls
    clean_now(fs, plog, CleanerState(), clock.now_ms)  # type: ignore[arg-type]
    steps = fs.calls - before
    assert steps > 20, steps
    print(f"seed {SEED}: {steps} file-system steps in the pass")
    end = plog.log_end_offset  # type: ignore[attr-defined]
    for k in range(1, steps + 1):
        mode = CUT_MODES[k % len(CUT_MODES)]
        where = f"seed {SEED}, cut after call {k} of {steps} of the pass ({mode})"
        fs, clock, model, plog = _prepare(SEED)
        fs.arm(k, mode)
        with pytest.raises(PowerCut):
            clean_now(fs, plog, CleanerState(), clock.now_ms)  # type: ignore[arg-type]
        fs.revive()
        try:
            reopened = open_compacted(fs, clock, plan=RecoveryPlan(clean=False))  # type: ignore[arg-type]
        except Exception as exc:
            raise AssertionError(f"{where}: reopen failed: {exc!r}") from exc
        leftovers = [
            n for n in fs.listdir(DIR) if n.endswith((".cleaned", ".swap", ".deleted", ".tmp"))
        ]
        assert not leftovers, f"{where}: {leftovers}"
        bases = [s.base_offset for s in reopened.segments]
        ends = [s.next_offset for s in reopened.segments]
        assert bases[1:] == ends[:-1], f"{where}: segments overlap or leave a hole"
        assert reopened.log_end_offset == end, where
        model.check(read_all(reopened), durable_end=end, seed=SEED)
        again = clean_now(fs, reopened, CleanerState(), clock.now_ms, force=True)  # type: ignore[arg-type]
        assert again is not None and again.error is None, where
        below = reopened.segments[-1].base_offset
        model.check(read_all(reopened), durable_end=end, seed=SEED, fully_compacted_below=below)
        reopened.close()


@pytest.mark.timeout(240)
def test_kill9_of_the_broker_process_while_it_compacts_loses_no_latest_value(
    tmp_path: Path,
) -> None:
    """A real `kafkito broker` process, SIGKILLed at seeded random moments while keyed writes
    arrive and its cleaner (backoff 20 ms, 16 KiB segments) keeps cleaning, then restarted.
    Every record read is the one acknowledged at its offset, and the latest acknowledged value
    of every key is there; once it has settled, the cleaner has removed most of the rest."""
    from checker import read_partition
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from kafkito.testing.brokers import kafkito_process

    rng = random.Random(SEED)
    proc = kafkito_process(tmp_path / "data", extra_args=["--log-cleaner-backoff-ms", "20"])
    proc.start()
    acked: dict[int, tuple[bytes, bytes]] = {}
    try:
        admin = AdminClient({"bootstrap.servers": proc.bootstrap})
        configs = {
            "cleanup.policy": "compact",
            "segment.bytes": "16384",
            "min.cleanable.dirty.ratio": "0.01",
        }
        admin.create_topics([NewTopic("kv", 1, 1, config=configs)])["kv"].result(30)
        for cycle in range(4):
            producer = Producer({"bootstrap.servers": proc.bootstrap, "linger.ms": 5})

            def delivered(err: object, msg: object) -> None:
                if err is None:
                    acked[msg.offset()] = (msg.key(), msg.value())  # type: ignore[attr-defined]

            for i in range(1500):
                key = f"key-{rng.randrange(40)}".encode()
                value = f"c{cycle}-{i}-".encode() + b"x" * rng.randrange(50, 300)
                producer.produce("kv", key=key, value=value, on_delivery=delivered)
                if i % 100 == 99:
                    producer.flush(30)
            producer.flush(30)
            time.sleep(rng.uniform(0.0, 0.3))  # a random moment of the cleaner's work
            proc.kill()
            proc.start()
        latest: dict[bytes, int] = {}
        for offset in sorted(acked):
            latest[acked[offset][0]] = offset
        deadline = time.monotonic() + 60
        while True:
            seen = read_partition(proc.bootstrap, "kv")
            where = f"seed {SEED}: {len(seen)} records read of {len(acked)} acknowledged"
            offsets = [o for o, _ in seen]
            assert offsets == sorted(set(offsets)), where
            for offset, value in seen:
                assert offset in acked and acked[offset][1] == value, f"{where}: offset {offset}"
            present = set(offsets)
            missing = [o for o in latest.values() if o not in present]
            assert not missing, f"{where}: latest values lost at offsets {missing[:5]}"
            if len(seen) < len(acked) // 4 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(seen) < len(acked) // 4, f"{where}: the cleaner did not catch up in 60 s"
    finally:
        proc.kill()
