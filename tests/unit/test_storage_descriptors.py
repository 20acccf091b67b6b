"""Partition logs hold one descriptor per segment (the log file) and none for its indexes,
and a new empty log costs no fsync, yet nothing acknowledged can be lost to a power cut.

Index files are opened for each use (written at a roll, a checkpoint and a clean stop; fsynced
after), so a broker with 10,000 partitions holds 10,000 descriptors, not 30,000.
"""

from __future__ import annotations

import asyncio

from test_storage_formats import make_batch

from kafkito.protocol.records import read_batch_header
from kafkito.storage.durability import GroupCommitter
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.storage.recovery import RecoveryPlan
from kafkito.testing.faulty_fs import FaultyFileSystem


def _append(plog: PartitionLog, timestamp: int, size: int = 40) -> int:
    batch = bytearray(make_batch([timestamp], value_size=size))
    plog.append(batch, read_batch_header(batch))
    return plog.log_end_offset - 1


def _open_fds(fs: FaultyFileSystem) -> list[str]:
    return sorted(path for _file, path in fs._fds.values())


def test_a_log_holds_one_descriptor_per_segment_and_none_for_indexes() -> None:
    fs = FaultyFileSystem()
    plog = PartitionLog.open(fs, "/d/t-0", "t", 0, LogConfig(segment_bytes=2000))
    assert _open_fds(fs) == ["/d/t-0/00000000000000000000.log"]
    assert fs.exists("/d/t-0/00000000000000000000.index")  # the files exist, empty
    for i in range(40):  # several rolls: sealed segments keep their log descriptor only
        _append(plog, 1000 + i, size=200)
    plog.flush_all()
    assert len(plog.segments) > 3
    assert _open_fds(fs) == sorted(s.path for s in plog.segments)
    plog.close()
    assert _open_fds(fs) == []
    again = PartitionLog.open(
        fs, "/d/t-0", "t", 0, LogConfig(segment_bytes=2000), recovery=RecoveryPlan(clean=True)
    )
    assert again.log_end_offset == 40
    assert len(_open_fds(fs)) == len(again.segments)
    # the indexes written through short-lived descriptors load as sound (no rebuild needed)
    assert all(s.index_offsets for s in again.segments if s.size)
    again.close()


async def test_a_new_log_costs_no_fsync_and_its_first_sync_makes_it_durable() -> None:
    fs = FaultyFileSystem()
    fs.makedirs("/d")
    before = fs.fsyncs
    PartitionLog.open(fs, "/d/t-0", "t", 0, LogConfig(), log_start_offset=7)
    assert fs.fsyncs == before  # no directory fsync per new partition
    lost = fs.crash()  # a power cut before any write: the empty log is made again
    empty = PartitionLog.open(lost, "/d/t-0", "t", 0, LogConfig(), log_start_offset=7)
    assert (empty.log_start_offset, empty.log_end_offset) == (7, 7)
    committer = GroupCommitter()
    last = _append(empty, 1000)
    await asyncio.wait_for(committer.wait_durable(empty, last), 10)
    after = lost.crash()  # acknowledged: it survives, directory entry and all
    reopened = PartitionLog.open(after, "/d/t-0", "t", 0, LogConfig(), log_start_offset=7)
    assert reopened.log_end_offset == 8
    assert reopened.read(7, 1 << 20)
