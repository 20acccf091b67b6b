"""The record that flows through a topology, and how values and keys become bytes again.

Records are decoded once at the source (the flow's codecs: JSON, pydantic, msgspec, raw,
text) and encoded once at a sink. Two encodings, for two audiences:

* **topics the user reads** (`Stream.to`): `encode_value` writes bytes as they are, `str` as
  UTF-8, a pydantic model with `model_dump_json`, anything else (dicts, lists, numbers,
  msgspec Structs, dataclasses, window results) as JSON through msgspec;
* **the app's own topics and stores** (repartition topics, changelogs, LMDB): msgpack, which
  keeps the types a key or an aggregate is made of (an int key stays an int across a
  repartition, where JSON text would not round-trip `"1"` and `1`). pydantic models cross as
  their `model_dump()`; give the repartition a `value=` type to get the model back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

__all__ = [
    "KEY_HEADER",
    "Record",
    "WindowResult",
    "encode_key",
    "encode_value",
    "key_from_repartition",
    "key_to_repartition",
    "pack",
    "unpack",
]

KEY_HEADER = "kafkito-key"
"""On repartition records whose key is not text: how the key bytes decode ("json", "raw")."""


class Record:
    """One record inside a topology: its decoded key and value, event time and origin.

    `topic`, `partition` and `offset` are those of the record the source read (after a
    repartition: of the repartition topic). Steps get and return values; the record carries
    them, so a step never needs to copy more than it changes.
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp_ms", "topic", "value")

    def __init__(
        self,
        key: Any,
        value: Any,
        timestamp_ms: int,
        topic: str = "",
        partition: int = 0,
        offset: int = -1,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self.key = key
        self.value = value
        self.timestamp_ms = timestamp_ms
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.headers = headers

    def with_value(self, value: Any) -> Record:
        """A copy with another value (the origin and event time stay)."""
        return Record(
            self.key,
            value,
            self.timestamp_ms,
            self.topic,
            self.partition,
            self.offset,
            self.headers,
        )

    def with_key(self, key: Any) -> Record:
        """A copy with another key."""
        return Record(
            key,
            self.value,
            self.timestamp_ms,
            self.topic,
            self.partition,
            self.offset,
            self.headers,
        )

    def __repr__(self) -> str:
        return (
            f"Record(key={self.key!r}, value={self.value!r}, timestamp_ms={self.timestamp_ms}, "
            f"topic={self.topic!r}, partition={self.partition}, offset={self.offset})"
        )


class WindowResult(msgspec.Struct, frozen=True):
    """The aggregate of one key over one window: `[start_ms, end_ms)` for tumbling and
    hopping windows, `[start_ms, end_ms]` (first and last record) for sessions and sliding
    windows. Written to a topic as JSON `{"key", "start_ms", "end_ms", "value"}`."""

    key: Any
    start_ms: int
    end_ms: int
    value: Any


_json_encoder = msgspec.json.Encoder(enc_hook=lambda obj: _model_dump(obj))
_msgpack_encoder = msgspec.msgpack.Encoder(enc_hook=lambda obj: _model_dump(obj))
_msgpack_decoder = msgspec.msgpack.Decoder()


def _model_dump(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None:  # a pydantic model
        return dump(mode="json")
    raise TypeError(f"cannot encode a {type(obj).__name__}: give the step a JSON-able value")


def encode_value(value: Any) -> bytes | None:
    """A value as the bytes a user-facing topic gets (None stays None: a tombstone)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    dump_json = getattr(value, "model_dump_json", None)
    if dump_json is not None:
        data: str = dump_json()
        return data.encode()
    return _json_encoder.encode(value)


def encode_key(key: Any) -> bytes | None:
    """A key as record-key bytes: bytes as they are, text as UTF-8, anything else as JSON."""
    return encode_value(key)


pack: Callable[[Any], bytes] = _msgpack_encoder.encode
"""Any msgpack-able value (or pydantic model) as bytes, for the app's own topics and stores."""


def unpack(data: bytes, kind: Any = None) -> Any:
    """The inverse of `pack`; `kind` (a msgspec Struct, a pydantic model) rebuilds a type."""
    if kind is None:
        return _msgpack_decoder.decode(data)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        return msgspec.msgpack.decode(data, type=kind)
    validate = getattr(kind, "model_validate", None)
    if validate is not None:
        return validate(_msgpack_decoder.decode(data))
    return kind(_msgpack_decoder.decode(data))


def key_to_repartition(key: Any) -> tuple[bytes | None, str | None]:
    """A repartition record's key bytes, and the KEY_HEADER value if the key is not text.

    Text keys are their UTF-8 bytes, as a user's producer would write them, so a
    repartitioned stream lands in the same partitions as a topic keyed the same way (a table
    it joins). Other keys are JSON (or raw bytes), flagged so that they decode as they were.
    """
    if key is None or isinstance(key, str):
        return (None if key is None else key.encode()), None
    if isinstance(key, bytes):
        return key, "raw"
    return _json_encoder.encode(key), "json"


def key_from_repartition(data: bytes | None, headers: list[tuple[str, bytes]] | None) -> Any:
    """The inverse of `key_to_repartition`."""
    if data is None:
        return None
    for name, flag in headers or ():
        if name == KEY_HEADER:
            return data if flag == b"raw" else msgspec.json.decode(data)
    return data.decode()
