"""KIP-848 consumer groups, the shapes: the `cgroup` metadata-log record of a group (written
whole on each change, read back at start-up) and the assignment as the wire carries it.

Pure functions of the model (consumer_model.py).
"""

from __future__ import annotations

import uuid
from typing import Any

from kafkito.broker.coordinator.assignors import Assignment
from kafkito.broker.coordinator.consumer_model import ConsumerGroup, ConsumerMember, MemberState
from kafkito.broker.coordinator.journal import Record


def wire_assignment(assigned: Assignment) -> dict[str, Any]:
    by_topic: dict[uuid.UUID, list[int]] = {}
    for topic_id, partition in assigned:
        by_topic.setdefault(topic_id, []).append(partition)
    return {
        "topic_partitions": [
            {"topic_id": t, "partitions": sorted(ps)}
            for t, ps in sorted(by_topic.items(), key=lambda kv: str(kv[0]))
        ]
    }


def named_assignment(assigned: Assignment, names: dict[uuid.UUID, str]) -> list[dict[str, Any]]:
    rows = wire_assignment(assigned)["topic_partitions"]
    return [{**row, "topic_name": names.get(row["topic_id"], "")} for row in rows]


def _tps(assigned: Assignment) -> list[list[Any]]:
    return sorted([str(t), p] for t, p in assigned)


def _from_tps(rows: list[list[Any]]) -> Assignment:
    return frozenset((uuid.UUID(t), int(p)) for t, p in rows)


def group_record(group: ConsumerGroup) -> Record:
    return {
        "type": "cgroup",
        "g": group.group_id,
        "epoch": group.epoch,
        "aepoch": group.assignment_epoch,
        "assignor": group.assignor,
        "topics": {name: list(v) for name, v in sorted(group.topics.items())},
        "since": group.empty_since_ms,
        "members": [
            {
                "id": m.member_id,
                "inst": m.instance_id,
                "rack": m.rack_id,
                "client": m.client_id,
                "host": m.client_host,
                "subs": list(m.subscribed),
                "regex": m.regex,
                "assignor": m.server_assignor,
                "rto": m.rebalance_timeout_ms,
                "epoch": m.epoch,
                "prev": m.previous_epoch,
                "before_leave": m.epoch_before_leave,
                "state": m.state.name,
                "assigned": _tps(m.assigned),
                "revoking": _tps(m.revoking),
                "target": _tps(group.target.get(m.member_id, frozenset())),
            }
            for m in group.members.values()
        ],
    }


def group_from_record(record: Record) -> ConsumerGroup:
    group = ConsumerGroup(
        record["g"],
        epoch=int(record["epoch"]),
        assignment_epoch=int(record["aepoch"]),
        assignor=record["assignor"],
        topics={name: (v[0], int(v[1])) for name, v in record["topics"].items()},
        empty_since_ms=int(record.get("since", 0)),
    )
    for row in record["members"]:
        member = ConsumerMember(
            row["id"],
            row["inst"],
            row["rack"],
            row["client"],
            row["host"],
            tuple(row["subs"]),
            row["regex"],
            row["assignor"],
            int(row["rto"]),
            int(row["epoch"]),
            int(row["prev"]),
            int(row["before_leave"]),
            MemberState[row["state"]],
            _from_tps(row["assigned"]),
            _from_tps(row["revoking"]),
        )
        group.members[member.member_id] = member
        group.target[member.member_id] = _from_tps(row["target"])
        if member.instance_id is not None:
            group.static_members[member.instance_id] = member.member_id
    return group
