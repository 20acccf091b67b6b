"""The storage layer's hot paths: Fetch reads (views instead of copies, read hints, CRC
checks) and group commit (rounds of fsyncs across logs, two rounds in flight).

`PartitionLog.read_view` must serve exactly what `read` serves (whole, CRC-checked batches
below the high watermark, the first batch whole even above max_bytes), and the per-segment
read hints, a guess where the next batch starts, must never change an answer: not after a
truncation, not when the guess points at the wrong batch.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import pytest
from test_storage_formats import make_batch

from kafkito.broker.server import write_chunks
from kafkito.errors import CorruptLog, StorageError
from kafkito.protocol.records import iter_batch_headers, read_batch_header
from kafkito.storage.durability import GroupCommitter
from kafkito.storage.fs import OsFileSystem
from kafkito.storage.log import LogConfig, PartitionLog
from kafkito.testing.faulty_fs import FaultyFileSystem


class CountingFs(FaultyFileSystem):
    """The in-memory file system, counting preads (how many a read path costs)."""

    def __init__(self) -> None:
        super().__init__()
        self.preads = 0

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self.preads += 1
        return super().pread(fd, size, offset)


def small_batches_log(fs: FaultyFileSystem, batches: int, records: int = 1) -> PartitionLog:
    plog = PartitionLog.open(fs, "/d/t-0", "t", 0, LogConfig(segment_bytes=1 << 30))
    for i in range(batches):
        batch = bytearray(make_batch([1000 + i] * records, value_size=100))
        plog.append(batch, read_batch_header(batch))
    return plog


def offsets_of(data: bytes | memoryview) -> list[int]:
    return [h.base_offset for _, h in iter_batch_headers(data)]


def test_read_view_serves_what_read_serves_and_views_a_partial_read() -> None:
    plog = small_batches_log(FaultyFileSystem(), 200)
    for offset, max_bytes in [(0, 1000), (7, 5000), (150, 1 << 20), (199, 1)]:
        view = plog.read_view(offset, max_bytes)
        copy = plog.read(offset, max_bytes)
        assert bytes(view) == copy and isinstance(copy, bytes)
        assert offsets_of(copy)[0] == offset
    partial = plog.read_view(0, 1000)  # ends inside a batch: a view, no second copy
    assert isinstance(partial, memoryview)
    assert 0 < len(partial) <= 1000 and offsets_of(partial) == list(range(len(offsets_of(partial))))


def test_the_first_batch_is_served_whole_above_max_bytes() -> None:
    fs = FaultyFileSystem()
    plog = PartitionLog.open(fs, "/d/t-0", "t", 0, LogConfig())
    big = bytearray(make_batch([1000] * 50, value_size=200))
    plog.append(big, read_batch_header(big))
    data = plog.read_view(0, 100)
    assert len(data) == len(big) > 100
    assert offsets_of(data) == [0]


def test_high_watermark_bounds_the_read() -> None:
    plog = small_batches_log(FaultyFileSystem(), 20)
    assert offsets_of(plog.read_view(5, 1 << 20, max_offset=9)) == [5, 6, 7, 8]
    assert plog.read_view(9, 1 << 20, max_offset=9) == b""


def test_a_consumer_reading_on_finds_its_next_batch_with_one_pread() -> None:
    """The hint left by a read saves the walk from the sparse index entry (up to 4 KiB of
    headers, one pread each): a sequential reader pays one pread for the lookup."""
    fs = CountingFs()
    plog = small_batches_log(fs, 300)
    offset, walks = 0, []
    while offset < plog.log_end_offset:
        before = fs.preads
        data = plog.read_view(offset, 2000)
        walks.append(fs.preads - before)
        offset = offsets_of(data)[-1] + 1
    assert walks[0] >= 1
    assert max(walks[1:]) <= 2, walks  # hinted header + the data, whatever the index says


def test_a_stale_hint_never_changes_the_answer() -> None:
    fs = FaultyFileSystem()
    plog = small_batches_log(fs, 50)
    segment = plog.segments[-1]
    first = plog.read(0, 2000)
    after = offsets_of(first)[-1] + 1
    # The tail is cut (as recovery cuts a torn tail) and other batches are written there.
    position, _ = segment.find_batch(after) or (None, None)
    assert position is not None
    segment.truncate_to(position)
    segment.next_offset = after
    for i in range(5):
        batch = bytearray(make_batch([5000 + i, 5001 + i], value_size=30))
        plog.append(batch, read_batch_header(batch))
    assert offsets_of(plog.read(after, 1 << 20)) == [after + 2 * i for i in range(5)]
    # A wrong guess (a hint naming a position that holds another batch) is checked and ignored.
    segment._read_hints[after + 2] = position
    assert offsets_of(plog.read(after + 2, 1 << 20))[0] == after + 2


def test_a_batch_with_a_garbled_length_is_never_served(tmp_path: Path) -> None:
    fs = OsFileSystem()
    plog = PartitionLog.open(fs, str(tmp_path / "t-0"), "t", 0, LogConfig())
    for i in range(3):
        batch = bytearray(make_batch([1000 + i], value_size=50))
        plog.append(batch, read_batch_header(batch))
    plog.flush()
    path = plog.segments[-1].path
    second = len(make_batch([1000], value_size=50))
    with open(path, "r+b") as f:  # batch 1's length field: negative
        f.seek(second + 8)
        f.write((-40).to_bytes(4, "big", signed=True))
    assert offsets_of(plog.read(0, 1 << 20)) == [0]  # stops before the damage
    with pytest.raises(CorruptLog):
        plog.read(1, 1 << 20)
    assert os.path.getsize(path) == 3 * second


@pytest.mark.parametrize("sizes", [[10, 20_000, 5, 40_000, 3], [7], [16_384, 1], [100] * 50])
async def test_write_chunks_sends_every_byte_in_order(sizes: list[int]) -> None:
    """Small chunks joined, big ones written as they are: the peer reads the same stream."""
    chunks: list[bytes | memoryview] = []
    for i, size in enumerate(sizes):
        raw = bytes([i % 251]) * (size + 3)
        chunks.append(memoryview(raw)[3:] if i % 2 else raw[:size])
    received = bytearray()
    expected = b"".join(bytes(c) for c in chunks)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        write_chunks(writer, chunks)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while chunk := await reader.read(1 << 16):
        received += chunk
    writer.close()
    server.close()
    await server.wait_closed()
    assert bytes(received) == expected


class GatedFs(FaultyFileSystem):
    """In-memory file system whose first fsync blocks until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.gated = False
        self.calls = 0

    def fsync(self, fd: int) -> None:
        self.calls += 1
        if not self.gated:
            self.gated = True
            self.entered.set()
            assert self.gate.wait(10), "gate never opened"
        super().fsync(fd)


async def test_a_second_fsync_runs_alongside_and_never_marks_durable_before_the_first() -> None:
    """A write arriving while an fsync runs starts its own at once (it does not wait for the
    first to end), yet the high watermark moves only when both have ended, even across a
    segment roll (the first fsync holds the sealed segment)."""
    fs = GatedFs()
    plog = PartitionLog.open(fs, "/d/t-0", "t", 0, LogConfig())
    committer = GroupCommitter(inline=False)  # the gate would hold the loop itself
    first = bytearray(make_batch([1000], value_size=10))
    plog.append(first, read_batch_header(first))
    waiting_first = asyncio.ensure_future(committer.wait_durable(plog, 0))
    assert await asyncio.to_thread(fs.entered.wait, 10)
    plog.roll()
    second = bytearray(make_batch([1001], value_size=10))
    plog.append(second, read_batch_header(second))
    waiting_second = asyncio.ensure_future(committer.wait_durable(plog, 1))
    for _ in range(200):  # the second fsync runs to its end while the first is held
        await asyncio.sleep(0.005)
        if fs.calls >= 4:
            break
    assert fs.calls >= 4, fs.calls  # log, sealed log and its 2 indexes... started at once
    assert plog.durable_offset == 0 and plog.high_watermark == 0
    assert not waiting_first.done() and not waiting_second.done()
    fs.gate.set()
    await asyncio.wait_for(asyncio.gather(waiting_first, waiting_second), 10)
    assert plog.durable_offset == plog.log_end_offset == 2


async def test_at_most_two_fsyncs_of_a_log_run_at_once() -> None:
    fs = GatedFs()
    plog = PartitionLog.open(fs, "/d/t-0", "t", 0, LogConfig())
    committer = GroupCommitter(inline=False)  # the gate would hold the loop itself
    waits = []
    for i in range(5):
        batch = bytearray(make_batch([1000 + i], value_size=10))
        plog.append(batch, read_batch_header(batch))
        waits.append(asyncio.ensure_future(committer.wait_durable(plog, i)))
        if i == 0:
            assert await asyncio.to_thread(fs.entered.wait, 10)
        await asyncio.sleep(0.02)
    assert fs.calls == 2  # the held one, and one more; the other three wait for those
    fs.gate.set()
    await asyncio.wait_for(asyncio.gather(*waits), 10)
    assert plog.durable_offset == 5


def _append_one(plog: PartitionLog, timestamp: int) -> int:
    batch = bytearray(make_batch([timestamp], value_size=10))
    plog.append(batch, read_batch_header(batch))
    return plog.log_end_offset - 1


async def test_one_round_fsyncs_every_waiting_log_and_marks_after_the_round_before() -> None:
    """Logs waiting while a round runs join one next round (all fsynced before it ends), and
    at most two rounds run: a log that comes later waits for one of them to end. The second
    round marks nothing durable before the first has ended, even for logs not in the first."""
    fs = GatedFs()
    logs = [PartitionLog.open(fs, f"/d/t-{i}", "t", i, LogConfig()) for i in range(4)]
    committer = GroupCommitter(inline=False)  # the gate would hold the loop itself
    first = asyncio.ensure_future(committer.wait_durable(logs[0], _append_one(logs[0], 1000)))
    assert await asyncio.to_thread(fs.entered.wait, 10)  # round 1 (log 0) held in its fsync
    second = [
        asyncio.ensure_future(committer.wait_durable(plog, _append_one(plog, 1001)))
        for plog in logs[:3]
    ]
    for _ in range(200):  # round 2 (logs 0, 1, 2) runs to its end while round 1 is held
        await asyncio.sleep(0.005)
        if fs.calls >= 4:
            break
    await asyncio.sleep(0.05)
    assert fs.calls == 4, fs.calls  # one fsync in round 1, three in round 2
    third = asyncio.ensure_future(committer.wait_durable(logs[3], _append_one(logs[3], 1002)))
    await asyncio.sleep(0.1)
    assert fs.calls == 4  # two rounds run already: log 3 waits for the next
    assert [p.durable_offset for p in logs] == [0, 0, 0, 0]
    assert not any(w.done() for w in (first, *second, third))
    fs.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *second, third), 10)
    assert [p.durable_offset for p in logs] == [2, 1, 1, 1]
    assert fs.calls == 5


@pytest.mark.parametrize("inline", [True, False], ids=["on-loop", "thread"])
async def test_a_failed_fsync_in_a_round_fails_only_its_own_log(inline: bool) -> None:
    fs = FaultyFileSystem()
    good = PartitionLog.open(fs, "/d/good-0", "good", 0, LogConfig())
    bad = PartitionLog.open(fs, "/d/bad-0", "bad", 0, LogConfig())
    fs.fail_fsyncs(lambda path: "/bad-0/" in path)
    committer = GroupCommitter(inline=inline)
    outcomes = await asyncio.gather(
        committer.wait_durable(good, _append_one(good, 1000)),
        committer.wait_durable(bad, _append_one(bad, 1000)),
        return_exceptions=True,
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], StorageError)
    assert good.durable_offset == 1 and good.failed is None
    assert bad.durable_offset == 0 and bad.failed is not None
    await committer.wait_durable(good, _append_one(good, 1001))  # the good log goes on
    assert good.durable_offset == 2
