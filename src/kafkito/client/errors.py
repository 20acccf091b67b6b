"""Client-side exceptions: what the Writer, Reader and config loaders raise on purpose.

KafkitoError
    ClientError              a client call failed; the message says what to do next
        ConfigError              a config key is unknown, ill-typed or conflicting (names the key)
        DeliveryError            the broker did not accept a record; carries the broker's reason
            UnknownTopicError        the topic does not exist and is not auto-created
            MessageTooLargeError     the record exceeds message.max.bytes (client or broker)
        AuthenticationError      SASL/TLS credentials were refused
        AuthorizationError       the broker's ACLs do not allow this principal the operation
        BrokerUnreachableError   no broker answered after every connect retry
        AdminError               an admin request was refused; carries the broker's reason
            TopicExistsError         create: the topic is there already
            UnknownGroupError        no such consumer group
            GroupNotEmptyError       the group has active members (delete, reset offsets)
            InvalidRequestError      bad partitions, replication factor, config or name
        TransactionError         a transaction call failed; `abortable`/`retriable` say what next
            ProducerFencedError      a newer producer with the same transactional.id took over

librdkafka reports failures as `KafkaError` codes; `from_kafka_error` (records) and
`from_admin_error` (admin requests, consumer calls) are the one place that turns them into these
classes, so callers catch ours and never import confluent_kafka. An unknown topic is an
`UnknownTopicError` wherever it is met (write, read or admin).
Messages never carry secrets: librdkafka's own error strings do not contain passwords, and we
add only broker addresses, topic names and sizes.
"""

from __future__ import annotations

from typing import Any

from kafkito.errors import KafkitoError

__all__ = [
    "AdminError",
    "AuthenticationError",
    "AuthorizationError",
    "BrokerUnreachableError",
    "ClientError",
    "ConfigError",
    "DeliveryError",
    "GroupNotEmptyError",
    "InvalidRequestError",
    "MessageTooLargeError",
    "ProducerFencedError",
    "TopicExistsError",
    "TransactionError",
    "UnknownGroupError",
    "UnknownTopicError",
    "from_admin_error",
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


class AuthorizationError(ClientError):
    """The broker knows who we are, and its ACLs do not allow us this operation
    (TOPIC_, GROUP_, CLUSTER_ or TRANSACTIONAL_ID_AUTHORIZATION_FAILED): different credentials
    will not help unless they are another principal's; an ACL will. `reason` is the code."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class BrokerUnreachableError(ClientError):
    """No broker answered after every connect retry."""

    def __init__(self, message: str, *, brokers: str, attempts: int) -> None:
        super().__init__(message)
        self.brokers = brokers
        self.attempts = attempts


class AdminError(ClientError):
    """An admin request (or a consumer call) was refused; `reason` is librdkafka's error name."""

    def __init__(self, message: str, *, reason: str = "", retriable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.retriable = retriable


class TopicExistsError(AdminError):
    """create_topic: a topic of that name exists already."""


class UnknownGroupError(AdminError):
    """No consumer group of that name (or it has nothing to show: no members, no offsets)."""


class GroupNotEmptyError(AdminError):
    """The group has active members; stop them before deleting it or moving its offsets."""


class InvalidRequestError(AdminError):
    """The broker refused the request's content: partitions, replication factor, a config."""


class TransactionError(ClientError):
    """A transactional call failed; `reason` is librdkafka's error name.

    `abortable`: abort the transaction and start again (the records and offsets of this one
    are discarded); `retriable`: the same call may simply be repeated; `fatal`: the producer is
    unusable and must be closed (for example when fenced).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "",
        abortable: bool = False,
        retriable: bool = False,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.abortable = abortable
        self.retriable = retriable
        self.fatal = fatal


class ProducerFencedError(TransactionError):
    """A newer producer with the same transactional.id called InitProducerId: this one is
    fenced for good (close it; the newer one carries on)."""


_FENCED = {"_FENCED", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH", "TRANSACTIONAL_ID_NOT_FOUND"}


def from_transaction_error(error: Any, *, action: str) -> TransactionError:
    """The kafkito exception (not raised) for a KafkaError of a transactional call."""
    name = str(error.name())
    text = str(error.str())
    fatal = bool(error.fatal())
    if name in _FENCED or (fatal and "fenced" in text.lower()):
        return ProducerFencedError(
            f"{action} failed: this producer was fenced by a newer one with the same "
            f"transactional.id ({name}: {text}); close it",
            reason=name,
            fatal=True,
        )
    abortable = bool(error.txn_requires_abort())
    retriable = bool(error.retriable())
    advice = (
        "; abort the transaction and start a new one"
        if abortable
        else "; the call may be repeated"
        if retriable
        else "; close the producer"
        if fatal
        else ""
    )
    return TransactionError(
        f"{action} failed ({name}: {text}){advice}",
        reason=name,
        abortable=abortable,
        retriable=retriable,
        fatal=fatal,
    )


# librdkafka error names (KafkaError.name()) grouped by the class we raise.
_UNKNOWN_TOPIC = {"UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC", "_UNKNOWN_PARTITION"}
_TOO_LARGE = {"MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "MESSAGE_TOO_LARGE"}
_AUTH = {
    "_AUTHENTICATION",
    "SASL_AUTHENTICATION_FAILED",
    "_SSL",
    "ILLEGAL_SASL_STATE",
    "UNSUPPORTED_SASL_MECHANISM",
}
_DENIED = {
    "TOPIC_AUTHORIZATION_FAILED",
    "CLUSTER_AUTHORIZATION_FAILED",
    "GROUP_AUTHORIZATION_FAILED",
    "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
    "DELEGATION_TOKEN_AUTHORIZATION_FAILED",
}
_DENIED_HINT = (
    "the broker's ACLs do not allow this principal (client.username) the operation: ask its "
    "admin for an ACL (kafkito acls add), or connect as a principal that has one"
)
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
    if name in _DENIED:
        return AuthorizationError(
            f"not allowed{where} ({name}: {text}); {_DENIED_HINT}", reason=name
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


_GROUP_MISSING = {"GROUP_ID_NOT_FOUND", "COORDINATOR_NOT_AVAILABLE"}
_INVALID = {
    "INVALID_CONFIG",
    "INVALID_REPLICATION_FACTOR",
    "INVALID_REPLICA_ASSIGNMENT",
    "INVALID_PARTITIONS",
    "INVALID_TOPIC_EXCEPTION",
    "INVALID_REQUEST",
    "POLICY_VIOLATION",
    "OFFSET_OUT_OF_RANGE",
    "_INVALID_ARG",
    "UNSUPPORTED_VERSION",
}


def from_admin_error(
    error: Any,
    *,
    action: str,
    bootstrap: str,
    topic: str | None = None,
    group: str | None = None,
) -> ClientError:
    """The kafkito exception (not raised) for a KafkaError met while doing `action`.

    `action` reads as "<action> failed", e.g. "create topic 'clicks'"; the message names it,
    the broker's reason (librdkafka's error name and text) and what to do next.
    """
    name = str(error.name())
    text = str(error.str())
    why = f"{action} failed ({name}: {text})"
    if name in _UNKNOWN_TOPIC:
        return UnknownTopicError(f"{why}: topic {topic!r} does not exist", reason=name, topic=topic)
    if name == "TOPIC_ALREADY_EXISTS":
        return TopicExistsError(why, reason=name)
    if group is not None and name in _GROUP_MISSING:
        return UnknownGroupError(f"{why}: no consumer group {group!r}", reason=name)
    if name == "NON_EMPTY_GROUP" or name == "UNKNOWN_MEMBER_ID":
        return GroupNotEmptyError(
            f"{why}: group {group!r} has active members; stop them first", reason=name
        )
    if name in _AUTH:
        return AuthenticationError(
            f"{why}; check client.username, client.password, client.algorithm and client.tls"
        )
    if name in _DENIED:
        return AuthorizationError(f"{why}; {_DENIED_HINT}", reason=name)
    if name in _UNREACHABLE:
        return BrokerUnreachableError(
            f"{why}; no broker at {bootstrap} answered in time: check brokers and that they "
            "run, or raise client.timeout",
            brokers=bootstrap,
            attempts=1,
        )
    if name in _INVALID:
        return InvalidRequestError(why, reason=name)
    retriable = bool(error.retriable()) if hasattr(error, "retriable") else False
    return AdminError(why, reason=name, retriable=retriable)
