"""Turning a record's bytes into the value a handler wants.

* `json` (the default): any JSON document, decoded with msgspec (fast, strict UTF-8).
* `raw`: the bytes as they are.
* a pydantic model class: `Model.model_validate_json(bytes)`: decoding and validation in one.
* a msgspec Struct class: `msgspec.json.decode(bytes, type=Struct)`.
* any callable `bytes -> value`.

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
    raise TypeError(f"cannot decode into {kind!r}: use 'json', 'raw', a model class or a callable")
