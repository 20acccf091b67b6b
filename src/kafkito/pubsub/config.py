"""Pub/Sub config: the seed's `pubsub` keys as typed objects, from dicts, YAML and the environment.

The keys follow core-go/pubsub's config structs (`client.project_id`, `client.credentials`,
`topic_id`, the publisher's `topic` batching thresholds, `subscription_id`, the subscriber's
`subscription` flow settings, `retry.1..9`), plus the few that kafkito adds (marked +):

    client:
      project_id: my-project        # else GOOGLE_CLOUD_PROJECT, else the credentials file's
      credentials: /path/sa.json    # a service-account key file; none: the usual Google places
      timeout: 30s                # + per admin call and per publish confirmation
    topic_id: clicks                # `topic: clicks` (a string, as in the Kafka config) works too
    topic:                          # Writer only: batching (google's BatchSettings)
      delay_threshold: 10ms         #   max_latency
      count_threshold: 100          #   max_messages
      byte_threshold: 1000000       #   max_bytes
    subscription_id: clicks-sub     # Reader only; `subscription: clicks-sub` works too
    subscription:                   # Reader only: flow control and leases
      max_outstanding_messages: 1000
      max_outstanding_bytes: 104857600  # +
      num_goroutines: 1             # accepted for seed files; Python opens one stream per read
      ack_deadline: 60s             # + of subscriptions kafkito creates, and each lease step:
                                    #   a crashed reader's messages come back after this
      max_lease_duration: 1h        # + how long a slow handler's lease is extended
    retry: {1: 1s, 2: 2s}           # delays between attempts of the first call (connect)
    create_if_missing: false        # + create the topic (and subscription) on first use
    message_ordering: true          # + ordering keys on (publisher; new subscriptions)
    key: key                        # + Reader: also expose the ordering key in the headers dict

Durations are seconds or strings with a unit, as in the Kafka config. Errors are the same
`ConfigError` naming the dotted key and never the value. Environment variables use the
prefix `KAFKITO_PUBSUB_` (`KAFKITO_PUBSUB_CLIENT__PROJECT_ID`, `KAFKITO_PUBSUB_TOPIC_ID`), so
they never collide with the Kafka config's `KAFKITO_` variables.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import Field, ValidationError, model_validator

from kafkito.client.config import Seconds, _config_error, _env_value, _Strict
from kafkito.client.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "ClientConfig",
    "ReaderConfig",
    "SubscriptionSettings",
    "TopicSettings",
    "WriterConfig",
]

ENV_PREFIX = "KAFKITO_PUBSUB_"
PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "PUBSUB_PROJECT_ID")
"""Where the project id comes from when `client.project_id` is not set, in this order."""


class ClientConfig(_Strict):
    """Project and credentials (core-go/pubsub's ClientConfig)."""

    project_id: str | None = None
    credentials: str | None = None
    """Path to a service-account key file; ignored when PUBSUB_EMULATOR_HOST is set."""
    timeout: Seconds = 30.0

    def resolved_project_id(self) -> str:
        """The project id from the config, the environment or the credentials file."""
        if self.project_id:
            return self.project_id
        for name in PROJECT_ENV:
            if os.environ.get(name):
                return os.environ[name]
        if self.credentials:
            try:
                project = json.loads(Path(self.credentials).read_text()).get("project_id")
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"client.credentials cannot be read as a key file: {exc}",
                    key="client.credentials",
                ) from None
            if isinstance(project, str) and project:
                return project
        raise ConfigError(
            "client.project_id is required (or set GOOGLE_CLOUD_PROJECT)",
            key="client.project_id",
        )


class TopicSettings(_Strict):
    """The publisher's batching thresholds (core-go/pubsub's TopicConfig)."""

    delay_threshold: Seconds = 0.01
    count_threshold: int = Field(default=100, ge=1, le=1000)
    byte_threshold: int = Field(default=1_000_000, ge=1, le=10_000_000)


class SubscriptionSettings(_Strict):
    """The subscriber's flow control and leases (core-go/pubsub's SubscriptionConfig)."""

    max_outstanding_messages: int = Field(default=1000, ge=1)
    max_outstanding_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    num_goroutines: int | None = Field(default=None, ge=1)
    ack_deadline: Seconds = Field(default=60.0, ge=10.0, le=600.0)
    max_lease_duration: Seconds = Field(default=3600.0, gt=0)


def _name_or_settings(data: Any, name_key: str, settings_key: str) -> Any:
    """`topic: clicks` (a name, as in the Kafka config) means `topic_id: clicks`."""
    if not isinstance(data, dict) or not isinstance(data.get(settings_key), str):
        return data
    data = dict(data)
    name = data.pop(settings_key)
    if data.get(name_key) not in (None, name):
        raise ValueError(f"{settings_key} and {name_key} name different things")
    data[name_key] = name
    return data


class _Common(_Strict):
    client: ClientConfig = Field(default_factory=ClientConfig)
    topic_id: str | None = None
    retry: dict[int, Seconds] = Field(default_factory=dict)
    create_if_missing: bool = False
    message_ordering: bool = True

    @model_validator(mode="before")
    @classmethod
    def _topic_name(cls, data: Any) -> Any:
        return _name_or_settings(data, "topic_id", "topic")

    @property
    def retry_delays_s(self) -> list[float]:
        """The connect retry delays in step order (the seed's retry.1..9)."""
        for step in self.retry:
            if step < 1:
                raise ConfigError(f"retry steps are numbered from 1, got {step}", key="retry")
        return [self.retry[step] for step in sorted(self.retry)]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Validate a mapping; raises ConfigError naming the first bad key."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise _config_error(exc) from None

    @classmethod
    def from_yaml(cls, source: str | Path, *, section: str | None = None) -> Self:
        """Load from a YAML file path (or YAML text containing a newline); `section` picks a key."""
        text = source if isinstance(source, str) and "\n" in source else Path(source).read_text()
        data = yaml.safe_load(text) or {}
        if section is not None:
            if not isinstance(data, dict) or section not in data:
                raise ConfigError(f"config section {section!r} is missing", key=section)
            data = data[section]
        if not isinstance(data, dict):
            raise ConfigError("a config must be a mapping of keys to values")
        return cls.from_dict(data)

    @classmethod
    def from_env(cls, prefix: str = ENV_PREFIX, environ: Mapping[str, str] | None = None) -> Self:
        """Load from variables such as KAFKITO_PUBSUB_TOPIC_ID, KAFKITO_PUBSUB_CLIENT__PROJECT_ID.

        `__` separates nesting levels; values are YAML scalars. A variable under the prefix
        that is not a config key is an error naming it.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for name, raw in env.items():
            if not name.startswith(prefix):
                continue
            path = name[len(prefix) :].lower().split("__")
            node = data
            for part in path[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(
                        f"environment variable {name} conflicts with another", key=name
                    )
            leaf = path[-1]
            verbatim = leaf in ("project_id", "credentials", "topic_id", "subscription_id")
            node[leaf] = raw if verbatim else _env_value(leaf, raw)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc, env_prefix=prefix) from None

    def merged(self, **overrides: Any) -> Self:
        """A copy with the given keys replaced (None values are ignored), validated again."""
        data = self.model_dump()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(data)


class WriterConfig(_Common):
    """A Pub/Sub Writer's config (core-go/pubsub's PublisherConfig)."""

    topic: TopicSettings = Field(default_factory=TopicSettings)


class ReaderConfig(_Common):
    """A Pub/Sub Reader's config (core-go/pubsub's SubscriberConfig).

    `topic_id` is needed only to create a missing subscription (`create_if_missing`).
    """

    subscription_id: str | None = None
    subscription: SubscriptionSettings = Field(default_factory=SubscriptionSettings)
    key: str | None = None
    """If set, the handler's headers dict also holds the ordering key under this name."""

    @model_validator(mode="before")
    @classmethod
    def _subscription_name(cls, data: Any) -> Any:
        return _name_or_settings(data, "subscription_id", "subscription")
