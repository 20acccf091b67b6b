"""DeleteRecords and DescribeCluster against the embedded broker, over TCP, with real clients.

DeleteRecords v2 from confluent-kafka, aiokafka and kafka-python: the answer carries the new low
watermark (KAFKA-NOTES §6 P15), -1 means the high watermark, an offset past it is
OFFSET_OUT_OF_RANGE, and consumers then start at the new log start, also after a restart.
DescribeCluster: confluent-kafka answers it from Metadata, kafka-python sends DescribeCluster.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import OffsetOutOfRangeError as AioOffsetOutOfRangeError
from aiokafka.structs import TopicPartition as AioTopicPartition
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient
from kafka import TopicPartition as KpTopicPartition
from kafka.errors import OffsetOutOfRangeError

from kafkito import Broker
from kafkito.testing.brokers import BrokerProcess

TIMEOUT_S = 15


def create_and_fill(bootstrap: str, topic: str, count: int, partitions: int = 1) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition in range(partitions):
        for i in range(count):
            producer.produce(topic, value=f"v{i}".encode(), partition=partition)
            producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0


def first_offset_read(bootstrap: str, topic: str, partition: int = 0) -> int:
    """The offset of the first record a consumer gets when it starts at the beginning."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"first-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        msg = consumer.poll(TIMEOUT_S)
        assert msg is not None, "no record within the timeout"
        assert msg.error() is None, msg.error()
        return int(msg.offset())
    finally:
        consumer.close()


def watermarks(bootstrap: str, topic: str, partition: int = 0) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT_S
        )
        return int(low), int(high)
    finally:
        consumer.close()


# -- confluent-kafka -----------------------------------------------------------------------------


def test_ck_delete_records_moves_the_low_watermark(admin: AdminClient, broker: str) -> None:
    create_and_fill(broker, "dr-ck", 10, partitions=2)
    futures = admin.delete_records(
        [TopicPartition("dr-ck", 0, 4), TopicPartition("dr-ck", 1, -1)],
        operation_timeout=TIMEOUT_S,
    )
    lows = {tp.partition: f.result(TIMEOUT_S).low_watermark for tp, f in futures.items()}
    assert lows == {0: 4, 1: 10}
    assert watermarks(broker, "dr-ck", 0) == (4, 10)
    assert watermarks(broker, "dr-ck", 1) == (10, 10)
    assert first_offset_read(broker, "dr-ck", 0) == 4

    # below the current start: nothing changes, the answer is the current start
    (again,) = admin.delete_records([TopicPartition("dr-ck", 0, 2)]).values()
    assert again.result(TIMEOUT_S).low_watermark == 4

    (beyond,) = admin.delete_records([TopicPartition("dr-ck", 0, 11)]).values()
    with pytest.raises(KafkaException) as caught:
        beyond.result(TIMEOUT_S)
    assert caught.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    assert watermarks(broker, "dr-ck", 0) == (4, 10)


def test_ck_describe_cluster(admin: AdminClient, broker: str) -> None:
    cluster = admin.describe_cluster(
        include_authorized_operations=True, request_timeout=TIMEOUT_S
    ).result(TIMEOUT_S)
    host, port = broker.rsplit(":", 1)
    assert cluster.cluster_id
    assert cluster.controller.id == 0
    assert [(n.id, n.host, n.port) for n in cluster.nodes] == [(0, host, int(port))]
    ops = {op.name for op in cluster.authorized_operations}
    assert {"DESCRIBE", "ALTER", "CREATE", "DESCRIBE_CONFIGS", "ALTER_CONFIGS"} <= ops
    assert "ANY" not in ops
    assert "UNKNOWN" not in ops


def test_ck_describe_topics_with_authorized_operations(admin: AdminClient) -> None:
    admin.create_topics([NewTopic("dt-ck", 3, 1)])["dt-ck"].result(TIMEOUT_S)
    described = admin.describe_topics(
        TopicCollection(["dt-ck"]), include_authorized_operations=True
    )["dt-ck"].result(TIMEOUT_S)
    assert len(described.partitions) == 3
    assert all(p.leader.id == 0 for p in described.partitions)
    ops = {op.name for op in described.authorized_operations}
    assert ops == {
        "READ",
        "WRITE",
        "CREATE",
        "DELETE",
        "ALTER",
        "DESCRIBE",
        "DESCRIBE_CONFIGS",
        "ALTER_CONFIGS",
    }


# -- aiokafka ------------------------------------------------------------------------------------


async def test_aio_delete_records(aio_admin: AIOKafkaAdminClient, broker: str) -> None:
    create_and_fill(broker, "dr-aio", 6)
    tp = AioTopicPartition("dr-aio", 0)
    lows = await aio_admin.delete_records({tp: RecordsToDelete(3)})
    assert lows == {tp: 3}
    assert watermarks(broker, "dr-aio") == (3, 6)
    with pytest.raises(AioOffsetOutOfRangeError):
        await aio_admin.delete_records({tp: RecordsToDelete(7)})
    assert first_offset_read(broker, "dr-aio") == 3


# -- kafka-python --------------------------------------------------------------------------------


def test_kp_delete_records(kp_admin: KafkaAdminClient, broker: str) -> None:
    create_and_fill(broker, "dr-kp", 8)
    tp = KpTopicPartition("dr-kp", 0)
    result = kp_admin.delete_records({tp: 5})
    assert result[tp]["low_watermark"] == 5
    assert watermarks(broker, "dr-kp") == (5, 8)
    result = kp_admin.delete_records({tp: -1})
    assert result[tp]["low_watermark"] == 8
    with pytest.raises(OffsetOutOfRangeError):
        kp_admin.delete_records({tp: 9})


# -- restart -------------------------------------------------------------------------------------


def test_deleted_records_and_topics_stay_deleted_after_restart(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    with Broker(port=0, data_dir=data_dir) as bootstrap:
        create_and_fill(bootstrap, "dr-kept", 10)
        create_and_fill(bootstrap, "dr-gone", 3)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        (future,) = admin.delete_records([TopicPartition("dr-kept", 0, 6)]).values()
        assert future.result(TIMEOUT_S).low_watermark == 6
        admin.delete_topics(["dr-gone"])["dr-gone"].result(TIMEOUT_S)
        admin.create_topics([NewTopic("dr-gone", 2, 1)])["dr-gone"].result(TIMEOUT_S)
        before = admin.describe_topics(TopicCollection(["dr-gone"]))["dr-gone"].result(TIMEOUT_S)
        del admin
    with Broker(port=0, data_dir=data_dir) as bootstrap:
        assert watermarks(bootstrap, "dr-kept") == (6, 10)
        assert first_offset_read(bootstrap, "dr-kept") == 6
        admin = AdminClient({"bootstrap.servers": bootstrap})
        after = admin.describe_topics(TopicCollection(["dr-gone"]))["dr-gone"].result(TIMEOUT_S)
        assert str(after.topic_id) == str(before.topic_id)
        assert len(after.partitions) == 2
        assert watermarks(bootstrap, "dr-gone") == (0, 0)


def test_recreated_topic_does_not_inherit_deleted_records_after_a_crash(
    broker_process: BrokerProcess,
) -> None:
    """kill -9 leaves the metadata log uncompacted: the old topic's log start must not leak."""
    bootstrap = broker_process.bootstrap
    create_and_fill(bootstrap, "dr-crash", 10)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.delete_records([TopicPartition("dr-crash", 0, 7)]).values()
    assert future.result(TIMEOUT_S).low_watermark == 7
    admin.delete_topics(["dr-crash"])["dr-crash"].result(TIMEOUT_S)
    admin.create_topics([NewTopic("dr-crash", 1, 1)])["dr-crash"].result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    producer.produce("dr-crash", value=b"new")
    assert producer.flush(TIMEOUT_S) == 0
    del admin, producer
    broker_process.kill()
    broker_process.start()
    assert watermarks(bootstrap, "dr-crash") == (0, 1)
    assert first_offset_read(bootstrap, "dr-crash") == 0
