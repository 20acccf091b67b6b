"""Pub/Sub failures as kafkito's client exceptions, so one `except` serves both backends.

KafkitoError
    ClientError                      (kafkito.client.errors)
        ConfigError                      a key is unknown, ill-typed or missing (names the key)
        DeliveryError                    Pub/Sub did not accept a message; `reason` is gRPC's code
            UnknownTopicError                the topic does not exist (NOT_FOUND)
            MessageTooLargeError             over the 10 MB request limit or the batch's bytes
        AuthenticationError              PERMISSION_DENIED or UNAUTHENTICATED
        BrokerUnreachableError           the service (or emulator) did not answer after retries
        UnknownSubscriptionError         the subscription does not exist (NOT_FOUND)  [new here]

google-cloud-pubsub raises `google.api_core.exceptions.GoogleAPICallError` subclasses (one per
gRPC status) and a few of its own (`publisher.exceptions.MessageTooLargeError`,
`FlowControlLimitError`). `from_google_error` is the one place that turns them into ours; it
reads class names and `code` attributes only, so this module imports nothing from google.
"""

from __future__ import annotations

from kafkito.client.errors import (
    AuthenticationError,
    BrokerUnreachableError,
    ClientError,
    ConfigError,
    DeliveryError,
    MessageTooLargeError,
    UnknownTopicError,
)

__all__ = [
    "AuthenticationError",
    "BrokerUnreachableError",
    "ClientError",
    "ConfigError",
    "DeliveryError",
    "MessageTooLargeError",
    "UnknownSubscriptionError",
    "UnknownTopicError",
    "from_google_error",
]


class UnknownSubscriptionError(ClientError):
    """The subscription does not exist (and `create_if_missing` is off, or no topic is set)."""

    def __init__(self, message: str, *, subscription: str) -> None:
        super().__init__(message)
        self.subscription = subscription


_UNREACHABLE = {"ServiceUnavailable", "DeadlineExceeded", "RetryError", "TimeoutError"}
_AUTH = {"PermissionDenied", "Unauthenticated", "Forbidden", "Unauthorized"}
_RETRIABLE = {"ServiceUnavailable", "DeadlineExceeded", "Aborted", "InternalServerError"}


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "grpc_status_code", None)
    name = getattr(code, "name", None)
    return str(name) if name else type(exc).__name__


def from_google_error(
    exc: BaseException,
    *,
    topic: str | None = None,
    subscription: str | None = None,
    size_bytes: int | None = None,
) -> ClientError:
    """Turn a google-cloud-pubsub exception into the matching kafkito exception (not raised)."""
    kind = type(exc).__name__
    reason = _reason(exc)
    text = str(getattr(exc, "message", "") or exc)
    if kind == "NotFound":
        if subscription is not None:
            return UnknownSubscriptionError(
                f"subscription {subscription!r} does not exist ({text}); create it first "
                "(gcloud pubsub subscriptions create) or set create_if_missing with a topic_id",
                subscription=subscription,
            )
        return UnknownTopicError(
            f"topic {topic!r} does not exist ({text}); create it first (gcloud pubsub topics "
            "create) or set create_if_missing",
            reason=reason,
            topic=topic,
        )
    if kind == "MessageTooLargeError" or (
        kind == "InvalidArgument" and ("size" in text.lower() or "too large" in text.lower())
    ):
        size = f" of {size_bytes} bytes" if size_bytes is not None else ""
        return MessageTooLargeError(
            f"message{size} on topic {topic!r} is too large ({text}); Pub/Sub takes at most "
            "10 MB per request: split the message or lower topic.byte_threshold",
            reason=reason,
            topic=topic,
        )
    if kind in _AUTH:
        where = f"subscription {subscription!r}" if subscription else f"topic {topic!r}"
        return AuthenticationError(
            f"Pub/Sub refused our credentials for {where} ({reason}: {text}); check "
            "client.credentials, client.project_id and the account's roles"
        )
    if kind in _UNREACHABLE:
        return DeliveryError(
            f"no answer from Pub/Sub ({reason}: {text}); the service is unreachable or too "
            "slow: check PUBSUB_EMULATOR_HOST or the network, and raise client.timeout if needed",
            reason=reason,
            topic=topic,
            retriable=True,
        )
    where = f" on topic {topic!r}" if topic else ""
    if subscription:
        where = f" on subscription {subscription!r}"
    return DeliveryError(
        f"Pub/Sub refused the call{where} ({reason}: {text})",
        reason=reason,
        topic=topic,
        retriable=kind in _RETRIABLE,
    )
