"""Decode any request and encode control-plane responses through kio.

kio ships one frozen dataclass per (API, version), generated from Kafka's JSON schemas. Handlers
should not care which version a client spoke, so they describe a response as plain data (dicts,
lists, ints in milliseconds) and `build()` turns that into the dataclass of the version the client
asked for: fields this version lacks are dropped, fields it has but the handler left out take
their schema default. A key that no version of the message has is refused (KeyError): a
misspelled `error_code` would otherwise be dropped and sent as 0, which means success. kio's
writer then omits tagged fields that hold their default value, which keeps librdkafka < 2.1.2
(Debian's kcat) happy (KAFKA-NOTES §6 P3).
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib
import io
import pkgutil
import struct
import types
import typing
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema
from kio.serial import entity_reader, entity_writer
from kio.serial.errors import DecodeError as KioDecodeError
from kio.static.primitive import TZAware, i32Timedelta, i64Timedelta

from kafkito.errors import CorruptFrame, UnsupportedRequest

__all__ = [
    "DecodedRequest",
    "build",
    "decode_request",
    "encode_response",
    "ms",
    "response_header",
]

_UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)


@dataclasses.dataclass(frozen=True, slots=True)
class DecodedRequest:
    """A request header and body decoded by kio."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body: Any


@cache
def _request_readers(
    api_key: int, api_version: int
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    try:
        schema = load_request_schema(api_key, api_version)
    except (UnknownAPIKey, UnknownEntity):
        raise UnsupportedRequest(api_key=api_key, api_version=api_version) from None
    return entity_reader(schema.__header_schema__), entity_reader(schema)


def decode_request(frame: bytes | memoryview, api_key: int, api_version: int) -> DecodedRequest:
    """Decode header and body of one request frame; trailing bytes are ignored (P4).

    Raises UnsupportedRequest for an unknown (key, version), CorruptFrame for undecodable bytes.
    """
    read_header, read_body = _request_readers(api_key, api_version)
    try:
        header, used = read_header(frame, 0)
        body, _ = read_body(frame, used)
    except (KioDecodeError, ValueError, OverflowError, TypeError, IndexError) as exc:
        raise CorruptFrame(f"undecodable api_key={api_key} v{api_version}: {exc}") from exc
    except Exception as exc:  # kio's native reader raises a few builtin kinds
        raise CorruptFrame(f"undecodable api_key={api_key} v{api_version}: {exc!r}") from exc
    return DecodedRequest(api_key, api_version, header.correlation_id, header.client_id, body)


@cache
def response_schema(api_key: int, api_version: int) -> Any:
    """The kio response dataclass for (key, version)."""
    return load_response_schema(api_key, api_version)


@cache
def _writer(schema: Any) -> Callable[[io.BytesIO, Any], None]:
    return entity_writer(schema)


_CORRELATION = struct.Struct(">i")


def response_header(api_key: int, api_version: int, correlation_id: int) -> bytes:
    """Response header bytes: v0 is the correlation id, v1 adds an empty tagged-field section."""
    schema = response_schema(api_key, api_version)
    flexible_header = schema.__header_schema__.__version__ >= 1
    head = _CORRELATION.pack(correlation_id)
    return head + b"\x00" if flexible_header else head


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Any) -> bytes:
    """Header plus body, without the size prefix. `body` is a dataclass or a dict for build()."""
    schema: type = response_schema(api_key, api_version)
    if not dataclasses.is_dataclass(body):
        body = build(schema, body)  # plain data from a handler
    buf = io.BytesIO()
    buf.write(response_header(api_key, api_version, correlation_id))
    _writer(schema)(buf, body)
    return buf.getvalue()


def ms(value: datetime.timedelta | int | None) -> int:
    """Milliseconds of a kio duration field (or an int already in ms)."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    return int(value / datetime.timedelta(milliseconds=1))


# -- build(): plain data -> the kio dataclass of one version ------------------------------------

_Convert = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _to_timedelta(value: Any) -> Any:
    return datetime.timedelta(milliseconds=value) if isinstance(value, int) else value


def _to_datetime(value: Any) -> Any:
    if isinstance(value, int):
        if value < 0:
            return None
        return _EPOCH + datetime.timedelta(milliseconds=value)
    return value


def _converter_for(hint: Any) -> _Convert:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(inner) == 1:
            convert = _converter_for(inner[0])
            if convert is _identity:
                return _identity
            return lambda v: None if v is None else convert(v)
        return _identity
    if origin is tuple:
        args = typing.get_args(hint)
        if args and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
            item: type = args[0]
            return lambda v: tuple(build(item, x) for x in v)
        return lambda v: tuple(v)
    if isinstance(hint, type):
        if dataclasses.is_dataclass(hint):
            return lambda v: build(hint, v)
        if issubclass(hint, i32Timedelta | i64Timedelta):
            return _to_timedelta
        if issubclass(hint, TZAware):
            return _to_datetime
    return _identity


@cache
def _plan(cls: type) -> tuple[tuple[str, _Convert, bool, bool], ...]:
    hints = typing.get_type_hints(cls)
    plan = []
    for f in dataclasses.fields(cls):
        has_default = (
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        )
        hint = hints[f.name]
        is_array = typing.get_origin(hint) is tuple
        plan.append((f.name, _converter_for(hint), has_default, is_array))
    return tuple(plan)


def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in dataclasses.fields(cls))


@cache
def known_fields(cls: type) -> frozenset[str]:
    """Field names of `cls` in any version of its message: what plain data may hold.

    kio generates `kio.schema.<api>.v<N>.<request|response>` modules in which a nested entity
    keeps its class name across versions, so the union over the sibling version modules is
    what a version-independent handler may legitimately write. A class outside that layout
    knows only its own fields.
    """
    names = set(_field_names(cls))
    parts = cls.__module__.split(".")
    if len(parts) == 5 and parts[:2] == ["kio", "schema"] and parts[3].startswith("v"):
        package = importlib.import_module(".".join(parts[:3]))
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("v"):
                continue
            try:
                module = importlib.import_module(f"{package.__name__}.{info.name}.{parts[4]}")
            except ImportError:
                continue
            sibling = getattr(module, cls.__qualname__, None)
            if isinstance(sibling, type) and dataclasses.is_dataclass(sibling):
                names |= _field_names(sibling)
    return frozenset(names)


def build(cls: type, data: Mapping[str, Any] | Any) -> Any:
    """Make an instance of kio dataclass `cls` from version-independent plain data.

    Keys that `cls` lacks but another version of the message has are ignored; a key that no
    version has is a bug in the caller (KeyError), as is a missing field without default.
    Missing arrays become empty; other missing fields take the schema default.
    """
    if isinstance(data, cls):
        return data
    unknown = data.keys() - known_fields(cls)
    if unknown:
        raise KeyError(
            f"{cls.__module__}.{cls.__qualname__} has no field {', '.join(sorted(unknown))} "
            "in any version"
        )
    kwargs: dict[str, Any] = {}
    for name, convert, has_default, is_array in _plan(cls):
        if name in data:
            kwargs[name] = convert(data[name])
        elif is_array and not has_default:
            kwargs[name] = ()
        elif not has_default:
            raise KeyError(f"{cls.__module__}.{cls.__qualname__} needs field {name!r}")
    return cls(**kwargs)
