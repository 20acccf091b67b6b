"""Health check on Pub/Sub (the seed's Checker: name, check, build), as kafkito.client.health.

`check()` asks Pub/Sub for the subscription (does the service answer, do our credentials
work, does the subscription exist and is its topic still there) and, given a Reader, checks
that its loop is alive: it waited for a message less than `max_poll_age_s` ago. It reports
the messages the reader holds (received, not yet acked) and how many it handled.

Backlog: Pub/Sub publishes a subscription's backlog (`num_undelivered_messages`) only through
Cloud Monitoring, which is another API and another client library, and which the emulator
does not serve. `backlog` is therefore reported as None with `backlog_source` saying why;
a Monitoring-backed backlog is planned (docs/pubsub.md).

`health()` returns the seed's document, `{"status": "UP"|"DOWN", "details": {name: ...}}`,
the same as the Kafka checker's, so one probe can list both kinds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

from kafkito.client.health import health_of
from kafkito.pubsub import _google
from kafkito.pubsub.config import ReaderConfig
from kafkito.pubsub.errors import ClientError, ConfigError, from_google_error
from kafkito.pubsub.reader import SubscriberCore

__all__ = ["HealthChecker", "health_of"]

DELETED_TOPIC = "_deleted-topic_"
"""What Pub/Sub puts in a subscription's topic field after its topic was deleted."""


class Reading(Protocol):
    """What the checker needs of a Reader (sync or asyncio)."""

    @property
    def core(self) -> SubscriberCore: ...

    @property
    def config(self) -> ReaderConfig: ...


class HealthChecker:
    """Checks that the subscription answers and, given a Reader, that its loop makes progress."""

    def __init__(
        self,
        name: str = "pubsub",
        *,
        subscription: str | None = None,
        config: ReaderConfig | Mapping[str, Any] | None = None,
        project_id: str | None = None,
        reader: Reading | None = None,
        timeout_s: float = 5.0,
        max_poll_age_s: float = 30.0,
    ) -> None:
        self.name = name
        self.reader = reader
        self.timeout_s = timeout_s
        self.max_poll_age_s = max_poll_age_s
        if reader is not None:
            self.path = reader.core.path
            client = reader.config.client
        else:
            base = (
                config if isinstance(config, ReaderConfig) else ReaderConfig.from_dict(config or {})
            )
            merged = base.merged(subscription_id=subscription)
            if project_id is not None:
                merged = merged.merged(
                    client={**merged.client.model_dump(), "project_id": project_id}
                )
            if not merged.subscription_id:
                raise ConfigError("a HealthChecker needs a subscription_id", key="subscription_id")
            sub = merged.subscription_id
            project = merged.client.resolved_project_id()
            self.path = (
                sub if sub.startswith("projects/") else f"projects/{project}/subscriptions/{sub}"
            )
            client = merged.client
        self.subscription = self.path.rsplit("/", 1)[-1]
        self._subscriber = _google.pubsub().SubscriberClient(
            credentials=_google.credentials(client)
        )

    def check(self) -> dict[str, Any]:
        """Details when healthy; raises ClientError (with the reason) when not."""
        try:
            sub = self._subscriber.get_subscription(
                subscription=self.path, timeout=self.timeout_s, retry=None
            )
        except _google.google_exceptions() as exc:
            raise from_google_error(exc, subscription=self.subscription) from None
        if sub.topic == DELETED_TOPIC:
            raise ClientError(
                f"subscription {self.subscription!r} has lost its topic (deleted); no message "
                "will arrive: recreate the topic and the subscription"
            )
        data: dict[str, Any] = {
            "endpoint": _google.endpoint(),
            "subscription": self.path,
            "topic": sub.topic,
            "ack_deadline_s": sub.ack_deadline_seconds,
            "message_ordering": bool(sub.enable_message_ordering),
            "backlog": None,
            "backlog_source": "unavailable: Pub/Sub reports backlog through Cloud Monitoring only",
        }
        if self.reader is not None:
            data.update(self._reader_progress())
        return data

    def _reader_progress(self) -> dict[str, Any]:
        assert self.reader is not None
        core = self.reader.core
        data: dict[str, Any] = {"handled": core.handled, "held": core.held}
        if core.last_poll_monotonic is not None and core.reading:
            age_s = time.monotonic() - core.last_poll_monotonic
            data["last_poll_age_s"] = round(age_s, 3)
            if age_s > self.max_poll_age_s:
                raise ClientError(
                    f"the reader has not polled for {age_s:.1f}s (limit {self.max_poll_age_s:g}s):"
                    " a handler is stuck or the loop stopped"
                )
        return data

    def build(self, data: dict[str, Any], error: BaseException | None) -> dict[str, Any]:
        """The seed's Build: the details, plus the error text when the check failed."""
        out = dict(data)
        if error is not None:
            out["error"] = str(error)
        return out

    def health(self) -> dict[str, Any]:
        """{"status": "UP"|"DOWN", "details": {...}} for this checker alone."""
        return health_of([self])

    def close(self) -> None:
        self._subscriber.close()
