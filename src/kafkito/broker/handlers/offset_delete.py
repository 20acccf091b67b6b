"""OffsetDelete (key 47), v0 (the only version; KIP-496).

Deletes committed offsets of a group, as `kafka-consumer-groups --delete-offsets` and
AdminClient.delete_consumer_group_offsets do. Kafka's answer, built as KafkaApis does:

* partitions of a topic that does not exist, and partitions past a topic's count, answer
  UNKNOWN_TOPIC_OR_PARTITION, listed first (KafkaApis checks them before the coordinator);
* the coordinator then answers the rest (OffsetMetadataManager.deleteOffsets): a group-level
  error alone (no topics) for an empty group id (INVALID_GROUP_ID), a group that does not exist
  (GROUP_ID_NOT_FOUND), or a non-empty group that is not a `consumer` group (NON_EMPTY_GROUP);
  otherwise GROUP_SUBSCRIBED_TO_TOPIC for each partition of a topic a live member subscribes to,
  and no error for the others, whether or not they had an offset.

The deletions are fsynced (through the group-commit journal) before the answer.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DELETE, READ, denied_topics, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    OffsetDeleteResponse,
    OffsetDeleteResponsePartition,
)


@handler(47, versions=range(0, 1))
async def offset_delete(request: Any, ctx: RequestContext) -> OffsetDeleteResponse:
    registry = ctx.broker.topics
    if denied := group_denied(ctx, DELETE, request.group_id):
        return {"error_code": denied, "throttle_time": 0, "topics": []}
    refused = denied_topics(ctx, READ, [t.name for t in request.topics])
    answered: dict[str, list[OffsetDeleteResponsePartition]] = {}
    valid: list[tuple[str, list[int]]] = []
    for topic in request.topics:
        found = registry.get(topic.name)
        indexes = [int(p.partition_index) for p in topic.partitions]
        known = [i for i in indexes if found is not None and 0 <= i < len(found.partitions)]
        if topic.name in refused:
            known = []
        for index in indexes:
            if topic.name in refused:
                answered.setdefault(topic.name, []).append(
                    {"partition_index": index, "error_code": refused[topic.name]}
                )
            elif index not in known:
                answered.setdefault(topic.name, []).append(
                    {"partition_index": index, "error_code": ErrorCode.unknown_topic_or_partition}
                )
        if known:
            valid.append((topic.name, known))
    code, deleted = await coordinator_of(ctx.broker).delete_offsets(request.group_id, valid)
    if code != ErrorCode.none:
        return {"error_code": code, "throttle_time": 0, "topics": []}
    for name, rows in deleted:
        answered.setdefault(name, []).extend(
            {"partition_index": index, "error_code": error} for index, error in rows
        )
    return {
        "error_code": ErrorCode.none,
        "throttle_time": 0,
        "topics": [{"name": name, "partitions": rows} for name, rows in answered.items()],
    }
