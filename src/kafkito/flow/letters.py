"""What goes into a dead-letter or retry record: the original bytes and headers, plus ours.

The original key, value and headers are copied byte for byte (never re-serialized: a record that
failed to decode must not be decoded again to be dead-lettered, spring-kafka#2000). kafkito adds
headers naming where the record came from and why it failed. Diagnostic text is cut so that the
record fits the topic's size limit; the payload itself is never cut (if it alone does not fit,
the dead-letter write fails and the flow keeps the source uncommitted, RELIABILITY F5/F6).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

HEADER_PREFIX = "x-kafkito-"
ORIGINAL_TOPIC = HEADER_PREFIX + "original-topic"
ORIGINAL_PARTITION = HEADER_PREFIX + "original-partition"
ORIGINAL_OFFSET = HEADER_PREFIX + "original-offset"
ORIGINAL_TIMESTAMP = HEADER_PREFIX + "original-timestamp"
GROUP = HEADER_PREFIX + "group"
ATTEMPTS = HEADER_PREFIX + "attempts"
EXCEPTION_TYPE = HEADER_PREFIX + "exception-type"
EXCEPTION_MESSAGE = HEADER_PREFIX + "exception-message"
DUE_MS = HEADER_PREFIX + "due-ms"
ATTEMPT = HEADER_PREFIX + "attempt"

OURS = (
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP,
    GROUP,
    ATTEMPTS,
    EXCEPTION_TYPE,
    EXCEPTION_MESSAGE,
    DUE_MS,
    ATTEMPT,
)

Headers = list[tuple[str, bytes | None]]

# Room kept for the batch and record framing around key, value and headers.
_FRAMING_BYTES = 256


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record was first read: survives its trips through retry topics."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @classmethod
    def of(
        cls,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> Origin:
        """The record's origin: from our headers if it came through a retry topic."""
        found = {k: v for k, v in headers if k in OURS and v is not None}
        if ORIGINAL_TOPIC in found:
            try:
                return cls(
                    found[ORIGINAL_TOPIC].decode(),
                    int(found.get(ORIGINAL_PARTITION, b"-1")),
                    int(found.get(ORIGINAL_OFFSET, b"-1")),
                    int(found.get(ORIGINAL_TIMESTAMP, b"-1")),
                )
            except (ValueError, UnicodeDecodeError):
                pass  # not ours after all: treat the record as original
        return cls(topic, partition, offset, timestamp_ms)

    def headers(self) -> Headers:
        """The headers that carry this origin along."""
        return [
            (ORIGINAL_TOPIC, self.topic.encode()),
            (ORIGINAL_PARTITION, str(self.partition).encode()),
            (ORIGINAL_OFFSET, str(self.offset).encode()),
            (ORIGINAL_TIMESTAMP, str(self.timestamp_ms).encode()),
        ]


def user_headers(headers: Sequence[tuple[str, bytes | None]]) -> Headers:
    """The record's headers without kafkito's own (they are rewritten on each trip)."""
    return [(k, v) for k, v in headers if k not in OURS]


def dead_letter_headers(
    headers: Sequence[tuple[str, bytes | None]],
    origin: Origin,
    *,
    group: str,
    attempts: int,
    exc: BaseException,
    key: bytes | None,
    value: bytes | None,
    max_record_bytes: int,
) -> Headers:
    """Original headers plus the diagnostic ones, the exception message cut to fit."""
    out = user_headers(headers) + origin.headers()
    out += [
        (GROUP, group.encode()),
        (ATTEMPTS, str(attempts).encode()),
        (EXCEPTION_TYPE, f"{type(exc).__module__}.{type(exc).__qualname__}".encode()),
    ]
    used = _FRAMING_BYTES + len(key or b"") + len(value or b"")
    used += sum(len(k) + len(v or b"") + 8 for k, v in out)
    room = max_record_bytes - used - len(EXCEPTION_MESSAGE) - 8
    message = str(exc).encode(errors="replace")
    if room < len(message):
        marker = b"...[truncated]"
        message = message[: max(room - len(marker), 0)] + marker if room > len(marker) else b""
    out.append((EXCEPTION_MESSAGE, message))
    return out


def retry_headers(
    headers: Sequence[tuple[str, bytes | None]],
    origin: Origin,
    *,
    attempt: int,
    due_ms: int,
) -> Headers:
    """Headers of a record sent to a retry topic: its origin, next attempt and due time."""
    out = user_headers(headers) + origin.headers()
    out += [
        (ATTEMPT, str(attempt).encode()),
        (DUE_MS, str(due_ms).encode()),
    ]
    return out


def header_int(headers: Sequence[tuple[str, bytes | None]], name: str) -> int | None:
    for k, v in headers:
        if k == name and v is not None:
            try:
                return int(v)
            except ValueError:
                return None
    return None


def retry_topic(topic: str, attempt: int) -> str:
    """The retry topic holding records due for their attempt number `attempt` (2, 3, ...)."""
    return f"{topic}.retry.{attempt - 1}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}.dlq"
