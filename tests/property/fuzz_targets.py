"""Every decoder that reads peer bytes, behind one entry point, for hypothesis and atheris.

`decode_anything(data)` uses the first byte to pick a decoder and feeds it the rest. The
contract under test (STYLE.md, RELIABILITY B22): a decoder either returns or raises
ProtocolError; any other exception is a bug. Decompression runs with a small output cap so
that memory stays bounded whatever the input claims.
"""

from __future__ import annotations

from collections.abc import Callable

from kafkito.protocol import framing, records
from kafkito.protocol.hot import produce

DECOMPRESS_CAP_BYTES = 256 << 10


def _split(data: bytes) -> object:
    frames: list[bytes] = []
    framing.FrameSplitter().feed(
        memoryview(data),
        frames,
        lambda size: framing.check_frame_size(size, max_frame_bytes=1 << 20),
    )
    return frames


def _head(data: bytes) -> object:
    return framing.read_request_head(data)


def _produce(data: bytes) -> object:
    # Most garbage dies on the api key and version: force a Produce header of some version.
    version = 3 + (data[0] % 9) if data else 3
    return produce.parse_produce_request(b"\x00\x00" + bytes([0, version]) + data[1:])


def _produce_raw(data: bytes) -> object:
    return produce.parse_produce_request(data)


def _validate(data: bytes) -> object:
    return records.validate_produced_batch(
        data, max_message_bytes=1 << 20, max_uncompressed_bytes=DECOMPRESS_CAP_BYTES
    )


def _varint(data: bytes) -> object:
    return records.read_varint(data, 0), records.read_varlong(data, 0)


def _iter_records(data: bytes) -> object:
    count = data[0] if data else 0
    return list(records.iter_records(data[1:], count))


def _count_records(data: bytes) -> object:
    return records.count_records(data, 1000)


def _decompress(data: bytes) -> object:
    codec = data[0] % 5 if data else 0
    return records.decompress(codec, data[1:], max_bytes=DECOMPRESS_CAP_BYTES)


DECODERS: list[Callable[[bytes], object]] = [
    _split,
    _head,
    _produce,
    _produce_raw,
    _validate,
    _varint,
    _iter_records,
    _count_records,
    _decompress,
]


def decode_anything(data: bytes) -> None:
    """Route `data[1:]` to the decoder picked by `data[0]`."""
    if not data:
        return
    DECODERS[data[0] % len(DECODERS)](data[1:])
