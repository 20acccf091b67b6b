"""KIP-848 consumer groups on the embedded broker, with confluent-kafka (`group.protocol=consumer`)
and the classic protocol beside them: join, leave, crash, partition growth, static membership,
mixing refused, and a restart that members ride through with their epochs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, ConsumerGroupType, Producer
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

from kafkito import Broker
from kafkito.client import Admin
from kafkito.testing.brokers import BrokerProcess
from kafkito.testing.wire import WireClient

SESSION_MS = 2000
DEADLINE_S = 30.0
BROKER_EXTRA = {
    "group.consumer.session.timeout.ms": str(SESSION_MS),
    "group.consumer.heartbeat.interval.ms": "250",
}


@pytest.fixture
def kip848_broker(tmp_path: Path) -> Iterator[str]:
    """A broker whose consumer groups expire a silent member after 2 s (Kafka: 45 s)."""
    with Broker(port=0, data_dir=str(tmp_path / "data"), extra=dict(BROKER_EXTRA)) as bootstrap:
        yield bootstrap


def make_topic(bootstrap: str, partitions: int) -> str:
    name = f"kip848-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=10)
    return name


def member(bootstrap: str, group: str, **extra: Any) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "auto.offset.reset": "earliest",
        **extra,
    }
    return Consumer(conf)


def parts(consumer: Consumer) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in consumer.assignment()}


def wait_for(
    consumers: list[Consumer], done: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S
) -> None:
    """Poll every consumer until `done()`; fail with `what` and the assignments at the deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for c in consumers:
            c.poll(0.05)
        if done():
            return
    pytest.fail(
        f"{what}: not reached in {timeout_s} s; assignments {[parts(c) for c in consumers]}"
    )


def disjoint_cover(consumers: list[Consumer], topic: str, partitions: int) -> bool:
    """Each partition owned by exactly one member (never two, never none); a member may still
    hold everything, so callers that wait for the end of a rebalance also ask `balanced`."""
    owned = [parts(c) for c in consumers]
    every = [tp for o in owned for tp in o]
    return len(every) == len(set(every)) and set(every) == {(topic, p) for p in range(partitions)}


def balanced(consumers: list[Consumer]) -> bool:
    sizes = [len(parts(c)) for c in consumers]
    return max(sizes) - min(sizes) <= 1


def describe(bootstrap: str, group: str) -> Any:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group])[group].result(timeout=10)


def test_members_share_partitions_and_take_over_on_leave(kip848_broker: str) -> None:
    topic = make_topic(kip848_broker, 6)
    producer = Producer({"bootstrap.servers": kip848_broker})
    for i in range(60):
        producer.produce(topic, f"v{i}".encode(), partition=i % 6)
    producer.flush(10)
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumers = [member(kip848_broker, group) for _ in range(3)]
    for c in consumers:
        c.subscribe([topic])
    try:
        wait_for(
            consumers,
            lambda: disjoint_cover(consumers, topic, 6) and balanced(consumers),
            "three members with two partitions each",
        )
        described = describe(kip848_broker, group)
        assert described.type is ConsumerGroupType.CONSUMER
        assert sorted(len(m.assignment.topic_partitions) for m in described.members) == [2, 2, 2]
        leaver = consumers.pop()
        leaver.close()
        wait_for(
            consumers,
            lambda: disjoint_cover(consumers, topic, 6) and balanced(consumers),
            "two members with three partitions each after a leave",
        )
    finally:
        for c in consumers:
            c.close()


CHILD = """
import sys, time
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
              "group.protocol": "consumer", "auto.offset.reset": "earliest"})
c.subscribe([sys.argv[3]])
while True:
    c.poll(0.1)
    if c.assignment():
        print("assigned", flush=True)
"""


def test_a_killed_member_loses_its_partitions_after_its_session(kip848_broker: str) -> None:
    topic = make_topic(kip848_broker, 4)
    group = f"g-{uuid.uuid4().hex[:6]}"
    survivor = member(kip848_broker, group)
    survivor.subscribe([topic])
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, kip848_broker, group, topic],
        stdout=subprocess.PIPE,
        env={**os.environ},
    )
    try:
        wait_for(
            [survivor],
            lambda: len(parts(survivor)) == 2,
            "the survivor holds half once the child joined",
        )
        assert child.stdout is not None and child.stdout.readline().strip() == b"assigned"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        wait_for(
            [survivor],
            lambda: len(parts(survivor)) == 4,
            "the survivor takes every partition after the dead member's session",
        )
        states = [
            len(m.assignment.topic_partitions) for m in describe(kip848_broker, group).members
        ]
        assert states == [4]
    finally:
        child.kill()
        child.wait(10)
        survivor.close()


def test_partition_growth_reaches_the_members(kip848_broker: str) -> None:
    topic = make_topic(kip848_broker, 2)
    group = f"g-{uuid.uuid4().hex[:6]}"
    consumers = [member(kip848_broker, group) for _ in range(2)]
    for c in consumers:
        c.subscribe([topic])
    try:
        wait_for(
            consumers,
            lambda: disjoint_cover(consumers, topic, 2) and balanced(consumers),
            "one partition each",
        )
        admin = AdminClient({"bootstrap.servers": kip848_broker})
        admin.create_partitions([NewPartitions(topic, 6)])[topic].result(timeout=10)
        wait_for(
            consumers,
            lambda: disjoint_cover(consumers, topic, 6) and balanced(consumers),
            "the four new partitions shared out",
        )
    finally:
        for c in consumers:
            c.close()


def test_a_static_member_restarting_moves_nothing(kip848_broker: str) -> None:
    topic = make_topic(kip848_broker, 4)
    group = f"g-{uuid.uuid4().hex[:6]}"
    other = member(kip848_broker, group)
    static = member(kip848_broker, group, **{"group.instance.id": "instance-a"})
    other.subscribe([topic])
    static.subscribe([topic])
    try:
        wait_for(
            [other, static],
            lambda: disjoint_cover([other, static], topic, 4) and balanced([other, static]),
            "two each",
        )
        held = parts(static)
        kept = parts(other)
        epoch_before = describe(kip848_broker, group)
        static.close()  # a static member leaves with epoch -2: its partitions wait for it
        time.sleep(0.5)  # the other member keeps polling below; nothing may move meanwhile
        for _ in range(5):
            other.poll(0.1)
        assert parts(other) == kept
        static = member(kip848_broker, group, **{"group.instance.id": "instance-a"})
        static.subscribe([topic])
        wait_for([other, static], lambda: parts(static) == held, "the instance gets its own back")
        assert parts(other) == kept
        described = describe(kip848_broker, group)
        assert {m.group_instance_id for m in described.members} == {None, "instance-a"}
        assert len(described.members) == len(epoch_before.members) == 2
    finally:
        other.close()
        static.close()


def heartbeat(client: WireClient, group: str, member_id: str, epoch: int, **fields: Any) -> Any:
    body = {
        "group_id": group,
        "member_id": member_id,
        "member_epoch": epoch,
        "rebalance_timeout": 30_000,
        "subscribed_topic_names": None,
        "topic_partitions": None,
        **fields,
    }
    return client.request(68, 1, body)


def test_classic_and_consumer_groups_side_by_side_and_mixing_refused(kip848_broker: str) -> None:
    topic = make_topic(kip848_broker, 2)
    classic_group, consumer_group = f"c-{uuid.uuid4().hex[:6]}", f"k-{uuid.uuid4().hex[:6]}"
    classic = Consumer(
        {
            "bootstrap.servers": kip848_broker,
            "group.id": classic_group,
            "auto.offset.reset": "earliest",
        }
    )
    modern = member(kip848_broker, consumer_group)
    classic.subscribe([topic])
    modern.subscribe([topic])
    try:
        wait_for([classic, modern], lambda: len(parts(classic)) == len(parts(modern)) == 2, "both")
        admin = AdminClient({"bootstrap.servers": kip848_broker})
        listed = {g.group_id: g.type for g in admin.list_consumer_groups().result(10).valid}
        assert listed[classic_group] is ConsumerGroupType.CLASSIC
        assert listed[consumer_group] is ConsumerGroupType.CONSUMER
        assert describe(kip848_broker, classic_group).type is ConsumerGroupType.CLASSIC
        with Admin(brokers=kip848_broker) as kafkito_admin:  # kafkito.client shows the type
            types = {g.group_id: g.type for g in kafkito_admin.list_groups()}
            assert (types[classic_group], types[consumer_group]) == ("CLASSIC", "CONSUMER")
            described = kafkito_admin.describe_group(consumer_group)
            assert (described.type, described.state, described.assignor) == (
                "CONSUMER",
                "STABLE",
                "uniform",
            )
            assert [len(m.assignment) for m in described.members] == [2]
        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "kafkito",
                "--brokers",
                kip848_broker,
                "--json",
                "groups",
                "list",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert cli.returncode == 0, cli.stderr
        rows = {row["group"]: row["type"] for row in map(json.loads, cli.stdout.splitlines())}
        assert (rows[classic_group], rows[consumer_group]) == ("CLASSIC", "CONSUMER")
        with WireClient(kip848_broker) as client:
            joined = heartbeat(
                client, classic_group, uuid.uuid4().hex, 0,
                subscribed_topic_names=(topic,), topic_partitions=(),
            )  # fmt: skip
            assert joined.error_code.name == "group_id_not_found"
            assert joined.error_message == f"Group {classic_group} is not a consumer group."
            answer = client.request(
                11,
                5,
                {
                    "group_id": consumer_group,
                    "session_timeout": 10_000,
                    "rebalance_timeout": 10_000,
                    "member_id": "",
                    "protocol_type": "consumer",
                    "protocols": [{"name": "range", "metadata": b""}],
                },
            )
            assert answer.error_code.name == "inconsistent_group_protocol"
    finally:
        classic.close()
        modern.close()


def test_members_keep_their_epochs_across_a_broker_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    with Broker(port=0, data_dir=data, extra=dict(BROKER_EXTRA)) as bootstrap:
        topic = make_topic(bootstrap, 3)
        with WireClient(bootstrap) as client:
            joined = heartbeat(
                client, "restart-group", "member-1", 0,
                subscribed_topic_names=(topic,), topic_partitions=(),
            )  # fmt: skip
        assert joined.error_code.name == "none"
        owned = joined.assignment.topic_partitions
        assert sum(len(t.partitions) for t in owned) == 3
    with (
        Broker(port=0, data_dir=data, extra=dict(BROKER_EXTRA)) as bootstrap,
        WireClient(bootstrap) as client,
    ):
        again = heartbeat(
            client,
            "restart-group",
            "member-1",
            joined.member_epoch,
            topic_partitions=[{"topic_id": t.topic_id, "partitions": t.partitions} for t in owned],
        )
        assert again.error_code.name == "none", again.error_message
        assert again.member_epoch == joined.member_epoch
        fenced = heartbeat(client, "restart-group", "member-1", joined.member_epoch + 1)
        assert fenced.error_code.name == "fenced_member_epoch"


def test_regex_subscription_and_a_hostile_pattern_refused(kip848_broker: str) -> None:
    first = make_topic(kip848_broker, 1)
    prefix = first[: len("kip848-") + 4]
    group = f"g-{uuid.uuid4().hex[:6]}"
    c = member(kip848_broker, group)
    c.subscribe([f"^{prefix}.*"])  # librdkafka sends it as subscribed_topic_regex
    try:
        wait_for([c], lambda: parts(c) == {(first, 0)}, "the matching topic assigned")
        second = prefix + "-more"
        admin = AdminClient({"bootstrap.servers": kip848_broker})
        admin.create_topics([NewTopic(second, 2, 1)])[second].result(timeout=10)
        wait_for(
            [c],
            lambda: parts(c) == {(first, 0), (second, 0), (second, 1)},
            "a new matching topic joins the subscription",
        )
    finally:
        c.close()
    with WireClient(kip848_broker) as client:
        hostile = heartbeat(
            client, group, "member-h", 0,
            subscribed_topic_regex="(a+)+$", topic_partitions=(),
        )  # fmt: skip
    assert hostile.error_code.name == "invalid_regular_expression"
    assert "repeat inside a repeat" in hostile.error_message


def test_an_empty_consumer_group_expires_with_its_offsets(tmp_path: Path) -> None:
    settings = {"offsets_retention_ms": 1500, "extra": dict(BROKER_EXTRA)}
    with Broker(port=0, data_dir=str(tmp_path / "data"), **settings) as bootstrap:
        topic = make_topic(bootstrap, 1)
        group = f"g-{uuid.uuid4().hex[:6]}"
        with WireClient(bootstrap) as client:
            joined = heartbeat(
                client, group, "member-1", 0,
                subscribed_topic_names=(topic,), topic_partitions=(),
            )  # fmt: skip
            committed = client.request(
                8,
                9,
                {
                    "group_id": group,
                    "generation_id_or_member_epoch": joined.member_epoch,
                    "member_id": "member-1",
                    "topics": [
                        {
                            "name": topic,
                            "partitions": [
                                {
                                    "partition_index": 0,
                                    "committed_offset": 3,
                                    "committed_metadata": "",
                                }
                            ],
                        }
                    ],
                },
            )
            assert committed.topics[0].partitions[0].error_code.name == "none"
            assert heartbeat(client, group, "member-1", -1).error_code.name == "none"

            def listed() -> list[str]:
                return [g.group_id for g in client.request(16, 5, {}).groups]

            assert group in listed(), "an empty group stays until its offsets expire"
            deadline = time.monotonic() + DEADLINE_S
            while group in listed():
                assert time.monotonic() < deadline, "the empty group never expired"
                time.sleep(0.1)
            fetched = client.request(
                9, 9, {"groups": [{"group_id": group, "member_epoch": -1, "topics": None}]}
            )
            assert list(fetched.groups[0].topics) == []


def test_a_member_rides_through_kill_9_of_the_broker(broker_process: BrokerProcess) -> None:
    """The group's record is fsynced before the heartbeat is answered: after SIGKILL and a
    restart the member heartbeats on with the epoch and partitions it was given."""
    bootstrap = broker_process.bootstrap
    topic = make_topic(bootstrap, 2)
    with WireClient(bootstrap) as client:
        joined = heartbeat(
            client, "kill-group", "member-1", 0,
            subscribed_topic_names=(topic,), topic_partitions=(),
        )  # fmt: skip
    assert joined.error_code.name == "none" and joined.member_epoch > 0
    broker_process.kill()  # SIGKILL: no flush, no clean-shutdown marker
    broker_process.start()  # the same port and data dir
    owned = [
        {"topic_id": t.topic_id, "partitions": t.partitions}
        for t in joined.assignment.topic_partitions
    ]
    with WireClient(bootstrap) as client:
        again = heartbeat(
            client, "kill-group", "member-1", joined.member_epoch, topic_partitions=owned
        )
        assert again.error_code.name == "none", again.error_message
        assert again.member_epoch == joined.member_epoch
        described = client.request(
            69, 1, {"group_ids": ["kill-group"], "include_authorized_operations": False}
        ).groups[0]
    assert [m.member_id for m in described.members] == ["member-1"]
    assert sum(len(t.partitions) for t in described.members[0].assignment.topic_partitions) == 2
