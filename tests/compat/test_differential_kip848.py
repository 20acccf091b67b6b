"""KIP-848 consumer groups on the wire, kafkito vs Apache Kafka 4.1.

A consumer-protocol client acts on the exact answer of each ConsumerGroupHeartbeat (the epoch
it is given, the partitions it may use, and the error: rejoin with epoch 0 on
FENCED_MEMBER_EPOCH or UNKNOWN_MEMBER_ID, stop on UNRELEASED_INSTANCE_ID...), and librdkafka
hides those answers behind its own retries. So the members here are raw connections: member
ids are chosen by the test (v1 members name themselves), which makes every answer comparable
as it is, epochs included. Assignments are compared by shape (how many partitions each member
holds, and that no partition is held twice), not by which member got which partition: both
brokers' uniform assignors balance, and member ids decide the rest.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from compat.differential import Brokers, Observations, create_topic, plain, run_differential, unique
from kafkito.testing.wire import WireClient

HEARTBEAT, DESCRIBE_CG, COMMIT, FETCH, LIST, DESCRIBE, DELETE, JOIN, FIND = (
    68, 69, 8, 9, 16, 15, 42, 11, 10,
)  # fmt: skip


def wait_coordinator(client: WireClient, group: str) -> None:
    """Kafka loads its offsets partition lazily: wait until it coordinates `group`."""
    deadline = time.monotonic() + 30
    while True:
        found = client.request(FIND, 4, {"key_type": 0, "coordinator_keys": [group]})
        if found.coordinators[0].error_code == 0:
            described = client.request(
                DESCRIBE_CG, 0, {"group_ids": [group], "include_authorized_operations": False}
            )
            if plain(described.groups[0].error_code) == "group_id_not_found":
                return
        assert time.monotonic() < deadline, f"no coordinator for {group}"
        time.sleep(0.1)


class Member:
    """One raw consumer-protocol member: remembers its epoch and what it owns."""

    def __init__(self, client: WireClient, group: str, member_id: str, topic: str) -> None:
        self.client, self.group, self.member_id, self.topic = client, group, member_id, topic
        self.epoch = 0
        self.owned: dict[Any, tuple[int, ...]] = {}

    def beat(self, *, epoch: int | None = None, **fields: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "group_id": self.group,
            "member_id": self.member_id,
            "member_epoch": self.epoch if epoch is None else epoch,
            "rebalance_timeout": 30_000,
            "subscribed_topic_names": None,
            "topic_partitions": [{"topic_id": t, "partitions": ps} for t, ps in self.owned.items()],
        }
        if body["member_epoch"] == 0:
            body["subscribed_topic_names"] = [self.topic]
            body["topic_partitions"] = []
        body.update(fields)
        answer = self.client.request(HEARTBEAT, 1, body)
        seen: dict[str, Any] = {
            "error": plain(answer.error_code),
            # the group's name is unique per run; the rest of Kafka's message is compared
            "message": (answer.error_message or "").replace(self.group, "<group>"),
            "epoch": answer.member_epoch,
        }
        if answer.error_code == 0 and answer.member_epoch >= 0:
            self.epoch = answer.member_epoch
        if answer.assignment is not None:
            self.owned = {
                t.topic_id: tuple(t.partitions) for t in answer.assignment.topic_partitions
            }
            seen["assigned"] = sum(len(ps) for ps in self.owned.values())
        return seen


def shape(members: list[Member]) -> dict[str, Any]:
    owned = [(t, p) for m in members for t, ps in m.owned.items() for p in ps]
    return {
        "counts": sorted(len(owned_by(m)) for m in members),
        "held_twice": len(owned) - len(set(owned)),
    }


def owned_by(m: Member) -> list[tuple[Any, int]]:
    return [(t, p) for t, ps in m.owned.items() for p in ps]


def describe_group(client: WireClient, group: str) -> dict[str, Any]:
    answer = client.request(
        DESCRIBE_CG, 1, {"group_ids": [group], "include_authorized_operations": False}
    ).groups[0]
    return {
        "error": plain(answer.error_code),
        "state": answer.group_state,
        "group_epoch": answer.group_epoch,
        "assignment_epoch": answer.assignment_epoch,
        "assignor": answer.assignor_name,
        "members": {
            m.member_id: {
                "epoch": m.member_epoch,
                "instance": m.instance_id,
                "subscribed": len(m.subscribed_topic_names),  # names are unique per run
                "assigned": sum(len(t.partitions) for t in m.assignment.topic_partitions),
                "target": sum(len(t.partitions) for t in m.target_assignment.topic_partitions),
                "type": m.member_type,
            }
            for m in answer.members
        },
    }


def test_consumer_group_life_cycle(brokers: Brokers) -> None:
    """Join, incremental rebalance (revoke first, then assign), commits and fetches with member
    epochs, describe/list/delete, errors, leave."""

    def scenario(bootstrap: str) -> Observations:
        topic, group = unique("kip848-t"), unique("kip848-g")
        create_topic(bootstrap, topic, 4)
        seen: Observations = {}
        with WireClient(bootstrap) as client:
            wait_coordinator(client, group)
            a = Member(client, group, "member-a", topic)
            b = Member(client, group, "member-b", topic)
            seen["a joins"] = a.beat()
            seen["a again"] = a.beat()
            seen["b joins"] = b.beat()
            seen["a told to revoke"] = a.beat()
            seen["described while reconciling"] = describe_group(client, group)
            seen["a revoked"] = a.beat()
            seen["b gets its share"] = b.beat()
            seen["a steady"] = a.beat()
            seen["shape"] = shape([a, b])
            seen["described"] = describe_group(client, group)
            topic_name = topic

            def commit(member_id: str, epoch: int, version: int = 9) -> Any:
                answer = client.request(
                    COMMIT,
                    version,
                    {
                        "group_id": group,
                        "generation_id_or_member_epoch": epoch,
                        "member_id": member_id,
                        "topics": [
                            {
                                "name": topic_name,
                                "partitions": [
                                    {
                                        "partition_index": 0,
                                        "committed_offset": 5,
                                        "committed_metadata": "",
                                    }
                                ],
                            }
                        ],
                    },
                )
                return plain(answer.topics[0].partitions[0].error_code)

            seen["commit at the epoch"] = commit("member-a", a.epoch)
            seen["commit stale epoch"] = commit("member-a", a.epoch - 1)
            seen["commit unknown member"] = commit("member-x", a.epoch)
            seen["commit v8"] = commit("member-a", a.epoch, 8)
            seen["commit admin"] = commit("", -1)

            def fetch(member_id: str | None, epoch: int) -> Any:
                answer = client.request(
                    FETCH,
                    9,
                    {
                        "groups": [
                            {
                                "group_id": group,
                                "member_id": member_id,
                                "member_epoch": epoch,
                                "topics": None,
                            }
                        ]
                    },
                ).groups[0]
                return {
                    "error": plain(answer.error_code),
                    "offsets": [
                        (p.partition_index, p.committed_offset)
                        for t in answer.topics
                        for p in t.partitions
                    ],
                }

            seen["fetch by member"] = fetch("member-b", b.epoch)
            seen["fetch stale"] = fetch("member-b", b.epoch + 1)
            seen["fetch admin"] = fetch(None, -1)
            seen["fenced"] = a.beat(epoch=a.epoch + 7)
            seen["unknown member"] = Member(client, group, "member-x", topic).beat(epoch=3)
            seen["bad epoch"] = a.beat(epoch=-3)
            seen["no member id"] = Member(client, group, "", topic).beat()
            seen["no subscription"] = Member(client, group, "member-y", topic).beat(
                subscribed_topic_names=None
            )
            seen["bad assignor"] = Member(client, group, "member-z", topic).beat(
                server_assignor="nope"
            )
            bad_regex = Member(client, group, "member-r", topic).beat(
                subscribed_topic_names=None, subscribed_topic_regex="kip848[-"
            )
            seen["bad regex"] = bad_regex["error"]  # the messages name each engine's parser
            seen["unknown group"] = Member(client, unique("nogroup"), "m", topic).beat(epoch=1)
            listed = client.request(LIST, 5, {"types_filter": ["consumer"]})
            seen["listed"] = [
                (g.group_id == group, g.protocol_type, g.group_state, g.group_type)
                for g in listed.groups
                if g.group_id == group
            ]
            classic_view = client.request(
                DESCRIBE, 5, {"groups": [group], "include_authorized_operations": False}
            ).groups[0]
            seen["describe groups"] = {
                "error": plain(classic_view.error_code),
                "state": classic_view.group_state,
                "protocol_type": classic_view.protocol_type,
                "members": len(classic_view.members),
            }
            deleted = client.request(DELETE, 2, {"groups_names": [group]})
            seen["delete non-empty"] = plain(deleted.results[0].error_code)
            seen["a leaves"] = a.beat(epoch=-1)
            seen["b alone"] = b.beat()
            seen["b alone again"] = b.beat()
            seen["b leaves"] = b.beat(epoch=-1)
            seen["described empty"] = describe_group(client, group)
            deleted = client.request(DELETE, 2, {"groups_names": [group]})
            seen["delete empty"] = plain(deleted.results[0].error_code)
            seen["described deleted"] = describe_group(client, group)
        return seen

    run_differential(scenario, brokers)


def test_static_members_and_mixing(brokers: Brokers) -> None:
    """Static membership (-2 leave keeps the partitions; another member with the instance id
    is refused), and a group speaking one protocol: a classic JoinGroup on a consumer group."""

    def scenario(bootstrap: str) -> Observations:
        topic, group = unique("kip848-s"), unique("kip848-sg")
        create_topic(bootstrap, topic, 2)
        seen: Observations = {}
        with WireClient(bootstrap) as client:
            wait_coordinator(client, group)
            a = Member(client, group, "static-a", topic)
            seen["a joins"] = a.beat(instance_id="instance-1")
            seen["a again"] = a.beat()
            intruder = Member(client, group, "static-b", topic)
            seen["same instance, other member"] = intruder.beat(instance_id="instance-1")
            seen["a leaves for now"] = a.beat(epoch=-2, instance_id="instance-1")
            seen["described after -2"] = describe_group(client, group)
            back = Member(client, group, "static-c", topic)
            seen["instance back"] = back.beat(instance_id="instance-1")
            seen["described after return"] = describe_group(client, group)
            seen["old member id"] = a.beat(instance_id="instance-1")
            for protocol_type in ("consumer", "connect"):
                join = client.request(
                    JOIN,
                    5,
                    {
                        "group_id": group,
                        "session_timeout": 10_000,
                        "rebalance_timeout": 10_000,
                        "member_id": "",
                        "protocol_type": protocol_type,
                        "protocols": [{"name": "range", "metadata": b""}],
                    },
                )
                seen[f"classic join, {protocol_type}"] = plain(join.error_code)
            seen["leave"] = back.beat(epoch=-1, instance_id="instance-1")
        return seen

    allowed = {
        "classic join, consumer": "Kafka 4 takes a classic member of protocol type 'consumer' "
        "into a consumer group (online migration, KIP-848); kafkito keeps a group on one "
        "protocol and refuses with INCONSISTENT_GROUP_PROTOCOL, Kafka's error for a classic "
        "member it cannot take (docs/broker.md)",
    }
    run_differential(scenario, brokers, allowed=allowed)


def test_range_assignor_results(brokers: Brokers) -> None:
    """Two members choosing the server-side `range` assignor on two co-partitioned topics: the
    same partitions per member on both brokers (member ids are the test's, so comparable)."""

    def scenario(bootstrap: str) -> Observations:
        topics = [unique("kip848-r1"), unique("kip848-r2")]
        group = unique("kip848-rg")
        for topic in topics:
            create_topic(bootstrap, topic, 3)
        seen: Observations = {}
        with WireClient(bootstrap) as client:
            wait_coordinator(client, group)
            members = [Member(client, group, f"member-{n}", topics[0]) for n in "ab"]
            for m in members:
                m.beat(subscribed_topic_names=topics, server_assignor="range")
            for _ in range(4):  # revoke, then assign: a few rounds settle both members
                for m in members:
                    m.beat()
            ids = {}
            for topic in topics:
                found = client.request(
                    3,
                    12,
                    {
                        "topics": [{"name": topic, "topic_id": uuid.UUID(int=0)}],
                        "allow_auto_topic_creation": False,
                        "include_topic_authorized_operations": False,
                    },
                ).topics[0]
                ids[found.topic_id] = topics.index(topic)  # ids are per deployment
            seen["owned"] = {
                m.member_id: sorted((ids[t], p) for t, ps in m.owned.items() for p in ps)
                for m in members
            }
            described = describe_group(client, group)
            seen["assignor"] = described["assignor"]
            seen["state"] = described["state"]
            for m in members:
                m.beat(epoch=-1)
        return seen

    run_differential(scenario, brokers)
