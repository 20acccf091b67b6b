"""Consumer groups as the clients show them, kafkito vs Apache Kafka.

Two confluent-kafka members subscribe with one assignor (range, roundrobin, cooperative-sticky:
the leader computes the assignment client-side from both members' metadata), commit offsets
with metadata strings, one leaves, the other takes everything, and both close; the same with
two kafka-python members (roundrobin) and two aiokafka members (range). Along the way the
group is described and its offsets listed by each admin client the way it shows them
(confluent-kafka's AdminClient, kafka-python's KafkaAdminClient, aiokafka's
AIOKafkaAdminClient), and the observations are compared with Apache Kafka's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from compat.differential import (
    Brokers,
    Observations,
    create_topic,
    run_differential,
    scrub,
    unique,
)
from compat.test_groups_worker import unstick_kafka_python

PARTITIONS = 4


def _wait(
    condition: Callable[[], Any],
    timeout_s: float,
    what: str,
    tick: Callable[[], None],
    state: Callable[[], Any] = lambda: None,
) -> None:
    """Call `tick` (polls the members) until `condition` holds; fail naming `what`, with
    `state()` (what the members own, how the broker describes the group)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}: {state()}")
        tick()


def members_shape(members: list[tuple[str, str, list[int]]]) -> Observations:
    """(client id, host, partitions) per member, as a shape: which member gets which
    partitions follows the assignor's sort by member id, and member ids are random (the
    broker makes them), so the counts and their union are compared, not the pairing."""
    return {
        "clients": sorted((client, host) for client, host, _ in members),
        "partition counts": sorted(len(parts) for _, _, parts in members),
        "partitions": sorted(p for _, _, parts in members for p in parts),
    }


def ck_describe(bootstrap: str, group: str) -> Observations:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    (future,) = admin.describe_consumer_groups([group], request_timeout=15).values()
    d = future.result(timeout=20)
    return {
        "state": d.state.name,
        "type": d.type.name,
        "assignor": d.partition_assignor,
        "simple": d.is_simple_consumer_group,
        "members": members_shape(
            [
                (m.client_id, m.host, [tp.partition for tp in m.assignment.topic_partitions])
                for m in d.members
            ]
        ),
    }


def kp_describe(bootstrap: str, group: str) -> Observations:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        d = dict(admin.describe_groups([group])[group])
    finally:
        admin.close()
    members = d.pop("members")
    shape = []
    for m in members:
        assignment = m.get("member_assignment") or {}
        parts = [p for t in assignment.get("assigned_partitions", []) for p in t["partitions"]]
        shape.append((m["client_id"], m["client_host"], parts))
    d["members"] = members_shape(shape)
    return d


def aio_describe(bootstrap: str, group: str) -> Observations:
    from aiokafka.admin import AIOKafkaAdminClient

    async def run() -> Any:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
        await admin.start()
        try:
            (response,) = await admin.describe_consumer_groups([group])
        finally:
            await admin.close()
        return response

    response = asyncio.run(run())
    # aiokafka returns the DescribeGroups response itself: (error, group, state, protocol
    # type, protocol, members(member id, client id, host, metadata, assignment), ...)
    (g,) = response.groups
    error, _group, state, protocol_type, protocol, members = g[:6]
    return {
        "error": error,
        "state": state,
        "protocol_type": protocol_type,
        "protocol": protocol,
        "members": sorted((m[1], m[2], len(m[3]) > 0, len(m[4]) > 0) for m in members),
    }


def offsets_every_way(bootstrap: str, group: str, topic: str) -> Observations:
    from aiokafka.admin import AIOKafkaAdminClient
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient
    from kafka.admin import KafkaAdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, p) for p in range(PARTITIONS)]
    )
    # Not confluent-kafka's view of the metadata: it hands it to Python as a C string
    # (TopicPartition_new0 takes a `const char *`) where librdkafka keeps bytes and a length,
    # so the read runs on past the end into whatever follows in memory: "meta-m1" came back
    # as "meta-m1411-3a9cc7f80c38" (from Apache Kafka) and as undecodable bytes (from
    # kafkito) under load. kafka-python and aiokafka read the metadata below.
    (future,) = admin.list_consumer_group_offsets([request]).values()
    ck = [
        [tp.partition, tp.offset, tp.leader_epoch, str(tp.error)]
        for tp in future.result(timeout=20).topic_partitions
    ]
    kp_admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        kp = sorted(
            [tp.partition, om.offset, om.metadata, getattr(om, "leader_epoch", None)]
            for tp, om in kp_admin.list_group_offsets({group: None})[group].items()
        )
    finally:
        kp_admin.close()

    async def aio_offsets() -> Any:
        aio_admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
        await aio_admin.start()
        try:
            return await aio_admin.list_consumer_group_offsets(group)
        finally:
            await aio_admin.close()

    aio = sorted(
        [tp.partition, om.offset, om.metadata] for tp, om in asyncio.run(aio_offsets()).items()
    )
    return {"confluent": ck, "kafka-python": kp, "aiokafka": aio}


DESCRIBERS = {"confluent": ck_describe, "kafka-python": kp_describe, "aiokafka": aio_describe}


def group_scenario(assignor: str) -> Callable[[str], Observations]:
    from confluent_kafka import Consumer, Producer, TopicPartition

    def scenario(bootstrap: str) -> Observations:
        topic, group = unique("cg"), unique("cgg")
        create_topic(bootstrap, topic, PARTITIONS)
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        for i in range(PARTITIONS * 2):
            producer.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS)
        assert producer.flush(15) == 0

        def member(name: str) -> Any:
            consumer = Consumer(
                {
                    "bootstrap.servers": bootstrap,
                    "group.id": group,
                    "client.id": name,
                    "partition.assignment.strategy": assignor,
                    "session.timeout.ms": 6000,
                    "heartbeat.interval.ms": 200,
                    "auto.offset.reset": "earliest",
                    "enable.auto.commit": False,
                }
            )
            consumer.subscribe([topic])
            return consumer

        members = [member("m1")]
        read: dict[str, int] = {"m1": 0, "m2": 0}

        def tick() -> None:
            for name, c in zip(("m1", "m2"), members, strict=False):
                msg = c.poll(0.05)
                if msg is not None and not msg.error():
                    read[name] += 1

        def owned() -> list[list[int]]:
            return [sorted(tp.partition for tp in c.assignment()) for c in members]

        def settled(n: int) -> bool:
            parts = owned()
            return len(parts) == n and all(parts) and sum(map(len, parts)) == PARTITIONS

        seen: Observations = {}
        try:
            _wait(lambda: settled(1), 60, "the first member's assignment", tick)
            seen["one member"] = owned()
            members.append(member("m2"))
            _wait(lambda: settled(2) and ck_describe(bootstrap, group)["state"] == "STABLE",
                  60, "two members, stable", tick)  # fmt: skip
            # which member gets which partitions depends on member ids (random): the shape
            seen["two members"] = sorted(map(len, owned()))
            for name, describe in DESCRIBERS.items():
                seen[f"describe two by {name}"] = describe(bootstrap, group)
            mine = [tp.partition for tp in members[0].assignment()]
            members[0].commit(
                offsets=[TopicPartition(topic, p, 1, metadata="meta-m1") for p in mine],
                asynchronous=False,
            )
            offsets = offsets_every_way(bootstrap, group, topic)
            # which partitions m1 owned is random (member ids): keep only the committed rows
            seen["offsets"] = {
                client: sorted(row[1:] for row in rows if row[1] != -1 and row[1] != -1001)
                for client, rows in offsets.items()
            }
            members.pop().close()  # m2 leaves: LeaveGroup, m1 takes everything
            _wait(lambda: settled(1) and ck_describe(bootstrap, group)["state"] == "STABLE",
                  60, "m1 alone, stable", tick)  # fmt: skip
            seen["after leave"] = owned()
            seen["m1 read"] = read["m1"] > 0
            seen["describe after leave"] = ck_describe(bootstrap, group)
        finally:
            for c in members:
                c.close()
        seen["describe closed"] = {name: d(bootstrap, group) for name, d in DESCRIBERS.items()}
        return scrub(seen, {topic: "<topic>", group: "<group>"})

    return scenario


@pytest.mark.parametrize("assignor", ["range", "roundrobin", "cooperative-sticky"])
def test_two_members_describe_commit_leave(brokers: Brokers, assignor: str) -> None:
    run_differential(group_scenario(assignor), brokers)


def _produce_spread(bootstrap: str, topic: str) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for i in range(PARTITIONS * 2):
        producer.produce(topic, value=f"v{i}".encode(), partition=i % PARTITIONS)
    assert producer.flush(15) == 0


def describe_while_stable(
    bootstrap: str,
    group: str,
    stable: Callable[[], bool],
    pause: Callable[[], None],
    sizes: Callable[[], list[int]],
) -> tuple[list[int], dict[str, Any]]:
    """The group as every client describes it, all taken while it stays stable.

    kafka-python members may start a rebalance a moment after the group settled (a member
    rejoins when its view of the topic's metadata moves, on either broker), so one describer
    can see PreparingRebalance where the one before saw Stable: that is the client's timing,
    not the broker's answer. Take them again once the group is stable again (at most 5 times,
    then the last set is returned and compared as it is). Returned with how many partitions
    each member owned (`sizes`), read before and after the describes and equal in both."""
    owned: list[int] = []
    described: dict[str, Any] = {}
    for _ in range(5):
        _wait(stable, 60, "the group stable again", pause)
        owned = sizes()
        described = {name: d(bootstrap, group) for name, d in DESCRIBERS.items()}
        states = [one.get("state", one.get("group_state")) for one in described.values()]
        if all(str(state).lower() == "stable" for state in states) and sizes() == owned:
            break
    return owned, described


def kafka_python_group_scenario(bootstrap: str) -> Observations:
    """Two kafka-python members (each in its own thread: KafkaConsumer joins inside poll),
    roundrobin; m1 commits with metadata, m2 leaves, m1 takes everything."""
    import threading

    from kafka import KafkaConsumer, TopicPartition
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
    from kafka.errors import CommitFailedError, RebalanceInProgressError
    from kafka.structs import MemberState, OffsetAndMetadata

    topic, group = unique("kpg"), unique("kpgg")
    create_topic(bootstrap, topic, PARTITIONS)
    _produce_spread(bootstrap, topic)
    owned: dict[str, list[int]] = {}
    stops = {name: threading.Event() for name in ("m1", "m2")}
    commit_now, committed = threading.Event(), threading.Event()
    refused: list[str] = []  # m1's commits the group refused (a rebalance under way)

    def run(name: str) -> None:
        c = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            partition_assignment_strategy=[RoundRobinPartitionAssignor],
            session_timeout_ms=6000,
            heartbeat_interval_ms=200,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        # the topic's metadata first: kafka-python may join before its first Metadata answer,
        # and a leader without it assigns nothing; it then sometimes misses the update that
        # should make it rejoin (KAFKA-3949's race, seen under load against either broker)
        assert c.partitions_for_topic(topic), f"no metadata for {topic}"
        c.subscribe([topic])
        stuck_since: float | None = None
        try:
            while not stops[name].is_set():
                c.poll(timeout_ms=100)
                stuck_since = unstick_kafka_python(c, stuck_since)
                # what it owns, once it knows it is in the group (a member stuck by the bug
                # unstick_kafka_python mends still holds its old assignment)
                joined = c._coordinator.state is MemberState.STABLE
                owned[name] = sorted(tp.partition for tp in c.assignment()) if joined else []
                if name == "m1" and owned[name] and commit_now.is_set() and not committed.is_set():
                    try:
                        c.commit(
                            {
                                TopicPartition(topic, p): OffsetAndMetadata(1, "meta-m1", -1)
                                for p in owned[name]
                            }
                        )
                    except (CommitFailedError, RebalanceInProgressError) as exc:
                        # a rejoin began after the group looked stable (kafka-python rejoins
                        # when its metadata moves; Apache Kafka answered this in CI): as an
                        # application does, poll (rejoin) and commit what it owns then
                        refused.append(repr(exc))
                        continue
                    committed.set()
        finally:
            c.close()  # LeaveGroup
            owned.pop(name, None)

    threads = {name: threading.Thread(target=run, args=(name,), daemon=True) for name in stops}
    seen: Observations = {}

    def shape(n: int) -> bool:
        parts = list(owned.values())
        return len(parts) == n and all(parts) and sum(map(len, parts)) == PARTITIONS

    def stable(n: int) -> bool:
        return shape(n) and ck_describe(bootstrap, group)["state"] == "STABLE"

    def state() -> Any:
        return dict(owned), ck_describe(bootstrap, group)

    def pause() -> None:
        time.sleep(0.1)

    try:
        threads["m1"].start()
        _wait(lambda: stable(1), 60, "m1 alone", pause, state)
        threads["m2"].start()
        _wait(lambda: stable(2), 60, "two members", pause, state)
        seen["two members"], seen["describe two"] = describe_while_stable(
            bootstrap, group, lambda: stable(2), pause, lambda: sorted(map(len, owned.values()))
        )
        commit_now.set()
        _wait(
            committed.is_set,
            30,
            "m1's commit",
            lambda: time.sleep(0.05),
            lambda: (state(), refused, {n: t.is_alive() for n, t in threads.items()}),
        )
        _wait(lambda: stable(2), 60, "two members after m1's commit", pause, state)
        offsets = offsets_every_way(bootstrap, group, topic)
        seen["offsets"] = {
            client: sorted(row[1:] for row in rows if row[1] not in (-1, -1001))
            for client, rows in offsets.items()
        }
        stops["m2"].set()
        threads["m2"].join(30)
        for _ in range(5):  # m1's view, read while it is in the group (not mid-rejoin)
            _wait(lambda: stable(1), 60, "m1 alone again", pause, state)
            seen["after leave"] = list(owned.values())
            if all(seen["after leave"]):
                break
    finally:
        for name, stop in stops.items():
            stop.set()
            if threads[name].is_alive():
                threads[name].join(30)
    seen["describe closed"] = {name: d(bootstrap, group) for name, d in DESCRIBERS.items()}
    return scrub(seen, {topic: "<topic>", group: "<group>"})


def aiokafka_group_scenario(bootstrap: str) -> Observations:
    """Two aiokafka members (range, the default), m1 commits with metadata, m2 leaves."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    topic, group = unique("aiog"), unique("aiogg")
    create_topic(bootstrap, topic, PARTITIONS)
    _produce_spread(bootstrap, topic)

    async def run() -> Observations:
        def member(name: str) -> Any:
            return AIOKafkaConsumer(
                topic,
                bootstrap_servers=bootstrap,
                group_id=group,
                client_id=name,
                session_timeout_ms=6000,
                heartbeat_interval_ms=200,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )

        members = [member("m1")]
        await members[0].start()

        def owned() -> list[list[int]]:
            return [sorted(tp.partition for tp in c.assignment()) for c in members]

        async def settle(n: int, what: str) -> None:
            deadline = time.monotonic() + 60
            while True:
                parts = owned()
                ok = len(parts) == n and all(parts) and sum(map(len, parts)) == PARTITIONS
                describe = await asyncio.to_thread(ck_describe, bootstrap, group)
                if ok and describe["state"] == "STABLE":
                    return
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                await asyncio.gather(*(c.getmany(timeout_ms=100) for c in members))

        seen: Observations = {}
        try:
            await settle(1, "m1 alone")
            members.append(member("m2"))
            await members[1].start()
            await settle(2, "two members")
            seen["two members"] = sorted(map(len, owned()))
            seen["describe two"] = {
                name: await asyncio.to_thread(d, bootstrap, group) for name, d in DESCRIBERS.items()
            }
            mine = owned()[0]
            await members[0].commit(
                {TopicPartition(topic, p): OffsetAndMetadata(1, "meta-m1") for p in mine}
            )
            offsets = await asyncio.to_thread(offsets_every_way, bootstrap, group, topic)
            seen["offsets"] = {
                client: sorted(row[1:] for row in rows if row[1] not in (-1, -1001))
                for client, rows in offsets.items()
            }
            await members.pop().stop()  # LeaveGroup
            await settle(1, "m1 alone again")
            seen["after leave"] = owned()
        finally:
            for c in members:
                await c.stop()
        return seen

    seen = asyncio.run(run())
    seen["describe closed"] = {name: d(bootstrap, group) for name, d in DESCRIBERS.items()}
    return scrub(seen, {topic: "<topic>", group: "<group>"})


@pytest.mark.parametrize(
    "scenario",
    [kafka_python_group_scenario, aiokafka_group_scenario],
    ids=["kafka-python", "aiokafka"],
)
def test_two_members_of_the_other_clients(
    brokers: Brokers, scenario: Callable[[str], Observations]
) -> None:
    run_differential(scenario, brokers)
