"""Topic and broker configuration keys: one row per key, with its default and documentation.

DescribeConfigs lists every row (KAFKA-NOTES §6 P12: kafka-python's alter_configs checks names
against it), AlterConfigs and IncrementalAlterConfigs validate against it, and `LogConfig` is
derived from a topic's effective values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

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


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One configuration key."""

    name: str
    default: str | None
    type: ConfigType
    doc: str
    read_only: bool = False
    sensitive: bool = False
    choices: tuple[str, ...] = ()


def _k(name: str, default: str | None, type_: ConfigType, doc: str, **kw: object) -> ConfigKey:
    return ConfigKey(name, default, type_, doc, **kw)  # type: ignore[arg-type]


TOPIC_CONFIGS: dict[str, ConfigKey] = {
    k.name: k
    for k in [
        _k(
            "cleanup.policy",
            "delete",
            "list",
            "delete or compact old segments",
            choices=("delete", "compact", "compact,delete", "delete,compact"),
        ),
        _k(
            "compression.type",
            "producer",
            "string",
            "compression of stored batches; kafkito keeps what the producer sent",
            choices=("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"),
        ),
        _k(
            "delete.retention.ms",
            "86400000",
            "long",
            "how long tombstones are kept on compacted topics",
        ),
        _k(
            "file.delete.delay.ms",
            "60000",
            "long",
            "delay before deleting a file from the filesystem",
        ),
        _k(
            "flush.messages",
            "9223372036854775807",
            "long",
            "fsync after this many messages (durability=interval)",
        ),
        _k(
            "flush.ms",
            "9223372036854775807",
            "long",
            "fsync at least this often (durability=interval)",
        ),
        _k("index.interval.bytes", "4096", "int", "bytes of log between two offset index entries"),
        _k(
            "max.compaction.lag.ms",
            "9223372036854775807",
            "long",
            "maximum time a message stays uncompacted",
        ),
        _k("max.message.bytes", "1048588", "int", "largest record batch the topic accepts"),
        _k(
            "message.timestamp.type",
            "CreateTime",
            "string",
            "CreateTime or LogAppendTime",
            choices=("CreateTime", "LogAppendTime"),
        ),
        _k(
            "message.timestamp.before.max.ms",
            "9223372036854775807",
            "long",
            "how far in the past a record timestamp may be",
        ),
        _k(
            "message.timestamp.after.max.ms",
            "9223372036854775807",
            "long",
            "how far in the future a record timestamp may be",
        ),
        _k("min.cleanable.dirty.ratio", "0.5", "double", "dirty ratio that triggers compaction"),
        _k("min.compaction.lag.ms", "0", "long", "minimum time a message stays uncompacted"),
        _k("min.insync.replicas", "1", "int", "a single node is its own in-sync replica set"),
        _k("preallocate", "false", "boolean", "preallocate segment files"),
        _k(
            "retention.bytes",
            "-1",
            "long",
            "largest size of a partition before old segments are deleted; -1 for no limit",
        ),
        _k(
            "retention.ms",
            "604800000",
            "long",
            "age after which closed segments are deleted; -1 for no limit",
        ),
        _k("segment.bytes", "1073741824", "int", "segment file size before rolling"),
        _k("segment.index.bytes", "10485760", "int", "maximum index size per segment"),
        _k("segment.jitter.ms", "0", "long", "random jitter subtracted from segment.ms"),
        _k("segment.ms", "604800000", "long", "age of a segment before rolling"),
        _k("unclean.leader.election.enable", "false", "boolean", "meaningless on one node"),
        _k("message.downconversion.enable", "true", "boolean", "kept for compatibility"),
    ]
}


def validate_topic_config(name: str, value: str | None) -> str | None:
    """An error message if `value` is not acceptable for topic key `name`, else None."""
    key = TOPIC_CONFIGS.get(name)
    if key is None:
        return f"unknown topic config {name!r}"
    if key.read_only:
        return f"topic config {name!r} is read-only"
    if value is None:
        return None
    if key.choices and value not in key.choices:
        return f"invalid value {value!r} for {name}: one of {', '.join(key.choices)}"
    try:
        if key.type in ("int", "short", "long"):
            int(value)
        elif key.type == "double":
            float(value)
        elif key.type == "boolean" and value.lower() not in ("true", "false"):
            return f"invalid value {value!r} for {name}: true or false"
    except ValueError:
        return f"invalid value {value!r} for {name}: expected {key.type}"
    return None


def effective_topic_configs(overrides: Mapping[str, str]) -> dict[str, str | None]:
    """Every topic key with its effective value."""
    return {name: overrides.get(name, key.default) for name, key in TOPIC_CONFIGS.items()}


def log_config_for(overrides: Mapping[str, str], *, message_max_bytes: int) -> LogConfig:
    """The LogConfig a topic's overrides imply."""

    def get(name: str, fallback: int) -> int:
        value = overrides.get(name)
        return int(value) if value is not None else fallback

    return LogConfig(
        segment_bytes=get("segment.bytes", 1 << 30),
        segment_ms=get("segment.ms", 7 * 24 * 3600 * 1000),
        retention_ms=get("retention.ms", 7 * 24 * 3600 * 1000),
        retention_bytes=get("retention.bytes", -1),
        max_message_bytes=get("max.message.bytes", message_max_bytes),
    )
