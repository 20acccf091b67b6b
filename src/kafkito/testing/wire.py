"""Raw Kafka wire traffic for tests: record batches, request frames and a blocking socket client.

Real clients never send a broken frame, a control batch or `acks=2`, so the broker's defences
against them can only be tested with hand-made bytes. This module makes them:

* `record_batch()` encodes a v2 record batch (KAFKA-NOTES §4, with `protocol.records`); every
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
from kafkito.protocol.records import build_batch, encode_record

__all__ = [
    "Header",
    "WireClient",
    "encode_record",
    "produce_response_data",
    "record_batch",
    "request_frame",
]

Header = tuple[str, bytes | None]

_SIZE = struct.Struct(">i")
# Where the fields a test may lie about sit in a batch (KAFKA-NOTES §4); the CRC covers [21, end).
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_CRC_AT, _CRC_COVERS_FROM, _LAST_OFFSET_DELTA_AT, _RECORD_COUNT_AT = 17, 21, 23, 57

ATTR_CONTROL = 0x20


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
    """An uncompressed v2 record batch (protocol.records.build_batch); each override makes it
    lie about one field, and the CRC is computed over the lie unless `crc` is given too."""
    ts = int(time.time() * 1000) if base_timestamp_ms is None else base_timestamp_ms
    batch = bytearray(
        build_batch(
            [(key, value) for key, value, _ in records],
            headers=[list(headers) for _, _, headers in records],
            base_offset=base_offset,
            base_timestamp=ts,
            attributes=attributes,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            base_sequence=base_sequence,
            partition_leader_epoch=leader_epoch,
        )
    )
    if last_offset_delta is not None:
        _I32.pack_into(batch, _LAST_OFFSET_DELTA_AT, last_offset_delta)
    if record_count is not None:
        _I32.pack_into(batch, _RECORD_COUNT_AT, record_count)
    checksum = crc32c.crc32c(bytes(batch[_CRC_COVERS_FROM:])) if crc is None else crc
    _U32.pack_into(batch, _CRC_AT, checksum)
    return bytes(batch)


def produce_response_data(
    topics: Sequence[tuple[str, Sequence[Any]]], throttle_ms: int = 0
) -> dict[str, Any]:
    """A Produce response as plain data for kio (`codec.encode_response`), from the
    (topic, [ProducePartitionResult]) pairs the hand-written encoder takes: the reference
    that encoder is compared with byte for byte."""
    from kafkito.errors import ErrorCode

    return {
        "responses": [
            {
                "name": name,
                "partition_responses": [
                    {
                        "index": p.index,
                        "error_code": ErrorCode(p.error_code),
                        "base_offset": p.base_offset,
                        "log_append_time": p.log_append_time_ms,
                        "log_start_offset": p.log_start_offset,
                        "record_errors": [
                            {"batch_index": i, "batch_index_error_message": m}
                            for i, m in p.record_errors
                        ],
                        "error_message": p.error_message,
                    }
                    for p in parts
                ],
            }
            for name, parts in topics
        ],
        "throttle_time": throttle_ms,
    }


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
