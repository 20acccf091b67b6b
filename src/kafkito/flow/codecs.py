"""Turning a record's bytes into the value a handler wants.

* `json` (the default): any JSON document, decoded with msgspec (fast, strict UTF-8).
* `raw`: the bytes as they are.
* `text`: the bytes as UTF-8 text (strict: invalid UTF-8 is a DecodeError).
* a pydantic model class: `Model.model_validate_json(bytes)`: decoding and validation in one.
* a msgspec Struct class: `msgspec.json.decode(bytes, type=Struct)`.
* any callable `bytes -> value`.

`decoder_for` serves an explicit `decoder=`/`model=` (null values pass as None through `json`, `raw`
and `text`); `decoder_of` serves a handler's annotation (flow/annotations.py), where a null value
reaches the handler only if the annotation allows None.

Every failure here is permanent (a poison pill): the record goes to the dead-letter topic with its
original bytes, and the error says what was wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from kafkito.errors import KafkitoError

Decoder = Callable[[bytes | None], Any]


class DecodeError(KafkitoError):
    """The record's value could not be decoded into what the handler expects."""


class ValidationFailed(KafkitoError):
    """The decoded value failed validation."""


def _json(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(f"value is not JSON: {exc}") from exc


def _raw(data: bytes | None) -> Any:
    return data


def _text(data: bytes | None) -> Any:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"value is not UTF-8 text: {exc}") from exc


def _null(what: str) -> DecodeError:
    return DecodeError(
        f"null value (a tombstone) cannot be {what}: annotate it {what} | None to receive "
        "null values as None"
    )


def _raw_present(data: bytes | None) -> Any:
    if data is None:
        raise _null("bytes")
    return data


def _text_present(data: bytes | None) -> Any:
    if data is None:
        raise _null("str")
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise DecodeError(f"value is not UTF-8 text: {exc}") from exc


def _bytearray(data: bytes | None) -> Any:
    return None if data is None else bytearray(data)


def _bytearray_present(data: bytes | None) -> Any:
    if data is None:
        raise _null("bytearray")
    return bytearray(data)


def _memoryview(data: bytes | None) -> Any:
    return None if data is None else memoryview(data)


def _memoryview_present(data: bytes | None) -> Any:
    if data is None:
        raise _null("memoryview")
    return memoryview(data)


_BY_NAME: dict[str, tuple[Decoder, Decoder]] = {
    # name: (null values pass as None, null values are a DecodeError)
    "json": (_json, _json),
    "raw": (_raw, _raw_present),
    "text": (_text, _text_present),
    "bytearray": (_bytearray, _bytearray_present),
    "memoryview": (_memoryview, _memoryview_present),
}


def _is_pydantic_model(kind: Any) -> bool:
    try:
        from pydantic import BaseModel
    except ImportError:  # pragma: no cover - pydantic is a dependency
        return False
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def is_model_type(kind: Any) -> bool:
    """True for a pydantic model class or a msgspec Struct class."""
    return _is_pydantic_model(kind) or (isinstance(kind, type) and issubclass(kind, msgspec.Struct))


def decoder_for(kind: Any) -> Decoder:
    """A decoder from a name ('json', 'raw'), a model class, or a callable."""
    if kind is None or kind == "json":
        return _json
    if kind in ("raw", "bytes", bytes):
        return _raw
    if kind in ("text", "str", str):
        return _text
    if _is_pydantic_model(kind):
        model = kind

        def decode_model(data: bytes | None) -> Any:
            from pydantic import ValidationError

            if data is None:
                raise DecodeError(f"null value cannot be a {model.__name__}")
            try:
                return model.model_validate_json(data)
            except ValidationError as exc:
                if any(e.get("type") == "json_invalid" for e in exc.errors()):
                    raise DecodeError(f"value is not JSON: {exc}") from exc
                raise ValidationFailed(f"not a valid {model.__name__}: {exc}") from exc

        return decode_model
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        struct_decoder = msgspec.json.Decoder(kind)

        def decode_struct(data: bytes | None) -> Any:
            if data is None:
                raise DecodeError(f"null value cannot be a {kind.__name__}")
            try:
                return struct_decoder.decode(data)
            except msgspec.ValidationError as exc:
                raise ValidationFailed(f"not a valid {kind.__name__}: {exc}") from exc
            except msgspec.DecodeError as exc:
                raise DecodeError(f"value is not JSON: {exc}") from exc

        return decode_struct
    if callable(kind):
        custom: Callable[[bytes | None], Any] = kind

        def decode_custom(data: bytes | None) -> Any:
            try:
                return custom(data)
            except Exception as exc:
                raise DecodeError(
                    f"{getattr(custom, '__name__', 'decoder')} failed: {exc}"
                ) from exc

        return decode_custom
    raise TypeError(
        f"cannot decode into {kind!r}: use 'json', 'raw', 'text', a model class or a callable"
    )


def decoder_of(target: Any, *, nullable: bool) -> Decoder:
    """The decoder for an annotation's target: 'json', 'raw', 'text', 'bytearray',
    'memoryview' or a model class. With `nullable` a null value decodes to None; without it,
    a null value is a DecodeError that names the fix (JSON keeps mapping null to None)."""
    if isinstance(target, str):
        lenient, strict = _BY_NAME[target]
        return lenient if nullable else strict
    model_decoder = decoder_for(target)
    if not nullable:
        return model_decoder

    def decode_optional(data: bytes | None) -> Any:
        return None if data is None else model_decoder(data)

    return decode_optional
