"""Connecting with the seed's list of delays: try, wait delays[0], try, wait delays[1], ...

A librdkafka client connects lazily and retries for ever; an application wants to know at
start-up that the brokers answer and the credentials work. `connect_with_retry` asks for cluster
metadata (one round trip) with `client.timeout`, and on failure sleeps the next delay from
`client.retry` before trying again. librdkafka's `error_cb` tells an authentication failure
from an unreachable broker; the former is not retried (the credentials will not improve).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from kafkito.client.errors import AuthenticationError, BrokerUnreachableError, ClientError

RDKAFKA_LOG = logging.getLogger("kafkito.client.librdkafka")
"""Where every kafkito client's librdkafka log lines go (through Python logging, not stderr).

A NullHandler keeps them off stderr in a program that has not configured logging (Python's
last-resort handler would print WARNING lines such as librdkafka's transient "Failed to acquire
idempotence PID ... retrying"): what fails reaches the caller as a typed exception. With
logging configured they propagate to its handlers as usual."""
RDKAFKA_LOG.addHandler(logging.NullHandler())

log = logging.getLogger(__name__)

__all__ = ["ErrorTracker", "connect_with_retry", "connection_settings"]

_AUTH_ERRORS = {"_AUTHENTICATION", "SASL_AUTHENTICATION_FAILED", "_SSL"}


class ErrorTracker:
    """librdkafka's `error_cb`: remembers the last client-level error, logs it once per kind."""

    def __init__(self) -> None:
        self.last: Any = None
        self.auth: Any = None
        """The last authentication error: kept apart, since _ALL_BROKERS_DOWN follows it."""
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, error: Any) -> None:
        with self._lock:
            self.last = error
            name = str(error.name())
            if name in _AUTH_ERRORS:
                self.auth = error
            if name not in self._seen:
                self._seen.add(name)
                log.warning("kafka client error %s: %s", name, error.str())

    def auth_failure(self) -> Any:
        return self.auth


def connect_with_retry(
    probe: Callable[[float], object],
    *,
    bootstrap: str,
    timeout_s: float,
    delays_s: list[float],
    errors: ErrorTracker,
    serve: Callable[[], object] = lambda: None,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Call `probe(timeout_s)` until it returns; sleep `delays_s[i]` after failure i.

    `serve` polls the client so that librdkafka delivers its queued error callbacks.

    Raises AuthenticationError at once when the broker refuses the credentials, and
    BrokerUnreachableError naming the brokers and the attempts once the delays run out.
    """
    for attempts, delay_s in enumerate([*delays_s, None], start=1):
        try:
            probe(timeout_s)
            return
        except Exception as exc:  # confluent_kafka.KafkaException: the edge of librdkafka
            serve()  # error_cb runs only when the client's queue is served
            failure = errors.auth_failure()
            if failure is not None:
                raise AuthenticationError(
                    f"the brokers at {bootstrap} refused our credentials "
                    f"({failure.name()}: {failure.str()}); check client.username, "
                    "client.password, client.algorithm and client.tls"
                ) from None
            last = errors.last
            reason = f"{last.name()}: {last.str()}" if last is not None else str(exc)
            if delay_s is None:
                raise BrokerUnreachableError(
                    f"no broker at {bootstrap} answered after {attempts} attempt(s) of "
                    f"{timeout_s:g}s each ({reason}); check brokers (or KAFKITO_BROKERS) and "
                    "that the broker is running, or add client.retry delays",
                    brokers=bootstrap,
                    attempts=attempts,
                ) from None
            log.warning(
                "brokers at %s did not answer (attempt %d, %s); retrying in %gs",
                bootstrap,
                attempts,
                reason,
                delay_s,
            )
            sleep(delay_s)
    raise ClientError("unreachable")  # pragma: no cover - the loop returns or raises


CONSUMER_DEFAULTS: dict[str, Any] = {"fetch.queue.backoff.ms": 20}
"""librdkafka consumer settings kafkito changes (the caller's settings win).

`fetch.queue.backoff.ms`: once a consumer holds `queued.min.messages` (100,000) records,
librdkafka waits this long before it fetches again, 1 s by default. A reader of small records
empties its queue well within that second and then idles: at 100-byte records a Reader read
150-185k records/s with the default and 0.7-1.1M with 10 ms on the same broker and data
(docs/benchmarks.md, broker speed). 20 ms keeps the queue fed at a tenth of a second's worth
of fetch requests more while the application is slower than the broker.
"""


def consumer_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with CONSUMER_DEFAULTS filled in where the caller did not set them."""
    for key, value in CONSUMER_DEFAULTS.items():
        settings.setdefault(key, value)
    return settings


def connection_settings(
    config: Any, *, extra: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """(bootstrap, librdkafka settings) for a client of any role, from a kafkito config.

    `config` is a WriterConfig, ReaderConfig or AdminConfig (brokers, client, settings); its
    connection keys (client id, timeout, SASL, TLS) are mapped as for Writer and Reader, then
    its `settings`, then `extra` pass through. Brokers come from `config.brokers`, else from a
    `bootstrap.servers` already in the settings (tools that resolved it themselves, like the
    CLI), else from the library's rule (KAFKITO_BROKERS, then the local embedded broker).
    librdkafka's log lines go to RDKAFKA_LOG unless the settings name another logger.
    """
    from kafkito.client.embedded import resolve_bootstrap

    passed: dict[str, Any] = {**config.settings, **(extra or {})}
    if config.brokers:
        bootstrap = ",".join(config.brokers)
    elif passed.get("bootstrap.servers"):
        bootstrap = str(passed["bootstrap.servers"])
    else:
        bootstrap = resolve_bootstrap(None)
    out: dict[str, Any] = config.base_settings(bootstrap)
    out.update(passed)
    out["bootstrap.servers"] = bootstrap
    out.setdefault("logger", RDKAFKA_LOG)
    return bootstrap, out
