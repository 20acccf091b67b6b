"""Frames survive any way a socket can cut the byte stream (framing.FrameSplitter, the broker's
incremental framing, with framing.check_frame_size)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.errors import CorruptFrame
from kafkito.protocol.framing import FrameSplitter, check_frame_size

LIMIT = 4096


def feed(stream: bytes, cuts: list[int]) -> list[bytes]:
    """Deliver `stream` in pieces, as a socket may, and collect every frame."""
    frames: list[bytes] = []
    splitter = FrameSplitter()
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        splitter.feed(memoryview(stream[start:end]), frames, check)
    assert not splitter.mid_frame
    return frames


def check(size: int) -> None:
    check_frame_size(size, max_frame_bytes=LIMIT)


# check_frame_size refuses frames too short for a request header (8 bytes), so bodies are >= 8.
bodies = st.lists(st.binary(min_size=8, max_size=300), max_size=12)


@given(bodies, st.data())
def test_any_chunking_yields_the_same_frames(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(struct.pack(">i", len(body)) + body for body in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    assert feed(stream, cuts) == frames


@given(bodies)
def test_byte_by_byte_delivery_yields_the_same_frames(frames: list[bytes]) -> None:
    stream = b"".join(struct.pack(">i", len(body)) + body for body in frames)
    assert feed(stream, list(range(len(stream)))) == frames


# -- FrameSplitter: the broker's own incremental cutter (broker/server.py RequestStream) --------


def split_in_reads(stream: bytes, cuts: list[int]) -> tuple[list[bytes], FrameSplitter]:
    """Feed `stream` as a socket would, each read landing in one reused buffer (overwritten
    by the next read, as the listener's shared receive buffer is)."""
    splitter = FrameSplitter()
    frames: list[bytes] = []
    buffer = bytearray(len(stream) + 1)
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        buffer[: end - start] = stream[start:end]
        splitter.feed(memoryview(buffer)[: end - start], frames, lambda size: None)
        buffer[: end - start] = b"\xee" * (end - start)  # the next read overwrites it
    return frames, splitter


@given(st.lists(st.binary(max_size=300), max_size=12), st.data())
def test_splitter_any_reads_yield_the_same_frames(frames: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(struct.pack(">i", len(body)) + body for body in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=40)))
    got, splitter = split_in_reads(stream, cuts)
    assert got == frames
    assert all(type(frame) is bytes for frame in got)  # not views of the reused buffer
    assert splitter.body_bytes == sum(map(len, frames))
    assert splitter.held == 0 and not splitter.mid_frame


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=6), st.data())
def test_splitter_holds_exactly_the_body_bytes_of_a_partial_frame(
    frames: list[bytes], data: st.DataObject
) -> None:
    """Stop anywhere inside the last frame: what is held is what arrived of its body."""
    stream = b"".join(struct.pack(">i", len(body)) + body for body in frames)
    last = len(stream) - len(frames[-1]) - 4
    stop = data.draw(st.integers(last + 1, len(stream) - 1))
    got, splitter = split_in_reads(stream[:stop], [])
    assert got == frames[:-1]
    assert splitter.mid_frame
    assert splitter.held == max(0, stop - last - 4)
    assert splitter.body_bytes == sum(map(len, frames[:-1])) + splitter.held


@given(st.lists(st.binary(max_size=50), min_size=1, max_size=8), st.data())
def test_splitter_refuses_before_the_body_and_keeps_the_frames_before(
    frames: list[bytes], data: st.DataObject
) -> None:
    """`check` sees each size before any of its body; refusing one leaves the earlier frames
    in `out` and takes none of the refused frame's body."""
    bad = data.draw(st.integers(0, len(frames) - 1))
    stream = b"".join(struct.pack(">i", len(body)) + body for body in frames)
    seen: list[int] = []
    splitter = FrameSplitter()
    out: list[bytes] = []

    def check(size: int) -> None:
        seen.append(size)
        if len(seen) == bad + 1:
            raise CorruptFrame("refused")

    with pytest.raises(CorruptFrame):
        splitter.feed(memoryview(stream), out, check)
    assert out == frames[:bad]
    assert seen == [len(body) for body in frames[: bad + 1]]
    assert splitter.body_bytes == sum(map(len, frames[:bad]))


def test_splitter_refuses_a_negative_size_itself() -> None:
    with pytest.raises(CorruptFrame):
        FrameSplitter().feed(memoryview(struct.pack(">i", -1)), [], lambda size: None)
