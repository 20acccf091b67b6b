"""Every advertised version of the admin APIs, spoken over TCP with kio-encoded requests.

The clients each use one version per API (see the other test_admin_* files); the broker
advertises ranges, so each version in them is exercised here, with the edge cases clients seldom
send: DeleteTopics by id (v6), DescribeConfigs documentation (v3+), a foreign broker id,
DescribeCluster controller endpoints (v1+), authorized operations in Metadata (v8+), duplicate
names and keys, null values.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Producer

from kafkito.broker.configs import BROKER_CONFIGS, DYNAMIC_BROKER_CONFIGS, TOPIC_CONFIGS
from kafkito.broker.dispatch import advertised_versions
from kafkito.errors import ErrorCode
from kafkito.testing.wire import WireClient

INT32_MIN = -(2**31)
TOPIC, BROKER = 2, 4
ZERO = uuid.UUID(int=0)
TOPIC_OPS = sum(1 << op for op in (3, 4, 5, 6, 7, 8, 10, 11))
CLUSTER_OPS = sum(1 << op for op in (5, 7, 8, 9, 10, 11, 12))


def versions(api_key: int) -> range:
    ((lo, hi),) = [(lo, hi) for key, lo, hi in advertised_versions() if key == api_key]
    return range(lo, hi + 1)


@pytest.fixture
def wire(broker: str) -> Iterator[WireClient]:
    with WireClient(broker, timeout_s=10) as client:
        yield client


def create(wire: WireClient, name: str, partitions: int = 1, **configs: str) -> Any:
    answer = wire.request(
        19,
        7,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": [{"name": k, "value": v} for k, v in configs.items()],
                }
            ],
            "timeout": 10_000,
            "validate_only": False,
        },
    )
    (topic,) = answer.topics
    assert topic.error_code == ErrorCode.none, topic
    return topic


def test_the_admin_apis_are_advertised() -> None:
    advertised = {key: (lo, hi) for key, lo, hi in advertised_versions()}
    assert advertised[19] == (2, 7)
    assert advertised[20] == (1, 6)
    assert advertised[21] == (0, 2)
    assert advertised[32] == (1, 4)
    assert advertised[33] == (0, 2)
    assert advertised[37] == (0, 3)
    assert advertised[44] == (0, 1)
    assert advertised[60] == (0, 2)


@pytest.mark.parametrize("version", versions(19))
def test_create_topics_every_version(wire: WireClient, version: int) -> None:
    answer = wire.request(
        19,
        version,
        {
            "topics": [
                {"name": "w-ok", "num_partitions": 2, "replication_factor": 1, "configs": []},
                {"name": "w-twice", "num_partitions": 1, "replication_factor": 1},
                {"name": "w-twice", "num_partitions": 1, "replication_factor": 1},
                {
                    "name": "w-elsewhere",
                    "num_partitions": -1,
                    "replication_factor": -1,
                    "assignments": [{"partition_index": 0, "broker_ids": [3]}],
                },
                {
                    "name": "w-null",
                    "num_partitions": 1,
                    "replication_factor": 1,
                    "configs": [{"name": "retention.ms", "value": None}],
                },
            ],
            "timeout": 10_000,
            "validate_only": False,
        },
    )
    codes = [(t.name, t.error_code) for t in answer.topics]
    assert codes == [
        ("w-ok", ErrorCode.none),
        ("w-twice", ErrorCode.invalid_request),
        ("w-elsewhere", ErrorCode.invalid_replica_assignment),
        ("w-null", ErrorCode.invalid_config),
    ]
    ok = answer.topics[0]
    if version >= 5:
        assert ok.num_partitions == 2
        assert ok.replication_factor == 1
        assert {c.name for c in ok.configs} == set(TOPIC_CONFIGS)
    if version >= 7:
        assert ok.topic_id != ZERO


@pytest.mark.parametrize("version", versions(20))
def test_delete_topics_every_version(wire: WireClient, version: int) -> None:
    create(wire, "w-del")
    if version >= 6:
        body: dict[str, Any] = {
            "topics": [{"name": "w-del", "topic_id": ZERO}, {"name": "w-none", "topic_id": ZERO}]
        }
    else:
        body = {"topic_names": ["w-del", "w-none"]}
    answer = wire.request(20, version, {**body, "timeout": 10_000})
    codes = [(r.name, r.error_code) for r in answer.responses]
    assert codes == [("w-del", ErrorCode.none), ("w-none", ErrorCode.unknown_topic_or_partition)]
    if version >= 5:
        assert answer.responses[1].error_message


def test_delete_topics_v6_by_id(wire: WireClient) -> None:
    topic_id = create(wire, "w-id").topic_id
    other = uuid.uuid4()
    answer = wire.request(
        20,
        6,
        {
            "topics": [
                {"name": None, "topic_id": other},
                {"name": "w-id", "topic_id": topic_id},
                {"name": None, "topic_id": topic_id},
            ],
            "timeout": 10_000,
        },
    )
    assert [(r.name, r.topic_id, r.error_code) for r in answer.responses] == [
        (None, other, ErrorCode.unknown_topic_id),
        ("w-id", topic_id, ErrorCode.invalid_request),  # name and id: give one
        ("w-id", topic_id, ErrorCode.none),
    ]
    recreated = create(wire, "w-id").topic_id
    assert recreated not in (ZERO, topic_id)


@pytest.mark.parametrize("version", versions(37))
def test_create_partitions_every_version(wire: WireClient, version: int) -> None:
    create(wire, "w-grow", 1)
    answer = wire.request(
        37,
        version,
        {
            "topics": [
                {"name": "w-grow", "count": 3, "assignments": [{"broker_ids": [0]}] * 2},
                {"name": "w-none", "count": 3, "assignments": None},
            ],
            "timeout": 10_000,
            "validate_only": False,
        },
    )
    assert [(r.name, r.error_code) for r in answer.results] == [
        ("w-grow", ErrorCode.none),
        ("w-none", ErrorCode.unknown_topic_or_partition),
    ]
    answer = wire.request(
        37,
        version,
        {
            "topics": [{"name": "w-grow", "count": 5, "assignments": [{"broker_ids": [0]}]}],
            "timeout": 10_000,
            "validate_only": False,
        },
    )
    assert answer.results[0].error_code == ErrorCode.invalid_replica_assignment
    metadata = wire.request(
        3,
        12,
        {
            "topics": [{"name": "w-grow", "topic_id": ZERO}],
            "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False,
        },
    )
    assert len(metadata.topics[0].partitions) == 3


@pytest.mark.parametrize("version", versions(32))
def test_describe_configs_every_version(wire: WireClient, version: int) -> None:
    create(wire, "w-cfg", **{"retention.ms": "1000"})
    answer = wire.request(
        32,
        version,
        {
            "resources": [
                {"resource_type": TOPIC, "resource_name": "w-cfg", "configuration_keys": None},
                {
                    "resource_type": TOPIC,
                    "resource_name": "w-cfg",
                    "configuration_keys": ["retention.ms", "no.such"],
                },
                {"resource_type": TOPIC, "resource_name": "w-none", "configuration_keys": None},
                {"resource_type": BROKER, "resource_name": "0", "configuration_keys": None},
                {"resource_type": BROKER, "resource_name": "7", "configuration_keys": None},
                {"resource_type": 8, "resource_name": "0", "configuration_keys": None},
            ],
            "include_synonyms": False,
            "include_documentation": True,
        },
    )
    everything, some, unknown, broker, foreign, logger = answer.results
    assert everything.error_code == ErrorCode.none
    assert {c.name for c in everything.configs} == set(TOPIC_CONFIGS)
    assert all(c.synonyms == () for c in everything.configs)  # not asked for
    retention = next(c for c in everything.configs if c.name == "retention.ms")
    assert (retention.value, retention.config_source, retention.read_only) == ("1000", 1, False)
    if version >= 3:
        assert retention.config_type == 5  # LONG
        assert retention.documentation
    assert [c.name for c in some.configs] == ["retention.ms"]
    assert unknown.error_code == ErrorCode.unknown_topic_or_partition
    assert broker.error_code == ErrorCode.none
    assert {c.name for c in broker.configs} >= set(BROKER_CONFIGS)
    assert {c.name for c in broker.configs if not c.read_only} == set(DYNAMIC_BROKER_CONFIGS)
    assert foreign.error_code == ErrorCode.invalid_request
    assert "7" in (foreign.error_message or "")
    assert logger.error_code == ErrorCode.invalid_request


def test_describe_configs_synonyms_when_asked(wire: WireClient) -> None:
    create(wire, "w-syn", **{"segment.ms": "5000"})
    answer = wire.request(
        32,
        4,
        {
            "resources": [
                {"resource_type": TOPIC, "resource_name": "w-syn", "configuration_keys": None}
            ],
            "include_synonyms": True,
            "include_documentation": False,
        },
    )
    configs = {c.name: c for c in answer.results[0].configs}
    # log.roll.ms is null by default in Kafka (log.roll.hours supplies it), and Kafka leaves a
    # coarser synonym out unless the key itself is set somewhere
    assert [(s.name, s.value, s.source) for s in configs["segment.ms"].synonyms] == [
        ("segment.ms", "5000", 1),
    ]
    assert [(s.name, s.value, s.source) for s in configs["max.message.bytes"].synonyms] == [
        ("message.max.bytes", "1048588", 5),
    ]
    assert configs["segment.ms"].documentation is None


@pytest.mark.parametrize("version", versions(33))
def test_alter_configs_every_version(wire: WireClient, version: int) -> None:
    create(wire, "w-alt", **{"segment.ms": "5000"})
    answer = wire.request(
        33,
        version,
        {
            "resources": [
                {
                    "resource_type": TOPIC,
                    "resource_name": "w-alt",
                    "configs": [
                        {"name": "retention.ms", "value": "2000"},
                    ],
                },
                {
                    "resource_type": TOPIC,
                    "resource_name": "w-alt",
                    # Kafka 4.1 refuses a null value (test_differential_admin.py)
                    "configs": [{"name": "flush.ms", "value": None}],
                },
                {"resource_type": TOPIC, "resource_name": "w-none", "configs": []},
                {"resource_type": BROKER, "resource_name": "0", "configs": []},
                {
                    "resource_type": BROKER,
                    "resource_name": "0",
                    "configs": [{"name": "num.partitions", "value": "3"}],
                },
            ],
            "validate_only": False,
        },
    )
    assert [r.error_code for r in answer.responses] == [
        ErrorCode.none,
        ErrorCode.invalid_request,
        ErrorCode.unknown_topic_or_partition,
        ErrorCode.none,
        ErrorCode.invalid_request,  # Kafka's code for a key that cannot change at run time
    ]
    assert "flush.ms" in (answer.responses[1].error_message or "")
    assert "num.partitions" in (answer.responses[4].error_message or "")
    assert _overrides(wire, "w-alt") == {"retention.ms": "2000"}


@pytest.mark.parametrize("version", versions(44))
def test_incremental_alter_configs_every_version(wire: WireClient, version: int) -> None:
    create(wire, "w-inc")

    def alter(*configs: tuple[str, int, str | None]) -> Any:
        answer = wire.request(
            44,
            version,
            {
                "resources": [
                    {
                        "resource_type": TOPIC,
                        "resource_name": "w-inc",
                        "configs": [
                            {"name": n, "config_operation": op, "value": v} for n, op, v in configs
                        ],
                    }
                ],
                "validate_only": False,
            },
        )
        return answer.responses[0]

    assert alter(("retention.ms", 0, "3000"), ("cleanup.policy", 2, "compact")).error_code == 0
    assert _overrides(wire, "w-inc") == {"retention.ms": "3000", "cleanup.policy": "delete,compact"}
    twice = alter(("retention.ms", 0, "1"), ("retention.ms", 1, None))
    assert twice.error_code == ErrorCode.invalid_request
    assert alter(("retention.ms", 0, None)).error_code == ErrorCode.invalid_request
    assert alter(("retention.ms", 9, "1")).error_code == ErrorCode.invalid_request
    assert alter(("segment.ms", 3, "1")).error_code == ErrorCode.invalid_config
    assert _overrides(wire, "w-inc") == {"retention.ms": "3000", "cleanup.policy": "delete,compact"}
    # Kafka 4.1 accepts an empty list (test_differential_admin.py): nothing is ever removed
    assert alter(("cleanup.policy", 3, "delete,compact")).error_code == ErrorCode.none
    assert _overrides(wire, "w-inc") == {"retention.ms": "3000", "cleanup.policy": ""}
    assert alter(("cleanup.policy", 1, None), ("retention.ms", 1, None)).error_code == 0
    assert _overrides(wire, "w-inc") == {}


def _overrides(wire: WireClient, topic: str) -> dict[str, str]:
    answer = wire.request(
        32,
        4,
        {
            "resources": [
                {"resource_type": TOPIC, "resource_name": topic, "configuration_keys": None}
            ],
            "include_synonyms": False,
            "include_documentation": False,
        },
    )
    return {c.name: c.value for c in answer.results[0].configs if c.config_source == 1}


@pytest.mark.parametrize("version", versions(21))
def test_delete_records_every_version(wire: WireClient, broker: str, version: int) -> None:
    create(wire, "w-rec", 2)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 0})
    for i in range(5):
        producer.produce("w-rec", value=b"%d" % i, partition=0)
    assert producer.flush(10) == 0
    answer = wire.request(
        21,
        version,
        {
            "topics": [
                {
                    "name": "w-rec",
                    "partitions": [
                        {"partition_index": 0, "offset": 2},
                        {"partition_index": 1, "offset": 1},
                        {"partition_index": 7, "offset": 0},
                    ],
                },
                {"name": "w-none", "partitions": [{"partition_index": 0, "offset": 0}]},
            ],
            "timeout": 10_000,
        },
    )
    (rec, none) = answer.topics
    assert [(p.partition_index, p.error_code, p.low_watermark) for p in rec.partitions] == [
        (0, ErrorCode.none, 2),
        (1, ErrorCode.offset_out_of_range, -1),
        (7, ErrorCode.unknown_topic_or_partition, -1),
    ]
    assert none.partitions[0].error_code == ErrorCode.unknown_topic_or_partition
    answer = wire.request(
        21,
        version,
        {
            "topics": [{"name": "w-rec", "partitions": [{"partition_index": 0, "offset": -1}]}],
            "timeout": 10_000,
        },
    )
    assert answer.topics[0].partitions[0].low_watermark == 5


@pytest.mark.parametrize("version", versions(60))
def test_describe_cluster_every_version(wire: WireClient, broker: str, version: int) -> None:
    host, port = broker.rsplit(":", 1)
    plain = wire.request(
        60,
        version,
        {
            "include_cluster_authorized_operations": False,
            "endpoint_type": 1,
            "include_fenced_brokers": True,
        },
    )
    assert plain.error_code == ErrorCode.none
    assert plain.cluster_authorized_operations == INT32_MIN
    assert plain.controller_id == 0
    assert [(b.broker_id, b.host, b.port) for b in plain.brokers] == [(0, host, int(port))]
    asked = wire.request(
        60,
        version,
        {
            "include_cluster_authorized_operations": True,
            "endpoint_type": 1,
            "include_fenced_brokers": False,
        },
    )
    assert asked.cluster_authorized_operations == CLUSTER_OPS
    assert asked.cluster_id == plain.cluster_id
    if version >= 1:
        controllers = wire.request(
            60,
            version,
            {
                "include_cluster_authorized_operations": False,
                "endpoint_type": 2,
                "include_fenced_brokers": False,
            },
        )
        # Kafka 4.1's answer (test_differential_admin.py::test_describe_cluster)
        assert controllers.error_code == ErrorCode.mismatched_endpoint_type
        assert (controllers.cluster_id, controllers.controller_id) == ("", -1)


@pytest.mark.parametrize("version", range(8, 13))
def test_metadata_authorized_operations(wire: WireClient, version: int) -> None:
    create(wire, "w-ops")
    body = {
        "topics": [{"name": "w-ops", "topic_id": ZERO}],
        "allow_auto_topic_creation": False,
        "include_cluster_authorized_operations": False,
        "include_topic_authorized_operations": False,
    }
    plain = wire.request(3, version, body)
    assert plain.topics[0].topic_authorized_operations == INT32_MIN
    asked = wire.request(
        3,
        version,
        {
            **body,
            "include_cluster_authorized_operations": True,
            "include_topic_authorized_operations": True,
        },
    )
    assert asked.topics[0].topic_authorized_operations == TOPIC_OPS
    if version <= 10:
        assert plain.cluster_authorized_operations == INT32_MIN
        assert asked.cluster_authorized_operations == CLUSTER_OPS


@pytest.mark.parametrize(("api_key", "version"), [(33, v) for v in versions(33)] + [(44, 1)])
def test_alter_validate_only_checks_and_changes_nothing(
    wire: WireClient, api_key: int, version: int
) -> None:
    create(wire, "w-dry", **{"segment.ms": "5000"})

    def alter(name: str, value: str) -> Any:
        config: dict[str, Any] = {"name": name, "value": value}
        if api_key == 44:  # IncrementalAlterConfigs: SET; AlterConfigs has no operation
            config["config_operation"] = 0
        answer = wire.request(
            api_key,
            version,
            {
                "resources": [
                    {"resource_type": TOPIC, "resource_name": "w-dry", "configs": [config]}
                ],
                "validate_only": True,
            },
        )
        return answer.responses[0]

    assert alter("retention.ms", "100").error_code == ErrorCode.none
    refused = alter("retention.ms", "-7")
    assert refused.error_code == ErrorCode.invalid_config
    assert "retention.ms" in (refused.error_message or "")
    assert _overrides(wire, "w-dry") == {"segment.ms": "5000"}
