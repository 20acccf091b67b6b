"""What every client's compatibility test shares: the sample messages and how to compare them.

The sample covers the shapes clients get wrong: a null key, an empty value, a value of one
megabyte (a batch just under the broker's message.max.bytes of 1,048,588), headers with empty
and repeated names, and explicit CreateTime timestamps that must come back to the millisecond.
Clients disagree on how they show "no headers" (None, [] or ()); `Message` normalises that.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
ONE_MB = 1_000_000
TOO_LARGE = 1_100_000
"""A value that makes a batch above the broker's message.max.bytes (1,048,588)."""
CLIENT_MAX_BYTES = 2_000_000
"""Client-side size limit raised above the broker's, so that the broker is the one to refuse."""


@dataclass(frozen=True, slots=True)
class Message:
    """One record as a client saw it; headers normalised to a tuple of (name, bytes)."""

    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    timestamp_ms: int

    @staticmethod
    def of(
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes | None]] | None,
        timestamp_ms: int,
    ) -> Message:
        return Message(key, value, tuple((n, v) for n, v in headers or ()), int(timestamp_ms))

    def short(self) -> str:
        size = -1 if self.value is None else len(self.value)
        return f"Message(key={self.key!r}, value_len={size}, headers={self.headers})"


def sample_messages(*, big: bool = True) -> list[Message]:
    """Eight records with distinct timestamps one second apart, in the past."""
    base = int(time.time() * 1000) - 60_000
    messages = [
        Message.of(b"k0", b"v0", [("h", b"1")], base),
        Message.of(None, b"null key", [("trace", b"abc")], base + 1000),
        Message.of(b"empty-value", b"", [], base + 2000),
        Message.of(b"headers", b"v3", [("a", b"x"), ("b", b""), ("a", b"y")], base + 3000),
        Message.of(b"\x00\xffbinary", bytes(range(256)), [("bin", b"\x00\x01")], base + 4000),
        Message.of(b"k5", "ünïcödé".encode(), [], base + 5000),
    ]
    if big:
        messages.append(Message.of(b"big", b"x" * ONE_MB, [("size", b"1MB")], base + 6000))
    messages.append(Message.of(b"last", b"v7", [], base + 7000))
    return messages


def assert_same(got: Sequence[Message], want: Sequence[Message]) -> None:
    """Equal lists, with a readable diff for megabyte values."""
    assert [m.short() for m in got] == [m.short() for m in want]
    assert list(got) == list(want)


def key_spread(n_keys: int, per_key: int) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs with each key `per_key` times, interleaved."""
    return [
        (f"key-{k}".encode(), f"v{k}-{i}".encode()) for i in range(per_key) for k in range(n_keys)
    ]
