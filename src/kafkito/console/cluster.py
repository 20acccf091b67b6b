"""Looking at a cluster: topics, offsets, configs, recent messages, groups and lag.

Plain functions over kafkito.client's Admin and RawConsumer, used by the web console and the
CLI alike, so both show the same numbers, against the embedded broker or any Kafka cluster.
Each takes the librdkafka settings of the cluster (at least `bootstrap.servers`), or an open
Admin to reuse (a caller that asks every second, like the demo's sampler).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from kafkito.errors import KafkitoError

if TYPE_CHECKING:  # the client library (and librdkafka) load on first use: `kafkito --help`
    from kafkito.client.admin import Admin, TopicDescription

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0
MAX_BROWSE = 500


class NotFound(KafkitoError):
    """No such topic, partition or group."""


@dataclass
class PartitionInfo:
    partition: int
    leader: int
    replicas: list[int]
    start_offset: int
    end_offset: int

    @property
    def records(self) -> int:
        return self.end_offset - self.start_offset


@dataclass
class TopicInfo:
    name: str
    partitions: list[PartitionInfo] = field(default_factory=list)
    configs: dict[str, str | None] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(p.records for p in self.partitions)


@dataclass
class GroupPartition:
    topic: str
    partition: int
    committed: int | None
    end_offset: int
    member: str | None

    @property
    def lag(self) -> int | None:
        return None if self.committed is None else max(self.end_offset - self.committed, 0)


@dataclass
class GroupInfo:
    group: str
    state: str | None
    assignor: str | None = None
    members: list[dict[str, Any]] = field(default_factory=list)
    partitions: list[GroupPartition] = field(default_factory=list)
    type: str | None = None
    """The group's protocol: CLASSIC, or CONSUMER for KIP-848 groups (None if unknown)."""

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


Cluster: TypeAlias = "dict[str, Any] | Admin"


@contextlib.contextmanager
def _admin(cluster: Cluster) -> Iterator[Admin]:
    """The given Admin, or one for these settings that is closed afterwards."""
    from kafkito.client.admin import Admin

    if isinstance(cluster, Admin):
        yield cluster
        return
    admin = Admin(settings=cluster, timeout_s=TIMEOUT_S)
    try:
        yield admin
    finally:
        admin.close()


def _partitions(admin: Admin, name: str, described: TopicDescription) -> list[PartitionInfo]:
    marks = admin.watermarks([(name, p.partition) for p in described.partitions])
    return [
        PartitionInfo(p.partition, p.leader, list(p.replicas), *marks[(name, p.partition)])
        for p in described.partitions
    ]


def list_topics(settings: Cluster, *, internal: bool = False) -> list[TopicInfo]:
    """Every topic with its partitions' offsets."""
    with _admin(settings) as admin:
        described = admin.list_topics(internal=internal)
        marks = admin.watermarks([(t.name, p.partition) for t in described for p in t.partitions])
        return [
            TopicInfo(
                t.name,
                [
                    PartitionInfo(
                        p.partition, p.leader, list(p.replicas), *marks[(t.name, p.partition)]
                    )
                    for p in t.partitions
                ],
            )
            for t in described
        ]


def describe_topic(settings: Cluster, topic: str, *, all_configs: bool = True) -> TopicInfo:
    """Partitions with offsets, and configs (all, or only those set on the topic)."""
    from kafkito.client.errors import ClientError, UnknownTopicError

    with _admin(settings) as admin:
        try:
            described = admin.describe_topic(topic)
        except UnknownTopicError:
            raise NotFound(f"unknown topic {topic!r}") from None
        info = TopicInfo(topic, _partitions(admin, topic, described))
        try:
            configs = admin.describe_configs(topic)
        except ClientError as exc:  # a broker without DescribeConfigs: the topic without configs
            log.info("no configs for topic %r: %s", topic, exc)
            configs = {}
    info.configs = {
        name: entry.value for name, entry in configs.items() if all_configs or not entry.is_default
    }
    return info


@dataclass
class Message:
    """A message as the console shows it."""

    partition: int
    offset: int
    timestamp: int
    key: str | None
    headers: dict[str, str | None]
    value: str | None
    value_json: Any = None
    is_json: bool = False
    binary: bool = False
    """The value is not UTF-8: `value` holds it in base64."""
    size: int = 0


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def latest_messages(
    settings: dict[str, Any], topic: str, partition: int, limit: int = 20
) -> list[Message]:
    """The last `limit` messages of one partition, oldest first; JSON values parsed."""
    from kafkito.client.raw_consumer import RawConsumer, TopicPartition

    limit = max(1, min(limit, MAX_BROWSE))
    consumer = RawConsumer(
        settings={
            "group.id": f"kafkito-console-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            **settings,
        }
    )
    with consumer:
        metadata = consumer.list_topics(topic, timeout_s=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or partition not in metadata.partitions:
            raise NotFound(f"unknown partition {topic}[{partition}]")
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout_s=TIMEOUT_S
        )
        start = max(low, high - limit)
        if start >= high:
            return []
        consumer.assign([TopicPartition(topic, partition, start)])
        found: list[Message] = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(found) < high - start and time.monotonic() < deadline:
            for msg in consumer.consume(limit, 0.5):
                if msg.error() is not None or msg.offset() >= high:
                    continue
                value = _text(msg.value())
                parsed, is_json = None, False
                if value is not None:
                    with contextlib.suppress(ValueError):
                        parsed, is_json = json.loads(value), True
                found.append(
                    Message(
                        partition,
                        msg.offset(),
                        msg.timestamp()[1],
                        _text(msg.key()),
                        {k: _text(v) for k, v in (msg.headers() or [])},
                        value,
                        parsed,
                        is_json,
                    )
                )
        return sorted(found, key=lambda m: m.offset)[-limit:]


def list_groups(settings: Cluster) -> list[tuple[str, str | None]]:
    """(group id, state) of every consumer group."""
    with _admin(settings) as admin:
        return [(g.group_id, g.state) for g in admin.list_groups()]


def describe_group(settings: Cluster, group: str) -> GroupInfo:
    """State, members, and per-partition committed offset, end offset, lag and owner."""
    from kafkito.client.errors import UnknownGroupError

    with _admin(settings) as admin:
        try:
            description = admin.describe_group(group)
        except UnknownGroupError:
            raise NotFound(f"unknown group {group!r}") from None
        committed = admin.group_offsets(group)
        info = GroupInfo(group, description.state, description.assignor, type=description.type)
        owners: dict[tuple[str, int], str] = {}
        for member in description.members:
            info.members.append(
                {
                    "member_id": member.member_id,
                    "client_id": member.client_id,
                    "host": member.host,
                    "partitions": len(member.assignment),
                }
            )
            for tp in member.assignment:
                owners[tp] = member.client_id or member.member_id
        keys = sorted(set(committed) | set(owners))
        ends = admin.list_offsets_many(keys, "latest") if keys else {}
    for topic, partition in keys:
        info.partitions.append(
            GroupPartition(
                topic,
                partition,
                committed.get((topic, partition)),
                ends[(topic, partition)] or 0,
                owners.get((topic, partition)),
            )
        )
    if description.state in ("DEAD", None) and not info.partitions:
        raise NotFound(f"unknown group {group!r}")
    return info


def reset_plan(admin: Admin, topic: str, target: str, value: object) -> list[dict[str, Any]]:
    """New committed offsets for every partition of `topic`: target earliest, latest,
    offset (clamped to each partition's range) or datetime (the first offset at or after it;
    the end where there is none). Raises ValueError on a bad offset or date-time."""
    import datetime

    wanted = [(topic, p) for p in admin.partitions(topic)]
    marks = admin.watermarks(wanted)
    at: dict[tuple[str, int], int | None] = {}
    offset = 0
    if target == "offset":
        try:
            offset = int(str(value))
        except ValueError:
            raise ValueError(f"offset {value!r} is not a whole number") from None
        if offset < 0:
            raise ValueError(f"offset {offset} is negative")
    elif target == "datetime":
        try:
            when = datetime.datetime.fromisoformat(str(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO date-time") from None
        stamp = int((when if when.tzinfo else when.astimezone()).timestamp() * 1000)
        at = admin.list_offsets_many(wanted, stamp)
    plan = []
    for tp in wanted:
        low, high = marks[tp]
        match target:
            case "earliest":
                new = low
            case "latest":
                new = high
            case "offset":
                new = min(max(offset, low), high)
            case _:
                found = at.get(tp)
                new = found if found is not None else high
        plan.append(
            {"topic": topic, "partition": tp[1], "new_offset": new, "low": low, "high": high}
        )
    return plan
