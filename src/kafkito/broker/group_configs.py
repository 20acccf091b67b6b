"""Group configs (KIP-848): the GROUP config resource (type 32) of Describe/AlterConfigs.

Apache Kafka 4.1 lets an admin override a few group-coordinator settings per group
(GroupConfig): the session timeout and heartbeat interval of consumer groups, and the same
for share and streams groups plus a few of their own. DescribeConfigs on a group lists all ten
keys, whatever the group's type (and whether it exists: configs are kept apart from the group,
set before it exists and kept after DeleteGroups); a key not set shows the broker's value
(`group.consumer.session.timeout.ms`...) as DEFAULT_CONFIG, a key set shows GROUP_CONFIG (8),
each with itself as its only synonym. A value is checked against its type first (Kafka's
ConfigDef messages), then against the broker's min/max for it (`group.consumer.min.session.
timeout.ms`...); an unknown key is INVALID_CONFIG "Unknown group config name: K", the default
resource "" INVALID_REQUEST.

kafkito serves consumer groups only: `consumer.session.timeout.ms` and
`consumer.heartbeat.interval.ms` are read by the KIP-848 coordinator for that group
(consumer_group.py); the share and streams keys are listed, validated and stored as Kafka does,
and have no effect (docs/broker.md). The broker-side values, min and max come from the
broker's extra settings, with Kafka's defaults.

Pure: the persistence and the handlers are in the coordinator and the config handlers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kafkito.broker.configs import SOURCE_DEFAULT, ConfigKey, ConfigType, ConfigValue

__all__ = [
    "GROUP_CONFIGS",
    "RESOURCE_GROUP",
    "SOURCE_GROUP",
    "GroupKey",
    "describe_group_configs",
    "group_config_error",
    "group_config_int",
    "group_resource_error",
]

RESOURCE_GROUP = 32
"""ConfigResource.Type.GROUP."""
SOURCE_GROUP = 8
"""DescribeConfigs config_source GROUP_CONFIG."""

_INT_MAX = 2**31 - 1


@dataclass(frozen=True, slots=True)
class GroupKey:
    """One group config: its type, the broker key giving its default, and its bounds."""

    name: str
    type: ConfigType
    broker_key: str
    """The broker setting whose value is the default (Kafka's GroupCoordinatorConfig)."""
    default: str
    """Kafka's default of `broker_key`."""
    doc: str
    min_key: tuple[str, int] | None = None
    """(broker key, its Kafka default): the value must be at least this."""
    max_key: tuple[str, int] | None = None
    at_least: int | None = None
    """A bound of the key's own ConfigDef (checked with the type)."""
    choices: tuple[str, ...] = ()


def _timeout(kind: str, what: str, default: int, low: int, high: int, doc: str) -> GroupKey:
    return GroupKey(
        f"{kind}.{what}",
        "int",
        f"group.{kind}.{what}",
        str(default),
        doc,
        min_key=(f"group.{kind}.min.{what}", low),
        max_key=(f"group.{kind}.max.{what}", high),
    )


GROUP_CONFIGS: dict[str, GroupKey] = {
    k.name: k
    for k in (
        _timeout(
            "consumer",
            "session.timeout.ms",
            45_000,
            45_000,
            60_000,
            "How long a consumer-group member may stay silent before it is removed.",
        ),
        _timeout(
            "consumer",
            "heartbeat.interval.ms",
            5_000,
            5_000,
            15_000,
            "How often the coordinator asks consumer-group members to heartbeat.",
        ),
        _timeout(
            "share",
            "session.timeout.ms",
            45_000,
            45_000,
            60_000,
            "Share groups' session timeout (kafkito serves no share groups: stored only).",
        ),
        _timeout(
            "share",
            "heartbeat.interval.ms",
            5_000,
            5_000,
            15_000,
            "Share groups' heartbeat interval (kafkito serves no share groups: stored only).",
        ),
        _timeout(
            "share",
            "record.lock.duration.ms",
            30_000,
            15_000,
            60_000,
            "How long a share group holds a record's acquisition lock (stored only).",
        ),
        GroupKey(
            "share.auto.offset.reset",
            "string",
            "share.auto.offset.reset",
            "latest",
            "Where a share group starts without a position (stored only).",
        ),
        GroupKey(
            "share.isolation.level",
            "string",
            "share.isolation.level",
            "read_uncommitted",
            "Which records a share group reads (stored only).",
            choices=("read_committed", "read_uncommitted"),
        ),
        _timeout(
            "streams",
            "session.timeout.ms",
            45_000,
            45_000,
            60_000,
            "Streams groups' session timeout (kafkito serves no streams groups: stored only).",
        ),
        _timeout(
            "streams",
            "heartbeat.interval.ms",
            5_000,
            5_000,
            15_000,
            "Streams groups' heartbeat interval (stored only).",
        ),
        GroupKey(
            "streams.num.standby.replicas",
            "int",
            "group.streams.num.standby.replicas",
            "0",
            "Standby replicas of a streams group's tasks (stored only).",
            max_key=("group.streams.max.standby.replicas", 2),
            at_least=0,
        ),
    )
}


def _broker_int(extra: Mapping[str, object], key: tuple[str, int]) -> int:
    return int(str(extra.get(key[0], key[1])))


def group_config_default(name: str, extra: Mapping[str, object]) -> str:
    """The broker's value for group config `name` (its default when the group sets none)."""
    key = GROUP_CONFIGS[name]
    return str(extra.get(key.broker_key, key.default))


def group_config_int(name: str, overrides: Mapping[str, str], extra: Mapping[str, object]) -> int:
    """The effective value of int group config `name`: the group's, else the broker's."""
    value = overrides.get(name)
    return int((value if value is not None else group_config_default(name, extra)).strip())


_DURATION = re.compile(r"P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?")
"""An ISO-8601 duration as java.time.Duration.parse reads it (days and time, no sign)."""


def _by_duration_ok(value: str) -> bool:
    """Kafka's ShareGroupAutoOffsetResetStrategy: `by_duration:` and a duration."""
    rest = value[len("by_duration:") :]
    return bool(_DURATION.fullmatch(rest)) and any(c.isdigit() for c in rest)


def group_config_error(name: str, value: str, extra: Mapping[str, object]) -> str | None:
    """Why `value` is refused for group config `name` (Kafka's message), or None."""
    key = GROUP_CONFIGS.get(name)
    if key is None:
        return f"Unknown group config name: {name}"
    prefix = f"Invalid value {value} for configuration {name}: "
    if key.type == "int":
        try:
            number = int(value.strip())
        except ValueError:
            return prefix + "Not a number of type INT"
        if not -(2**31) <= number <= _INT_MAX:
            return prefix + "Not a number of type INT"
        if key.at_least is not None and number < key.at_least:
            return prefix + f"Value must be at least {key.at_least}"
        if key.min_key is not None and number < _broker_int(extra, key.min_key):
            return f"{name} must be greater than or equal to {key.min_key[0]}"
        if key.max_key is not None and number > _broker_int(extra, key.max_key):
            return f"{name} must be less than or equal to {key.max_key[0]}"
        return None
    text = value.strip()
    if key.choices and text not in key.choices:
        return prefix + f"String must be one of: {', '.join(key.choices)}"
    if name == "share.auto.offset.reset" and not (
        text in ("earliest", "latest")
        or (text.startswith("by_duration:") and _by_duration_ok(text))
    ):
        return prefix + (
            f"Invalid value `{text}` for configuration {name}. The value must be either "
            "'earliest', 'latest' or of the format 'by_duration:<PnDTnHnMn.nS>'."
        )
    return None


def group_resource_error(name: str) -> str | None:
    """Why a GROUP resource name is refused (Kafka's message), or None."""
    if name == "":
        return "Default group resources are not allowed."
    return None


def describe_group_configs(
    overrides: Mapping[str, str], extra: Mapping[str, object]
) -> list[ConfigValue]:
    """Every group config of one group: the group's value (GROUP_CONFIG) or the broker's."""
    described = []
    for name, key in GROUP_CONFIGS.items():
        value = overrides.get(name)
        source = SOURCE_GROUP if value is not None else SOURCE_DEFAULT
        if value is None:
            value = group_config_default(name, extra)
        described.append(
            ConfigValue(
                name=name,
                value=value,
                source=source,
                read_only=False,
                sensitive=False,
                type=key.type,
                doc=key.doc,
                synonyms=((name, value, source),),
            )
        )
    return described


def as_config_keys() -> dict[str, ConfigKey]:
    """The table as ConfigKeys, for IncrementalAlterConfigs' apply_operations (types only)."""
    return {name: ConfigKey(name, None, key.type, key.doc) for name, key in GROUP_CONFIGS.items()}
