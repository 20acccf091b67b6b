"""B6: power loss at every single file-system step of appends, rolls, retention and checkpoints.

A deterministic workload (seeded) runs a PartitionLog on a FaultyFileSystem: appends that roll
small segments, group-commit style fsyncs, recovery-point checkpoints and retention deletes.
The run is repeated once per mutating file-system call; in run k the power is cut right after
the k-th call, unsynced bytes are handled by each crash mode in turn, and the log is reopened as
an unclean start would. Every reopen must succeed (no leftover left unresolved, no checkpoint
torn, no CorruptLog: nothing fsynced was damaged), offsets must be contiguous, and every batch
that had been made durable before the cut must be there, byte for byte, unless retention had
already deleted its segment.
"""

from __future__ import annotations

import os
import random

import pytest
from test_storage_log import all_batches, append, make_durable, open_log, unclean

from kafkito.protocol.records import iter_batch_headers
from kafkito.testing.faulty_fs import CrashMode, FaultyFileSystem

SEED = int(os.environ.get("KAFKITO_FAULT_SEED", random.randrange(2**32)))
_MUTATING = ("open", "pwrite", "fsync", "truncate", "fsync_dir", "remove", "rename", "makedirs")


class PowerCut(Exception):
    pass


class CuttingFileSystem(FaultyFileSystem):
    """Cuts the power right after the `cut_at`-th mutating call."""

    def __init__(self, cut_at: int, mode: CrashMode, seed: int) -> None:
        super().__init__(seed=seed)
        self.cut_at, self.mode, self.calls = cut_at, mode, 0
        self.after: FaultyFileSystem | None = None

    def __getattribute__(self, name: str) -> object:
        attr = super().__getattribute__(name)
        if name not in _MUTATING:
            return attr

        def counted(*args: object, **kwargs: object) -> object:
            result = attr(*args, **kwargs)  # type: ignore[operator]
            self.calls += 1
            if self.calls == self.cut_at:
                self.after = self.crash(self.mode)
                raise PowerCut
            return result

        return counted


def _workload(fs: FaultyFileSystem, rng: random.Random, durable: list[list[bytes]]) -> None:
    plog = open_log(fs, segment_bytes=1500, retention_bytes=4000)
    for step in range(60):
        append(plog, [1000 + step] * rng.randrange(1, 4), size=rng.randrange(10, 120))
        if step % 4 == 3:
            make_durable(plog, fs)
            durable.append(all_batches(plog))
        if step % 15 == 14:
            plog.apply_retention()


@pytest.mark.timeout(120)
def test_power_cut_at_every_step_recovers_every_durable_batch() -> None:
    total = CuttingFileSystem(10**9, "drop", SEED)
    _workload(total, random.Random(SEED), [])
    modes: list[CrashMode] = ["drop", "zeros", "garbage", "partial"]
    for cut_at in range(1, total.calls + 1):
        mode = modes[cut_at % len(modes)]
        fs = CuttingFileSystem(cut_at, mode, SEED + cut_at)
        durable: list[list[bytes]] = []
        with pytest.raises(PowerCut):
            _workload(fs, random.Random(SEED), durable)
        assert fs.after is not None
        where = f"seed {SEED}, cut after call {cut_at} of {total.calls} ({mode})"
        try:
            plog = open_log(fs.after, plan=unclean(fs.after))
        except Exception as exc:
            raise AssertionError(f"{where}: reopen failed: {exc!r}") from exc
        got = all_batches(plog)
        offsets = [h.base_offset for b in got for _, h in iter_batch_headers(b)]
        assert offsets == sorted(set(offsets)), where
        assert not got or offsets[0] == plog.log_start_offset, where
        by_offset = {h.base_offset: b for b in got for _, h in iter_batch_headers(b)}
        for batch in durable[-1] if durable else []:
            (_, header), *_ = iter_batch_headers(batch)
            if header.base_offset >= plog.log_start_offset:
                assert by_offset.get(header.base_offset) == batch, f"{where}: lost a batch"
        plog.close()
