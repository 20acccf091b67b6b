"""KIP-848 group configs (the GROUP config resource, type 32), compared with Apache Kafka 4.1.

DescribeConfigs, IncrementalAlterConfigs and AlterConfigs on a group: the keys listed, their
values, sources, synonyms and types, what a change does, and the errors (with Kafka's messages)
for bad values, unknown keys and the default group "". Then what the KIP-848 coordinator does
with them: the heartbeat interval a ConsumerGroupHeartbeat is told (both brokers), and a
group's own session timeout expiring a member (kafkito, with a lowered broker minimum so that
the test takes seconds: Kafka's minimum is 45 s). Last, the configs survive a restart, and two
concurrent IncrementalAlterConfigs of one topic both take effect (they read the configs under
the admin lock).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from differential_admin import (
    DELETE,
    REFERENCE_NODE_ID,
    SET,
    TOPIC,
    Target,
    code_name,
    create_topics,
    describe_configs,
    same,
    unique,
    wait_for,
)

from kafkito import Broker
from kafkito.testing.apache_kafka import ApacheKafka
from kafkito.testing.wire import WireClient

GROUP = 32
APPEND = 2
SESSION, HEARTBEAT = "consumer.session.timeout.ms", "consumer.heartbeat.interval.ms"


@pytest.fixture
def kafkito(tmp_path: Path) -> Iterator[Target]:
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=str(tmp_path / "data")) as bootstrap:
        yield Target("kafkito", bootstrap)


@pytest.fixture
def kafka(kafka_reference: ApacheKafka) -> Target:
    return Target("kafka", kafka_reference.bootstrap)


def _alter(
    target: Target, name: str, ops: list[tuple[str, int, str | None]], validate_only: bool
) -> tuple[str, str | None]:
    answer = target.request(
        44,
        1,
        {
            "resources": [
                {
                    "resource_type": GROUP,
                    "resource_name": name,
                    "configs": [{"name": n, "config_operation": o, "value": v} for n, o, v in ops],
                }
            ],
            "validate_only": validate_only,
        },
    )
    result = answer.responses[0]
    return code_name(result.error_code), result.error_message


def _replace(target: Target, name: str, configs: dict[str, str]) -> str:
    answer = target.request(
        33,
        2,
        {
            "resources": [
                {
                    "resource_type": GROUP,
                    "resource_name": name,
                    "configs": [{"name": n, "value": v} for n, v in configs.items()],
                }
            ],
            "validate_only": False,
        },
    )
    return code_name(answer.responses[0].error_code)


def _values(target: Target, group: str) -> dict[str, tuple[str | None, int]]:
    _, configs = describe_configs(target, GROUP, group, synonyms=False, documentation=False)
    return {n: (c["value"], c["source"]) for n, c in configs.items()}


def _settled(target: Target, group: str, expected: dict[str, tuple[str | None, int]]) -> Any:
    """Kafka applies a config change a moment after answering: wait until it shows."""

    def shown() -> bool:
        values = _values(target, group)
        return all(values.get(k) == v for k, v in expected.items())

    wait_for(shown, f"{target.name}: {expected} on group {group}")


BAD_VALUES = [
    (SESSION, "1000"),  # below group.consumer.min.session.timeout.ms (45 s)
    (SESSION, "70000"),  # above the max (60 s)
    (SESSION, "abc"),
    (SESSION, ""),
    (SESSION, "50000.0"),
    (SESSION, "2147483648"),
    (HEARTBEAT, "999"),
    (HEARTBEAT, "50000"),
    ("share.session.timeout.ms", "44999"),
    ("share.record.lock.duration.ms", "60001"),
    ("share.auto.offset.reset", "none"),
    ("share.isolation.level", "READ_COMMITTED"),
    ("streams.num.standby.replicas", "-1"),
    ("streams.num.standby.replicas", "3"),
    ("no.such.group.config", "1"),
]
GOOD_VALUES = [
    (SESSION, " 50000"),
    (SESSION, "60000"),
    (HEARTBEAT, "15000"),
    ("share.auto.offset.reset", "by_duration:PT1H"),
    ("share.auto.offset.reset", "earliest"),
    ("share.isolation.level", "read_committed"),
    ("share.record.lock.duration.ms", "15000"),
    ("streams.num.standby.replicas", "2"),
]


def test_group_configs_listed_changed_and_refused_as_kafka(kafkito: Target, kafka: Target) -> None:
    group = unique("gcfg")

    def scenario(target: Target) -> Any:
        seen: dict[str, Any] = {}
        seen["fresh"] = describe_configs(target, GROUP, group)
        seen["fresh_v1"] = describe_configs(target, GROUP, group, [SESSION], version=1)
        seen["default_resource"] = describe_configs(target, GROUP, "")[0]
        # validation: codes and Kafka's messages, each value alone, nothing changes
        seen["bad"] = [_alter(target, group, [(k, SET, v)], True) for k, v in BAD_VALUES]
        seen["good"] = [_alter(target, group, [(k, SET, v)], True)[0] for k, v in GOOD_VALUES]
        seen["append"] = _alter(target, group, [(SESSION, APPEND, "50000")], True)
        seen["null"] = _alter(target, group, [(SESSION, SET, None)], True)[0]
        seen["twice"] = _alter(target, group, [(SESSION, SET, "50000")] * 2, True)[0]
        seen["default_alter"] = _alter(target, "", [(SESSION, SET, "50000")], True)
        seen["after_validate_only"] = _values(target, group)
        # a change, then its effect on DescribeConfigs (source GROUP_CONFIG, itself as synonym)
        ops = [(SESSION, SET, "50000"), (HEARTBEAT, SET, "6000")]
        seen["set"] = _alter(target, group, ops, False)
        _settled(target, group, {SESSION: ("50000", 8), HEARTBEAT: ("6000", 8)})
        seen["after_set"] = describe_configs(target, GROUP, group, [SESSION, HEARTBEAT, "nope"])
        seen["delete"] = _alter(target, group, [(SESSION, DELETE, None)], False)
        _settled(target, group, {SESSION: ("45000", 5)})
        seen["after_delete"] = _values(target, group)
        # AlterConfigs replaces the whole set: the heartbeat is back to the broker's
        seen["replace"] = _replace(target, group, {SESSION: "55000"})
        _settled(target, group, {SESSION: ("55000", 8), HEARTBEAT: ("5000", 5)})
        seen["after_replace"] = _values(target, group)
        seen["replace_bad"] = _replace(target, group, {"bogus": "1"})
        _alter(target, group, [(SESSION, DELETE, None)], False)
        return seen

    same(scenario, kafkito, kafka)


def _heartbeat(client: WireClient, group: str, member_id: str, epoch: int) -> Any:
    return client.request(
        68,
        0,
        {
            "group_id": group,
            "member_id": member_id,
            "member_epoch": epoch,
            "instance_id": None,
            "rack_id": None,
            "rebalance_timeout": 30_000,
            "subscribed_topic_names": [] if epoch == 0 else None,
            "server_assignor": None,
            "topic_partitions": [] if epoch == 0 else None,
        },
    )


def _ms(interval: Any) -> int:
    """kio decodes a duration field as a timedelta."""
    return round(interval.total_seconds() * 1000)


def test_the_heartbeat_interval_of_a_group_reaches_its_members(
    kafkito: Target, kafka: Target
) -> None:
    configured, plain = unique("ghb"), unique("ghb-plain")

    def scenario(target: Target) -> Any:
        assert _alter(target, configured, [(HEARTBEAT, SET, "7000")], False)[0] == "NONE"
        _settled(target, configured, {HEARTBEAT: ("7000", 8)})
        seen = {}
        with target.wire() as client:
            for group in (configured, plain):

                def joined(group: str = group) -> Any:
                    # FindCoordinator first: Kafka creates __consumer_offsets on the first one
                    client.request(10, 4, {"key_type": 0, "coordinator_keys": [group]})
                    answer = _heartbeat(client, group, "", 0)
                    # Kafka's coordinator may still be loading right after start
                    return answer if answer.error_code == 0 else None

                answer = wait_for(joined, f"{target.name}: a member joins {group}")
                seen[group] = (code_name(answer.error_code), _ms(answer.heartbeat_interval))
                left = _heartbeat(client, group, answer.member_id, -1)
                assert left.error_code == 0, left
        return seen

    seen = same(scenario, kafkito, kafka)
    assert seen == {configured: ("NONE", 7000), plain: ("NONE", 5000)}


def test_a_groups_session_timeout_expires_its_members(tmp_path: Path) -> None:
    """kafkito only: Kafka's minimum consumer session is 45 s; here the broker's minimum is
    lowered so that a group with a 2 s session (and one without, at the broker's 45 s) shows
    the config is what the coordinator uses."""
    extra = {
        "group.consumer.min.session.timeout.ms": 1000,
        "group.consumer.min.heartbeat.interval.ms": 500,
    }
    with Broker(port=0, data_dir=str(tmp_path / "data"), extra=extra) as bootstrap:
        target = Target("kafkito", bootstrap)
        short, default = f"short-{uuid.uuid4().hex[:6]}", f"long-{uuid.uuid4().hex[:6]}"
        assert (
            _alter(target, short, [(SESSION, SET, "2000"), (HEARTBEAT, SET, "500")], False)[0]
            == "NONE"
        )
        assert _alter(target, short, [(SESSION, SET, "999")], True)[0] == "INVALID_CONFIG"
        with target.wire() as client:
            first = _heartbeat(client, short, "", 0)
            other = _heartbeat(client, default, "", 0)
            assert _ms(first.heartbeat_interval) == 500
            assert (first.error_code, other.error_code) == (0, 0)
            time.sleep(3)
            gone = _heartbeat(client, short, first.member_id, first.member_epoch)
            kept = _heartbeat(client, default, other.member_id, other.member_epoch)
        assert code_name(gone.error_code) == "UNKNOWN_MEMBER_ID"  # expired after 2 s
        assert code_name(kept.error_code) == "NONE"


def test_group_configs_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with Broker(port=0, data_dir=data) as bootstrap:
        target = Target("kafkito", bootstrap)
        assert _alter(target, "kept", [(SESSION, SET, "50000")], False)[0] == "NONE"
        assert _alter(target, "gone", [(SESSION, SET, "50000")], False)[0] == "NONE"
        assert _alter(target, "gone", [(SESSION, DELETE, None)], False)[0] == "NONE"
    with Broker(port=0, data_dir=data) as bootstrap:
        target = Target("kafkito", bootstrap)
        assert _values(target, "kept")[SESSION] == ("50000", 8)
        assert _values(target, "gone")[SESSION] == ("45000", 5)


def test_concurrent_incremental_alters_of_one_topic_both_take_effect(tmp_path: Path) -> None:
    """Each alter reads the topic's configs, applies its operation and writes the result: two
    at once must not both read the old set (the later write would drop the earlier change)."""
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        target = Target("kafkito", bootstrap)
        topic = f"conc-{uuid.uuid4().hex[:6]}"
        assert create_topics(target, [{"name": topic, "partitions": 1}]).topics[0].error_code == 0
        keys = ["retention.ms", "segment.ms", "max.message.bytes", "flush.ms"]
        for round_ in range(10):
            value = str(100_000 + round_)
            barrier = threading.Barrier(len(keys))
            codes: list[str] = []

            def alter(
                key: str,
                value: str = value,
                barrier: threading.Barrier = barrier,
                codes: list[str] = codes,
            ) -> None:
                with target.wire() as client:
                    barrier.wait()
                    answer = client.request(
                        44,
                        1,
                        {
                            "resources": [
                                {
                                    "resource_type": TOPIC,
                                    "resource_name": topic,
                                    "configs": [
                                        {"name": key, "config_operation": SET, "value": value}
                                    ],
                                }
                            ],
                            "validate_only": False,
                        },
                    )
                    codes.append(code_name(answer.responses[0].error_code))

            threads = [threading.Thread(target=alter, args=(k,)) for k in keys]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert codes == ["NONE"] * len(keys)
            _, configs = describe_configs(target, TOPIC, topic, keys, documentation=False)
            assert {k: configs[k]["value"] for k in keys} == dict.fromkeys(keys, value), round_
