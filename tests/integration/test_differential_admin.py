"""The admin APIs and configs, kafkito against Apache Kafka (differential_admin.py says how).

Each test is a scenario run on both brokers through the raw wire client, confluent-kafka's
AdminClient, aiokafka's AIOKafkaAdminClient or kafka-python's KafkaAdminClient; the two
observations must be equal. The intended differences (docs/broker.md, "Differences from Apache
Kafka") are asserted as differences, so that each stays a decision and not an accident.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.admin.config_resource import ConfigResource as AioConfigResource
from aiokafka.admin.config_resource import ConfigResourceType as AioConfigResourceType
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
)
from differential_admin import (
    APPEND,
    BROKER,
    DELETE,
    ELR_DEFAULT,
    REFERENCE_NODE_ID,
    SET,
    SUBTRACT,
    TOPIC,
    Target,
    align_config,
    alter,
    applied,
    cluster_defaults,
    code_name,
    create_topics,
    describe_configs,
    diff,
    incremental_alter,
    normalise,
    observe,
    one_connection,
    restore_broker_configs,
    same,
    unique,
    wait_for,
)
from kafka.admin import ConfigResource as KpConfigResource
from kafka.admin import ConfigResourceType as KpConfigResourceType
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KpNewTopic

from kafkito import Broker
from kafkito.broker.configs import BROKER_TO_TOPIC, TOPIC_CONFIGS, ConfigKey
from kafkito.testing.apache_kafka import ApacheKafka

TIMEOUT_S = 20


def _cluster_id(bootstrap: str) -> str:
    probe = Target("probe", bootstrap)
    answer = probe.request(
        3,
        12,
        {
            "topics": [],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    return str(answer.cluster_id)


@pytest.fixture
def kafkito(tmp_path: Path) -> Iterator[Target]:
    """A fresh kafkito broker with the reference's node id."""
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=str(tmp_path / "data")) as bootstrap:
        yield Target("kafkito", bootstrap, _cluster_id(bootstrap))


@pytest.fixture
def kafka(kafka_reference: ApacheKafka) -> Target:
    return Target("kafka", kafka_reference.bootstrap, _cluster_id(kafka_reference.bootstrap))


def _topic_answers(target: Target, answer: Any) -> dict[str, Any]:
    def config(c: Any) -> tuple[Any, ...]:
        value, source, _ = align_config(target, c.name, c.value, int(c.config_source), [])
        return (value, source, c.read_only, c.is_sensitive)

    return {
        t.name: {
            "error": code_name(t.error_code),
            "partitions": t.num_partitions,
            "rf": t.replication_factor,
            "has_id": t.topic_id != uuid.UUID(int=0),
            "configs": {c.name: config(c) for c in t.configs},
        }
        for t in answer.topics
    }


ADMIN_APIS = {19: "CreateTopics", 20: "DeleteTopics", 21: "DeleteRecords", 32: "DescribeConfigs"}
ADMIN_APIS |= {33: "AlterConfigs", 37: "CreatePartitions", 44: "IncrementalAlterConfigs"}
ADMIN_APIS |= {60: "DescribeCluster", 16: "ListGroups", 42: "DeleteGroups"}


def test_admin_api_versions_match(kafkito: Target, kafka: Target) -> None:
    """Every version Kafka 4.1 serves for an admin API, kafkito serves too (and no other)."""

    def scenario(target: Target) -> Any:
        answer = target.request(
            18, 3, {"client_software_name": "t", "client_software_version": "1"}
        )
        return {
            ADMIN_APIS[int(k.api_key)]: (int(k.min_version), int(k.max_version))
            for k in answer.api_keys
            if int(k.api_key) in ADMIN_APIS
        }

    same(scenario, kafkito, kafka)


def test_admin_requests_at_every_version(kafkito: Target, kafka: Target) -> None:
    base = unique("ver")

    def scenario(target: Target) -> Any:
        observed: dict[str, Any] = {}
        for v in range(2, 8):
            answer = create_topics(
                target,
                [
                    {"name": f"{base}-{v}", "partitions": 2, "rf": 1},
                    {"name": f"{base}-{v}-bad", "partitions": 1, "rf": 1, "configs": {"x.y": "1"}},
                ],
                version=v,
            )
            observed[f"CreateTopics v{v}"] = [
                (t.name, code_name(t.error_code), getattr(t, "num_partitions", None))
                for t in answer.topics
            ]
        for v in range(0, 4):
            answer = target.request(
                37,
                v,
                {
                    "topics": [{"name": f"{base}-{v + 2}", "count": 3, "assignments": None}],
                    "timeout": 15000,
                    "validate_only": False,
                },
            )
            observed[f"CreatePartitions v{v}"] = [
                (r.name, code_name(r.error_code)) for r in answer.results
            ]
        for v in range(0, 3):
            answer = target.request(
                33,
                v,
                {
                    "resources": [
                        {
                            "resource_type": TOPIC,
                            "resource_name": f"{base}-2",
                            "configs": [{"name": "retention.ms", "value": str(1000 + v)}],
                        }
                    ],
                    "validate_only": False,
                },
            )
            observed[f"AlterConfigs v{v}"] = [code_name(r.error_code) for r in answer.responses]
        for v in range(0, 2):
            observed[f"IncrementalAlterConfigs v{v}"] = incremental_alter(
                target, TOPIC, f"{base}-3", [("segment.ms", SET, str(60000 + v))], version=v
            )
        for v in range(0, 3):
            answer = target.request(
                21,
                v,
                {
                    "topics": [
                        {"name": f"{base}-4", "partitions": [{"partition_index": 0, "offset": 0}]}
                    ],
                    "timeout": 15000,
                },
            )
            p = answer.topics[0].partitions[0]
            observed[f"DeleteRecords v{v}"] = (code_name(p.error_code), p.low_watermark)
        for v in range(1, 7):
            name = f"{base}-{v + 1}"
            body: dict[str, Any] = (
                {"topics": [{"name": name, "topic_id": None}], "timeout": 15000}
                if v >= 6
                else {"topic_names": [name], "timeout": 15000}
            )
            answer = target.request(20, v, body)
            observed[f"DeleteTopics v{v}"] = [
                (r.name, code_name(r.error_code)) for r in answer.responses
            ]
        return observed

    same(scenario, kafkito, kafka)


# -- CreateTopics ----------------------------------------------------------------------------


def test_create_topics_every_case_on_the_wire(kafkito: Target, kafka: Target) -> None:
    base = unique("ct")

    def scenario(target: Target) -> Any:
        good = {"name": f"{base}-defaults"}  # partitions -1, replication factor -1
        cases = [
            good,
            {
                "name": f"{base}-configs",
                "partitions": 2,
                "rf": 1,
                "configs": {"retention.ms": "5000", "cleanup.policy": "compact,delete"},
            },
            {"name": "."},
            {"name": ".."},
            {"name": "x" * 250},
            {"name": "x" * 249},
            {"name": f"{base} space"},
            {"name": f"{base}/slash"},
            {"name": f"{base}-é"},
            {"name": f"{base}-rf3", "rf": 3},
            {"name": f"{base}-rf0", "rf": 0},
            {"name": f"{base}-p0", "partitions": 0},
            {"name": f"{base}-pminus3", "partitions": -3},
            {"name": f"{base}-badvalue", "configs": {"retention.ms": "soon"}},
            {"name": f"{base}-badrange", "configs": {"min.cleanable.dirty.ratio": "1.5"}},
            {"name": f"{base}-badchoice", "configs": {"cleanup.policy": "shred"}},
            {"name": f"{base}-unknown", "configs": {"no.such.config": "1"}},
            {"name": f"{base}-brokerkey", "configs": {"log.retention.ms": "1"}},
            {"name": f"{base}-remote", "configs": {"remote.storage.enable": "true"}},
        ]
        first = _topic_answers(target, create_topics(target, cases, validate_only=True))
        created = _topic_answers(target, create_topics(target, cases))
        again = _topic_answers(target, create_topics(target, [good]))
        # the 249-character name was created for real: delete it, the session is shared
        target.request(20, 6, {"topics": [{"name": "x" * 249, "topic_id": None}], "timeout": 15000})
        return {"validate_only": first, "created": created, "again": again}

    same(scenario, kafkito, kafka)


def test_create_topics_through_the_clients(kafkito: Target, kafka: Target) -> None:
    base = unique("ctc")

    def scenario(target: Target) -> Any:
        observed: dict[str, Any] = {}
        ck = AdminClient({"bootstrap.servers": target.bootstrap})
        futures = ck.create_topics(
            [
                NewTopic(f"{base}-ck", 3),
                NewTopic(f"{base}-ck-rf", 1, replication_factor=2),
                NewTopic(f"{base}-ck-cfg", 1, config={"retention.ms": "nope"}),
            ],
            request_timeout=TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result(TIMEOUT_S)
                observed[name] = "ok"
            except KafkaException as exc:
                observed[name] = exc.args[0].name()
        validate = ck.create_topics([NewTopic(f"{base}-ck-v", 1)], validate_only=True)
        validate[f"{base}-ck-v"].result(TIMEOUT_S)
        observed["ck listed after validate_only"] = (
            f"{base}-ck-v" in ck.list_topics(timeout=TIMEOUT_S).topics
        )

        kp = KafkaAdminClient(bootstrap_servers=target.bootstrap, request_timeout_ms=20000)
        try:
            response = kp.create_topics(
                [KpNewTopic(f"{base}-kp", 2, 1), KpNewTopic(f"{base}-ck", 1, 1)],
                raise_errors=False,
            )
            observed["kp"] = sorted(
                (t["name"], t["error_code"], t["num_partitions"]) for t in response["topics"]
            )
        finally:
            kp.close()

        async def aio() -> Any:
            client = AIOKafkaAdminClient(bootstrap_servers=target.bootstrap)
            await client.start()
            try:
                response = await client.create_topics(
                    [AioNewTopic(f"{base}-aio", 1, 1), AioNewTopic(f"{base}-kp", 1, 1)]
                )
                return sorted((t[0], t[1]) for t in response.topic_errors)
            finally:
                await client.close()

        observed["aio"] = asyncio.run(aio())
        return observed

    same(scenario, kafkito, kafka)


# -- DeleteTopics and CreatePartitions -----------------------------------------------------------


def test_delete_topics_by_name_and_by_id(kafkito: Target, kafka: Target) -> None:
    base = unique("dt")

    def scenario(target: Target) -> Any:
        created = create_topics(target, [{"name": f"{base}-a"}, {"name": f"{base}-b"}])
        ids = {t.name: t.topic_id for t in created.topics}
        answer = target.request(
            20,
            6,
            {
                "topics": [
                    {"name": f"{base}-a", "topic_id": None},
                    {"name": f"{base}-missing", "topic_id": None},
                    {"name": None, "topic_id": ids[f"{base}-b"]},
                    {"name": None, "topic_id": uuid.uuid4()},
                ],
                "timeout": 15000,
            },
        )
        old = target.request(20, 5, {"topic_names": [f"{base}-missing"], "timeout": 15000})
        return {
            "v6": sorted(
                (
                    str(r.name),
                    r.topic_id == ids.get(str(r.name)) or r.topic_id == ids[f"{base}-b"],
                    code_name(r.error_code),
                )
                for r in answer.responses
            ),
            "v5": [(r.name, code_name(r.error_code)) for r in old.responses],
        }

    same(scenario, kafkito, kafka)


def test_create_partitions_grow_shrink_same_unknown_validate_only(
    kafkito: Target, kafka: Target
) -> None:
    base = unique("cp")

    def scenario(target: Target) -> Any:
        create_topics(target, [{"name": f"{base}-t", "partitions": 2}])

        def grow(count: int, validate_only: bool = False, name: str = f"{base}-t") -> str:
            answer = target.request(
                37,
                3,
                {
                    "topics": [{"name": name, "count": count, "assignments": None}],
                    "timeout": 15000,
                    "validate_only": validate_only,
                },
            )
            return code_name(answer.results[0].error_code)

        def count() -> int:
            answer = target.request(
                3,
                12,
                {
                    "topics": [{"name": f"{base}-t", "topic_id": None}],
                    "allow_auto_topic_creation": False,
                    "include_topic_authorized_operations": False,
                },
            )
            return len(answer.topics[0].partitions)

        wait_for(lambda: count() == 2, "the new topic in metadata")  # Kafka applies it later
        steps = [
            ("validate 4", grow(4, validate_only=True), count()),
            ("grow 4", grow(4), wait_for(lambda: count() == 4 and 4, "4 partitions")),
            ("same 4", grow(4), count()),
            ("shrink 1", grow(1), count()),
            ("unknown", grow(3, name=f"{base}-missing"), count()),
        ]
        return steps

    same(scenario, kafkito, kafka)

    async def aio(target: Target) -> Any:
        client = AIOKafkaAdminClient(bootstrap_servers=target.bootstrap)
        await client.start()
        try:
            await client.create_topics([AioNewTopic(f"{base}-aio", 1, 1)])
            response = await client.create_partitions({f"{base}-aio": NewPartitions(3)})
            grown = sorted((r[0], r[1]) for r in response.topic_errors)
            try:
                await client.create_partitions({f"{base}-gone": NewPartitions(2)})
                unknown = "ok"
            except Exception as exc:  # aiokafka raises the error of the topic
                unknown = type(exc).__name__
            return grown, unknown
        finally:
            await client.close()

    same(lambda t: asyncio.run(aio(t)), kafkito, kafka)


# -- DescribeConfigs ----------------------------------------------------------------------------


def test_describe_topic_configs_every_key_at_every_version(kafkito: Target, kafka: Target) -> None:
    name = unique("dc")
    overrides = {"retention.ms": "5000", "cleanup.policy": "compact", "max.message.bytes": "2000"}

    def scenario(target: Target) -> Any:
        created = _topic_answers(
            target, create_topics(target, [{"name": name, "partitions": 1, "configs": overrides}])
        )
        described = {
            f"v{v} synonyms={s} docs={d}": describe_configs(
                target, TOPIC, name, synonyms=s, documentation=d, version=v
            )
            for v, s, d in [(1, False, False), (2, True, False), (3, True, True), (4, False, True)]
        }
        some = describe_configs(target, TOPIC, name, ["segment.ms", "no.such"])
        missing = describe_configs(target, TOPIC, unique("missing"))
        invalid = describe_configs(target, TOPIC, "bad name!")
        return {
            "created": created,
            **described,
            "some": some,
            "missing": missing,
            "invalid": invalid,
        }

    same(scenario, kafkito, kafka)


def test_describe_configs_through_the_clients(kafkito: Target, kafka: Target) -> None:
    name = unique("dcc")

    def scenario(target: Target) -> Any:
        create_topics(target, [{"name": name, "configs": {"segment.ms": "60000"}}])
        ck = AdminClient({"bootstrap.servers": target.bootstrap})
        resource = ConfigResource("topic", name)
        entries = ck.describe_configs([resource])[resource].result(TIMEOUT_S)
        ck_view = {}
        for n, e in entries.items():
            value, source, _ = align_config(target, n, e.value, e.source, [])
            ck_view[n] = (value, source, e.is_read_only, e.is_sensitive, source == 5)
        kp = KafkaAdminClient(bootstrap_servers=target.bootstrap, request_timeout_ms=20000)
        try:
            kp_view = kp.describe_configs(
                [KpConfigResource(KpConfigResourceType.TOPIC, name)], include_synonyms=True
            )
        finally:
            kp.close()
        return {"ck": ck_view, "kp": kp_view}

    same(scenario, kafkito, kafka)


def test_describe_broker_configs_names_and_flags(kafkito: Target, kafka: Target) -> None:
    """Kafka lists ~316 broker keys; kafkito lists the ones that mean something on one kafkito
    node (docs/broker.md says why). Every kafkito key but its own kafkito.* ones must be one of
    Kafka's, with Kafka's type and sensitivity; the dynamic ones with Kafka's exact answer."""
    _, ours = describe_configs(kafkito, BROKER, kafkito.node)
    _, theirs = describe_configs(kafka, BROKER, kafka.node)
    extra = {n for n in set(ours) - set(theirs) if not n.startswith("kafkito.")}
    assert not extra, f"kafkito lists broker keys Kafka does not know: {sorted(extra)}"
    common = set(ours) & set(theirs)
    assert {n: (ours[n]["type"], ours[n]["sensitive"]) for n in common} == {
        n: (theirs[n]["type"], theirs[n]["sensitive"]) for n in common
    }
    dynamic_here = {n for n, e in ours.items() if not e["read_only"]}
    dynamic_there = {n for n in common if not theirs[n]["read_only"]}
    # Kafka's listeners, max.connections, max.connections.per.ip etc. are dynamic there and
    # fixed at start here (docs/broker.md); every other dynamic key agrees
    assert dynamic_here <= dynamic_there
    assert dynamic_there - dynamic_here == {"listeners", "max.connections"}
    for n in sorted(dynamic_here - {ELR_DEFAULT}):
        assert normalise(ours[n], kafkito) == normalise(theirs[n], kafka), n


# -- AlterConfigs and IncrementalAlterConfigs on topics -----------------------------------------


def test_alter_topic_configs_every_operation(kafkito: Target, kafka: Target) -> None:
    name = unique("ac")

    def overrides(target: Target) -> dict[str, Any]:
        _, configs = describe_configs(target, TOPIC, name, synonyms=False, documentation=False)
        return {n: c["value"] for n, c in configs.items() if c["source"] == 1}

    def scenario(target: Target) -> Any:
        barrier, counter = unique("barrier"), [0]
        create_topics(target, [{"name": name}, {"name": barrier}])
        steps: list[Any] = []

        def step(label: str, outcome: str) -> None:
            applied(target, barrier, counter)
            steps.append((label, outcome, overrides(target)))

        step("set", incremental_alter(target, TOPIC, name, [("retention.ms", SET, "1000")]))
        step(
            "append",
            incremental_alter(target, TOPIC, name, [("cleanup.policy", APPEND, "compact")]),
        )
        step(
            "subtract",
            incremental_alter(target, TOPIC, name, [("cleanup.policy", SUBTRACT, "delete")]),
        )
        step(
            "subtract all",
            incremental_alter(target, TOPIC, name, [("cleanup.policy", SUBTRACT, "compact")]),
        )
        step(
            "set empty list", incremental_alter(target, TOPIC, name, [("cleanup.policy", SET, "")])
        )
        step(
            "set bad item",
            incremental_alter(target, TOPIC, name, [("cleanup.policy", SET, "delete,shred")]),
        )
        step("delete", incremental_alter(target, TOPIC, name, [("retention.ms", DELETE, None)]))
        step("delete unset", incremental_alter(target, TOPIC, name, [("segment.ms", DELETE, None)]))
        step(
            "append non-list",
            incremental_alter(target, TOPIC, name, [("retention.ms", APPEND, "5")]),
        )
        step("bad value", incremental_alter(target, TOPIC, name, [("retention.ms", SET, "x")]))
        step(
            "below minimum", incremental_alter(target, TOPIC, name, [("segment.bytes", SET, "10")])
        )
        step("unknown", incremental_alter(target, TOPIC, name, [("no.such", SET, "1")]))
        step("broker key", incremental_alter(target, TOPIC, name, [("log.retention.ms", SET, "1")]))
        step(
            "twice",
            incremental_alter(
                target, TOPIC, name, [("segment.ms", SET, "1"), ("segment.ms", DELETE, None)]
            ),
        )
        step(
            "validate only",
            incremental_alter(
                target, TOPIC, name, [("segment.ms", SET, "99999")], validate_only=True
            ),
        )
        step(
            "unknown topic",
            incremental_alter(target, TOPIC, unique("none"), [("segment.ms", SET, "1")]),
        )
        step("ac null", alter(target, TOPIC, name, {"segment.ms": "70000", "flush.ms": None}))
        step("ac replace", alter(target, TOPIC, name, {"segment.ms": "70000"}))
        step("ac bad", alter(target, TOPIC, name, {"segment.ms": "x"}))
        step("ac unknown", alter(target, TOPIC, name, {"no.such": "1"}))
        step("ac validate", alter(target, TOPIC, name, {"retention.ms": "1"}, validate_only=True))
        step("ac empty", alter(target, TOPIC, name, {}))
        return steps

    same(scenario, kafkito, kafka)


def _probe_values(key: ConfigKey) -> list[str]:
    """Values around a key's bounds and of the wrong kind (validate_only probes)."""
    probes = ["", "x", " 1", "1.5", "-1", "0", "1", "100000", str(2**31), str(2**63)]
    if key.minimum is not None:
        probes += [str(int(key.minimum) - 1), str(int(key.minimum))]
    if key.maximum is not None:
        probes += [str(key.maximum), str(int(key.maximum) + 1)]
    if key.type == "double":
        probes += ["0.5", "1.01", "-0.1"]
    probes += ["true", "TRUE", "yes", *key.choices, "delete,compact", "compact,,delete"]
    probes += ["*", "0:1", "0:1, 1:1", "*,0:1", "0:x", "delete,", ",delete"]
    return sorted(set(probes))


SEGMENT_BYTES_BELOW_KAFKAS_MINIMUM = {"segment.bytes='14'", "segment.bytes='100000'"}
"""Kafka 4 refuses segment.bytes below 1 MiB (KIP-1030); kafkito keeps Kafka 3's minimum of 14
bytes, so that tests can watch segments roll and retention act (docs/broker.md)."""


def test_topic_config_validation_matches(kafkito: Target, kafka: Target) -> None:
    """Every topic key, set (validate_only) to values around its bounds and of the wrong kind:
    the same ones are refused, with the same code (but the documented segment.bytes bound)."""
    name = unique("val")

    def scenario(target: Target) -> dict[str, str]:
        create_topics(target, [{"name": name}])
        with one_connection(target):
            return {  # flat, so that a diff line names the key and the value
                f"{key.name}={value!r}": incremental_alter(
                    target, TOPIC, name, [(key.name, SET, value)], validate_only=True
                )
                for key in TOPIC_CONFIGS.values()
                for value in _probe_values(key)
            }

    theirs, ours = observe(scenario, kafka), observe(scenario, kafkito)
    for probe in SEGMENT_BYTES_BELOW_KAFKAS_MINIMUM:
        assert (theirs.pop(probe), ours.pop(probe)) == ("INVALID_CONFIG", "NONE"), probe
    assert ours == theirs, f"kafkito differs from Apache Kafka:\n{diff(ours, theirs)}"


def test_broker_config_validation_matches(kafkito: Target, kafka: Target) -> None:
    """The same probes on the dynamic broker keys (cluster-wide, validate_only)."""

    def scenario(target: Target) -> dict[str, str]:
        with one_connection(target):
            return {
                f"{broker_key}={value!r}": incremental_alter(
                    target, BROKER, "", [(broker_key, SET, value)], validate_only=True
                )
                for broker_key, key in BROKER_TO_TOPIC.items()
                for value in _probe_values(key)
            }

    theirs, ours = observe(scenario, kafka), observe(scenario, kafkito)
    for probe in SEGMENT_BYTES_BELOW_KAFKAS_MINIMUM:
        probe = "log." + probe
        assert (theirs.pop(probe), ours.pop(probe)) == ("INVALID_REQUEST", "NONE"), probe
    assert ours == theirs, f"kafkito differs from Apache Kafka:\n{diff(ours, theirs)}"


def test_alter_topic_configs_through_the_clients(kafkito: Target, kafka: Target) -> None:
    name = unique("acc")

    def scenario(target: Target) -> Any:
        create_topics(target, [{"name": name}])
        ck = AdminClient({"bootstrap.servers": target.bootstrap})
        observed: dict[str, Any] = {}
        for label, entry in [
            (
                "set",
                ConfigEntry("retention.ms", "4000", incremental_operation=AlterConfigOpType.SET),
            ),
            ("bad", ConfigEntry("retention.ms", "x", incremental_operation=AlterConfigOpType.SET)),
            ("unknown", ConfigEntry("nope", "1", incremental_operation=AlterConfigOpType.SET)),
        ]:
            resource = ConfigResource("topic", name, incremental_configs=[entry])
            (future,) = ck.incremental_alter_configs([resource]).values()
            try:
                future.result(TIMEOUT_S)
                observed[f"ck {label}"] = "ok"
            except KafkaException as exc:
                observed[f"ck {label}"] = exc.args[0].name()
        kp = KafkaAdminClient(bootstrap_servers=target.bootstrap, request_timeout_ms=20000)
        try:
            response = kp.alter_configs(
                [KpConfigResource(KpConfigResourceType.TOPIC, name, {"segment.ms": "80000"})]
            )
            observed["kp"] = {
                kind: {n: str(outcome) for n, outcome in by_name.items()}
                for kind, by_name in response.items()
            }
        finally:
            kp.close()
        _, configs = describe_configs(target, TOPIC, name, synonyms=False, documentation=False)
        observed["after"] = {n: c["value"] for n, c in configs.items() if c["source"] == 1}
        return observed

    same(scenario, kafkito, kafka)


# -- dynamic broker configs -------------------------------------------------------------------

DYNAMIC_KEYS = ["log.retention.ms", "message.max.bytes", "log.cleanup.policy", "log.segment.bytes"]


def test_dynamic_broker_configs_both_scopes(kafkito: Target, kafka: Target) -> None:
    topic = unique("dyn")
    topic_keys = ["retention.ms", "max.message.bytes", "cleanup.policy", "segment.bytes"]

    def scenario(target: Target) -> Any:
        steps: list[Any] = []
        with restore_broker_configs(target, DYNAMIC_KEYS):
            create_topics(target, [{"name": topic}])
            node = target.node

            def seen(label: str, outcome: str, wanted: dict[str, str] | None = None) -> None:
                # Kafka applies a change through its metadata log: wait until it shows
                if wanted:
                    wait_for(
                        lambda: all(
                            describe_configs(target, BROKER, node, [k])[1][k]["value"] == v
                            for k, v in wanted.items()
                        ),
                        f"{target.name}: {wanted}",
                    )
                steps.append(
                    (
                        label,
                        outcome,
                        cluster_defaults(target),
                        describe_configs(target, BROKER, node, DYNAMIC_KEYS, documentation=False)[
                            1
                        ],
                        describe_configs(target, TOPIC, topic, topic_keys, documentation=False)[1],
                    )
                )

            seen("start", "")
            seen(
                "cluster set",
                incremental_alter(
                    target,
                    BROKER,
                    "",
                    [("log.retention.ms", SET, "3600000"), ("message.max.bytes", SET, "500000")],
                ),
                {"log.retention.ms": "3600000", "message.max.bytes": "500000"},
            )
            seen(
                "node set",
                incremental_alter(target, BROKER, node, [("log.retention.ms", SET, "7200000")]),
                {"log.retention.ms": "7200000"},
            )
            seen(
                "cluster append",
                incremental_alter(target, BROKER, "", [("log.cleanup.policy", APPEND, "compact")]),
                {"log.cleanup.policy": "delete,compact"},
            )
            seen(
                "validate only",
                incremental_alter(
                    target, BROKER, "", [("log.segment.bytes", SET, "2000000")], validate_only=True
                ),
            )
            for label, ops in [
                ("read-only key", [("num.partitions", SET, "3")]),
                ("coarse synonym", [("log.retention.hours", SET, "1")]),
                ("bad value", [("log.retention.ms", SET, "soon")]),
                ("twice", [("log.retention.ms", SET, "1"), ("log.retention.ms", DELETE, None)]),
                ("append non-list", [("log.retention.ms", APPEND, "1")]),
            ]:
                steps.append(
                    (
                        label,
                        incremental_alter(target, BROKER, "", ops),
                        incremental_alter(target, BROKER, node, ops),
                    )
                )
            steps.append(
                (
                    "other node",
                    incremental_alter(target, BROKER, "7", [("log.retention.ms", SET, "1")]),
                )
            )
            steps.append(
                (
                    "not a number",
                    incremental_alter(target, BROKER, "x", [("log.retention.ms", SET, "1")]),
                )
            )
            seen(
                "node delete",
                incremental_alter(target, BROKER, node, [("log.retention.ms", DELETE, None)]),
                {"log.retention.ms": "3600000"},
            )
            seen(
                "node ac replace",
                alter(target, BROKER, node, {"log.segment.bytes": "2000000"}),
                {"log.segment.bytes": "2000000"},
            )
            seen(
                "node ac empty",
                alter(target, BROKER, node, {}),
                {"log.segment.bytes": "1073741824"},
            )
            seen(
                "cluster delete",
                incremental_alter(target, BROKER, "", [(k, DELETE, None) for k in DYNAMIC_KEYS]),
                {"log.cleanup.policy": "delete", "message.max.bytes": "1048588"},
            )
        return steps

    same(scenario, kafkito, kafka)


def test_dynamic_broker_configs_through_the_clients(kafkito: Target, kafka: Target) -> None:
    keys = ["log.retention.ms", "log.retention.bytes", "log.segment.bytes"]

    def scenario(target: Target) -> Any:
        observed: dict[str, Any] = {}
        with restore_broker_configs(target, keys):
            ck = AdminClient({"bootstrap.servers": target.bootstrap})
            for label, scope, entry in [
                (
                    "ck node",
                    target.node,
                    ConfigEntry(
                        "log.retention.ms", "3600000", incremental_operation=AlterConfigOpType.SET
                    ),
                ),
                (
                    "ck node, second key",
                    target.node,
                    ConfigEntry(
                        "log.retention.bytes",
                        "1000000",
                        incremental_operation=AlterConfigOpType.SET,
                    ),
                ),
                (
                    "ck read-only",
                    target.node,
                    ConfigEntry("num.partitions", "2", incremental_operation=AlterConfigOpType.SET),
                ),
            ]:
                resource = ConfigResource("broker", scope, incremental_configs=[entry])
                (future,) = ck.incremental_alter_configs([resource]).values()
                try:
                    future.result(TIMEOUT_S)
                    observed[label] = "ok"
                except KafkaException as exc:
                    observed[label] = exc.args[0].name()
            wait_for(
                lambda: (
                    describe_configs(target, BROKER, target.node, ["log.retention.bytes"])[1][
                        "log.retention.bytes"
                    ]["value"]
                    == "1000000"
                ),
                f"{target.name}: log.retention.bytes",
            )
            resource = ConfigResource("broker", target.node)
            entries = ck.describe_configs([resource])[resource].result(TIMEOUT_S)
            observed["ck describe"] = {
                n: (
                    e.value,
                    e.source,
                    e.is_read_only,
                    sorted(s.source for s in e.synonyms.values()),
                )
                for n, e in entries.items()
                if n in keys
            }
            kp = KafkaAdminClient(bootstrap_servers=target.bootstrap, request_timeout_ms=20000)
            try:
                # kafka-python checks names against DescribeConfigs' read-only flags first
                response = kp.alter_configs(
                    [
                        KpConfigResource(
                            KpConfigResourceType.BROKER,
                            target.node,
                            {"log.segment.bytes": "2000000"},
                        )
                    ]
                )
                observed["kp"] = {
                    kind: {n: str(outcome) for n, outcome in by_name.items()}
                    for kind, by_name in response.items()
                }
                try:
                    kp.alter_configs(
                        [
                            KpConfigResource(
                                KpConfigResourceType.BROKER, target.node, {"num.partitions": "2"}
                            )
                        ]
                    )
                    observed["kp read-only"] = "ok"
                except ValueError:
                    observed["kp read-only"] = "ValueError"
            finally:
                kp.close()

            async def aio() -> Any:
                client = AIOKafkaAdminClient(bootstrap_servers=target.bootstrap)
                await client.start()
                try:
                    responses = await client.describe_configs(
                        [AioConfigResource(AioConfigResourceType.BROKER, target.node)]
                    )
                    return sorted(
                        (entry[0], entry[1], entry[2])
                        for response in responses
                        for resource in response.resources
                        for entry in resource[4]
                        if entry[0] in keys
                    )
                finally:
                    await client.close()

            wait_for(
                lambda: (
                    describe_configs(target, BROKER, target.node, ["log.segment.bytes"])[1][
                        "log.segment.bytes"
                    ]["value"]
                    == "2000000"
                ),
                f"{target.name}: log.segment.bytes",
            )
            observed["aio describe"] = asyncio.run(aio())
        return observed

    same(scenario, kafkito, kafka)


def _produce_size(target: Target, topic: str, size: int) -> str:
    """Produce one keyed record of `size` bytes; the delivery error's name, or "ok" (keyed:
    a topic may be compacted, and Kafka refuses keyless records there)."""
    producer = Producer(
        {"bootstrap.servers": target.bootstrap, "message.max.bytes": 10_000_000, "retries": 0}
    )
    outcome: list[str] = []
    producer.produce(
        topic,
        b"x" * size,
        key=b"k",
        on_delivery=lambda err, msg: outcome.append("ok" if err is None else err.name()),
    )
    producer.flush(TIMEOUT_S)
    assert outcome, f"{target.name}: no delivery report within {TIMEOUT_S} s"
    return outcome[0]


def test_dynamic_message_max_bytes_takes_effect_without_restart(
    kafkito: Target, kafka: Target
) -> None:
    topic = unique("mmb")

    def scenario(target: Target) -> Any:
        with restore_broker_configs(target, ["message.max.bytes"]):
            create_topics(target, [{"name": topic}])
            before = _produce_size(target, topic, 20_000)
            assert (
                incremental_alter(target, BROKER, "", [("message.max.bytes", SET, "10000")])
                == "NONE"
            )
            # Kafka applies it asynchronously: wait for the refusal, with a deadline
            lowered = wait_for(
                lambda: (o := _produce_size(target, topic, 20_000)) != "ok" and o,
                f"{target.name}: a 20 kB record refused",
            )
            small = _produce_size(target, topic, 1_000)
        return {"before": before, "lowered": lowered, "small": small}

    same(scenario, kafkito, kafka)


def test_dynamic_broker_configs_persist_across_a_restart(tmp_path: Path, kafka: Target) -> None:
    """Kafka keeps dynamic broker configs in its metadata log; kafkito in its own. A restart of
    kafkito shows the same answer as the (unrestarted) reference."""
    topic = unique("persist")
    data = str(tmp_path / "persist")

    def configure(target: Target) -> None:
        create_topics(target, [{"name": topic}])
        assert (
            incremental_alter(
                target,
                BROKER,
                "",
                [("log.retention.ms", SET, "123456"), ("log.cleanup.policy", SET, "compact")],
            )
            == "NONE"
        )
        assert (
            incremental_alter(target, BROKER, target.node, [("message.max.bytes", SET, "300000")])
            == "NONE"
        )

    def look(target: Target) -> Any:
        return (
            cluster_defaults(target),
            describe_configs(target, BROKER, target.node, DYNAMIC_KEYS, documentation=False)[1],
            describe_configs(
                target,
                TOPIC,
                topic,
                ["retention.ms", "cleanup.policy", "max.message.bytes"],
                documentation=False,
            )[1],
        )

    with restore_broker_configs(kafka, DYNAMIC_KEYS):
        configure(kafka)
        wait_for(
            lambda: (
                describe_configs(kafka, BROKER, kafka.node, ["message.max.bytes"])[1][
                    "message.max.bytes"
                ]["value"]
                == "300000"
            ),
            "the reference's dynamic configs",
        )
        theirs = observe(look, kafka)
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=data) as bootstrap:
        configure(Target("kafkito", bootstrap))
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=data) as bootstrap:
        target = Target("kafkito", bootstrap)
        assert observe(look, target) == theirs
        assert _produce_size(target, topic, 400_000) == "MSG_SIZE_TOO_LARGE"
        assert (
            incremental_alter(target, BROKER, target.node, [("message.max.bytes", DELETE, None)])
            == "NONE"
        )
    with Broker(port=0, node_id=REFERENCE_NODE_ID, data_dir=data) as bootstrap:
        target = Target("kafkito", bootstrap)
        after = describe_configs(target, BROKER, target.node, ["message.max.bytes"])[1]
        assert after["message.max.bytes"]["source"] == 5  # back to the static value (default)
        assert _produce_size(target, topic, 400_000) == "ok"


def test_message_timestamp_after_max_ms_is_one_hour_and_enforced_on_both(
    kafkito: Target, kafka: Target
) -> None:
    """Kafka 4 refuses records stamped more than an hour ahead (log.message.timestamp.after.max.ms
    3600000); kafkito reports and enforces the same limit. Seen raw, then by producing."""
    raw, produced = {}, {}
    for target in (kafkito, kafka):
        answer = target.request(
            32,
            4,
            {
                "resources": [
                    {
                        "resource_type": BROKER,
                        "resource_name": target.node,
                        "configuration_keys": ["log.message.timestamp.after.max.ms"],
                    }
                ],
                "include_synonyms": False,
                "include_documentation": False,
            },
        )
        raw[target.name] = answer.results[0].configs[0].value
        topic = unique("future")
        create_topics(target, [{"name": topic}])
        producer = Producer({"bootstrap.servers": target.bootstrap, "retries": 0})
        outcome: list[str] = []
        for ahead_ms in (10 * 60_000, 2 * 3_600_000):  # ten minutes: fine; two hours: refused
            producer.produce(
                topic,
                b"v",
                key=b"k",
                timestamp=int(time.time() * 1000) + ahead_ms,
                on_delivery=lambda err, msg, seen=outcome: seen.append(
                    "ok" if err is None else err.name()
                ),
            )
            producer.flush(TIMEOUT_S)
        produced[target.name] = outcome
    assert raw == {"kafkito": "3600000", "kafka": "3600000"}
    assert produced["kafkito"] == produced["kafka"] == ["ok", "INVALID_TIMESTAMP"]


def test_unknown_broker_keys_are_refused_here_and_kept_by_kafka(
    kafkito: Target, kafka: Target
) -> None:
    """An intended difference (docs/broker.md): Kafka stores broker keys it does not know, for
    plugins; kafkito has none, so a typo is refused instead of passing for a change."""
    ops = [("log.retention.mss", SET, "1")]
    assert incremental_alter(kafka, BROKER, "", ops, validate_only=True) == "NONE"
    assert incremental_alter(kafkito, BROKER, "", ops, validate_only=True) == "INVALID_CONFIG"


# -- DeleteRecords, DescribeCluster, groups --------------------------------------------------------


def test_delete_records_watermarks(kafkito: Target, kafka: Target) -> None:
    topic = unique("dr")

    def scenario(target: Target) -> Any:
        create_topics(target, [{"name": topic, "partitions": 2}])
        producer = Producer({"bootstrap.servers": target.bootstrap})
        for i in range(5):
            producer.produce(topic, f"v{i}".encode(), partition=0)
        producer.flush(TIMEOUT_S)

        def delete(partition: int, offset: int, name: str = topic) -> Any:
            answer = target.request(
                21,
                2,
                {
                    "topics": [
                        {
                            "name": name,
                            "partitions": [{"partition_index": partition, "offset": offset}],
                        }
                    ],
                    "timeout": 15000,
                },
            )
            p = answer.topics[0].partitions[0]
            return code_name(p.error_code), p.low_watermark

        return [
            ("to 2", delete(0, 2)),
            ("back to 1", delete(0, 1)),
            ("to hw", delete(0, -1)),
            ("beyond hw", delete(0, 6)),
            ("empty partition", delete(1, 0)),
            ("unknown partition", delete(5, 0)),
            ("unknown topic", delete(0, 0, unique("none"))),
        ]

    same(scenario, kafkito, kafka)


def test_describe_cluster(kafkito: Target, kafka: Target) -> None:
    def scenario(target: Target) -> Any:
        answers = []
        for version, body in [
            (0, {"include_cluster_authorized_operations": False}),
            (1, {"include_cluster_authorized_operations": False, "endpoint_type": 1}),
            (1, {"include_cluster_authorized_operations": False, "endpoint_type": 2}),
        ]:
            a = target.request(60, version, body)
            answers.append(
                {
                    "error": code_name(a.error_code),
                    "cluster_id": a.cluster_id,
                    "controller": a.controller_id,
                    "brokers": [(b.broker_id, b.host, b.port, b.rack) for b in a.brokers],
                    "operations": a.cluster_authorized_operations,
                }
            )
        return answers

    same(scenario, kafkito, kafka)


def test_list_and_delete_groups(kafkito: Target, kafka: Target) -> None:
    base = unique("g")

    def scenario(target: Target) -> Any:
        topic = f"{base}-t"
        create_topics(target, [{"name": topic}])
        from confluent_kafka import Consumer, TopicPartition

        committed = Consumer(
            {
                "bootstrap.servers": target.bootstrap,
                "group.id": f"{base}-empty",
                "enable.auto.commit": False,
            }
        )
        committed.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
        committed.close()
        active = Consumer(
            {
                "bootstrap.servers": target.bootstrap,
                "group.id": f"{base}-active",
                "session.timeout.ms": 6000,
            }
        )
        active.subscribe([topic])
        try:
            ck = AdminClient({"bootstrap.servers": target.bootstrap})

            def states() -> dict[str, str]:
                listed = ck.list_consumer_groups(request_timeout=TIMEOUT_S).result(TIMEOUT_S)
                return {
                    g.group_id: g.state.name for g in listed.valid if g.group_id.startswith(base)
                }

            def stable() -> dict[str, str] | None:
                active.poll(0.1)
                found = states()
                return found if found.get(f"{base}-active") == "STABLE" else None

            listed = wait_for(stable, f"{target.name}: group {base}-active stable")
            answer = target.request(
                42,
                2,
                {"groups_names": [f"{base}-empty", f"{base}-active", f"{base}-unknown"]},
            )
            deleted = sorted((r.group_id, code_name(r.error_code)) for r in answer.results)
            return {"listed": listed, "deleted": deleted, "after": states()}
        finally:
            active.close()

    same(scenario, kafkito, kafka)


def test_describe_broker_configs_scopes(kafkito: Target, kafka: Target) -> None:
    def scenario(target: Target) -> Any:
        return {
            "other node": describe_configs(target, BROKER, "7")[0],
            "not a number": describe_configs(target, BROKER, "x")[0],
            "cluster": cluster_defaults(target),
            "node keys": describe_configs(
                target,
                BROKER,
                target.node,
                ["log.retention.ms", "log.retention.hours", "log.roll.ms", "message.max.bytes"],
            )[1],
        }

    same(scenario, kafkito, kafka)


def test_assignments_loggers_and_group_filters(kafkito: Target, kafka: Target) -> None:
    base = unique("misc")

    def scenario(target: Target) -> Any:
        def assigned(name: str, replicas: list[list[int]]) -> Any:
            answer = target.request(
                19,
                7,
                {
                    "topics": [
                        {
                            "name": name,
                            "num_partitions": -1,
                            "replication_factor": -1,
                            "assignments": [
                                {"partition_index": i, "broker_ids": ids}
                                for i, ids in enumerate(replicas)
                            ],
                            "configs": [],
                        }
                    ],
                    "timeout": 15000,
                    "validate_only": True,
                },
            )
            t = answer.topics[0]
            return code_name(t.error_code), t.num_partitions, t.replication_factor

        observed: dict[str, Any] = {
            "assign ok": assigned(f"{base}-a", [[1], [1]]),
            "assign other broker": assigned(f"{base}-b", [[2]]),
            "assign two replicas": assigned(f"{base}-c", [[1, 1]]),
            "assign none": assigned(f"{base}-d", [[]]),
        }
        listed = target.request(16, 5, {"states_filter": ["Empty"], "types_filter": []})
        observed["list groups v5"] = code_name(listed.error_code)
        return observed

    same(scenario, kafkito, kafka)


def test_broker_logger_resources_are_an_intended_difference(kafkito: Target, kafka: Target) -> None:
    """Kafka describes and alters its log4j loggers as BROKER_LOGGER (8) resources; kafkito's
    log levels are Python logging's, set at start, so it refuses the resource with
    INVALID_REQUEST (docs/broker.md)."""
    assert describe_configs(kafka, 8, kafka.node, ["root"])[0] == "NONE"
    assert describe_configs(kafkito, 8, kafkito.node, ["root"])[0] == "INVALID_REQUEST"
