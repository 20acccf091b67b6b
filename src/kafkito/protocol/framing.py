"""Size-prefixed frames and the fixed part of request headers; pure functions, no I/O.

Every Kafka request is `int32 size` followed by `size` bytes. The request header starts with
`int16 api_key, int16 api_version, int32 correlation_id`; that much is read by hand so that a
request for an API or version we do not serve can still be answered (ApiVersions, KIP-511) or
logged with its correlation id before the connection is closed.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass

from kafkito.errors import CorruptFrame, FrameTooLarge

_SIZE = struct.Struct(">i")
_HEAD = struct.Struct(">hhi")


def check_frame_size(size: int, *, max_frame_bytes: int, min_bytes: int = _HEAD.size) -> None:
    """Refuse a declared frame size as soon as its prefix is read: CorruptFrame when negative
    or below `min_bytes` (a request header, unless the caller expects something smaller),
    FrameTooLarge above `max_frame_bytes`."""
    if size < 0:
        raise CorruptFrame(f"negative frame size {size}")
    if size > max_frame_bytes:
        raise FrameTooLarge(size_bytes=size, limit_bytes=max_frame_bytes)
    if size < min_bytes:
        raise CorruptFrame(f"frame of {size} bytes is below the smallest allowed ({min_bytes})")


class FrameSplitter:
    """Cuts a byte stream into size-prefixed frames as it arrives, one read at a time.

    The broker's socket code hands it every read (a view of a receive buffer that the next
    read overwrites) and gets back the frames that read completed, each as `bytes`. A frame
    that arrives within one read is one copy out of that read; a frame spread over several
    reads keeps a copy of each piece and is joined once when whole. Nothing is allocated
    from a declared size: what is held is what arrived.
    """

    __slots__ = ("_head", "_need", "_parts", "body_bytes", "held")

    def __init__(self) -> None:
        self._head = bytearray()
        """The size prefix while fewer than four of its bytes have arrived."""
        self._need = -1
        """Body bytes still to come for the frame in progress; -1 while reading a size."""
        self._parts: list[bytes] = []
        self.held = 0
        """Body bytes of the frame in progress (its pieces)."""
        self.body_bytes = 0
        """Body bytes taken in so far, over all frames: size prefixes do not count."""

    @property
    def mid_frame(self) -> bool:
        """True once any byte of a frame has arrived and until the frame is whole."""
        return self._need >= 0 or bool(self._head)

    def feed(self, data: memoryview, out: list[bytes], check: Callable[[int], None]) -> None:
        """Append to `out` every frame that `data` completes.

        `check(size)` sees each declared size as soon as its four bytes are in, before any of
        its body is taken, and raises (FrameTooLarge, CorruptFrame) to refuse it: frames
        completed earlier in `data` are in `out` by then, the rest of `data` is not read,
        and the splitter is not to be fed again.
        """
        end = len(data)
        pos = 0
        while pos < end:
            need = self._need
            if need < 0:
                head = self._head
                if not head and end - pos >= 4:
                    (size,) = _SIZE.unpack_from(data, pos)
                    pos += 4
                else:
                    take = min(4 - len(head), end - pos)
                    head += data[pos : pos + take]
                    pos += take
                    if len(head) < 4:
                        return
                    (size,) = _SIZE.unpack(head)
                    head.clear()
                if size < 0:  # whatever `check` allows
                    raise CorruptFrame(f"negative frame size {size}")
                check(size)
                if end - pos >= size:  # whole in this read
                    out.append(bytes(data[pos : pos + size]))
                    pos += size
                    self.body_bytes += size
                else:
                    self._need = size
                continue
            take = min(need, end - pos)
            self._parts.append(bytes(data[pos : pos + take]))
            pos += take
            self.held += take
            self.body_bytes += take
            self._need = need - take
            if self._need == 0:
                parts = self._parts
                out.append(parts[0] if len(parts) == 1 else b"".join(parts))
                self._parts = []
                self._need = -1
                self.held = 0


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
