"""Client-side exceptions: what the Writer, Reader and config loaders raise on purpose.

KafkitoError
    ClientError              a client call failed; the message says what to do next
        ConfigError              a config key is unknown, ill-typed or conflicting (names the key)
        DeliveryError            the broker did not accept a record; carries the broker's reason
            UnknownTopicError        the topic does not exist and is not auto-created
            MessageTooLargeError     the record exceeds message.max.bytes (client or broker)
        AuthenticationError      SASL/TLS credentials were refused
        BrokerUnreachableError   no broker answered after every connect retry

librdkafka reports failures as `KafkaError` codes; `from_kafka_error` is the one place that
turns them into these classes, so callers catch ours and never import confluent_kafka.
Messages never carry secrets: librdkafka's own error strings do not contain passwords, and we
add only broker addresses, topic names and sizes.
"""

from __future__ import annotations

from typing import Any

from kafkito.errors import KafkitoError

__all__ = [
    "AuthenticationError",
    "BrokerUnreachableError",
    "ClientError",
    "ConfigError",
    "DeliveryError",
    "MessageTooLargeError",
    "UnknownTopicError",
    "from_kafka_error",
]


class ClientError(KafkitoError):
    """A client call failed; the message says what to do next."""


class ConfigError(ClientError, ValueError):
    """A config key is unknown, ill-typed or conflicting; `key` names it (dotted path)."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class DeliveryError(ClientError):
    """The broker did not accept a record; `reason` is librdkafka's name for the error."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        topic: str | None = None,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.topic = topic
        self.retriable = retriable


class UnknownTopicError(DeliveryError):
    """The topic does not exist and the broker does not create it on first use."""


class MessageTooLargeError(DeliveryError):
    """The record is larger than the client's or the broker's message.max.bytes."""


class AuthenticationError(ClientError):
    """The broker refused the credentials (SASL) or the TLS handshake failed."""


class BrokerUnreachableError(ClientError):
    """No broker answered after every connect retry."""

    def __init__(self, message: str, *, brokers: str, attempts: int) -> None:
        super().__init__(message)
        self.brokers = brokers
        self.attempts = attempts


# librdkafka error names (KafkaError.name()) grouped by the class we raise.
_UNKNOWN_TOPIC = {"UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION"}
_TOO_LARGE = {"MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "MESSAGE_TOO_LARGE"}
_AUTH = {
    "_AUTHENTICATION",
    "SASL_AUTHENTICATION_FAILED",
    "_SSL",
    "TOPIC_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "ILLEGAL_SASL_STATE",
    "UNSUPPORTED_SASL_MECHANISM",
}
_UNREACHABLE = {"_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT", "_MSG_TIMED_OUT"}


def from_kafka_error(
    error: Any, *, topic: str | None = None, size_bytes: int | None = None
) -> ClientError:
    """Turn a confluent_kafka `KafkaError` into the matching kafkito exception (not raised)."""
    name = str(error.name())
    text = str(error.str())
    where = f" on topic {topic!r}" if topic else ""
    if name in _UNKNOWN_TOPIC:
        return UnknownTopicError(
            f"topic {topic!r} does not exist and the broker did not create it ({name}); "
            "create it first (kafkito topics create, or AdminClient.create_topics) or enable "
            "auto-creation on the broker",
            reason=name,
            topic=topic,
        )
    if name in _TOO_LARGE:
        size = f" of {size_bytes} bytes" if size_bytes is not None else ""
        return MessageTooLargeError(
            f"record{size}{where} is too large ({name}: {text}); raise message.max.bytes on "
            "the producer (settings) and max.message.bytes on the topic, or split the record",
            reason=name,
            topic=topic,
        )
    if name in _AUTH:
        return AuthenticationError(
            f"the broker refused our credentials{where} ({name}: {text}); check "
            "client.username, client.password, client.algorithm and client.tls"
        )
    if name in _UNREACHABLE:
        return DeliveryError(
            f"no delivery confirmation{where} ({name}: {text}); the broker is unreachable "
            "or too slow: check brokers and raise client.timeout if needed",
            reason=name,
            topic=topic,
            retriable=True,
        )
    retriable = bool(error.retriable()) if hasattr(error, "retriable") else False
    return DeliveryError(
        f"the broker refused the record{where} ({name}: {text})",
        reason=name,
        topic=topic,
        retriable=retriable,
    )
