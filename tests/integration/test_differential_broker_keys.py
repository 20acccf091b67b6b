"""Kafka's dynamic broker keys that kafkito stores without acting on them, compared with Kafka.

librdkafka's test 0081 sets `sasl.kerberos.min.time.before.relogin` on the broker through
AlterConfigs and IncrementalAlterConfigs and expects success, as Kafka answers. kafkito now
takes Kafka's dynamic keys it has no mechanism for (broker_keys_kafka.py): a type check with
Kafka's message, the scopes Kafka allows (some only per node, keystores only per listener), its
static keys refused as static; once set, DescribeConfigs shows value, source and synonyms as
Kafka does. What differs on purpose (docs/broker.md): such a key is listed only while set.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from differential_admin import (
    BROKER,
    DELETE,
    REFERENCE_NODE_ID,
    SET,
    Target,
    code_name,
    describe_configs,
    restore_broker_configs,
    same,
    wait_for,
)

from kafkito import Broker
from kafkito.testing.apache_kafka import ApacheKafka

KERBEROS = "sasl.kerberos.min.time.before.relogin"
FACTOR = "sasl.kerberos.ticket.renew.window.factor"
VERIFY = "transaction.partition.verification.enable"
THREADS = "log.cleaner.threads"


@pytest.fixture
def kafkito(tmp_path: Path) -> Iterator[Target]:
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=str(tmp_path / "data")) as bootstrap:
        yield Target("kafkito", bootstrap)


@pytest.fixture
def kafka(kafka_reference: ApacheKafka) -> Target:
    return Target("kafka", kafka_reference.bootstrap)


def _alter(target: Target, scope: str, key: str, value: str | None, validate_only: bool) -> Any:
    answer = target.request(
        44,
        1,
        {
            "resources": [
                {
                    "resource_type": BROKER,
                    "resource_name": scope,
                    "configs": [
                        {"name": key, "config_operation": SET if value else DELETE, "value": value}
                    ],
                }
            ],
            "validate_only": validate_only,
        },
    )
    result = answer.responses[0]
    return code_name(result.error_code), result.error_message


PROBES = [
    (KERBEROS, "58000"),
    (KERBEROS, "abc"),
    (KERBEROS, "-1"),
    (FACTOR, "0.5"),
    (FACTOR, "x"),
    ("sasl.kerberos.service.name", "kafka"),
    (VERIFY, "false"),
    (VERIFY, "maybe"),
    ("producer.id.expiration.ms", "x"),
    ("ssl.cipher.suites", "A,B"),
    ("ssl.keystore.password", "x"),  # only with a listener prefix
    ("ssl.truststore.location", "/x"),
    ("remote.fetch.max.wait.ms", "100"),
    ("broker.id", "3"),  # static in Kafka
    ("num.partitions", "3"),
    ("log.dirs", "/x"),
    ("auto.create.topics.enable", "false"),
]


def test_kafkas_dynamic_broker_keys_accepted_refused_and_described_as_kafka(
    kafkito: Target, kafka: Target
) -> None:
    def scenario(target: Target) -> Any:
        seen: dict[str, Any] = {}
        seen["validate"] = [
            (key, value, scope, _alter(target, scope, key, value, True))
            for key, value in PROBES
            for scope in (target.node, "")
        ]
        with restore_broker_configs(target, [KERBEROS, VERIFY]):
            seen["set"] = [
                _alter(target, target.node, KERBEROS, "58000", False),
                _alter(target, "", VERIFY, "false", False),
            ]

            def shown() -> Any:
                _, node = describe_configs(target, BROKER, target.node, [KERBEROS, VERIFY])
                ok = node.get(KERBEROS, {}).get("value") == "58000"
                return node if ok and node.get(VERIFY, {}).get("value") == "false" else None

            node = wait_for(shown, f"{target.name}: the stored keys described")
            for entry in node.values():
                entry.pop("documented", None)
            seen["described"] = node
        return seen

    same(scenario, kafkito, kafka)


def test_librdkafka_sets_a_kerberos_key_on_both(kafkito: Target, kafka: Target) -> None:
    """What 0081's AlterConfigs and IncrementalAlterConfigs do, through confluent-kafka."""

    def scenario(target: Target) -> Any:
        admin = AdminClient({"bootstrap.servers": target.bootstrap})
        resource = ConfigResource(ResourceType.BROKER, target.node)
        seen = []
        with restore_broker_configs(target, [KERBEROS]):
            incremental = ConfigResource(
                ResourceType.BROKER,
                target.node,
                incremental_configs=[
                    ConfigEntry(KERBEROS, "58000", incremental_operation=AlterConfigOpType.SET)
                ],
            )
            for future in admin.incremental_alter_configs([incremental]).values():
                seen.append(("incremental", future.result(timeout=20) is None))
            resource.set_config(KERBEROS, "59000")
            for future in admin.alter_configs([resource], validate_only=True).values():
                seen.append(("alter", future.result(timeout=20) is None))
        return seen

    assert same(scenario, kafkito, kafka) == [("incremental", True), ("alter", True)]


def test_a_stored_key_is_listed_only_while_set(kafkito: Target) -> None:
    """The intended difference: Kafka lists every key; kafkito its own, plus these once set."""
    _, before = describe_configs(kafkito, BROKER, kafkito.node, [KERBEROS])
    assert _alter(kafkito, kafkito.node, KERBEROS, "58000", False) == ("NONE", None)
    _, during = describe_configs(kafkito, BROKER, kafkito.node, [KERBEROS])
    assert _alter(kafkito, kafkito.node, KERBEROS, None, False) == ("NONE", None)
    _, after = describe_configs(kafkito, BROKER, kafkito.node, [KERBEROS])
    assert before == after == {}
    assert during[KERBEROS]["synonyms"] == [(KERBEROS, "58000", 2), (KERBEROS, "60000", 5)]
