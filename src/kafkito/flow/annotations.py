"""From a handler's annotation to the decoder the flow uses, decided once at construction.

A user writes `def handle(value: bytes)` and expects raw bytes; the flow reads the annotation of
the handler's first parameter and picks the decoder by this table (docs/flow.md holds the same):

    annotation                           the handler gets              a null value (tombstone)
    bytes, bytearray, memoryview         the value's bytes as that      a DecodeError (dead letter)
    str                                  UTF-8 text (invalid: error)    a DecodeError (dead letter)
    dict, list, Mapping, Sequence, Any,  any JSON document (type        None (JSON maps null to
      object, none                         parameters are not checked)    None, as before)
    a pydantic model or msgspec Struct   that model (decode + validate) a DecodeError (dead letter)
    X | None, Optional[X]                as X                           None
    Record[X]                            a Record whose value is as X   as X
    list[X] (batch handlers)             a list of X                    as X

`Annotated[X, ...]` is X; string annotations (`from __future__ import annotations`) are resolved
in the handler's module, then its closure. A parameter named `record` (`records` for a batch)
without a type, or typed `Any`, gets Records (the rule before annotations were read).

Anything else (`int`, a plain class, a union of two types, a name that does not resolve) is a
`problem`: the Flow refuses to start and says which annotation and how to fix it, rather than
dead-lettering every record one log line at a time. An explicit `decoder=` or `model=` wins over
the annotation, and then an annotation the flow cannot decode to is the user's business.

`decoding_for` is pure (an annotation in, a `Decoding` out); `handler_decoding` reads a handler's
signature; `FirstDecodes` notices a flow whose first records all fail to decode and says so
once. The same rules are meant for kafkito.streams' typed steps.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import re
import threading
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from kafkito.errors import KafkitoError
from kafkito.flow.codecs import DecodeError, Decoder, is_model_type

Target = Literal["json", "raw", "text", "bytearray", "memoryview"] | type
"""What a value decodes into: a named decoder, or a pydantic model / msgspec Struct class."""

EMPTY: Any = inspect.Parameter.empty
"""A parameter without an annotation."""

FIRST_RECORDS = 5
"""A flow whose first this-many decoded records all failed says so once, loudly."""

_RECORD_NAMES = ("record", "records")
_JSON_TYPES: tuple[Any, ...] = (
    dict,
    list,
    collections.abc.Mapping,
    collections.abc.MutableMapping,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
)
_BATCH_TYPES: tuple[Any, ...] = (
    list,
    collections.abc.Sequence,
    collections.abc.Iterable,
    collections.abc.Collection,
)
_BYTES_TARGETS: dict[Any, Target] = {
    bytes: "raw",
    bytearray: "bytearray",
    memoryview: "memoryview",
    str: "text",
}
_WHAT = {
    "json": "JSON",
    "raw": "raw bytes",
    "text": "UTF-8 text",
    "bytearray": "a bytearray",
    "memoryview": "a memoryview",
}
_KINDS = "bytes (raw), str (UTF-8 text), dict or list (JSON), a pydantic model or msgspec Struct"
_FIX = (
    f"annotate {_KINDS}, optionally as Record[X] or X | None; or pass decoder= ('raw', 'text', "
    "'json' or a callable bytes -> value) or model="
)
_UNRESOLVED_FIX = (
    "with `from __future__ import annotations` an annotation is a string, evaluated in the "
    "handler's module: define the type at module level, or pass decoder= or model="
)


class AnnotationError(KafkitoError):
    """The handler's shape cannot work in a flow at all (no parameter to pass a value to)."""


@dataclass(frozen=True, slots=True)
class Decoding:
    """What a handler's annotation asks of the flow."""

    pass_record: bool
    """The handler takes `Record`s (the value is in `.value`), not bare values."""
    target: Target
    nullable: bool
    """A null value (a tombstone) reaches the handler as None; otherwise it is a DecodeError."""
    shown: str
    """The annotation as the user wrote it, for messages."""
    problem: str | None = None
    """Why the flow cannot decode to this annotation (the Flow refuses to start unless an
    explicit decoder= or model= is given); None when it can."""

    def how(self) -> str:
        """How values are decoded, for messages: `JSON (the handler's annotation: dict)`."""
        what = _WHAT[self.target] if isinstance(self.target, str) else self.target.__name__
        return f"{what} (the handler's annotation: {self.shown})"

    def fix_hint(self) -> str:
        """The likely fix when the first records all fail to decode this way."""
        if self.target == "json":
            return (
                "if the values are not JSON, annotate the handler's value bytes (raw) or str "
                "(UTF-8 text), or pass decoder='raw'"
            )
        if self.target == "text":
            return "if the values are not UTF-8 text, annotate the handler's value bytes"
        if self.target in ("raw", "bytearray", "memoryview"):
            return (
                "if the values are null (tombstones), add `| None` to the handler's annotation "
                "to receive them as None"
            )
        name = self.target.__name__ if isinstance(self.target, type) else str(self.target)
        return (
            f"if the values are not {name} JSON, check what the producers write, or annotate "
            "the handler's value bytes (or pass decoder='raw') to see them as they are"
        )


def decoding_for(annotation: Any, *, name: str = "value", batch: bool = False) -> Decoding:
    """The decoding a handler's first parameter asks for; pure.

    `annotation` is the resolved annotation (`EMPTY` for none; an unresolved string is a
    problem), `name` the parameter's name (`record`/`records` without a type means Records),
    `batch` whether the handler takes a list of values. Never raises: what the flow cannot do is
    in `Decoding.problem`.
    """
    shown = show(annotation)
    if isinstance(annotation, str):
        return _problem(
            shown,
            f"cannot resolve the handler's annotation {annotation!r} of {name!r}",
            _UNRESOLVED_FIX,
        )
    element = annotation
    if batch:
        bare = _strip_annotated(annotation)
        if bare is EMPTY or bare is Any:
            element = bare
        else:
            if (typing.get_origin(bare) or bare) not in _BATCH_TYPES:
                return _problem(
                    shown,
                    f"a batch handler takes a list of values, not {shown}",
                    f"annotate its parameter {name!r} list[X] or list[Record[X]], X being one "
                    f"of: {_KINDS}",
                )
            args = typing.get_args(bare)
            element = args[0] if args else EMPTY
    element = _strip_annotated(element)
    if element in (EMPTY, Any, object) and name in _RECORD_NAMES:
        return Decoding(True, "json", True, shown)
    if element is _record_type() or typing.get_origin(element) is _record_type():
        args = typing.get_args(element)
        inner = _value_decoding(args[0] if args else EMPTY, shown)
        return dataclasses.replace(inner, pass_record=True)
    return _value_decoding(element, shown)


def _value_decoding(annotation: Any, shown: str) -> Decoding:
    """The decoding of a value's own type (no Record, no batch list around it)."""
    kind = _strip_annotated(annotation)
    nullable = False
    if _is_union(kind):
        members = [m for m in typing.get_args(kind) if m is not type(None)]
        nullable = len(members) < len(typing.get_args(kind))
        if len(members) != 1:
            return _problem(
                shown,
                f"the handler's annotation {shown} is a union of several types; the flow "
                "cannot tell which one a record holds",
                "pass decoder= (a callable bytes -> value), or annotate one type",
            )
        kind = _strip_annotated(members[0])
    while hasattr(kind, "__supertype__"):  # typing.NewType("UserId", bytes) is bytes
        kind = kind.__supertype__
    if kind in (EMPTY, Any, object) or kind in _JSON_TYPES:
        return Decoding(False, "json", True, shown)
    if typing.get_origin(kind) in _JSON_TYPES:
        return Decoding(False, "json", True, shown)
    if isinstance(kind, type) and kind in _BYTES_TARGETS:
        return Decoding(False, _BYTES_TARGETS[kind], nullable, shown)
    if is_model_type(kind):
        return Decoding(False, kind, nullable, shown)
    if kind is _record_type() or typing.get_origin(kind) is _record_type():
        return _problem(
            shown,
            f"Record[X] cannot be in a union ({shown})",
            "annotate Record[X | None], or pass decoder=",
        )
    inside = "" if show(kind) == shown else f" (the annotation: {shown})"
    return _problem(shown, f"the flow cannot decode a record's value into {show(kind)}{inside}")


def handler_decoding(handler: Callable[..., Any], *, batch: bool) -> Decoding:
    """The decoding the handler's first parameter asks for (see `decoding_for`).

    Raises AnnotationError if the handler takes no parameter. A handler whose signature
    cannot be read (some builtins) gets JSON values, as before annotations were read.
    """
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return Decoding(False, "json", True, "(no signature)")
    params = list(signature.parameters.values())
    if not params:
        raise AnnotationError("the handler must take one parameter (the value or a Record)")
    first = params[0]
    annotation = first.annotation
    if isinstance(annotation, str):
        try:
            annotation = _resolve(annotation, handler)
        except Exception as exc:
            return _problem(
                annotation,
                f"cannot resolve the annotation {annotation!r} of the handler's parameter "
                f"{first.name!r} ({type(exc).__name__}: {exc})",
                _UNRESOLVED_FIX,
            )
    return decoding_for(annotation, name=first.name, batch=batch)


def _resolve(text: str, handler: Callable[..., Any]) -> Any:
    """Evaluate a string annotation as typing.get_type_hints would, in the module of the
    function behind `handler`, then in its closure (names the body uses)."""
    target: Any = handler
    while isinstance(target, functools.partial):
        target = target.func
    target = getattr(target, "__func__", target)  # a bound method
    if not inspect.isfunction(target) and not inspect.isclass(target):
        target = type(target).__call__  # a callable object
        target = getattr(target, "__func__", target)
    target = inspect.unwrap(target)
    namespace: dict[str, Any] = dict(getattr(target, "__globals__", {}))
    if inspect.isfunction(target):
        namespace.update(inspect.getclosurevars(target).nonlocals)
    return eval(text, namespace)  # the handler's own annotation, as typing.get_type_hints does


def _problem(shown: str, why: str, fix: str = "") -> Decoding:
    return Decoding(False, "json", True, shown, problem=f"{why}: {fix or _FIX}")


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _record_type() -> type:
    # The runner defines Record and imports this module: import it when first needed.
    from kafkito.flow.runner import Record

    return Record


_QUALIFIED = re.compile(r"\b(?:[A-Za-z_]\w*\.)+(?=[A-Za-z_]\w*)")


def show(annotation: Any) -> str:
    """An annotation as the user would write it: `bytes | None`, `Record[str]`, `Click`."""
    if annotation is EMPTY:
        return "(no annotation)"
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    if _is_union(annotation):
        return " | ".join(show(member) for member in typing.get_args(annotation))
    return _QUALIFIED.sub("", repr(annotation)).replace("NoneType", "None")


class FirstDecodes:
    """Watches a flow's first decodes, so that a flow that decodes nothing says why, once.

    The flow decodes through `decode` only until it learns something: the first success, or
    the `limit`-th failure with no success before it. Then `done` is called once, with None
    after a success or with the message to log after the failures; the flow then goes back
    to the bare decoder, so the hot path pays nothing once a record has decoded. Safe to call
    from several handler threads.
    """

    def __init__(
        self,
        decoder: Decoder,
        *,
        how: str,
        fix: str,
        done: Callable[[str | None], None],
        limit: int = FIRST_RECORDS,
    ) -> None:
        self._decoder = decoder
        self._how = how
        self._fix = fix
        self._done = done
        self._limit = limit
        self._failures = 0
        self._finished = False
        self._lock = threading.Lock()

    def decode(self, data: bytes | None) -> Any:
        """Decode as the flow's decoder does, counting the outcome."""
        try:
            value = self._decoder(data)
        except DecodeError as exc:
            self._failed(exc)
            raise
        if not self._finished:
            self._finish(None)
        return value

    def _failed(self, exc: DecodeError) -> None:
        with self._lock:
            self._failures += 1
            if self._failures < self._limit:
                return
        self._finish(
            f"the first {self._limit} records all failed to decode as {self._how}; "
            f"{self._fix} (the last error: {exc})"
        )

    def _finish(self, loud: str | None) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        self._done(loud)
