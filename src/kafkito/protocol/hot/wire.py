"""Primitive readers and writers of the Kafka wire format, shared by the hot-path codecs.

Readers take a buffer and a position and return (value, next position); they never read past
the end of the buffer and raise CorruptFrame instead, so garbage becomes a ProtocolError and
nothing else. (The Produce parser inlines most reads for speed; what it shares lives here.)
No reader allocates from a count before checking it against the bytes that remain: a count
is only trusted after `check_count` proves the buffer could hold that many elements of the
smallest possible size.

Flexible versions (KIP-482) use unsigned varints for lengths, stored as length + 1 so that
0 means null, and end every struct with a tagged-field section: a varint count, then
(tag, size, bytes) triples. We skip unknown tags on input and never write any on output,
because tags at their default value break librdkafka < 2.1.2 (KAFKA-NOTES §6 P3).
"""

from __future__ import annotations

import struct

from kafkito.errors import CorruptFrame

Buffer = bytes | bytearray | memoryview

I16 = struct.Struct(">h")
I32 = struct.Struct(">i")
I64 = struct.Struct(">q")

_MAX_UVARINT_BYTES = 5  # a u32 in 7-bit groups


def read_uvarint(buf: Buffer, pos: int) -> tuple[int, int]:
    """An unsigned varint of at most 5 bytes (Kafka's u32 varint)."""
    value = 0
    shift = 0
    end = len(buf)
    for i in range(_MAX_UVARINT_BYTES):
        if pos >= end:
            raise CorruptFrame(f"varint runs past the end ({end} bytes)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if i == _MAX_UVARINT_BYTES - 1 and byte > 0x0F:
                raise CorruptFrame("unsigned varint overflows 32 bits")
            return value, pos
        shift += 7
    raise CorruptFrame("unsigned varint longer than 5 bytes")


def check_count(count: int, pos: int, buf: Buffer, min_element_bytes: int, what: str) -> None:
    """Refuse an array count the remaining bytes could not possibly hold."""
    if count < 0 or count * min_element_bytes > len(buf) - pos:
        raise CorruptFrame(
            f"{what} count {count} impossible with {len(buf) - pos} bytes left at {pos}"
        )


def skip_tagged_fields(buf: Buffer, pos: int) -> int:
    """Skip a tagged-field section; returns the position after it."""
    count, pos = read_uvarint(buf, pos)
    check_count(count, pos, buf, 2, "tagged field")
    for _ in range(count):
        _, pos = read_uvarint(buf, pos)
        size, pos = read_uvarint(buf, pos)
        if pos + size > len(buf):
            raise CorruptFrame(f"tagged field of {size} bytes at {pos} runs past the end")
        pos += size
    return pos


def write_uvarint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def write_array_len(out: bytearray, n: int, flexible: bool) -> None:
    if flexible:
        write_uvarint(out, n + 1)
    else:
        out += I32.pack(n)


def write_string(out: bytearray, value: str | None, flexible: bool) -> None:
    """A nullable UTF-8 string in the version's layout."""
    if value is None:
        if flexible:
            out.append(0)
        else:
            out += b"\xff\xff"
        return
    data = value.encode()
    if flexible:
        write_uvarint(out, len(data) + 1)
    else:
        out += I16.pack(len(data))
    out += data
