"""The edge where kafkito meets google-cloud-pubsub: imports, clients, admin calls with retry.

google-cloud-pubsub costs about half a second to import, so only this module imports it, and
only when a Pub/Sub object is built; `import kafkito` and `import kafkito.pubsub` never pay.
Its objects are `Any` here (the library ships no type information); everything kafkito
returns to callers is ours.

Emulator: the google clients read `PUBSUB_EMULATOR_HOST` themselves and then talk plain gRPC
with no credentials; kafkito adds nothing to that, so code and tests run unchanged on the
emulator and on Google Cloud. Credentials, when not emulated: `client.credentials` (a
service-account key file), else Application Default Credentials (the usual Google places).
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafkito.pubsub.config import ClientConfig
from kafkito.pubsub.errors import BrokerUnreachableError, ClientError, from_google_error

log = logging.getLogger(__name__)

T = TypeVar("T")

EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"


def pubsub() -> Any:
    """The google.cloud.pubsub_v1 module; a clear error when the extra is not installed."""
    try:
        from google.cloud import pubsub_v1
    except ImportError:
        raise ClientError(
            "kafkito.pubsub needs google-cloud-pubsub: pip install 'kafkito[pubsub]'"
        ) from None
    return pubsub_v1


@functools.cache
def google_exceptions() -> tuple[type[BaseException], ...]:
    """The exception classes that come from the google client (all mapped by from_google_error).

    Cached: `Writer.write_many` asks once per message it waits for."""
    from google.api_core import exceptions as core
    from google.cloud.pubsub_v1.publisher import exceptions as publisher

    return (core.GoogleAPIError, publisher.MessageTooLargeError, publisher.FlowControlLimitError)


def credentials(config: ClientConfig) -> Any:
    """Credentials from the key file, or None for the client's own choice (ADC or emulator)."""
    if os.environ.get(EMULATOR_ENV) or not config.credentials:
        return None
    from google.oauth2 import service_account

    keys: Any = service_account.Credentials  # untyped in google-auth
    try:
        return keys.from_service_account_file(config.credentials)
    except (OSError, ValueError) as exc:
        from kafkito.pubsub.errors import ConfigError

        raise ConfigError(
            f"client.credentials is not a usable service-account key file: {exc}",
            key="client.credentials",
        ) from None


def thread_scheduler() -> Any:
    """A scheduler with one worker thread: kafkito's callback only queues the message."""
    from concurrent.futures import ThreadPoolExecutor

    from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

    return ThreadScheduler(ThreadPoolExecutor(1, thread_name_prefix="kafkito-pubsub"))


def endpoint() -> str:
    return os.environ.get(EMULATOR_ENV) or "pubsub.googleapis.com"


def call_with_retry(
    call: Callable[[], T],
    *,
    delays_s: list[float],
    topic: str | None = None,
    subscription: str | None = None,
) -> T:
    """Run an admin call; on "unreachable" errors wait each delay in turn and try again.

    The seed's retry.1..9 list, as the Kafka client uses it for connecting. Other errors (not
    found, permission) are raised at once, mapped.
    """
    errors = google_exceptions()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except errors as exc:
            mapped = from_google_error(exc, topic=topic, subscription=subscription)
            retriable = getattr(mapped, "retriable", False)
            if not retriable:
                raise mapped from None
            if attempt > len(delays_s):
                raise BrokerUnreachableError(
                    f"Pub/Sub at {endpoint()} did not answer after {attempt} attempt(s): {mapped}",
                    brokers=endpoint(),
                    attempts=attempt,
                ) from None
            delay = delays_s[attempt - 1]
            log.warning(
                "Pub/Sub at %s did not answer (%s); retrying in %.1fs", endpoint(), exc, delay
            )
            time.sleep(delay)


def is_not_found(exc: BaseException) -> bool:
    return type(exc).__name__ == "NotFound"


def is_already_exists(exc: BaseException) -> bool:
    return type(exc).__name__ == "AlreadyExists"
