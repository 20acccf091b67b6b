"""Size-prefixed frames and the fixed part of request headers; pure functions, no I/O.

Every Kafka request is `int32 size` followed by `size` bytes. The request header starts with
`int16 api_key, int16 api_version, int32 correlation_id`; that much is read by hand so that a
request for an API or version we do not serve can still be answered (ApiVersions, KIP-511) or
logged with its correlation id before the connection is closed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from kafkito.errors import CorruptFrame, FrameTooLarge

_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")


def split_frame(buffer: bytes | bytearray, *, max_frame_bytes: int) -> tuple[bytes, int] | None:
    """Take one size-prefixed frame off the front of `buffer`.

    Returns (body, bytes consumed), or None while only part of a frame has arrived.
    Raises CorruptFrame on a negative size, FrameTooLarge as soon as the prefix is read.
    """
    size = peek_frame_size(buffer, max_frame_bytes=max_frame_bytes)
    if size is None:
        return None
    end = _SIZE.size + size
    if len(buffer) < end:
        return None
    return bytes(buffer[_SIZE.size : end]), end


def peek_frame_size(buffer: bytes | bytearray, *, max_frame_bytes: int) -> int | None:
    """The declared size of the frame at the front of `buffer`, checked against the limit.

    Returns None while fewer than four bytes have arrived.
    """
    if len(buffer) < _SIZE.size:
        return None
    (size,) = _SIZE.unpack_from(buffer, 0)
    if size < 0:
        raise CorruptFrame(f"negative frame size {size}")
    if size > max_frame_bytes:
        raise FrameTooLarge(size_bytes=size, limit_bytes=max_frame_bytes)
    if size < _HEAD.size:
        raise CorruptFrame(f"frame of {size} bytes is too short for a request header")
    return int(size)


@dataclass(frozen=True, slots=True)
class RequestHead:
    """The three fields every request header starts with."""

    api_key: int
    api_version: int
    correlation_id: int


def read_request_head(frame: bytes | memoryview) -> RequestHead:
    """Read api_key, api_version and correlation_id from a frame body."""
    if len(frame) < _HEAD.size:
        raise CorruptFrame(f"request of {len(frame)} bytes is too short for a header")
    api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
    return RequestHead(api_key, api_version, correlation_id)


def size_prefixed(payload: bytes) -> bytes:
    """`payload` with its int32 size in front."""
    return _SIZE.pack(len(payload)) + payload
