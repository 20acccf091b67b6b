"""Client config: the seed's keys as typed objects, loadable from dicts, YAML and the environment.

Keys are core-go/kafka's, so a YAML file written for the Go library loads unchanged:

    brokers: [127.0.0.1:9092]        # none: the embedded broker (see kafkito.client.embedded)
    topic: clicks
    group_id: click-counter          # Reader only
    key: key                         # Reader only: also expose the message key under this name
    min_bytes: 1                     # Reader only: fetch.min.bytes
    max_bytes: 52428800              # Reader only: fetch.max.bytes
    commit_interval: 5s              # Reader only: auto.commit.interval.ms
    initial_offsets: earliest        # Reader only: earliest | latest (or kafka-go's -2 | -1)
    isolation_level: read_committed  # Reader only: read_committed | read_uncommitted
    transactional_id: billing-1      # Writer only: enables writer.transaction()
    transaction_timeout: 60s         # Writer only: transaction.timeout.ms
    client:
      client_id: my-app
      username: app
      password: secret               # a SecretStr: never printed by repr, logs or errors
      algorithm: SCRAM-SHA-512       # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
      timeout: 30s                   # per broker request and per connect attempt
      tls: {ca_file: ca.pem, cert_file: c.pem, key_file: k.pem, insecure_skip_verify: false}
      retry: {1: 1s, 2: 2s, 3: 5s}   # connect retries: the delay before each further attempt
    settings: {linger.ms: 20}        # any librdkafka setting, passed through unchanged

Durations are numbers of seconds or strings with a unit (`250ms`, `5s`, `2m`). An unknown key,
an ill-typed value or a conflict raises `ConfigError` naming the dotted key; the value itself is
never echoed, since it may be a password. `to_librdkafka()` is the one mapping to confluent-kafka
settings; pass-through `settings` win over everything except the few keys whose override would
break a promise (the Reader's offset store), which are refused by name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)

from kafkito.client.errors import ConfigError

__all__ = [
    "ClientConfig",
    "ReaderConfig",
    "TLSConfig",
    "WriterConfig",
    "load_client_settings",
    "parse_duration_s",
]

ENV_PREFIX = "KAFKITO_"
# Variables under the prefix that are not config keys (read elsewhere in kafkito).
ENV_RESERVED = frozenset(
    {
        "KAFKITO_DATA_DIR",
        "KAFKITO_CONFIG",
        "KAFKITO_LOG_LEVEL",
        "KAFKITO_LOOP",  # the event loop of the broker and Flow.run (kafkito.loops)
        "KAFKITO_SWITCH_INTERVAL_MS",  # the broker's GIL switch interval (kafkito.broker.loop)
    }
)

_ENV_TEST = "KAFKITO_TEST_"  # fault-injection switches of the broker's tests
_ENV_PUBSUB = "KAFKITO_PUBSUB_"  # kafkito.pubsub's config (kafkito.pubsub.config)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration_s(value: object) -> float:
    """Seconds from a number of seconds or a string such as '250ms', '5s', '2m'."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError("a duration must be a number of seconds or a string like '5s'")
        seconds = float(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError("a duration must be a number of seconds or a string like '5s'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Seconds = Annotated[float, BeforeValidator(parse_duration_s)]
SettingValue = str | int | float | bool


def _split_brokers(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


_ALGORITHMS = {
    "PLAIN": "PLAIN",
    "SCRAM-SHA-256": "SCRAM-SHA-256",
    "SCRAM-SHA-512": "SCRAM-SHA-512",
    # core-go spells them as its SCRAM hash generator names
    "SHA256": "SCRAM-SHA-256",
    "SHA512": "SCRAM-SHA-512",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class TLSConfig(_Strict):
    """TLS to the brokers; verification is on unless `insecure_skip_verify` says otherwise."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    insecure_skip_verify: bool = False


class ClientConfig(_Strict):
    """Connection settings shared by readers and writers (core-go's ClientConfig)."""

    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    algorithm: str | None = None
    """SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default when a username is set)."""
    timeout: Seconds = 30.0
    tls: TLSConfig | None = None
    retry: dict[int, Seconds] = Field(default_factory=dict)
    """Connect retries: {1: delay before the 2nd attempt, 2: before the 3rd, ...}."""

    @field_validator("algorithm")
    @classmethod
    def _known_algorithm(cls, value: str | None) -> str | None:
        if value is None:
            return None
        normal = _ALGORITHMS.get(value.strip().upper())
        if normal is None:
            raise ValueError(
                f"algorithm must be one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, got {value!r}"
            )
        return normal

    @field_validator("retry")
    @classmethod
    def _positive_steps(cls, value: dict[int, float]) -> dict[int, float]:
        for step in value:
            if step < 1:
                raise ValueError(f"retry steps are numbered from 1, got {step}")
        return value

    @property
    def retry_delays_s(self) -> list[float]:
        """The connect retry delays in step order."""
        return [self.retry[step] for step in sorted(self.retry)]

    def security_settings(self) -> dict[str, SettingValue]:
        """librdkafka settings for SASL and TLS (the only place that holds the password)."""
        out: dict[str, SettingValue] = {}
        sasl = self.username is not None
        if self.password is not None and not sasl:
            raise ConfigError(
                "client.password is set but client.username is not", key="client.username"
            )
        if self.algorithm is not None and not sasl:
            raise ConfigError(
                "client.algorithm is set but client.username is not", key="client.username"
            )
        tls = self.tls is not None
        out["security.protocol"] = {
            (False, False): "PLAINTEXT",
            (True, False): "SASL_PLAINTEXT",
            (False, True): "SSL",
            (True, True): "SASL_SSL",
        }[(sasl, tls)]
        if sasl:
            assert self.username is not None
            out["sasl.mechanism"] = self.algorithm or "SCRAM-SHA-512"
            out["sasl.username"] = self.username
            out["sasl.password"] = self.password.get_secret_value() if self.password else ""
        if self.tls is not None:
            if self.tls.ca_file:
                out["ssl.ca.location"] = self.tls.ca_file
            if self.tls.cert_file:
                out["ssl.certificate.location"] = self.tls.cert_file
            if self.tls.key_file:
                out["ssl.key.location"] = self.tls.key_file
            if bool(self.tls.cert_file) != bool(self.tls.key_file):
                raise ConfigError(
                    "client.tls.cert_file and client.tls.key_file go together", key="client.tls"
                )
            verify = not self.tls.insecure_skip_verify
            out["enable.ssl.certificate.verification"] = verify
            out["ssl.endpoint.identification.algorithm"] = "https" if verify else "none"
        return out


class _Common(_Strict):
    brokers: Annotated[list[str] | None, BeforeValidator(_split_brokers)] = None
    topic: str | None = None
    client: ClientConfig = Field(default_factory=ClientConfig)
    settings: dict[str, SettingValue] = Field(default_factory=dict)

    # -- loaders ---------------------------------------------------------------------------

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
        """Load from variables such as KAFKITO_BROKERS, KAFKITO_CLIENT__USERNAME.

        `__` separates nesting levels; values are YAML scalars (so `true`, `5s`, `[a, b]` work).
        A variable under the prefix that is not a config key is an error naming it.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        for name, raw in env.items():
            if not name.startswith(prefix) or name in ENV_RESERVED:
                continue
            if name.startswith((_ENV_TEST, _ENV_PUBSUB)):
                continue
            path = name[len(prefix) :].lower().split("__")
            node = data
            for part in path[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ConfigError(
                        f"environment variable {name} conflicts with another", key=name
                    )
            node[path[-1]] = _env_value(path[-1], raw)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _config_error(exc, env_prefix=prefix) from None

    def merged(self, **overrides: Any) -> Self:
        """A copy with the given keys replaced (None values are ignored), validated again."""
        data = self.model_dump()
        data["client"] = self.client
        data.update({k: v for k, v in overrides.items() if v is not None})
        return type(self).from_dict(data)

    def base_settings(self, bootstrap: str) -> dict[str, SettingValue]:
        out: dict[str, SettingValue] = {"bootstrap.servers": bootstrap}
        if self.client.client_id:
            out["client.id"] = self.client.client_id
        out["socket.timeout.ms"] = max(10, int(self.client.timeout * 1000))
        out.update(self.client.security_settings())
        return out


class WriterConfig(_Common):
    """A Writer's config (core-go's WriterConfig): where to write and how to connect."""

    transactional_id: str | None = Field(default=None, min_length=1)
    """Makes the writer transactional (`writer.transaction()`); one id per live producer: a
    second writer with the same id fences the first."""
    transaction_timeout: Seconds | None = None
    """How long the broker lets a transaction stay open before aborting it (librdkafka's
    default: 60 s). Read_committed readers of its partitions wait at most this long."""

    def to_librdkafka(self, bootstrap: str) -> dict[str, SettingValue]:
        """Producer settings: safe defaults (acks=all, idempotence), then `settings`."""
        out = self.base_settings(bootstrap)
        out.update(
            {
                "acks": "all",
                "enable.idempotence": True,
                "max.in.flight.requests.per.connection": 5,
            }
        )
        if self.transactional_id is not None:
            out["transactional.id"] = self.transactional_id
        if self.transaction_timeout is not None:
            txn_ms = max(1000, int(self.transaction_timeout * 1000))
            out["transaction.timeout.ms"] = txn_ms
            # librdkafka refuses a socket timeout above the transaction timeout + 100 ms
            out["socket.timeout.ms"] = min(int(out["socket.timeout.ms"]), txn_ms + 100)
        out.update(self.settings)
        return out


class ReaderConfig(_Common):
    """A Reader's config (core-go's ReaderConfig)."""

    group_id: str | None = None
    key: str | None = None
    """If set, the handler's headers dict also holds the message key under this name."""
    min_bytes: int | None = Field(default=None, ge=1)
    max_bytes: int | None = Field(default=None, ge=1)
    commit_interval: Seconds = 5.0
    initial_offsets: Literal["earliest", "latest"] = "earliest"
    ack_on_consume: bool = False
    """Commit each message *before* the handler runs: at-most-once. Off by default."""
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    """read_committed (librdkafka's default) skips aborted transactions and stops at the first
    open one; read_uncommitted reads every record as soon as it is written."""

    @field_validator("initial_offsets", mode="before")
    @classmethod
    def _kafka_go_offsets(cls, value: object) -> object:
        # kafka-go's FirstOffset / LastOffset constants
        return {-2: "earliest", -1: "latest", "-2": "earliest", "-1": "latest"}.get(
            value if isinstance(value, int | str) else None, value
        )

    def to_librdkafka(self, bootstrap: str) -> dict[str, SettingValue]:
        """Consumer settings: offsets stored only after the handler, committed every interval."""
        out = self.base_settings(bootstrap)
        for refused in ("enable.auto.offset.store", "group.id"):
            if refused in self.settings:
                raise ConfigError(
                    f"settings.{refused} cannot be overridden: the Reader stores offsets only "
                    "after the handler succeeds (use group_id for the group)",
                    key=f"settings.{refused}",
                )
        out.update(
            {
                "enable.auto.offset.store": False,
                "enable.auto.commit": self.group_id is not None,
                "auto.commit.interval.ms": max(1, int(self.commit_interval * 1000)),
                "auto.offset.reset": self.initial_offsets,
                "enable.partition.eof": False,
                "isolation.level": self.isolation_level,
            }
        )
        if self.group_id is not None:
            out["group.id"] = self.group_id
        else:
            out["group.id"] = "kafkito-ungrouped"  # librdkafka wants one; never joined or committed
        if self.min_bytes is not None:
            out["fetch.min.bytes"] = self.min_bytes
        if self.max_bytes is not None:
            out["fetch.max.bytes"] = self.max_bytes
        out.update(self.settings)
        return out


def load_client_settings(path: str | Path) -> dict[str, SettingValue]:
    """Connection settings from a kafkito YAML config file, for tools such as the CLI.

    Takes the file's top-level keys, or its `reader:` (else `writer:`) section when the top
    level has neither `brokers` nor `client`; a `flow:` section is ignored. Returns
    `bootstrap.servers` (only when `brokers` is set), client id, timeout, SASL/TLS and the
    pass-through `settings`: what every client of that cluster needs, nothing role-specific.
    """
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError("a config must be a mapping of keys to values")
    if "brokers" not in data and "client" not in data:
        for section in ("reader", "writer"):
            if isinstance(data.get(section), dict):
                data = data[section]
                break
    data = {k: v for k, v in data.items() if k != "flow"}
    config = ReaderConfig.from_dict(data)
    out: dict[str, SettingValue] = {}
    if config.brokers:
        out["bootstrap.servers"] = ",".join(config.brokers)
    if config.client.client_id:
        out["client.id"] = config.client.client_id
    out["socket.timeout.ms"] = max(10, int(config.client.timeout * 1000))
    out.update(config.client.security_settings())
    out.update(config.settings)
    return out


_VERBATIM = frozenset(
    {"password", "username", "client_id", "group_id", "topic", "key", "transactional_id"}
)


def _env_value(name: str, raw: str) -> Any:
    if name in (
        "password",
        "username",
        "client_id",
        "group_id",
        "topic",
        "key",
        "transactional_id",
    ):
        return raw  # never reinterpret strings that must stay verbatim
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _config_error(exc: ValidationError, *, env_prefix: str | None = None) -> ConfigError:
    """The first validation error as a ConfigError naming the key, never the value."""
    first = exc.errors(include_input=False, include_url=False)[0]
    key = ".".join(str(part) for part in first["loc"])
    where = key
    if env_prefix is not None:
        where = f"{key} (environment {env_prefix}{key.upper().replace('.', '__')})"
    if first["type"] == "extra_forbidden":
        return ConfigError(f"unknown config key {where!r}", key=key)
    if first["type"] == "missing":
        return ConfigError(f"config key {where!r} is required", key=key)
    reason = str(first["msg"])
    return ConfigError(f"config key {where!r} is invalid: {reason}", key=key)
