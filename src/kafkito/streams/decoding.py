"""What `app.stream(topic, value=..., key=...)` and `app.table(topic, value=...)` decode to.

The same rules as a flow handler's annotation (kafkito.flow.annotations, docs/flow.md), so a
type means the same thing in both:

    value=                               the steps get                 a null value (tombstone)
    bytes                                the value's bytes              dead-lettered
    str                                  UTF-8 text (invalid: error)    dead-lettered
    dict, list, Any (with any params)    any JSON document              None
    a pydantic model or msgspec Struct   that model (decode + validate) dead-lettered
    X | None, Optional[X]                as X                           None

The names of before stay: 'json' (the default for values), 'text' (the default for keys),
'raw', and any callable `bytes -> value` (a null passes to it as None). A type the rules
cannot decode to (`int`, a plain class, `str | bytes`, `Record[X]`) raises StreamsError when
the app is built, not one dead letter per record at run time.

Keys are not values: a record without a key is normal, so a null key is None whatever the
type (`key=str` gets None for keyless records, never a dead letter).

The flow's `decoding_for` and `decoder_of` do the work; this module only tells a type (an
annotation-like spec) from a callable and refuses what has no meaning for a stream.
"""

from __future__ import annotations

import typing
from typing import Any

from kafkito.flow.annotations import decoding_for
from kafkito.flow.codecs import Decoder, decoder_for, decoder_of
from kafkito.streams.errors import StreamsError

__all__ = ["decoder_from_spec", "is_type_spec"]

_NAMES = ("json", "raw", "text", "bytes", "str")
_FIX = (
    "give bytes (raw), str (UTF-8 text), dict, list or Any (JSON), a pydantic model or a "
    "msgspec Struct, each optionally X | None; or 'json', 'text', 'raw', or a callable "
    "bytes -> value"
)


def is_type_spec(spec: Any) -> bool:
    """True for a type or typing construct (`dict`, `bytes | None`, `Optional[Model]`,
    `dict[str, int]`, `Any`), which the annotation rules decide; False for a name or a
    plain callable (a function, a lambda), which decodes as it did before."""
    if isinstance(spec, type) or spec is Any:
        return True
    if isinstance(spec, typing.NewType):
        return True
    return typing.get_origin(spec) is not None


def decoder_from_spec(spec: Any, *, what: str, topic: str) -> Decoder:
    """The decoder for a stream's (or table's) `value=`/`key=` spec; `what` is 'value' or
    'key' (keys are always nullable). Raises StreamsError for a type that cannot be decoded
    to, naming the topic, the type and the fix."""
    if isinstance(spec, str):
        if spec not in _NAMES:
            _refuse(
                f"{what}={spec!r} for topic {topic!r} is not a decoder name",
                _FIX,
            )
        return decoder_for(spec)
    if spec is None:
        return decoder_for("json")
    if not is_type_spec(spec):
        if not callable(spec):
            _refuse(f"{what}={spec!r} for topic {topic!r} is neither a type nor a callable")
        return decoder_for(spec)
    decoding = decoding_for(spec, name=what)
    if decoding.pass_record:
        _refuse(
            f"{what}={decoding.shown} for topic {topic!r}: a stream's steps get values, not "
            "Records",
            "give the value's type (use map_record for a step that needs the whole Record)",
        )
    if decoding.problem is not None:
        if "union" in decoding.problem:
            why = "a union of several types: the app cannot tell which one a record holds"
        else:
            why = f"kafkito.streams cannot decode a record's {what} into {decoding.shown}"
        _refuse(f"{what}={decoding.shown} for topic {topic!r}: {why}", _FIX)
    return decoder_of(decoding.target, nullable=decoding.nullable or what == "key")


def _refuse(why: str, fix: str = "") -> typing.NoReturn:
    raise StreamsError(f"{why}: {fix}" if fix else why)
