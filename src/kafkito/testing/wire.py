"""Raw Kafka wire traffic for tests: record batches, request frames and a blocking socket client.

Real clients never send a broken frame, a control batch or `acks=2`, so the broker's defences
against them can only be tested with hand-made bytes. This module makes them:

* `record_batch()` encodes a v2 record batch (KAFKA-NOTES §4) with struct and CRC-32C; every
  header field can be overridden, so a test can lie about the CRC, the record count, the last
  offset delta, the base offset or the control bit;
* `request_frame()` encodes a size-prefixed request with kio (`entity_writer` over the schema of
  the requested version), from plain data as `kafkito.protocol.codec.build` accepts it;
* `WireClient` is one blocking TCP connection with a deadline on every read: it sends frames,
  reads answers decoded by kio, and tells whether the broker closed the connection.

Everything here is for tests and tools; nothing in the broker imports it.
"""

from __future__ import annotations

import io
import socket
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

import crc32c
from kio.index import load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer

from kafkito.protocol.codec import build

__all__ = [
    "Header",
    "WireClient",
    "encode_record",
    "record_batch",
    "request_frame",
    "varint",
]

Header = tuple[str, bytes | None]

_SIZE = struct.Struct(">i")
# baseOffset, batchLength, partitionLeaderEpoch, magic, crc, then the CRC-covered part.
_PREFIX = struct.Struct(">qiibI")
_COVERED = struct.Struct(">hiqqqhii")

ATTR_CONTROL = 0x20


def varint(value: int) -> bytes:
    """Zigzag varint, as record fields use."""
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag & ~0x7F:
        out.append((zigzag & 0x7F) | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _bytes_field(data: bytes | None) -> bytes:
    return varint(-1) if data is None else varint(len(data)) + data


def encode_record(
    offset_delta: int,
    timestamp_delta: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[Header] = (),
) -> bytes:
    """One record inside a batch: length, attributes, deltas, key, value, headers."""
    body = b"\x00" + varint(timestamp_delta) + varint(offset_delta)
    body += _bytes_field(key) + _bytes_field(value) + varint(len(headers))
    for name, header_value in headers:
        body += _bytes_field(name.encode()) + _bytes_field(header_value)
    return varint(len(body)) + body


def record_batch(
    records: Sequence[tuple[bytes | None, bytes | None, Sequence[Header]]],
    *,
    base_timestamp_ms: int | None = None,
    base_offset: int = 0,
    attributes: int = 0,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    leader_epoch: int = -1,
    last_offset_delta: int | None = None,
    record_count: int | None = None,
    crc: int | None = None,
) -> bytes:
    """An uncompressed v2 record batch; each override makes it lie about one field."""
    ts = int(time.time() * 1000) if base_timestamp_ms is None else base_timestamp_ms
    payload = b"".join(
        encode_record(i, 0, key, value, headers) for i, (key, value, headers) in enumerate(records)
    )
    n = len(records)
    covered = (
        _COVERED.pack(
            attributes,
            n - 1 if last_offset_delta is None else last_offset_delta,
            ts,
            ts,
            producer_id,
            producer_epoch,
            base_sequence,
            n if record_count is None else record_count,
        )
        + payload
    )
    checksum = crc32c.crc32c(covered) if crc is None else crc
    batch_length = _PREFIX.size - 12 + len(covered)
    return _PREFIX.pack(base_offset, batch_length, leader_epoch, 2, checksum) + covered


def request_frame(
    api_key: int,
    api_version: int,
    correlation_id: int,
    body: Mapping[str, Any] | Any,
    *,
    client_id: str | None = "kafkito-wire",
) -> bytes:
    """A size-prefixed request encoded by kio; `body` is plain data or the kio dataclass."""
    schema: Any = load_request_schema(api_key, api_version)
    header_schema: Any = schema.__header_schema__
    header = build(
        header_schema,
        {
            "request_api_key": api_key,
            "request_api_version": api_version,
            "correlation_id": correlation_id,
            "client_id": client_id,
        },
    )
    buf = io.BytesIO()
    entity_writer(header_schema)(buf, header)
    entity_writer(schema)(buf, build(schema, body))
    payload = buf.getvalue()
    return _SIZE.pack(len(payload)) + payload


class WireClient:
    """One blocking connection to a broker; every read has a deadline of `timeout_s`."""

    def __init__(self, bootstrap: str, *, timeout_s: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout_s = timeout_s
        self.next_correlation_id = 1

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, api_key: int, api_version: int, body: Mapping[str, Any] | Any = None) -> int:
        """Send one request; returns its correlation id."""
        correlation_id = self.next_correlation_id
        self.next_correlation_id += 1
        self.send_raw(request_frame(api_key, api_version, correlation_id, body or {}))
        return correlation_id

    def _read_exactly(self, n: int) -> bytes | None:
        chunks, got = [], 0
        while got < n:
            try:
                chunk = self.sock.recv(min(n - got, 1 << 20))
            except ConnectionResetError:
                return None
            if not chunk:
                return None
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def read_frame(self) -> bytes | None:
        """The next response frame without its size prefix; None if the broker closed.

        Raises TimeoutError (socket.timeout) when nothing arrives within the deadline.
        """
        prefix = self._read_exactly(4)
        if prefix is None:
            return None
        (size,) = _SIZE.unpack(prefix)
        return self._read_exactly(size)

    def read_response(self, api_key: int, api_version: int) -> tuple[int, Any]:
        """(correlation id, kio-decoded body) of the next response; AssertionError if closed."""
        frame = self.read_frame()
        assert frame is not None, "the broker closed the connection"
        schema: Any = load_response_schema(api_key, api_version)
        header, used = entity_reader(schema.__header_schema__)(frame, 0)
        body, _ = entity_reader(schema)(frame, used)
        return int(header.correlation_id), body

    def request(self, api_key: int, api_version: int, body: Mapping[str, Any] | Any = None) -> Any:
        """Send one request and return the decoded body of its answer."""
        correlation_id = self.send(api_key, api_version, body)
        answered, response = self.read_response(api_key, api_version)
        assert answered == correlation_id, (answered, correlation_id)
        return response

    def closed_by_peer(self, timeout_s: float | None = None) -> bool:
        """True if the broker closes the connection (EOF or reset) within the deadline.

        Bytes that arrive instead mean the connection is open: False.
        """
        self.sock.settimeout(self.timeout_s if timeout_s is None else timeout_s)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout_s)
