"""Dead letters on Pub/Sub: the Kafka flow's diagnostic headers, as message attributes.

A dead letter is the original message's data and ordering key, unchanged (never re-encoded: a
message that failed to decode must not be decoded again to be dead-lettered), with its
attributes plus the same `x-kafkito-*` names the Kafka flow writes as headers
(`kafkito.flow.letters`), so a tool that reads dead letters reads both backends:

    Kafka header                       Pub/Sub attribute
    x-kafkito-original-topic           the subscription's topic (its short id)
    x-kafkito-original-partition       (none: Pub/Sub has no partitions)
    x-kafkito-original-offset          x-kafkito-original-message-id (Pub/Sub's message id)
    x-kafkito-original-timestamp       the publish time, ms since the epoch
    x-kafkito-group                    the subscription id (a subscription is the consumer group)
    x-kafkito-attempts                 handler attempts made, the last included
    x-kafkito-exception-type           module.QualifiedName of the last exception
    x-kafkito-exception-message        its text, cut to Pub/Sub's 1,024 bytes per attribute value

A message that comes back through a dead-letter topic (re-published for another try) keeps
its first origin: the `x-kafkito-original-*` attributes it carries win over the new ones.
"""

from __future__ import annotations

from collections.abc import Mapping

from kafkito.flow.letters import (
    ATTEMPTS,
    EXCEPTION_MESSAGE,
    EXCEPTION_TYPE,
    GROUP,
    HEADER_PREFIX,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
)

__all__ = [
    "ATTEMPTS",
    "ATTRIBUTE_VALUE_MAX_BYTES",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_TYPE",
    "GROUP",
    "ORIGINAL_MESSAGE_ID",
    "ORIGINAL_TIMESTAMP",
    "ORIGINAL_TOPIC",
    "dead_letter_attributes",
]

ORIGINAL_MESSAGE_ID = HEADER_PREFIX + "original-message-id"
ATTRIBUTE_VALUE_MAX_BYTES = 1024
"""Pub/Sub refuses a message with an attribute value over 1,024 bytes."""
_ORIGIN = (ORIGINAL_TOPIC, ORIGINAL_MESSAGE_ID, ORIGINAL_TIMESTAMP)
_OURS = frozenset((*_ORIGIN, GROUP, ATTEMPTS, EXCEPTION_TYPE, EXCEPTION_MESSAGE))
_TRUNCATED = "...[truncated]"


def cut_utf8(text: str, max_bytes: int = ATTRIBUTE_VALUE_MAX_BYTES) -> str:
    """`text` cut to at most `max_bytes` UTF-8 bytes (a marker says so), never mid-character."""
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    room = max_bytes - len(_TRUNCATED)
    return data[:room].decode(errors="ignore") + _TRUNCATED


def dead_letter_attributes(
    attributes: Mapping[str, str],
    *,
    topic: str,
    subscription: str,
    message_id: str,
    publish_time_ms: int | None,
    attempts: int,
    exc: BaseException,
) -> dict[str, str]:
    """The message's own attributes plus kafkito's origin and failure attributes."""
    out = {k: v for k, v in attributes.items() if k not in _OURS}
    if attributes.get(ORIGINAL_TOPIC):  # came through a dead-letter topic: keep its origin
        out.update({k: attributes[k] for k in _ORIGIN if k in attributes})
    else:
        out[ORIGINAL_TOPIC] = topic
        out[ORIGINAL_MESSAGE_ID] = message_id
        out[ORIGINAL_TIMESTAMP] = str(publish_time_ms if publish_time_ms is not None else -1)
    out[GROUP] = subscription
    out[ATTEMPTS] = str(attempts)
    out[EXCEPTION_TYPE] = cut_utf8(f"{type(exc).__module__}.{type(exc).__qualname__}")
    out[EXCEPTION_MESSAGE] = cut_utf8(str(exc))
    return out
