"""Differential testing: run one scenario on kafkito's broker and on Apache Kafka, compare.

A scenario is a plain function `(bootstrap) -> observations`: it drives a real client (or the
raw `WireClient` where a client hides an answer) against the broker at `bootstrap` and returns
what the client saw as plain data: error codes or exception types, offsets, watermarks,
timestamps and their types, record contents, metadata shape, group states and assignments. The
same function runs against both brokers and the two results must be equal. "Both pass" is not
enough: a broker that answers a stale commit with the wrong error code passes a test that only
checks "the commit failed", and the client may then take the wrong recovery path.

Normalisation happens inside the scenario, next to the value it touches, and each one carries a
comment saying why the difference it removes is legitimate (ports, cluster ids, topic ids,
member ids and node ids are chosen per deployment; no client behaves differently on their
values). Nothing else is normalised: a difference that remains is a kafkito bug to fix, or an
intended difference listed in docs/broker.md "Differences from Apache Kafka", which a test names
through `allowed=` with its reason, so that it is visible in the test and still checked everywhere
else.

Both brokers have one node (the reference runs with replication factor 1), and the reference
node is shared by the whole session: scenarios must use unique topic and group names.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Observations = dict[str, Any]
Scenario = Callable[[str], Observations]

__all__ = [
    "Brokers",
    "Observations",
    "Scenario",
    "assert_same_observations",
    "create_topic",
    "differences",
    "plain",
    "run_differential",
    "scrub",
    "unique",
]


@dataclass(frozen=True, slots=True)
class Brokers:
    """The two bootstraps a differential test compares: ours and the reference."""

    kafkito: str
    kafka: str


def unique(prefix: str) -> str:
    """A topic or group name no other test uses (the reference node is session-wide)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def plain(value: Any) -> Any:
    """A kio response (dataclasses, enums, timedeltas, tuples) as plain comparable data.

    Error codes become their names, so that a diff reads "not_coordinator" and not "16".
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, datetime.timedelta):
        return int(value / datetime.timedelta(milliseconds=1))
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return value


def scrub(value: Any, names: Mapping[str, str]) -> Any:
    """Replace each unique name (topic, group) with its label, in strings and bytes alike.

    Topic and group names are unique per run because the reference node is shared by the
    session; the label keeps which name was which (they also appear inside consumer-protocol
    bytes, which are compared whole).
    """
    if isinstance(value, dict):
        return {k: scrub(v, names) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub(v, names) for v in value)
    if isinstance(value, str):
        for name, label in names.items():
            value = value.replace(name, label)
        return value
    if isinstance(value, bytes):
        for name, label in names.items():
            # a length-prefixed string inside consumer-protocol bytes: fix the prefix too
            old, new = name.encode(), label.encode()
            value = value.replace(
                len(old).to_bytes(2, "big") + old, len(new).to_bytes(2, "big") + new
            )
            value = value.replace(old, new)
        return value
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:200]}... ({len(text)} chars)"


def differences(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Every place where the two observation trees differ, one line each, by path."""
    where = path or "<root>"
    if isinstance(ours, dict) and isinstance(theirs, dict):
        lines: list[str] = []
        for key in list(ours) + [k for k in theirs if k not in ours]:
            sub = f"{path}.{key}" if path else str(key)
            if key not in theirs:
                lines.append(f"{sub}: kafkito {_short(ours[key])}, Kafka has no such key")
            elif key not in ours:
                lines.append(f"{sub}: kafkito has no such key, Kafka {_short(theirs[key])}")
            else:
                lines.extend(differences(ours[key], theirs[key], sub))
        return lines
    if isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            return [
                f"{where}: kafkito has {len(ours)} items, Kafka {len(theirs)}: "
                f"kafkito {_short(ours)}, Kafka {_short(theirs)}"
            ]
        lines = []
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            lines.extend(differences(a, b, f"{path}[{i}]"))
        return lines
    if ours != theirs or type(ours) is not type(theirs):
        return [f"{where}: kafkito {_short(ours)}, Kafka {_short(theirs)}"]
    return []


def assert_same_observations(
    ours: Observations, theirs: Observations, *, allowed: Mapping[str, str] | None = None
) -> None:
    """Equal observations, or an AssertionError listing every difference by path.

    `allowed` maps a path prefix to the reason the difference there is intended (each one is
    listed in docs/broker.md); a difference under it is tolerated, every other one fails.
    An allowance that no longer matches any difference fails too, so that a fixed difference
    does not leave a stale excuse behind.
    """
    allowed = dict(allowed or {})
    found = differences(ours, theirs)
    used = {prefix for prefix in allowed for line in found if line.startswith(prefix)}
    unexpected = [line for line in found if not any(line.startswith(p) for p in allowed)]
    stale = sorted(set(allowed) - used)
    message = []
    if unexpected:
        message.append("kafkito and Apache Kafka differ:\n  " + "\n  ".join(unexpected))
    if stale:
        message.append(f"allowed differences that did not occur (remove them): {stale}")
    assert not message, "\n".join(message)


def run_differential(
    scenario: Scenario,
    brokers: Brokers,
    *,
    allowed: Mapping[str, str] | None = None,
) -> Observations:
    """Run `scenario` on kafkito, then on Apache Kafka; assert the same observations.

    Runs one after the other, never at once: the two brokers share a 2-core machine and a
    scenario's waits are sized for one broker at a time. Returns kafkito's observations so a
    test can also check absolute facts the two brokers might share by mistake.
    """
    ours = scenario(brokers.kafkito)
    theirs = scenario(brokers.kafka)
    assert_same_observations(ours, theirs, allowed=allowed)
    return ours


def node_index(node_ids: Sequence[int]) -> dict[int, int]:
    """Node id -> its rank among the cluster's brokers.

    Node ids are chosen by whoever deploys the cluster (kafkito's one node is 0, the reference
    launcher numbers nodes from 1); clients only use them to match leaders with brokers, so the
    rank keeps every relation a client sees and drops the arbitrary number. -1 (no node)
    stays -1.
    """
    return {-1: -1, **{node: i for i, node in enumerate(sorted(node_ids))}}


def create_topic(bootstrap: str, topic: str, partitions: int, **configs: str) -> None:
    """Create a topic (replication factor 1) and return once the broker serves every partition.

    Apache Kafka creates topics asynchronously: CreateTopics returns when the controller has
    committed the topic, and the broker leads its partitions a moment later (until then a
    Produce answers NOT_LEADER_OR_FOLLOWER, which clients retry). kafkito creates them before
    answering. Waiting for ListOffsets to succeed on every partition removes that timing, and
    only that, from the observations (docs/broker.md lists the difference).
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    from kafkito.testing.wire import WireClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)
    admin.create_topics([new])[topic].result(20)
    body = {
        "replica_id": -1,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {"partition_index": p, "timestamp": -1, "current_leader_epoch": -1}
                    for p in range(partitions)
                ],
            }
        ],
    }
    deadline = time.monotonic() + 20
    with WireClient(bootstrap) as client:
        while True:
            answer = client.request(2, 1, body)
            errors = [p.error_code for p in answer.topics[0].partitions if p.error_code != 0]
            if not errors:
                return
            assert time.monotonic() < deadline, f"{topic} not served after 20 s: {errors}"
            time.sleep(0.05)
