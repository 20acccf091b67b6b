"""kafkito.client.Admin and kafkito.aio.Admin against kafkito's broker and Tansu.

Every result is checked against what the test itself did to the cluster (records written,
offsets committed), and every failure against the typed error and its one-line message.
"""

from __future__ import annotations

import time

import pytest
from clientkit import Cluster

from kafkito import aio
from kafkito.client import (
    Admin,
    AdminError,
    BrokerUnreachableError,
    ConfigError,
    InvalidRequestError,
    Reader,
    TopicExistsError,
    UnknownGroupError,
    UnknownTopicError,
    Writer,
    WriterConfig,
)


def _admin(cluster: Cluster) -> Admin:
    return Admin(brokers=cluster.bootstrap, settings=cluster.settings, timeout_s=15)


def _no_raw_repr(exc: BaseException) -> None:
    text = str(exc)
    assert "KafkaError{" not in text and "\n" not in text, text


def test_topics_configs_and_partitions(cluster: Cluster, topic: str) -> None:
    with _admin(cluster) as admin:
        assert admin.create_topic(topic, 3, configs={"retention.ms": "3600000"}) is True
        assert admin.create_topic(topic, 3, if_not_exists=True) is False
        with pytest.raises(TopicExistsError) as exists:
            admin.create_topic(topic, 3)
        assert topic in str(exists.value) and "TOPIC_ALREADY_EXISTS" in str(exists.value)
        _no_raw_repr(exists.value)

        listed = {t.name: t for t in admin.list_topics()}
        assert [p.partition for p in listed[topic].partitions] == [0, 1, 2]
        described = admin.describe_topic(topic)
        assert described.replication_factor == 1
        assert all(p.leader >= 0 and p.replicas for p in described.partitions)
        configs = admin.describe_configs(topic)
        assert configs["retention.ms"].value == "3600000"
        # Tansu reports every config as a default (DEFAULT_CONFIG), even those set on the topic.
        assert configs["retention.ms"].is_default is (cluster.kind == "tansu")
        admin.alter_configs(topic, set={"retention.ms": "7200000", "segment.ms": "600000"})
        configs = admin.describe_configs(topic)
        assert configs["retention.ms"].value == "7200000"
        assert configs["segment.ms"].value == "600000"
        if cluster.kind == "kafkito":
            admin.alter_configs(topic, delete=["segment.ms"])  # incremental: retention stays
            configs = admin.describe_configs(topic)
            assert configs["segment.ms"].is_default and configs["retention.ms"].value == "7200000"
            admin.create_partitions(topic, 4)
            assert admin.partitions(topic) == [0, 1, 2, 3]
        else:  # Tansu does not serve CreatePartitions: a typed error that says so
            with pytest.raises(AdminError, match="_UNSUPPORTED_FEATURE") as unsupported:
                admin.create_partitions(topic, 4)
            _no_raw_repr(unsupported.value)

        admin.delete_topics(topic)
        with pytest.raises(UnknownTopicError) as gone:
            admin.describe_topic(topic)
        assert repr(topic) in str(gone.value)
        _no_raw_repr(gone.value)


def test_bad_requests_are_typed_errors(broker: str, topic_name: str) -> None:
    with Admin(brokers=broker, timeout_s=15) as admin:
        with pytest.raises(InvalidRequestError, match="INVALID_PARTITIONS"):
            admin.create_topic(topic_name, 0)
        admin.create_topic(topic_name)
        with pytest.raises(InvalidRequestError, match=r"no\.such\.config") as bad:
            admin.alter_configs(topic_name, set={"no.such.config": "1"})
        _no_raw_repr(bad.value)
        with pytest.raises(UnknownTopicError):
            admin.delete_topics("no-such-topic-here")
        with pytest.raises(ConfigError):
            admin.list_offsets(topic_name, "yesterday")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown config key 'colour'"):
        Admin({"colour": "blue"})


def test_unreachable_brokers_fail_at_once_with_one_line() -> None:
    started = time.monotonic()
    with pytest.raises(BrokerUnreachableError) as unreachable:
        Admin(brokers="127.0.0.1:1", timeout_s=1)
    assert time.monotonic() - started < 30  # a hang guard, not a timing goal
    assert "127.0.0.1:1" in str(unreachable.value)
    _no_raw_repr(unreachable.value)


def test_offsets_and_delete_records(cluster: Cluster, topic: str) -> None:
    with _admin(cluster) as admin:
        admin.create_topic(topic, 1)
        # One record per request: Tansu answers ListOffsets(latest) wrongly for batches.
        with Writer(topic, brokers=cluster.bootstrap) as writer:
            before_ms = int(time.time() * 1000) - 1
            for i in range(5):
                writer.write(f"v{i}")
        assert admin.list_offsets(topic, "earliest") == {0: 0}
        assert admin.list_offsets(topic, "latest") == {0: 5}
        assert admin.list_offsets(topic, before_ms) == {0: 0}
        future = admin.list_offsets(topic, int(time.time() * 1000) + 3_600_000)
        # No record that late: Apache Kafka and kafkito answer -1 (None); Tansu answers 0.
        assert future == ({0: None} if cluster.kind == "kafkito" else {0: 0})
        assert admin.watermarks([(topic, 0)]) == {(topic, 0): (0, 5)}
        if cluster.kind == "kafkito":  # Tansu drops the connection on DeleteRecords
            assert admin.delete_records(topic, {0: 3}) == {0: 3}
            assert admin.watermarks([(topic, 0)]) == {(topic, 0): (3, 5)}
        with pytest.raises(UnknownTopicError):
            admin.list_offsets("no-such-topic-here")


def test_groups_offsets_lag_and_delete(group_cluster: Cluster, topic: str, group: str) -> None:
    cluster = group_cluster
    with _admin(cluster) as admin:
        admin.create_topic(topic, 2)
        with Writer(topic, brokers=cluster.bootstrap) as writer:
            for i in range(6):
                writer.write(f"v{i}", key=f"k{i % 3}")
        reader = Reader(topic, brokers=cluster.bootstrap, group_id=group, settings=cluster.settings)
        try:
            assert reader.read_value(lambda v: None, limit=6, handle_signals=False) == 6
            reader.commit()
            listed = {g.group_id: g for g in admin.list_groups()}
            assert group in listed
            described = admin.describe_group(group)
            assert described.state == "STABLE"
            if cluster.kind == "kafkito":  # Tansu lists no members (and a member id as assignor)
                assert len(described.members) == 1
                assert sorted(described.members[0].assignment) == [(topic, 0), (topic, 1)]
                assert described.assignor == "range"
        finally:
            reader.close()
        ends = admin.list_offsets(topic)
        assert sum(e or 0 for e in ends.values()) == 6
        committed = admin.group_offsets(group)
        assert committed == {(topic, p): e for p, e in ends.items() if e}
        lag = admin.group_lag(group)
        assert all(row.lag == 0 and row.member is None for row in lag)

        moved = {(topic, p): 0 for p in ends}
        admin.alter_group_offsets(group, moved)
        assert admin.group_offsets(group) == moved
        assert sum(row.lag or 0 for row in admin.group_lag(group)) == 6

        admin.delete_groups(group)
        assert group not in {g.group_id for g in admin.list_groups()}
        assert admin.group_offsets(group) == {}
        if cluster.kind == "kafkito":  # Tansu describes a group it does not know as EMPTY
            with pytest.raises(UnknownGroupError) as missing:
                admin.group_lag(group)
            _no_raw_repr(missing.value)


def test_admin_takes_the_writers_and_readers_configs(broker: str, topic_name: str) -> None:
    config = WriterConfig.from_dict({"brokers": [broker], "client": {"client_id": "ops"}})
    with Admin(config) as admin:
        admin.create_topic(topic_name)
    reader_keys = {"brokers": broker, "topic": topic_name, "group_id": "g", "commit_interval": 1}
    with Admin(reader_keys) as admin:
        assert admin.partitions(topic_name) == [0]
        info = admin.describe_cluster()
        assert [f"{b.host}:{b.port}" for b in info.brokers] == [broker]


async def test_async_admin_mirrors_the_sync_one(cluster: Cluster, topic: str) -> None:
    async with aio.Admin(brokers=cluster.bootstrap, settings=cluster.settings) as admin:
        assert await admin.create_topic(topic, 2) is True
        assert await admin.partitions(topic) == [0, 1]
        async with aio.Writer(topic, brokers=cluster.bootstrap) as writer:
            for i in range(3):
                await writer.write(f"v{i}", key="same")  # one key: one partition
        ends = await admin.list_offsets(topic)
        assert sorted(ends.values()) == [0, 3]
        assert topic in {t.name for t in await admin.list_topics()}
        if cluster.kind == "kafkito":  # Tansu describes a group it does not know as EMPTY
            with pytest.raises(UnknownGroupError):
                await admin.group_lag(f"no-such-group-{topic}")
        assert await admin.group_offsets(f"no-such-group-{topic}") == {}
        await admin.delete_topics(topic)
        with pytest.raises(UnknownTopicError):
            await admin.describe_topic(topic)
