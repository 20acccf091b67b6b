"""The config tables and the IncrementalAlterConfigs arithmetic, as pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.broker.configs import (
    BROKER_CONFIGS,
    SOURCE_DEFAULT,
    SOURCE_DYNAMIC_TOPIC,
    SOURCE_STATIC_BROKER,
    TOPIC_CONFIGS,
    DynamicBrokerConfigs,
    describe_broker_configs,
    describe_topic_configs,
    log_config_for,
    split_list,
    topic_default_values,
    validate_topic_config,
)
from kafkito.broker.handlers.incremental_alter_configs import (
    APPEND,
    DELETE,
    SET,
    SUBTRACT,
    apply_operations,
)
from kafkito.broker.settings import BrokerSettings
from kafkito.errors import BrokerError, ErrorCode

DEFAULTS = {name: key.default for name, key in TOPIC_CONFIGS.items()}


@pytest.mark.parametrize(
    ("name", "value", "complaint"),
    [
        ("retention.ms", "-1", None),
        ("retention.ms", "-2", "at least -1"),
        ("retention.ms", "1e3", "expected long"),
        ("segment.bytes", str(2**31), "outside the int range"),
        ("segment.bytes", "13", "at least 14"),
        ("min.cleanable.dirty.ratio", "1.5", "at most 1"),
        ("preallocate", "yes", "true or false"),
        ("preallocate", "TRUE", None),
        ("cleanup.policy", "compact, delete", None),
        ("cleanup.policy", "", None),  # Kafka 4.1 accepts the empty list
        ("cleanup.policy", "delete,shred", "items must be among"),
        ("message.timestamp.type", "LogAppendTime", None),
        ("message.timestamp.type", "Now", "one of"),
        ("no.such", "1", "unknown topic config 'no.such'"),
    ],
)
def test_validate_topic_config(name: str, value: str, complaint: str | None) -> None:
    found = validate_topic_config(name, value)
    if complaint is None:
        assert found is None
    else:
        assert found is not None
        assert complaint in found
        assert name in found


def test_every_default_is_valid() -> None:
    for name, key in TOPIC_CONFIGS.items():
        assert validate_topic_config(name, key.default) is None, name


def test_broker_settings_become_topic_defaults_with_a_static_source() -> None:
    settings = BrokerSettings(message_max_bytes=2000, log_segment_bytes=1 << 20)
    described = {c.name: c for c in describe_topic_configs({"retention.ms": "5"}, settings)}
    assert (described["max.message.bytes"].value, described["max.message.bytes"].source) == (
        "2000",
        SOURCE_STATIC_BROKER,
    )
    assert described["max.message.bytes"].synonyms == (
        ("message.max.bytes", "2000", SOURCE_STATIC_BROKER),
        ("message.max.bytes", "1048588", SOURCE_DEFAULT),
    )
    assert described["segment.bytes"].value == str(1 << 20)
    assert described["retention.ms"].source == SOURCE_DYNAMIC_TOPIC
    assert described["segment.ms"].source == SOURCE_DEFAULT
    config = log_config_for({}, topic_default_values(settings))
    assert (config.max_message_bytes, config.segment_bytes) == (2000, 1 << 20)
    broker = {c.name: c for c in describe_broker_configs(settings, 9999)}
    assert broker["message.max.bytes"].value == "2000"
    assert broker["listeners"].value == "PLAINTEXT://127.0.0.1:9999"
    assert set(broker) == set(BROKER_CONFIGS)


def test_sensitive_extra_settings_are_never_shown() -> None:
    settings = BrokerSettings(extra={"sasl.jaas.config": "secret!", "foo.bar": "1"})
    described = {c.name: c for c in describe_broker_configs(settings, 1)}
    hidden = described["sasl.jaas.config"].as_dict(synonyms=True, documentation=True)
    assert hidden["value"] is None
    assert hidden["is_sensitive"] is True
    assert all(s["value"] is None for s in hidden["synonyms"])
    assert described["foo.bar"].value == "1"


def test_operations_set_delete_append_subtract() -> None:
    current = {"retention.ms": "5", "segment.ms": "7"}
    after = apply_operations(
        current,
        DEFAULTS,
        [
            ("retention.ms", DELETE, None),
            ("flush.ms", SET, "9"),
            ("cleanup.policy", APPEND, "compact,delete"),
        ],
    )
    assert after == {"segment.ms": "7", "flush.ms": "9", "cleanup.policy": "delete,compact"}
    assert current == {"retention.ms": "5", "segment.ms": "7"}  # not modified in place
    after = apply_operations(after, DEFAULTS, [("cleanup.policy", SUBTRACT, "delete")])
    assert after["cleanup.policy"] == "compact"


@pytest.mark.parametrize(
    ("operations", "code"),
    [
        ([("retention.ms", SET, "1"), ("retention.ms", DELETE, None)], ErrorCode.invalid_request),
        ([("retention.ms", 7, "1")], ErrorCode.invalid_request),
        ([("retention.ms", SET, None)], ErrorCode.invalid_request),
        ([("no.such", DELETE, None)], ErrorCode.invalid_config),
        ([("retention.ms", APPEND, "1")], ErrorCode.invalid_config),
    ],
)
def test_operations_refused(operations: list[tuple[str, int, str | None]], code: int) -> None:
    with pytest.raises(BrokerError) as caught:
        apply_operations({}, DEFAULTS, operations)
    assert caught.value.code == code


@given(
    st.lists(st.sampled_from(["delete", "compact"]), max_size=4),
    st.lists(st.sampled_from(["delete", "compact"]), min_size=1, max_size=3),
)
def test_append_then_subtract_leaves_no_item(start: list[str], items: list[str]) -> None:
    current = {"cleanup.policy": ",".join(start)} if start else {}
    appended = apply_operations(current, DEFAULTS, [("cleanup.policy", APPEND, ",".join(items))])
    listed = split_list(appended["cleanup.policy"])
    assert len(listed) == len(set(listed))
    assert set(items) <= set(listed)
    removed = apply_operations(appended, DEFAULTS, [("cleanup.policy", SUBTRACT, ",".join(items))])
    assert not set(items) & set(split_list(removed["cleanup.policy"]))


@pytest.mark.parametrize(
    ("policy", "deletes"),
    [(None, True), ("delete", True), ("compact,delete", True), ("compact", False), ("", False)],
)
def test_retention_applies_only_with_the_delete_policy(policy: str | None, deletes: bool) -> None:
    """Kafka removes old segments by retention.ms / retention.bytes only under the delete
    policy; a compact (or empty-policy) topic keeps them."""
    overrides = {"retention.ms": "1000", "retention.bytes": "10"}
    if policy is not None:
        overrides["cleanup.policy"] = policy
    config = log_config_for(overrides, topic_default_values(BrokerSettings()))
    assert config.cleanup_delete is deletes  # PartitionLog.apply_retention acts only if set
    assert (config.retention_ms, config.retention_bytes) == (1000, 10)


def test_dynamic_broker_defaults_reach_topics_with_kafkas_synonyms() -> None:
    settings = BrokerSettings(message_max_bytes=2000)
    dynamic = DynamicBrokerConfigs(
        cluster={"log.retention.ms": "5000", "message.max.bytes": "3000"},
        node={"log.retention.ms": "7000"},
    )
    topic = {c.name: c for c in describe_topic_configs({}, settings, dynamic)}
    assert (topic["retention.ms"].value, topic["retention.ms"].source) == ("7000", 2)
    assert topic["retention.ms"].synonyms == (
        ("log.retention.ms", "7000", 2),
        ("log.retention.ms", "5000", 3),
        ("log.retention.hours", "168", SOURCE_DEFAULT),
    )
    assert topic["max.message.bytes"].synonyms == (
        ("message.max.bytes", "3000", 3),
        ("message.max.bytes", "2000", SOURCE_STATIC_BROKER),
        ("message.max.bytes", "1048588", SOURCE_DEFAULT),
    )
    config = log_config_for({}, topic_default_values(settings, dynamic))
    assert (config.retention_ms, config.max_message_bytes) == (7000, 3000)
    broker = {c.name: c for c in describe_broker_configs(settings, 1, dynamic)}
    assert broker["log.retention.ms"].value == "7000"
    assert not broker["log.retention.ms"].read_only
    assert broker["log.retention.hours"].read_only
    # without dynamic values Kafka's null default shows, and the hours are left out
    plain = {c.name: c for c in describe_broker_configs(settings, 1)}
    assert (plain["log.retention.ms"].value, plain["log.retention.ms"].synonyms) == (None, ())
