"""Topic administration against the embedded broker, over TCP, with every client that does it.

CreateTopics, CreatePartitions, DeleteTopics and Metadata (list/describe topics) with
confluent-kafka's AdminClient (CreateTopics v4, DeleteTopics v4, CreatePartitions v2),
aiokafka's AIOKafkaAdminClient (v3, v3, v1), kafka-python's KafkaAdminClient (v7, v6 by name and
by topic id, v3) and kcat's metadata listing (Metadata v4). Each refusal is checked for the
error code Kafka gives (KAFKA-NOTES §6 P13, P15, P5).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions
from aiokafka.admin import NewTopic as AioNewTopic
from aiokafka.errors import InvalidPartitionsError as AioInvalidPartitionsError
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.admin import NewPartitions as CkNewPartitions
from kafka import KafkaAdminClient
from kafka.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicIdError,
    UnknownTopicOrPartitionError,
)

TIMEOUT_S = 15
KCAT = shutil.which("kcat")


# -- helpers -----------------------------------------------------------------------------------


def ck_error(future: Any) -> int:
    """The Kafka error code a confluent-kafka admin future failed with (0 if it succeeded)."""
    try:
        future.result(TIMEOUT_S)
    except KafkaException as exc:
        return int(exc.args[0].code())
    return 0


def partition_counts(admin: AdminClient) -> dict[str, int]:
    topics = admin.list_topics(timeout=TIMEOUT_S).topics
    return {name: len(t.partitions) for name, t in topics.items()}


def kcat_metadata(bootstrap: str) -> dict[str, Any]:
    assert KCAT is not None
    done = subprocess.run(
        [KCAT, "-L", "-b", bootstrap, "-J", "-m", "10"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def produce(bootstrap: str, topic: str, count: int, partition: int = 0) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(count):
        producer.produce(topic, value=f"v{i}".encode(), partition=partition)
    assert producer.flush(TIMEOUT_S) == 0


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    from confluent_kafka import TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT_S
        )
        return int(low), int(high)
    finally:
        consumer.close()


# -- confluent-kafka -----------------------------------------------------------------------------


def test_ck_create_topics_answers_each_topic_as_kafka_does(admin: AdminClient) -> None:
    futures = admin.create_topics(
        [
            NewTopic("ck-good", num_partitions=3, replication_factor=1),
            NewTopic("ck-rf3", num_partitions=1, replication_factor=3),
            NewTopic("bad name!", num_partitions=1, replication_factor=1),
            NewTopic("ck-zero", num_partitions=0, replication_factor=1),
            NewTopic("ck-huge", num_partitions=100_000, replication_factor=1),
            NewTopic("ck-config", num_partitions=1, config={"no.such.key": "1"}),
            NewTopic("ck-badvalue", num_partitions=1, config={"retention.ms": "soon"}),
        ],
        request_timeout=TIMEOUT_S,
    )
    codes = {name: ck_error(f) for name, f in futures.items()}
    assert codes == {
        "ck-good": 0,
        "ck-rf3": KafkaError.INVALID_REPLICATION_FACTOR,
        "bad name!": KafkaError.TOPIC_EXCEPTION,
        "ck-zero": KafkaError.INVALID_PARTITIONS,
        "ck-huge": KafkaError.INVALID_PARTITIONS,
        "ck-config": KafkaError.INVALID_CONFIG,
        "ck-badvalue": KafkaError.INVALID_CONFIG,
    }
    counts = partition_counts(admin)
    assert counts["ck-good"] == 3
    assert not {"ck-rf3", "bad name!", "ck-zero", "ck-huge", "ck-config", "ck-badvalue"} & set(
        counts
    )

    again = admin.create_topics([NewTopic("ck-good", 1, 1)])
    assert ck_error(again["ck-good"]) == KafkaError.TOPIC_ALREADY_EXISTS
    assert partition_counts(admin)["ck-good"] == 3


def test_ck_create_topics_defaults_and_validate_only(admin: AdminClient, broker: str) -> None:
    futures = admin.create_topics([NewTopic("ck-defaults")])  # -1 / -1: broker defaults
    assert ck_error(futures["ck-defaults"]) == 0
    assert partition_counts(admin)["ck-defaults"] == 1

    dry = admin.create_topics([NewTopic("ck-dry", 4, 1)], validate_only=True)
    assert ck_error(dry["ck-dry"]) == 0
    dry_bad = admin.create_topics([NewTopic("ck-dry-bad", 1, 2)], validate_only=True)
    assert ck_error(dry_bad["ck-dry-bad"]) == KafkaError.INVALID_REPLICATION_FACTOR
    assert "ck-dry" not in partition_counts(admin)
    assert "ck-dry" not in kcat_metadata(broker)["topics"]


def test_ck_create_partitions(admin: AdminClient) -> None:
    assert ck_error(admin.create_topics([NewTopic("ck-grow", 2, 1)])["ck-grow"]) == 0

    grown = admin.create_partitions([CkNewPartitions("ck-grow", 5)])
    assert ck_error(grown["ck-grow"]) == 0
    assert partition_counts(admin)["ck-grow"] == 5

    dry = admin.create_partitions([CkNewPartitions("ck-grow", 8)], validate_only=True)
    assert ck_error(dry["ck-grow"]) == 0
    assert partition_counts(admin)["ck-grow"] == 5

    same = admin.create_partitions([CkNewPartitions("ck-grow", 5)])
    assert ck_error(same["ck-grow"]) == KafkaError.INVALID_PARTITIONS
    fewer = admin.create_partitions([CkNewPartitions("ck-grow", 3)])
    assert ck_error(fewer["ck-grow"]) == KafkaError.INVALID_PARTITIONS
    unknown = admin.create_partitions([CkNewPartitions("ck-nope", 3)])
    assert ck_error(unknown["ck-nope"]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    elsewhere = admin.create_partitions([CkNewPartitions("ck-grow", 6, [[7]])])
    assert ck_error(elsewhere["ck-grow"]) == KafkaError.INVALID_REPLICA_ASSIGNMENT
    assert partition_counts(admin)["ck-grow"] == 5


def test_ck_new_partitions_take_writes(admin: AdminClient, broker: str) -> None:
    assert ck_error(admin.create_topics([NewTopic("ck-more", 1, 1)])["ck-more"]) == 0
    assert ck_error(admin.create_partitions([CkNewPartitions("ck-more", 3)])["ck-more"]) == 0
    produce(broker, "ck-more", 4, partition=2)
    assert watermarks(broker, "ck-more", 2) == (0, 4)


def test_ck_delete_then_recreate_gives_new_id_and_no_old_data(
    admin: AdminClient, broker: str
) -> None:
    assert ck_error(admin.create_topics([NewTopic("ck-gone", 1, 1)])["ck-gone"]) == 0
    produce(broker, "ck-gone", 5)
    assert watermarks(broker, "ck-gone") == (0, 5)
    first = admin.describe_topics(TopicCollection(["ck-gone"]))["ck-gone"].result(TIMEOUT_S)

    deleted = admin.delete_topics(["ck-gone", "ck-never"], operation_timeout=TIMEOUT_S)
    assert ck_error(deleted["ck-gone"]) == 0
    assert ck_error(deleted["ck-never"]) == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert "ck-gone" not in partition_counts(admin)

    assert ck_error(admin.create_topics([NewTopic("ck-gone", 2, 1)])["ck-gone"]) == 0
    second = admin.describe_topics(TopicCollection(["ck-gone"]))["ck-gone"].result(TIMEOUT_S)
    assert str(second.topic_id) != str(first.topic_id)
    assert len(second.partitions) == 2
    assert watermarks(broker, "ck-gone") == (0, 0)


# -- aiokafka ------------------------------------------------------------------------------------


async def test_aio_create_list_grow_delete(aio_admin: AIOKafkaAdminClient) -> None:
    response = await aio_admin.create_topics(
        [
            AioNewTopic("aio-good", 2, 1),
            AioNewTopic("aio-rf2", 1, 2),
            AioNewTopic("aio bad", 1, 1),
        ]
    )
    codes = {name: code for name, code, *_ in response.topic_errors}
    assert codes == {
        "aio-good": 0,
        "aio-rf2": InvalidReplicationFactorError.errno,
        "aio bad": InvalidTopicError.errno,
    }
    again = await aio_admin.create_topics([AioNewTopic("aio-good", 2, 1)])
    assert again.topic_errors[0][1] == TopicAlreadyExistsError.errno
    dry = await aio_admin.create_topics([AioNewTopic("aio-dry", 1, 1)], validate_only=True)
    assert dry.topic_errors[0][1] == 0
    assert set(await aio_admin.list_topics()) == {"aio-good"}

    grown = await aio_admin.create_partitions({"aio-good": NewPartitions(4)})
    assert [(name, code) for name, code, *_ in grown.topic_errors] == [("aio-good", 0)]
    described = await aio_admin.describe_topics(["aio-good"])
    assert len(described[0]["partitions"]) == 4
    with pytest.raises(AioInvalidPartitionsError):
        await aio_admin.create_partitions({"aio-good": NewPartitions(4)})

    deleted = await aio_admin.delete_topics(["aio-good", "aio-none"])
    codes = {name: code for name, code, *_ in deleted.topic_error_codes}
    assert codes == {"aio-good": 0, "aio-none": UnknownTopicOrPartitionError.errno}
    assert await aio_admin.list_topics() == []


async def test_aio_describe_cluster_names_this_broker(
    aio_admin: AIOKafkaAdminClient, broker: str
) -> None:
    cluster = await aio_admin.describe_cluster()
    host, port = broker.rsplit(":", 1)
    assert cluster["controller_id"] == 0
    assert [(b["node_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
        (0, host, int(port))
    ]
    assert cluster["cluster_id"]


# -- kafka-python --------------------------------------------------------------------------------


def test_kp_create_topics_codes(kp_admin: KafkaAdminClient) -> None:
    result = kp_admin.create_topics(
        {
            "kp-good": {"num_partitions": 2, "replication_factor": 1},
            "kp-defaults": {},
            "kp-rf2": {"num_partitions": 1, "replication_factor": 2},
            "kp..bad/": {"num_partitions": 1},
            "kp-cfg": {"configs": {"retention.ms": "60000"}},
        },
        raise_errors=False,
    )
    codes = {t["name"]: t["error_code"] for t in result["topics"]}
    assert codes == {
        "kp-good": 0,
        "kp-defaults": 0,
        "kp-rf2": InvalidReplicationFactorError.errno,
        "kp..bad/": InvalidTopicError.errno,
        "kp-cfg": 0,
    }
    created = {t["name"]: t for t in result["topics"] if t["error_code"] == 0}
    assert created["kp-good"]["num_partitions"] == 2
    assert created["kp-defaults"]["num_partitions"] == 1
    assert created["kp-defaults"]["replication_factor"] == 1
    assert created["kp-cfg"]["topic_id"] != uuid.UUID(int=0)
    with pytest.raises(TopicAlreadyExistsError):
        kp_admin.create_topics({"kp-good": {}})
    dry = kp_admin.create_topics({"kp-dry": {}}, validate_only=True)
    assert dry["topics"][0]["error_code"] == 0
    assert sorted(kp_admin.list_topics()) == ["kp-cfg", "kp-defaults", "kp-good"]


def test_kp_create_partitions_and_delete_by_name_and_id(kp_admin: KafkaAdminClient) -> None:
    kp_admin.create_topics({"kp-a": {"num_partitions": 1}, "kp-b": {"num_partitions": 1}})
    kp_admin.create_partitions({"kp-a": 3})
    (described,) = kp_admin.describe_topics(["kp-a"])
    assert len(described["partitions"]) == 3
    with pytest.raises(InvalidPartitionsError):
        kp_admin.create_partitions({"kp-a": 2})
    with pytest.raises(UnknownTopicOrPartitionError):
        kp_admin.create_partitions({"kp-none": 2})

    (b,) = kp_admin.describe_topics(["kp-b"])
    topic_id = uuid.UUID(str(b["topic_id"]))
    assert topic_id != uuid.UUID(int=0)
    deleted = kp_admin.delete_topics([topic_id, "kp-a"])
    assert {(t["name"], t["error_code"]) for t in deleted["topics"]} == {
        ("kp-b", 0),
        ("kp-a", 0),
    }
    assert kp_admin.list_topics() == []
    with pytest.raises(UnknownTopicIdError):
        kp_admin.delete_topics([topic_id])
    with pytest.raises(UnknownTopicOrPartitionError):
        kp_admin.delete_topics(["kp-a"])


def test_kp_describe_cluster_and_authorized_operations(
    kp_admin: KafkaAdminClient, broker: str
) -> None:
    kp_admin.create_topics({"kp-ops": {}})
    cluster = kp_admin.describe_cluster()
    host, port = broker.rsplit(":", 1)
    assert cluster["controller_id"] == 0
    assert [(b["broker_id"], b["host"], b["port"]) for b in cluster["brokers"]] == [
        (0, host, int(port))
    ]
    assert set(cluster["authorized_operations"]) == {
        "CREATE",
        "ALTER",
        "DESCRIBE",
        "CLUSTER_ACTION",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
        "IDEMPOTENT_WRITE",
    }
    # kafka-python's Metadata asks for topic authorized operations (P11: only bits 3-14)
    (topic,) = kp_admin.describe_topics(["kp-ops"])
    assert set(topic["authorized_operations"]) == {
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
    }


# -- kcat ----------------------------------------------------------------------------------------


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_lists_topics_created_and_deleted(admin: AdminClient, broker: str) -> None:
    created = admin.create_topics([NewTopic("kc-a", 3, 1), NewTopic("kc-b", 1, 1)])
    assert all(ck_error(f) == 0 for f in created.values())
    listing = kcat_metadata(broker)
    host, port = broker.rsplit(":", 1)
    assert [(b["id"], b["name"]) for b in listing["brokers"]] == [(0, f"{host}:{port}")]
    assert listing["controllerid"] == 0
    topics = {t["topic"]: t for t in listing["topics"]}
    assert set(topics) == {"kc-a", "kc-b"}
    assert [p["partition"] for p in topics["kc-a"]["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 0 for p in topics["kc-a"]["partitions"])

    assert ck_error(admin.delete_topics(["kc-b"])["kc-b"]) == 0
    assert ck_error(admin.create_partitions([CkNewPartitions("kc-a", 4)])["kc-a"]) == 0
    listing = kcat_metadata(broker)
    topics = {t["topic"]: t for t in listing["topics"]}
    assert set(topics) == {"kc-a"}
    assert len(topics["kc-a"]["partitions"]) == 4
