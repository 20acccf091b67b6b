"""The cleaner's child process (storage/cleaner_process.py) on the real disk: a pass cleans the
same as a thread pass, and when no child can be started the pass falls back to a thread."""

from __future__ import annotations

import asyncio
import math
import os
import random
import sys
from pathlib import Path

import pytest
from compaction_kit import append_keyed, compact_config, make_durable, read_all

from kafkito.storage.cleaner import CleanerState, Throttler, plan_cleaning, run_pass
from kafkito.storage.fs import OsFileSystem
from kafkito.storage.log import PartitionLog


def _dirty_log(directory: Path) -> PartitionLog:
    plog = PartitionLog.open(
        OsFileSystem(), str(directory / "c-0"), "c", 0, compact_config(segment_bytes=4000)
    )
    rng = random.Random(1)
    for i in range(300):
        append_keyed(plog, [(f"k{rng.randrange(10)}".encode(), b"v%d" % i)], 1_000 + i)
    make_durable(plog)
    return plog


def _clean_once(
    plog: PartitionLog, *, isolated: bool
) -> list[tuple[int, bytes | None, bytes | None]]:
    plan = plan_cleaning(plog, CleanerState(), 10**13, force=True)
    assert plan is not None
    result = asyncio.run(
        run_pass(OsFileSystem(), plan, CleanerState(), Throttler(math.inf), isolated=isolated)
    )
    assert result.error is None, result.error
    assert result.records_removed > 0
    return read_all(plog)


def test_a_pass_in_the_child_process_cleans_as_a_thread_pass(tmp_path: Path) -> None:
    in_thread = _clean_once(_dirty_log(tmp_path / "thread"), isolated=False)
    in_child = _clean_once(_dirty_log(tmp_path / "child"), isolated=True)
    assert in_child == in_thread


def test_without_a_child_process_the_pass_runs_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    expected = _clean_once(_dirty_log(tmp_path / "thread"), isolated=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    assert _clean_once(_dirty_log(tmp_path / "fallback"), isolated=True) == expected
    assert "cannot start the cleaner's child process" in caplog.text


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux scheduling classes")
@pytest.mark.parametrize(
    ("kind", "policy", "niceness"),
    [("idle", "SCHED_IDLE", 0), ("batch", "SCHED_BATCH", 19), ("normal", "SCHED_OTHER", 0)],
)
def test_the_child_lowers_its_cpu_and_io_priority(kind: str, policy: str, niceness: int) -> None:
    """What the cleaner's child applies to itself before a pass (KAFKITO_CLEANER_PRIORITY),
    checked in a process of its own: the kernel's view of its policy, nice value and ioprio."""
    import os
    import subprocess

    probe = (
        "import os, sys\n"
        "from kafkito.storage.cleaner_child import lower_priority\n"
        f"applied = lower_priority({kind!r})\n"
        "print(applied, os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert int(out[1]) == getattr(os, policy)
    assert int(out[2]) == (19 if niceness else base)
    assert ("io-be7" in out[0]) == (kind != "normal")


def test_the_child_lowers_its_priority_before_it_imports_the_cleaner() -> None:
    """The child's imports cost ~0.5 s of CPU: run at the broker's priority they competed with
    it at the start of every pass. The entry point lowers the priority first, with nothing
    of the cleaner (or kio, or hypothesis) imported yet."""
    import pickle
    import subprocess

    probe = (
        "import os, sys\n"
        "import kafkito.storage.cleaner_child as child\n"
        "seen = {}\n"
        "lower = child.lower_priority\n"
        "def spy(kind):\n"
        "    seen['loaded'] = sorted(m for m in sys.modules\n"
        "        if m.startswith(('kio', 'kafkito.protocol', 'kafkito.storage.cleaner_process')))\n"
        "    return lower(kind)\n"
        "child.lower_priority = spy\n"
        "try:\n"
        "    child.main()\n"
        "except SystemExit:\n"  # not a job: _main refuses it, after the imports
        "    pass\n"
        "print(seen['loaded'], os.sched_getscheduler(0), sys.modules.get('hypothesis', 0))\n"
    )
    env = {**os.environ, "KAFKITO_CLEANER_PRIORITY": "idle"}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        input=pickle.dumps("not a job"),
        capture_output=True,
        check=True,
        timeout=60,
        env=env,
    ).stdout.decode()
    assert out.split() == ["[]", str(os.SCHED_IDLE), "None"]
