"""Exceptions kafkito raises on purpose, grouped by what the catcher does next.

KafkitoError
    ProtocolError        a peer broke the wire protocol: close that connection, serve the rest
        CorruptFrame         a size prefix or header that cannot be parsed
        FrameTooLarge        a size prefix above the configured limit (refused before allocating)
        UnsupportedRequest   an API key or version we do not serve (not ApiVersions)
        CorruptBatch         a record batch that fails a structural check
    StorageError         the log cannot keep a promise: stop accepting writes, never guess
        CorruptLog           damage below the recovery point: refuse to start, say what to do
    BrokerError          a request failed with a Kafka error code; carries the code
    InvalidTransition    a state table refused a (state, event) pair: our bug (also an
                         AssertionError, so it reads as a failed invariant)

Every exception class in the package derives from KafkitoError; docs/development.md lists them
all, part by part, and tests/unit/test_exception_tree.py fails on one missing from that table.

Wire error codes are Kafka's own table, taken from kio's generated `ErrorCode` enum (it is
generated from Kafka's `Errors.java` and carries the `retriable` flag), so there is one table.
kio's schemas are slow to import (~0.7 s), so `ErrorCode` is loaded on first use: client code
that only catches these exceptions never pays for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kio.schema.errors import ErrorCode


def __getattr__(name: str) -> Any:
    if name == "ErrorCode":
        from kio.schema.errors import ErrorCode

        return ErrorCode
    raise AttributeError(f"module 'kafkito.errors' has no attribute {name!r}")


__all__ = [
    "BrokerError",
    "CorruptBatch",
    "CorruptFrame",
    "CorruptLog",
    "ErrorCode",
    "FrameTooLarge",
    "InvalidTransition",
    "KafkitoError",
    "ProtocolError",
    "StorageError",
    "UnsupportedRequest",
]


class KafkitoError(Exception):
    """Base of every exception kafkito raises on purpose."""


class ProtocolError(KafkitoError):
    """A peer broke the wire protocol; the connection to that peer is closed."""


class CorruptFrame(ProtocolError):
    """A frame or request header that cannot be parsed."""


class FrameTooLarge(ProtocolError):
    """A size prefix larger than the configured limit, refused before any allocation."""

    def __init__(self, *, size_bytes: int, limit_bytes: int) -> None:
        super().__init__(f"frame of {size_bytes} bytes exceeds the {limit_bytes}-byte limit")
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes


class UnsupportedRequest(ProtocolError):
    """An API key or version this broker does not serve."""

    def __init__(self, *, api_key: int, api_version: int) -> None:
        super().__init__(f"unsupported request: api_key={api_key} version={api_version}")
        self.api_key = api_key
        self.api_version = api_version


class CorruptBatch(ProtocolError):
    """A record batch failing a check; `code` is the Kafka error to answer with."""

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        from kio.schema.errors import ErrorCode

        super().__init__(message)
        self.code = ErrorCode.corrupt_message if code is None else code


class StorageError(KafkitoError):
    """The log cannot keep a promise (disk full, fsync failed): writes stop, reads go on."""


class CorruptLog(StorageError):
    """Damage below the recovery point; the broker refuses to serve it."""


class BrokerError(KafkitoError):
    """A request failed with a Kafka error code."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(message or code.name)
        self.code = code


class InvalidTransition(KafkitoError, AssertionError):
    """A (state, event) pair that a state table does not allow: a bug in the caller.

    Shared by the classic group, KIP-848 member and transaction state tables.
    """
