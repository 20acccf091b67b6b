"""Looking at a cluster: topics, offsets, configs, recent messages, groups and lag.

Plain functions over confluent-kafka's AdminClient and Consumer, used by the web console and the
CLI alike, so both show the same numbers, against the embedded broker or any Kafka cluster.
Each takes the librdkafka settings of the cluster (at least `bootstrap.servers`).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from kafkito.errors import KafkitoError

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

    @property
    def lag(self) -> int:
        return sum(p.lag or 0 for p in self.partitions)


def admin_client(settings: dict[str, Any]) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"allow.auto.create.topics": False, **settings})


@contextlib.contextmanager
def _consumer(settings: dict[str, Any]) -> Iterator[Any]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "group.id": f"kafkito-console-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "allow.auto.create.topics": False,
            **settings,
        }
    )
    try:
        yield consumer
    finally:
        consumer.close()


def list_topics(settings: dict[str, Any], *, internal: bool = False) -> list[TopicInfo]:
    """Every topic with its partitions' offsets."""
    from confluent_kafka import TopicPartition

    metadata = admin_client(settings).list_topics(timeout=TIMEOUT_S)
    topics = []
    with _consumer(settings) as consumer:
        for name, tmeta in sorted(metadata.topics.items()):
            if name.startswith("__") and not internal:
                continue
            info = TopicInfo(name)
            for p in sorted(tmeta.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(name, p), timeout=TIMEOUT_S
                )
                pm = tmeta.partitions[p]
                info.partitions.append(PartitionInfo(p, pm.leader, list(pm.replicas), low, high))
            topics.append(info)
    return topics


def describe_topic(settings: dict[str, Any], topic: str, *, all_configs: bool = True) -> TopicInfo:
    """Partitions with offsets, and configs (all, or only those set on the topic)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

    admin = admin_client(settings)
    metadata = admin.list_topics(topic, timeout=TIMEOUT_S)
    tmeta = metadata.topics.get(topic)
    if tmeta is None or tmeta.error is not None or not tmeta.partitions:
        raise NotFound(f"unknown topic {topic!r}")
    info = TopicInfo(topic)
    with _consumer(settings) as consumer:
        for p in sorted(tmeta.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT_S)
            pm = tmeta.partitions[p]
            info.partitions.append(PartitionInfo(p, pm.leader, list(pm.replicas), low, high))
    resource = ConfigResource(ResourceType.TOPIC, topic)
    try:
        described = admin.describe_configs([resource])[resource].result(TIMEOUT_S)
    except Exception:  # a broker without DescribeConfigs: show the topic without configs
        described = {}
    info.configs = {
        name: entry.value
        for name, entry in sorted(described.items())
        if all_configs or not entry.is_default
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


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


def latest_messages(
    settings: dict[str, Any], topic: str, partition: int, limit: int = 20
) -> list[Message]:
    """The last `limit` messages of one partition, oldest first; JSON values parsed."""
    from confluent_kafka import TopicPartition

    limit = max(1, min(limit, MAX_BROWSE))
    with _consumer(settings) as consumer:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or partition not in metadata.partitions:
            raise NotFound(f"unknown partition {topic}[{partition}]")
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=TIMEOUT_S
        )
        start = max(low, high - limit)
        if start >= high:
            return []
        consumer.assign([TopicPartition(topic, partition, start)])
        found: list[Message] = []
        import time

        deadline = time.monotonic() + TIMEOUT_S
        while len(found) < high - start and time.monotonic() < deadline:
            for msg in consumer.consume(limit, timeout=0.5):
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


def list_groups(settings: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(group id, state) of every consumer group."""
    admin = admin_client(settings)  # keep a reference: its futures die with it
    result = admin.list_consumer_groups().result(TIMEOUT_S)
    return sorted((g.group_id, g.state.name if g.state else None) for g in result.valid)


def describe_group(settings: dict[str, Any], group: str) -> GroupInfo:
    """State, members, and per-partition committed offset, end offset, lag and owner."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

    admin = admin_client(settings)
    description = admin.describe_consumer_groups([group])[group].result(TIMEOUT_S)
    committed = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[
        group
    ].result(TIMEOUT_S)
    state = description.state.name if description.state else None
    info = GroupInfo(group, state, description.partition_assignor or None)
    owners: dict[tuple[str, int], str] = {}
    for member in description.members:
        assigned = member.assignment.topic_partitions if member.assignment else []
        info.members.append(
            {
                "member_id": member.member_id,
                "client_id": member.client_id,
                "host": member.host,
                "partitions": len(assigned),
            }
        )
        for tp in assigned:
            owners[(tp.topic, tp.partition)] = member.client_id or member.member_id
    offsets = {(tp.topic, tp.partition): tp.offset for tp in committed.topic_partitions}
    for key in owners:
        offsets.setdefault(key, -1001)
    with _consumer(settings) as consumer:
        for (topic, partition), offset in sorted(offsets.items()):
            _, end = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=TIMEOUT_S
            )
            info.partitions.append(
                GroupPartition(
                    topic,
                    partition,
                    offset if offset >= 0 else None,
                    end,
                    owners.get((topic, partition)),
                )
            )
    if state in ("DEAD", None) and not info.partitions:
        raise NotFound(f"unknown group {group!r}")
    return info
