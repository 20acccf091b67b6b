"""Frames survive any way a socket can cut the byte stream (framing.split_frame)."""

from __future__ import annotations

import itertools
import struct

from hypothesis import given
from hypothesis import strategies as st

from kafkito.protocol.framing import split_frame

LIMIT = 4096


def feed(stream: bytes, cuts: list[int]) -> list[bytes]:
    """Deliver `stream` in pieces, as a socket may, and collect every frame."""
    frames: list[bytes] = []
    buffer = bytearray()
    for start, end in itertools.pairwise([0, *cuts, len(stream)]):
        buffer += stream[start:end]
        while (split := split_frame(buffer, max_frame_bytes=LIMIT)) is not None:
            frames.append(split[0])
            del buffer[: split[1]]
    assert not buffer
    return frames


# split_frame refuses frames too short for a request header (8 bytes), so bodies are >= 8.
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
