"""Where a group-commit round fsyncs: on the loop's thread when it is small and plain and the
disk has been fast, else in a worker thread (storage/durability.py)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from test_storage_formats import make_batch

from kafkito.protocol.records import read_batch_header
from kafkito.storage import durability
from kafkito.storage.durability import GroupCommitter
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.testing.faulty_fs import FaultyFileSystem


class ThreadsFs(FaultyFileSystem):
    """In-memory file system that records the thread of every fsync and can be slow."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[str] = []
        self.delay_s = 0.0

    def fsync(self, fd: int) -> None:
        self.threads.append(threading.current_thread().name)
        if self.delay_s:
            time.sleep(self.delay_s)
        super().fsync(fd)


def _append_one(plog: PartitionLog) -> int:
    batch = bytearray(make_batch([1000], value_size=10))
    plog.append(batch, read_batch_header(batch))
    return plog.log_end_offset - 1


async def _round(committer: GroupCommitter, logs: list[PartitionLog]) -> None:
    await asyncio.gather(*(committer.wait_durable(p, _append_one(p)) for p in logs))


def _logs(fs: ThreadsFs, count: int) -> list[PartitionLog]:
    return [PartitionLog.open(fs, f"/d/t-{i}", "t", i, LogConfig()) for i in range(count)]


@pytest.fixture
def here() -> str:
    return threading.current_thread().name


async def test_a_small_plain_round_fsyncs_on_the_loop_thread(here: str) -> None:
    fs = ThreadsFs()
    (plog,) = _logs(fs, 1)
    committer = GroupCommitter(inline=True)
    await _round(committer, [plog])  # the first round also fsyncs the new log's directory
    fs.threads.clear()
    await _round(committer, [plog])
    assert fs.threads == [here]
    assert plog.durable_offset == plog.log_end_offset == 2
    assert committer.inline_rounds >= 1 and committer.slow_inline_rounds == 0


async def test_a_directory_a_sealed_segment_or_many_logs_go_to_the_thread(here: str) -> None:
    fs = ThreadsFs()
    logs = _logs(fs, durability.INLINE_MAX_LOGS + 1)
    committer = GroupCommitter(inline=True)
    await _round(committer, logs[:1])  # a new log: its directory entry is fsynced too
    assert here not in fs.threads
    await _round(committer, logs[:1])
    fs.threads.clear()
    logs[0].roll()  # the sealed segment and its indexes are fsynced with the next round
    await _round(committer, logs[:1])
    assert fs.threads and here not in fs.threads
    await _round(committer, logs)  # first rounds of the others: directories
    for plog in logs:
        assert plog.durable_offset == plog.log_end_offset
    fs.threads.clear()
    await _round(committer, logs)  # plain, but more logs than INLINE_MAX_LOGS
    assert len(fs.threads) == len(logs) and here not in fs.threads
    fs.threads.clear()
    await _round(committer, logs[: durability.INLINE_MAX_LOGS])
    assert here in fs.threads


async def test_a_round_that_writes_much_goes_to_the_thread(here: str) -> None:
    fs = ThreadsFs()
    (plog,) = _logs(fs, 1)
    committer = GroupCommitter(inline=True)
    await _round(committer, [plog])
    big = bytearray(make_batch([1000], value_size=durability.INLINE_MAX_BYTES + 1))
    plog.append(big, read_batch_header(big))
    assert plog.unsynced_bytes() > durability.INLINE_MAX_BYTES
    fs.threads.clear()
    await committer.wait_durable(plog, plog.log_end_offset - 1)
    assert fs.threads and here not in fs.threads
    assert plog.unsynced_bytes() == 0
    fs.threads.clear()
    await _round(committer, [plog])  # a small one again: inline
    assert fs.threads == [here]


async def test_switched_off_every_round_is_in_the_thread(
    here: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs = ThreadsFs()
    (plog,) = _logs(fs, 1)
    monkeypatch.setenv(durability.INLINE_ENV, "0")
    committer = GroupCommitter()
    assert not committer.inline
    for _ in range(3):
        await _round(committer, [plog])
    assert fs.threads and here not in fs.threads
    assert committer.inline_rounds == 0
    monkeypatch.delenv(durability.INLINE_ENV)
    assert GroupCommitter().inline


async def test_a_slow_inline_round_sends_the_next_rounds_to_the_thread_for_a_while(
    here: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slow inline rounds in a row back off twice as long each time; a fast one resets it;
    rounds in the thread that stay slow keep the rounds there. The fsyncs are really slow
    (sleeps); the windows run on a clock the test steps."""
    now = [1000.0]
    monkeypatch.setattr(durability, "_clock", lambda: now[0])
    monkeypatch.setattr(durability, "INLINE_LIMIT_S", 0.002)
    monkeypatch.setattr(durability, "THREAD_AFTER_SLOW_S", 1.0)
    monkeypatch.setattr(durability, "MAX_THREAD_AFTER_SLOW_S", 2.0)
    monkeypatch.setattr(durability, "SLOW_DISK_S", 0.02)
    fs = ThreadsFs()
    (plog,) = _logs(fs, 1)
    committer = GroupCommitter(inline=True)

    async def round_on() -> list[str]:
        fs.threads.clear()
        await _round(committer, [plog])
        return list(fs.threads)

    await _round(committer, [plog])
    fs.delay_s = 0.005  # slower than INLINE_LIMIT_S, not than SLOW_DISK_S
    assert await round_on() == [here] and committer.slow_inline_rounds == 1
    now[0] += 0.9
    assert here not in await round_on()  # within the 1 s: in the thread
    now[0] += 0.2
    assert await round_on() == [here]  # tried inline again: slow again, now 2 s in the thread
    assert committer.slow_inline_rounds == 2
    now[0] += 1.5
    assert here not in await round_on()  # 1.5 s < 2 s: still the thread
    fs.delay_s = 0.0
    now[0] += 0.6
    assert await round_on() == [here]  # fast again: inline, and the back-off is reset
    fs.delay_s = 0.005
    assert await round_on() == [here]  # slow: 1 s (reset), not 4 s, in the thread
    now[0] += 1.1
    fs.delay_s = 0.0
    assert await round_on() == [here]
    fs.delay_s = 0.03  # slower than SLOW_DISK_S: a slow disk
    assert await round_on() == [here] and committer.slow_inline_rounds == 4
    for _ in range(5):  # every thread round is slow and pushes the window on: never inline
        now[0] += 0.9
        assert here not in await round_on()
    assert committer.slow_inline_rounds == 4
    assert plog.durable_offset == plog.log_end_offset


async def _join_later(committer: GroupCommitter, plog: PartitionLog, passes: int) -> None:
    """A request still on its way: `passes` loop passes before it appends and waits."""
    for _ in range(passes):
        await asyncio.sleep(0)
    await committer.wait_durable(plog, _append_one(plog))


async def test_writes_still_on_their_way_join_the_round_instead_of_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round starts once the loop has run what was ready (requests read in the same pass
    reach their append): one fsync round for both writes, not one each."""
    fs = ThreadsFs()
    logs = _logs(fs, 2)
    committer = GroupCommitter(inline=True)
    await _round(committer, logs)  # the new logs' directories
    before = committer.inline_rounds
    await asyncio.gather(
        committer.wait_durable(logs[0], _append_one(logs[0])), _join_later(committer, logs[1], 3)
    )
    assert committer.inline_rounds - before == 1
    assert all(p.durable_offset == p.log_end_offset for p in logs)

    monkeypatch.setattr(durability, "GATHER_PASSES", 0)  # as before: the round starts at once
    before = committer.inline_rounds
    await asyncio.gather(
        committer.wait_durable(logs[0], _append_one(logs[0])), _join_later(committer, logs[1], 3)
    )
    assert committer.inline_rounds - before == 2


async def test_a_loop_that_always_has_work_ready_holds_a_round_back_only_so_long(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fs = ThreadsFs()
    (plog,) = _logs(fs, 1)
    committer = GroupCommitter(inline=True)
    await _round(committer, [plog])
    loop = asyncio.get_running_loop()
    passes = 0
    stop = False

    def spin() -> None:  # always something ready: the ready queue never empties
        nonlocal passes
        passes += 1
        if not stop:
            loop.call_soon(spin)

    loop.call_soon(spin)
    try:
        await committer.wait_durable(plog, _append_one(plog))
        assert passes <= durability.GATHER_PASSES + 3
        # and the time bound (GATHER_S), whatever the passes allowed
        monkeypatch.setattr(durability, "GATHER_PASSES", 100_000)
        passes = 0
        await committer.wait_durable(plog, _append_one(plog))
        assert 0 < passes < 50_000
    finally:
        stop = True
    assert plog.durable_offset == plog.log_end_offset
