"""OffsetFetch (key 9), v1-9 (kio's lowest is 1).

v2: null topics means every committed partition; a top-level error_code. v3: throttle_time.
v5: committed_leader_epoch. v6: flexible. v7: require_stable (KIP-447: UNSTABLE_OFFSET_COMMIT
while a transaction holds pending offsets for the partition). v8: several groups per request,
each with its own error (KIP-709). v9: member_id and member_epoch (KIP-848 consumer groups: a
member must exist at exactly that epoch, else UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH as the
group's error; no member id with epoch -1 is an admin; a classic group ignores them).

A partition without a committed offset answers offset -1, metadata "" and no error, as Kafka.
An OffsetFetch waits for the group's commits that are still being fsynced, so a fetch sent after
a commit sees it, and nothing not yet on disk is ever shown.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DESCRIBE, fetch_visible, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    OffsetFetchResponse,
    OffsetFetchResponseGroup,
    OffsetFetchResponseTopics,
)


async def _group(
    ctx: RequestContext, group_id: str, topics: Any, require_stable: bool
) -> list[OffsetFetchResponseTopics]:
    wanted = None
    if topics is not None:
        wanted = [(t.name, list(t.partition_indexes)) for t in topics]
    answer = await coordinator_of(ctx.broker).fetch(group_id, wanted, require_stable)
    answer = fetch_visible(ctx, answer, every_topic=topics is None)  # DESCRIBE on each topic
    return [
        {
            "name": topic,
            "partitions": [
                {
                    "partition_index": partition,
                    "committed_offset": c.offset if c else -1,
                    "committed_leader_epoch": c.leader_epoch if c else -1,
                    "metadata": (c.metadata if c else ""),
                    "error_code": code,
                }
                for partition, c, code in rows
            ],
        }
        for topic, rows in answer
    ]


@handler(9, versions=range(1, 10))
async def offset_fetch(request: Any, ctx: RequestContext) -> OffsetFetchResponse:
    require_stable = bool(getattr(request, "require_stable", False))
    if ctx.api_version >= 8:
        groups: list[OffsetFetchResponseGroup] = []
        consumer = coordinator_of(ctx.broker).consumer
        for g in request.groups:
            if denied := group_denied(ctx, DESCRIBE, g.group_id):
                groups.append({"group_id": g.group_id, "topics": [], "error_code": denied})
                continue
            consumer_group = consumer.groups.get(g.group_id)
            if consumer_group is not None and ctx.api_version >= 9:
                error = consumer.validate_fetch(consumer_group, g.member_id, g.member_epoch)
                if error is not None:
                    groups.append({"group_id": g.group_id, "topics": [], "error_code": error})
                    continue
            groups.append(
                {
                    "group_id": g.group_id,
                    "topics": await _group(ctx, g.group_id, g.topics, require_stable),
                    "error_code": ErrorCode.none,
                }
            )
        return {"throttle_time": 0, "groups": groups}
    if denied := group_denied(ctx, DESCRIBE, request.group_id):
        return {"throttle_time": 0, "topics": [], "error_code": denied}
    topics = await _group(ctx, request.group_id, request.topics, require_stable)
    return {"throttle_time": 0, "topics": topics, "error_code": ErrorCode.none}
