"""Topic and broker configuration keys: one row per key, with its default and documentation.

Two tables. `TOPIC_CONFIGS` holds every topic-level key Kafka 4.1 knows, each with its type, its
default, the broker key that supplies that default (Kafka's "synonym": `retention.ms` defaults to
`log.retention.ms`) and bounds where Kafka has them. `BROKER_CONFIGS` lists the broker's own
keys (every synonym of a topic key among them), each read from `BrokerSettings` or fixed.

Dynamic broker configs. The broker keys that supply topic defaults (`DYNAMIC_BROKER_CONFIGS`,
Kafka's DynamicLogConfig set) may be changed over the wire, cluster-wide (resource name "") or
for this node (its id), as in Kafka; every other broker key is read-only. A value is looked up
in four layers, most specific first, each its DescribeConfigs `config_source`:

    DYNAMIC_BROKER_CONFIG (2)          this node's dynamic values      } metadata log
    DYNAMIC_DEFAULT_BROKER_CONFIG (3)  cluster-wide dynamic defaults   }
    STATIC_BROKER_CONFIG (4)           a BrokerSettings value that differs from Kafka's default
    DEFAULT_CONFIG (5)                 Kafka's default

and a topic override (DYNAMIC_TOPIC_CONFIG, 1) beats them all. Synonyms are listed exactly as
Kafka's ConfigHelper lists them (`_synonyms`), so clients that print them see the same thing.

DescribeConfigs lists every row (KAFKA-NOTES §6 P12: kafka-python's alter_configs checks names
against it), AlterConfigs and IncrementalAlterConfigs validate against these tables, and the
`LogConfig` each partition log acts on is derived from a topic's effective values
(`log_config_for`), again whenever a dynamic broker default changes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from kafkito.broker.broker_keys_kafka import STORED_BROKER_KEYS
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
SOURCE_DYNAMIC_DEFAULT_BROKER = 3
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
    excluded: tuple[str, ...] = ()
    """Values inside the bounds that are still refused (gzip level 0, as in Kafka)."""
    item_pattern: str | None = None
    """For a list key: the form every item must have (or the list is the single item "*")."""


_THROTTLED_REPLICA = r"[0-9]+:[0-9]+"
"""partition:broker, Kafka's ThrottledReplicaListValidator."""


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
    for k in sorted(
        [
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
                "compression.gzip.level",
                "-1",
                "int",
                "gzip level when the broker recompresses; kafkito keeps what the producer sent",
                "compression.gzip.level",
                minimum=-1,
                maximum=9,
                excluded=("0",),
            ),
            _k(
                "compression.lz4.level",
                "9",
                "int",
                "lz4 level when the broker recompresses; kafkito keeps what the producer sent",
                "compression.lz4.level",
                minimum=1,
                maximum=17,
            ),
            _k(
                "compression.zstd.level",
                "3",
                "int",
                "zstd level when the broker recompresses; kafkito keeps what the producer sent",
                "compression.zstd.level",
                minimum=-131072,
                maximum=22,
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
                "follower.replication.throttled.replicas",
                "",
                "list",
                "replication throttling; one node has no followers",
                item_pattern=_THROTTLED_REPLICA,
            ),
            _k(
                "leader.replication.throttled.replicas",
                "",
                "list",
                "replication throttling; one node has no followers",
                item_pattern=_THROTTLED_REPLICA,
            ),
            _k(
                "local.retention.bytes",
                "-2",
                "long",
                "tiered storage (not in kafkito): -2 means retention.bytes",
                "log.local.retention.bytes",
                minimum=-2,
            ),
            _k(
                "local.retention.ms",
                "-2",
                "long",
                "tiered storage (not in kafkito): -2 means retention.ms",
                "log.local.retention.ms",
                minimum=-2,
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
                "message.timestamp.after.max.ms",
                "3600000",
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
                "remote.log.copy.disable",
                "false",
                "boolean",
                "tiered storage (not in kafkito)",
            ),
            _k(
                "remote.log.delete.on.disable",
                "false",
                "boolean",
                "tiered storage (not in kafkito)",
            ),
            _k(
                "remote.storage.enable",
                "false",
                "boolean",
                "tiered storage, which kafkito has not: only false is accepted",
                choices=("false",),
            ),
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
        ],
        key=lambda k: k.name,
    )
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
    return _value_error(key, name, value)


def _value_error(key: ConfigKey, name: str, value: str) -> str | None:
    """Why `value` does not fit `key`'s type, bounds and choices (naming `name`), or None."""
    if key.type == "list":
        items = split_list(value)
        if value.strip() and len(items) != len(value.split(LIST_SEPARATOR)):
            return f"invalid value {value!r} for {name}: an empty item in the list"
        if key.item_pattern is not None and items != ["*"]:
            bad = [item for item in items if not re.fullmatch(key.item_pattern, item)]
            if bad:
                return (
                    f"invalid value {value!r} for {name}: items must be partition:broker "
                    f"(or the list is '*'), not {bad[0]!r}"
                )
        if key.choices:
            # an empty list is allowed, as in Kafka 4.1 (cleanup.policy "": neither delete nor
            # compact, so nothing is ever removed)
            bad = [item for item in items if item not in key.choices]
            if bad:
                return f"invalid value {value!r} for {name}: items must be among {key.choices}"
        return None
    if key.choices and value not in key.choices:
        return f"invalid value {value!r} for {name}: one of {', '.join(key.choices)}"
    if value.strip() in key.excluded:
        return f"invalid value {value!r} for {name}: {value.strip()} is not allowed"
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
    _b("node.id", None, "int", "this broker's id", lambda s, p: str(s.node_id)),
    _b("broker.id", "-1", "int", "this broker's id (old name)", lambda s, p: str(s.node_id)),
    _b("process.roles", "", "list", "one node is broker and controller", lambda s, p: "broker"),
    _b(
        "listeners",
        "PLAINTEXT://:9092",
        "string",
        "address the broker listens on",
        lambda s, p: f"{_protocol(s)}://{s.host}:{p}",
    ),
    _b(
        "advertised.listeners",
        None,
        "string",
        "address given to clients in Metadata",
        lambda s, p: f"{_protocol(s)}://{s.advertised}:{p}",
    ),
    _b("log.dirs", None, "string", "where logs and metadata live", lambda s, p: s.data_path),
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
    _b("log.retention.minutes", None, "int", "retention.ms default, in minutes"),
    _b("log.roll.hours", "168", "int", "segment.ms default, in hours"),
    _b("log.roll.jitter.hours", "0", "int", "segment.jitter.ms default, in hours"),
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


# Kafka's broker defaults that are null: the value comes from a coarser synonym (hours).
_NULL_BROKER_DEFAULTS = frozenset(
    {"log.retention.ms", "log.roll.ms", "log.roll.jitter.ms", "log.flush.interval.ms"}
)


def _topic_synonym_rows() -> list[BrokerKey]:
    rows = []
    for key in TOPIC_CONFIGS.values():
        if key.broker_key is None:
            continue
        default = None if key.broker_key in _NULL_BROKER_DEFAULTS else key.default
        getter = _TOPIC_DEFAULT_SETTINGS.get(key.broker_key)
        value = None if getter is None else _from_settings(getter)
        rows.append(_b(key.broker_key, default, key.type, key.doc, value))
    return rows


BROKER_CONFIGS: dict[str, BrokerKey] = {
    row.name: row for row in sorted([*_BROKER_ONLY, *_topic_synonym_rows()], key=lambda r: r.name)
}

BROKER_TO_TOPIC: dict[str, ConfigKey] = {
    key.broker_key: key for key in TOPIC_CONFIGS.values() if key.broker_key is not None
}
"""Each broker key that supplies a topic default, with that topic key (its type and bounds)."""

DYNAMIC_BROKER_CONFIGS = frozenset(BROKER_TO_TOPIC)
"""The broker keys clients may change at run time: Kafka's DynamicLogConfig set, the broker
defaults of topic keys ("cluster-wide" in the docs' dynamic update mode column). Kafka's other
dynamic keys (threads, listeners, SSL stores, quotas, max.connections) are read-only here: their
kafkito counterparts are fixed when the listener starts."""

BROKER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "log.retention.ms": ("log.retention.minutes", "log.retention.hours"),
    "log.roll.ms": ("log.roll.hours",),
    "log.roll.jitter.ms": ("log.roll.jitter.hours",),
}
"""Coarser keys that stand in for a broker key when it is unset, most precise first (KafkaConfig:
log.retention.ms, else log.retention.minutes, else log.retention.hours)."""

_UNIT_MS = {
    "log.retention.minutes": 60_000,
    "log.retention.hours": 3_600_000,
    "log.roll.hours": 3_600_000,
    "log.roll.jitter.hours": 3_600_000,
}


_BROKER_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "log.flush.interval.ms": (None, None),
    "log.retention.ms": (None, None),
}
"""Broker keys whose bounds differ from their topic key's (measured against Kafka 4.1:
log.flush.interval.ms takes any long; log.retention.ms any long but 0)."""


def validate_broker_config(name: str, value: str, retention_ms: str | None = None) -> str | None:
    """Why `value` cannot be `name`'s dynamic value, or None: the topic key's type and bounds,
    and Kafka's broker-level rules. `retention_ms` is the broker's effective retention, which
    bounds log.local.retention.ms. `name` must be in DYNAMIC_BROKER_CONFIGS."""
    key = BROKER_TO_TOPIC[name]
    if name in _BROKER_BOUNDS:
        low, high = _BROKER_BOUNDS[name]
        key = dataclasses.replace(key, minimum=low, maximum=high)
    if (reason := _value_error(key, name, value)) is not None:
        return reason
    if name == "log.retention.ms" and int(value) == 0:
        return f"invalid value {value!r} for {name}: -1 (no limit) or a positive number"
    if name == "log.local.retention.ms" and retention_ms is not None:
        local, total = int(value), int(retention_ms)
        if local != -2 and total >= 0 and not 0 <= local <= total:
            return (
                f"invalid value {value!r} for {name}: -2 (log.retention.ms) or at most "
                f"log.retention.ms ({total})"
            )
    return None


@dataclass(slots=True)
class DynamicBrokerConfigs:
    """Broker keys set over the wire, persisted in the metadata log (TopicRegistry owns them).

    `cluster` holds the cluster-wide defaults (resource name ""), `node` this node's own
    values (resource name = node id); a node value beats a cluster default, which beats the
    static settings, which beat Kafka's defaults.
    """

    cluster: dict[str, str] = field(default_factory=dict)
    node: dict[str, str] = field(default_factory=dict)


Layers = list[tuple[int, Mapping[str, str | None]]]


def _layers(settings: BrokerSettings, port: int, dynamic: DynamicBrokerConfigs | None) -> Layers:
    """Where broker values come from, most specific first, as (config source, values)."""
    static: dict[str, str | None] = {}
    default: dict[str, str | None] = {}
    for row in BROKER_CONFIGS.values():
        value = row.value(settings, port)
        if row.kafka_default is not None:
            default[row.name] = row.kafka_default
        if value is not None and value != row.kafka_default:
            static[row.name] = value
    dynamic = dynamic or DynamicBrokerConfigs()
    return [
        (SOURCE_DYNAMIC_BROKER, dynamic.node),
        (SOURCE_DYNAMIC_DEFAULT_BROKER, dynamic.cluster),
        (SOURCE_STATIC_BROKER, static),
        (SOURCE_DEFAULT, default),
    ]


def _synonyms(name: str, layers: Layers) -> tuple[tuple[str, str | None, int], ...]:
    """Kafka's ConfigHelper.configSynonyms: every layer's value of the key and its coarser
    synonyms, layer by layer; leading entries of a coarser synonym are dropped, so a key set
    nowhere but through log.retention.hours lists nothing."""
    names = (name, *BROKER_SYNONYMS.get(name, ()))
    found = [(n, values[n], source) for source, values in layers for n in names if n in values]
    while found and found[0][0] != name:
        found.pop(0)
    return tuple(found)


def _effective_broker_value(name: str, layers: Layers) -> str | None:
    """The value the broker acts on for `name`, its coarser synonyms converted to ms."""
    for n in (name, *BROKER_SYNONYMS.get(name, ())):
        for _, values in layers:
            value = values.get(n)
            if value is not None:
                return str(int(value) * _UNIT_MS[n]) if n in _UNIT_MS else value
    return None


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
        """The wire shape (codec.build drops what the version lacks).

        No `is_default`: only v0 has it and kio (hence this broker) serves v1 and later.
        """
        return {
            "name": self.name,
            "value": None if self.sensitive else self.value,
            "read_only": self.read_only,
            "config_source": self.source,
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


def describe_broker_configs(
    settings: BrokerSettings, port: int, dynamic: DynamicBrokerConfigs | None = None
) -> list[ConfigValue]:
    """Every broker key with its value, source, synonyms and flags; the dynamic keys are the
    ones not read-only."""
    layers = _layers(settings, port, dynamic)
    described = []
    for row in BROKER_CONFIGS.values():
        synonyms = _synonyms(row.name, layers)
        value = next((v[row.name] for _, v in layers if row.name in v), None)
        described.append(
            ConfigValue(
                row.name,
                value,
                synonyms[0][2] if synonyms else SOURCE_DEFAULT,
                row.name not in DYNAMIC_BROKER_CONFIGS,
                row.sensitive,
                row.type,
                row.doc,
                synonyms,
            )
        )
    described += _describe_stored(layers)
    for name, value in sorted(settings.extra.items()):
        if name in BROKER_CONFIGS or any(c.name == name for c in described):
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


def _describe_stored(layers: Layers) -> list[ConfigValue]:
    """Kafka's dynamic keys that kafkito only stores (broker_keys_kafka.py): listed once set,
    with their source and synonyms (node, cluster-wide, Kafka's default), as Kafka lists them."""
    set_names = {name for _, values in layers[:2] for name in values}
    described = []
    for name in sorted(set_names & STORED_BROKER_KEYS.keys()):
        key = STORED_BROKER_KEYS[name]
        synonyms = [(name, values[name], src) for src, values in layers[:2] if name in values]
        if key.default is not None:
            synonyms.append((name, key.default, SOURCE_DEFAULT))
        sensitive = key.type == "password"
        described.append(
            ConfigValue(
                name,
                synonyms[0][1],
                synonyms[0][2],
                False,
                sensitive,
                key.type,
                _STORED_DOC,
                tuple(synonyms),
            )
        )
    return described


_STORED_DOC = "One of Kafka's dynamic broker configs; kafkito stores it and does not act on it."


def describe_cluster_defaults(dynamic: DynamicBrokerConfigs) -> list[ConfigValue]:
    """The cluster-wide dynamic defaults (resource name ""): only what was set, as Kafka."""
    described = []
    for name, value in sorted(dynamic.cluster.items()):
        row = BROKER_CONFIGS.get(name)
        stored = STORED_BROKER_KEYS.get(name)
        described.append(
            ConfigValue(
                name,
                value,
                SOURCE_DYNAMIC_DEFAULT_BROKER,
                False,
                row.sensitive
                if row is not None
                else stored is not None and stored.type == "password",
                row.type if row is not None else stored.type if stored is not None else "string",
                row.doc if row is not None else _STORED_DOC,
                ((name, value, SOURCE_DYNAMIC_DEFAULT_BROKER),),
            )
        )
    return described


def topic_defaults(
    settings: BrokerSettings, dynamic: DynamicBrokerConfigs | None = None
) -> dict[str, tuple[str | None, int]]:
    """Each topic key's default (value, source) on this broker, before topic overrides."""
    layers = _layers(settings, 0, dynamic)
    defaults: dict[str, tuple[str | None, int]] = {}
    for key in TOPIC_CONFIGS.values():
        if key.broker_key is None:
            defaults[key.name] = (key.default, SOURCE_DEFAULT)
            continue
        synonyms = _synonyms(key.broker_key, layers)
        value = _effective_broker_value(key.broker_key, layers)
        defaults[key.name] = (
            key.default if value is None else value,
            synonyms[0][2] if synonyms else SOURCE_DEFAULT,
        )
    return defaults


def topic_default_values(
    settings: BrokerSettings, dynamic: DynamicBrokerConfigs | None = None
) -> dict[str, str | None]:
    """Each topic key's default value on this broker (what a topic without overrides uses)."""
    return {name: value for name, (value, _) in topic_defaults(settings, dynamic).items()}


def describe_topic_configs(
    overrides: Mapping[str, str],
    settings: BrokerSettings,
    dynamic: DynamicBrokerConfigs | None = None,
) -> list[ConfigValue]:
    """Every topic key with its effective value, source and synonyms, in name order."""
    defaults = topic_defaults(settings, dynamic)
    layers = _layers(settings, 0, dynamic)
    described = []
    for key in TOPIC_CONFIGS.values():
        synonyms = _synonyms(key.broker_key, layers) if key.broker_key else ()
        value: str | None
        if key.name in overrides:
            value, source = overrides[key.name], SOURCE_DYNAMIC_TOPIC
            synonyms = ((key.name, value, SOURCE_DYNAMIC_TOPIC), *synonyms)
        else:
            value, source = defaults[key.name]
        described.append(
            ConfigValue(
                key.name,
                value,
                source,
                key.read_only,
                key.sensitive,
                key.type,
                key.doc,
                synonyms,
            )
        )
    return described


def log_config_for(overrides: Mapping[str, str], defaults: Mapping[str, str | None]) -> LogConfig:
    """The LogConfig of a topic: its overrides over the broker's topic defaults
    (`topic_default_values`, which follow dynamic broker configs)."""

    def get(name: str) -> int:
        value = overrides.get(name, defaults.get(name))
        if value is None:
            value = TOPIC_CONFIGS[name].default
        assert value is not None
        return int(value)

    def ratio(name: str) -> float:
        value = overrides.get(name, defaults.get(name))
        if value is None:
            value = TOPIC_CONFIGS[name].default
        assert value is not None
        return float(value)

    policy = overrides.get("cleanup.policy", defaults.get("cleanup.policy"))
    # Kafka deletes by retention.ms / retention.bytes only with the "delete" policy, and
    # compacts only with "compact" (storage.cleaner); "compact,delete" does both.
    policies = set(split_list((policy if policy is not None else "delete").lower()))
    return LogConfig(
        cleanup_delete="delete" in policies,
        cleanup_compact="compact" in policies,
        delete_retention_ms=get("delete.retention.ms"),
        min_compaction_lag_ms=get("min.compaction.lag.ms"),
        max_compaction_lag_ms=get("max.compaction.lag.ms"),
        min_cleanable_dirty_ratio=ratio("min.cleanable.dirty.ratio"),
        segment_bytes=get("segment.bytes"),
        segment_ms=get("segment.ms"),
        retention_ms=get("retention.ms"),
        retention_bytes=get("retention.bytes"),
        max_message_bytes=get("max.message.bytes"),
        flush_messages=get("flush.messages"),
        flush_ms=get("flush.ms"),
        log_append_time=overrides.get(
            "message.timestamp.type", defaults.get("message.timestamp.type")
        )
        == "LogAppendTime",
        timestamp_before_max_ms=get("message.timestamp.before.max.ms"),
        timestamp_after_max_ms=get("message.timestamp.after.max.ms"),
    )
