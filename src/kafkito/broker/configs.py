"""Topic and broker configuration keys: one row per key, with its default and documentation.

Two tables. `TOPIC_CONFIGS` holds every topic-level key Kafka knows, each with its type, its
default, the broker key that supplies that default (Kafka's "synonym": `retention.ms` defaults to
`log.retention.ms`) and bounds where Kafka has them. `BROKER_CONFIGS` lists the broker's own
keys (every synonym of a topic key among them), each read from `BrokerSettings` or fixed; they
are static (read-only): the broker is configured at start, never altered over the wire.

DescribeConfigs lists every row (KAFKA-NOTES §6 P12: kafka-python's alter_configs checks names
against it), AlterConfigs and IncrementalAlterConfigs validate against `TOPIC_CONFIGS`, and the
`LogConfig` each partition log acts on is derived from a topic's effective values.

Where a value comes from (DescribeConfigs `config_source`): a topic override is
DYNAMIC_TOPIC_CONFIG; a broker setting that differs from Kafka's default is STATIC_BROKER_CONFIG;
anything else is DEFAULT_CONFIG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kafkito.broker.settings import BrokerSettings
from kafkito.storage.log import LogConfig

ConfigType = Literal[
    "boolean", "string", "int", "short", "long", "double", "list", "class", "password"
]

# DescribeConfigs config_type values (KIP-569)
CONFIG_TYPE_IDS: dict[str, int] = {
    "boolean": 1,
    "string": 2,
    "int": 3,
    "short": 4,
    "long": 5,
    "double": 6,
    "list": 7,
    "class": 8,
    "password": 9,
}

# DescribeConfigs config_source values
SOURCE_DYNAMIC_TOPIC = 1
SOURCE_DYNAMIC_BROKER = 2
SOURCE_STATIC_BROKER = 4
SOURCE_DEFAULT = 5

# ConfigResource types
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
RESOURCE_BROKER_LOGGER = 8

_INT_RANGES: dict[str, tuple[int, int]] = {
    "short": (-(2**15), 2**15 - 1),
    "int": (-(2**31), 2**31 - 1),
    "long": (-(2**63), 2**63 - 1),
}
LONG_MAX = str(2**63 - 1)


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One topic configuration key."""

    name: str
    default: str | None
    type: ConfigType
    doc: str
    broker_key: str | None = None
    """The broker key that supplies the default (Kafka's synonym), if any."""
    minimum: float | None = None
    maximum: float | None = None
    read_only: bool = False
    sensitive: bool = False
    choices: tuple[str, ...] = ()
    """Allowed values; for a list key, allowed items."""


def _k(
    name: str,
    default: str | None,
    type_: ConfigType,
    doc: str,
    broker_key: str | None = None,
    **kw: Any,
) -> ConfigKey:
    return ConfigKey(name, default, type_, doc, broker_key, **kw)


TOPIC_CONFIGS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k(
            "cleanup.policy",
            "delete",
            "list",
            "delete or compact old segments (a list: delete, compact or both)",
            "log.cleanup.policy",
            choices=("delete", "compact"),
        ),
        _k(
            "compression.type",
            "producer",
            "string",
            "compression of stored batches; kafkito keeps what the producer sent",
            "compression.type",
            choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
        ),
        _k(
            "delete.retention.ms",
            "86400000",
            "long",
            "how long tombstones are kept on compacted topics",
            "log.cleaner.delete.retention.ms",
            minimum=0,
        ),
        _k(
            "file.delete.delay.ms",
            "60000",
            "long",
            "delay before deleting a file from the filesystem",
            "log.segment.delete.delay.ms",
            minimum=0,
        ),
        _k(
            "flush.messages",
            LONG_MAX,
            "long",
            "fsync after this many messages (durability=interval)",
            "log.flush.interval.messages",
            minimum=1,
        ),
        _k(
            "flush.ms",
            LONG_MAX,
            "long",
            "fsync at least this often (durability=interval)",
            "log.flush.interval.ms",
            minimum=0,
        ),
        _k(
            "index.interval.bytes",
            "4096",
            "int",
            "bytes of log between two offset index entries",
            "log.index.interval.bytes",
            minimum=0,
        ),
        _k(
            "max.compaction.lag.ms",
            LONG_MAX,
            "long",
            "maximum time a message stays uncompacted",
            "log.cleaner.max.compaction.lag.ms",
            minimum=1,
        ),
        _k(
            "max.message.bytes",
            "1048588",
            "int",
            "largest record batch the topic accepts",
            "message.max.bytes",
            minimum=0,
        ),
        _k(
            "message.downconversion.enable",
            "true",
            "boolean",
            "kept for compatibility",
            "log.message.downconversion.enable",
        ),
        _k(
            "message.timestamp.after.max.ms",
            LONG_MAX,
            "long",
            "how far in the future a record timestamp may be",
            "log.message.timestamp.after.max.ms",
            minimum=0,
        ),
        _k(
            "message.timestamp.before.max.ms",
            LONG_MAX,
            "long",
            "how far in the past a record timestamp may be",
            "log.message.timestamp.before.max.ms",
            minimum=0,
        ),
        _k(
            "message.timestamp.type",
            "CreateTime",
            "string",
            "CreateTime or LogAppendTime",
            "log.message.timestamp.type",
            choices=("CreateTime", "LogAppendTime"),
        ),
        _k(
            "min.cleanable.dirty.ratio",
            "0.5",
            "double",
            "dirty ratio that triggers compaction",
            "log.cleaner.min.cleanable.ratio",
            minimum=0,
            maximum=1,
        ),
        _k(
            "min.compaction.lag.ms",
            "0",
            "long",
            "minimum time a message stays uncompacted",
            "log.cleaner.min.compaction.lag.ms",
            minimum=0,
        ),
        _k(
            "min.insync.replicas",
            "1",
            "int",
            "a single node is its own in-sync replica set",
            "min.insync.replicas",
            minimum=1,
        ),
        _k("preallocate", "false", "boolean", "preallocate segment files", "log.preallocate"),
        _k(
            "retention.bytes",
            "-1",
            "long",
            "largest size of a partition before old segments are deleted; -1 for no limit",
            "log.retention.bytes",
        ),
        _k(
            "retention.ms",
            "604800000",
            "long",
            "age after which closed segments are deleted; -1 for no limit",
            "log.retention.ms",
            minimum=-1,
        ),
        _k(
            "segment.bytes",
            "1073741824",
            "int",
            "segment file size before rolling",
            "log.segment.bytes",
            minimum=14,
        ),
        _k(
            "segment.index.bytes",
            "10485760",
            "int",
            "maximum index size per segment",
            "log.index.size.max.bytes",
            minimum=4,
        ),
        _k(
            "segment.jitter.ms",
            "0",
            "long",
            "random jitter subtracted from segment.ms",
            "log.roll.jitter.ms",
            minimum=0,
        ),
        _k(
            "segment.ms",
            "604800000",
            "long",
            "age of a segment before rolling",
            "log.roll.ms",
            minimum=1,
        ),
        _k(
            "unclean.leader.election.enable",
            "false",
            "boolean",
            "meaningless on one node",
            "unclean.leader.election.enable",
        ),
    ]
}

LIST_SEPARATOR = ","


def split_list(value: str) -> list[str]:
    """The items of a list-typed config value ('' is the empty list)."""
    return [item.strip() for item in value.split(LIST_SEPARATOR) if item.strip()]


def validate_topic_config(name: str, value: str | None) -> str | None:
    """An error message naming the key if `value` is not acceptable for `name`, else None."""
    key = TOPIC_CONFIGS.get(name)
    if key is None:
        return f"unknown topic config {name!r}"
    if key.read_only:
        return f"topic config {name!r} is read-only"
    if value is None:
        return None
    if key.type == "list":
        items = split_list(value)
        if key.choices:
            if not items:
                return f"invalid value {value!r} for {name}: at least one of {key.choices}"
            bad = [item for item in items if item not in key.choices]
            if bad:
                return f"invalid value {value!r} for {name}: items must be among {key.choices}"
        return None
    if key.choices and value not in key.choices:
        return f"invalid value {value!r} for {name}: one of {', '.join(key.choices)}"
    number: float
    if key.type in _INT_RANGES:
        try:
            number = int(value.strip())
        except ValueError:
            return f"invalid value {value!r} for {name}: expected {key.type}"
        low, high = _INT_RANGES[key.type]
        if not low <= number <= high:
            return f"invalid value {value!r} for {name}: outside the {key.type} range"
    elif key.type == "double":
        try:
            number = float(value)
        except ValueError:
            return f"invalid value {value!r} for {name}: expected double"
    elif key.type == "boolean":
        if value.strip().lower() not in ("true", "false"):
            return f"invalid value {value!r} for {name}: true or false"
        return None
    else:
        return None
    if key.minimum is not None and number < key.minimum:
        return f"invalid value {value!r} for {name}: must be at least {key.minimum:g}"
    if key.maximum is not None and number > key.maximum:
        return f"invalid value {value!r} for {name}: must be at most {key.maximum:g}"
    return None


# -- the broker table ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerKey:
    """One broker configuration key, read from the settings (all are static: read-only)."""

    name: str
    kafka_default: str | None
    """Kafka's default; a different value is reported as STATIC_BROKER_CONFIG."""
    type: ConfigType
    doc: str
    value: Callable[[BrokerSettings, int], str | None]
    """The value, from the settings and the bound port."""
    sensitive: bool = False


def _b(
    name: str,
    kafka_default: str | None,
    type_: ConfigType,
    doc: str,
    value: Callable[[BrokerSettings, int], str | None] | None = None,
) -> BrokerKey:
    return BrokerKey(name, kafka_default, type_, doc, value or _fixed(kafka_default))


def _fixed(constant: str | None) -> Callable[[BrokerSettings, int], str | None]:
    return lambda settings, port: constant


def _from_settings(getter: Callable[[BrokerSettings], str]) -> Callable[[BrokerSettings, int], str]:
    return lambda settings, port: getter(settings)


def _bool(flag: bool) -> str:
    return "true" if flag else "false"


def _protocol(settings: BrokerSettings) -> str:
    # getattr: the security settings arrive with the SASL/TLS work.
    return str(getattr(settings, "security_protocol", "PLAINTEXT"))


_BROKER_ONLY: list[BrokerKey] = [
    _b("node.id", "-1", "int", "this broker's id", lambda s, p: str(s.node_id)),
    _b("broker.id", "-1", "int", "this broker's id (old name)", lambda s, p: str(s.node_id)),
    _b("process.roles", "", "list", "one node is broker and controller", lambda s, p: "broker"),
    _b(
        "listeners",
        "PLAINTEXT://:9092",
        "list",
        "address the broker listens on",
        lambda s, p: f"{_protocol(s)}://{s.host}:{p}",
    ),
    _b(
        "advertised.listeners",
        None,
        "list",
        "address given to clients in Metadata",
        lambda s, p: f"{_protocol(s)}://{s.advertised}:{p}",
    ),
    _b("log.dirs", None, "list", "where logs and metadata live", lambda s, p: s.data_path),
    _b(
        "auto.create.topics.enable",
        "true",
        "boolean",
        "create a topic on first use in Metadata",
        lambda s, p: _bool(s.auto_create_topics),
    ),
    _b(
        "num.partitions",
        "1",
        "int",
        "partitions of auto-created topics and CreateTopics with -1",
        lambda s, p: str(s.num_partitions),
    ),
    _b("default.replication.factor", "1", "int", "one node keeps one replica"),
    _b("delete.topic.enable", "true", "boolean", "DeleteTopics is allowed"),
    _b(
        "socket.request.max.bytes",
        "104857600",
        "int",
        "largest request frame; larger ones close the connection",
        lambda s, p: str(s.max_frame_bytes),
    ),
    _b(
        "queued.max.request.bytes",
        "-1",
        "long",
        "request bytes held across all connections before reads pause",
        lambda s, p: str(s.max_inflight_bytes),
    ),
    _b(
        "max.connections",
        "2147483647",
        "int",
        "connections accepted at once",
        lambda s, p: str(s.max_connections),
    ),
    _b(
        "connections.max.idle.ms",
        "600000",
        "long",
        "idle connections are closed after this long",
        lambda s, p: str(s.idle_timeout_ms),
    ),
    _b("log.retention.hours", "168", "int", "retention.ms default, in hours"),
    _b("log.roll.hours", "168", "int", "segment.ms default, in hours"),
    _b(
        "log.retention.check.interval.ms",
        "300000",
        "long",
        "how often retention runs",
        lambda s, p: str(s.retention_check_interval_ms),
    ),
    _b(
        "group.initial.rebalance.delay.ms",
        "3000",
        "int",
        "wait for more members before the first rebalance of an empty group",
        lambda s, p: str(s.group_initial_rebalance_delay_ms),
    ),
    _b(
        "offsets.retention.minutes",
        "10080",
        "int",
        "committed offsets of an empty group expire after this long",
        lambda s, p: str(s.offsets_retention_ms // 60_000),
    ),
    _b("offsets.topic.replication.factor", "3", "short", "one node", lambda s, p: "1"),
    _b("transaction.state.log.replication.factor", "3", "short", "one node", lambda s, p: "1"),
    _b("transaction.max.timeout.ms", "900000", "int", "largest transaction timeout"),
    _b(
        "kafkito.durability",
        "always",
        "string",
        "always: ack after fsync; interval: fsync periodically",
        lambda s, p: s.durability,
    ),
    _b(
        "kafkito.flush.interval.ms",
        "1000",
        "long",
        "fsync period with kafkito.durability=interval",
        lambda s, p: str(s.flush_interval_ms),
    ),
    _b(
        "kafkito.max.inflight.requests.per.connection",
        "64",
        "int",
        "requests read ahead on one connection",
        lambda s, p: str(s.max_inflight_requests_per_connection),
    ),
]

# Broker keys that supply topic defaults and that BrokerSettings can change.
_TOPIC_DEFAULT_SETTINGS: dict[str, Callable[[BrokerSettings], str]] = {
    "message.max.bytes": lambda s: str(s.message_max_bytes),
    "log.segment.bytes": lambda s: str(s.log_segment_bytes),
}


def _topic_synonym_rows() -> list[BrokerKey]:
    rows = []
    for key in TOPIC_CONFIGS.values():
        if key.broker_key is None:
            continue
        getter = _TOPIC_DEFAULT_SETTINGS.get(key.broker_key)
        value = None if getter is None else _from_settings(getter)
        rows.append(_b(key.broker_key, key.default, key.type, key.doc, value))
    return rows


BROKER_CONFIGS: dict[str, BrokerKey] = {
    row.name: row for row in sorted([*_BROKER_ONLY, *_topic_synonym_rows()], key=lambda r: r.name)
}

_SECRET_WORDS = ("password", "secret", "token", "jaas")


@dataclass(frozen=True, slots=True)
class ConfigValue:
    """One described config: the data DescribeConfigs and CreateTopics v5+ return."""

    name: str
    value: str | None
    source: int
    read_only: bool
    sensitive: bool
    type: ConfigType
    doc: str
    synonyms: tuple[tuple[str, str | None, int], ...]
    """(name, value, source), most specific first."""

    def as_dict(self, *, synonyms: bool, documentation: bool) -> dict[str, Any]:
        """The wire shape (codec.build drops what the version lacks)."""
        return {
            "name": self.name,
            "value": None if self.sensitive else self.value,
            "read_only": self.read_only,
            "config_source": self.source,
            "is_default": self.source == SOURCE_DEFAULT,
            "is_sensitive": self.sensitive,
            "synonyms": [
                {"name": n, "value": None if self.sensitive else v, "source": src}
                for n, v, src in self.synonyms
            ]
            if synonyms
            else [],
            "config_type": CONFIG_TYPE_IDS[self.type],
            "documentation": self.doc if documentation else None,
        }


def _broker_value(row: BrokerKey, settings: BrokerSettings, port: int) -> tuple[str | None, int]:
    value = row.value(settings, port)
    source = SOURCE_DEFAULT if value == row.kafka_default else SOURCE_STATIC_BROKER
    return value, source


def describe_broker_configs(settings: BrokerSettings, port: int) -> list[ConfigValue]:
    """Every broker key with its value, source and flags (all read-only)."""
    described = []
    for row in BROKER_CONFIGS.values():
        value, source = _broker_value(row, settings, port)
        described.append(
            ConfigValue(
                row.name,
                value,
                source,
                True,
                row.sensitive,
                row.type,
                row.doc,
                ((row.name, value, source),),
            )
        )
    for name, value in sorted(settings.extra.items()):
        if name in BROKER_CONFIGS:
            continue
        sensitive = any(word in name.lower() for word in _SECRET_WORDS)
        described.append(
            ConfigValue(
                name,
                value,
                SOURCE_STATIC_BROKER,
                True,
                sensitive,
                "password" if sensitive else "string",
                "passed through from the broker settings",
                ((name, value, SOURCE_STATIC_BROKER),),
            )
        )
    return described


def topic_defaults(settings: BrokerSettings) -> dict[str, tuple[str | None, int]]:
    """Each topic key's default (value, source) on this broker, before topic overrides."""
    defaults: dict[str, tuple[str | None, int]] = {}
    for key in TOPIC_CONFIGS.values():
        row = BROKER_CONFIGS.get(key.broker_key or "")
        if row is None:
            defaults[key.name] = (key.default, SOURCE_DEFAULT)
        else:
            defaults[key.name] = _broker_value(row, settings, 0)
    return defaults


def describe_topic_configs(
    overrides: Mapping[str, str], settings: BrokerSettings
) -> list[ConfigValue]:
    """Every topic key with its effective value, source and synonyms, in name order."""
    defaults = topic_defaults(settings)
    described = []
    for key in TOPIC_CONFIGS.values():
        default, default_source = defaults[key.name]
        synonyms: list[tuple[str, str | None, int]] = []
        value: str | None
        if key.name in overrides:
            value, source = overrides[key.name], SOURCE_DYNAMIC_TOPIC
            synonyms.append((key.name, value, SOURCE_DYNAMIC_TOPIC))
        else:
            value, source = default, default_source
        if key.broker_key is not None:
            synonyms.append((key.broker_key, default, default_source))
            if default_source != SOURCE_DEFAULT:
                synonyms.append((key.broker_key, key.default, SOURCE_DEFAULT))
        described.append(
            ConfigValue(
                key.name,
                value,
                source,
                key.read_only,
                key.sensitive,
                key.type,
                key.doc,
                tuple(synonyms),
            )
        )
    return described


def effective_topic_configs(overrides: Mapping[str, str]) -> dict[str, str | None]:
    """Every topic key with its effective value (Kafka's defaults under the overrides)."""
    return {name: overrides.get(name, key.default) for name, key in TOPIC_CONFIGS.items()}


def log_config_for(
    overrides: Mapping[str, str], *, message_max_bytes: int, segment_bytes: int = 1 << 30
) -> LogConfig:
    """The LogConfig a topic's overrides imply; the broker supplies two defaults."""

    def get(name: str, fallback: int) -> int:
        value = overrides.get(name)
        return int(value) if value is not None else fallback

    def default(name: str) -> int:
        value = TOPIC_CONFIGS[name].default
        assert value is not None
        return int(value)

    policy = {
        part.strip()
        for part in str(overrides.get("cleanup.policy", TOPIC_CONFIGS["cleanup.policy"].default))
        .lower()
        .split(",")
    }
    ratio = overrides.get(
        "min.cleanable.dirty.ratio", TOPIC_CONFIGS["min.cleanable.dirty.ratio"].default
    )
    return LogConfig(
        cleanup_delete="delete" in policy,
        cleanup_compact="compact" in policy,
        delete_retention_ms=get("delete.retention.ms", default("delete.retention.ms")),
        min_compaction_lag_ms=get("min.compaction.lag.ms", default("min.compaction.lag.ms")),
        max_compaction_lag_ms=get("max.compaction.lag.ms", default("max.compaction.lag.ms")),
        min_cleanable_dirty_ratio=float(ratio if ratio is not None else 0.5),
        segment_bytes=get("segment.bytes", segment_bytes),
        segment_ms=get("segment.ms", default("segment.ms")),
        retention_ms=get("retention.ms", default("retention.ms")),
        retention_bytes=get("retention.bytes", default("retention.bytes")),
        max_message_bytes=get("max.message.bytes", message_max_bytes),
        flush_messages=get("flush.messages", -1),
        flush_ms=get("flush.ms", -1),
    )
