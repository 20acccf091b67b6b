"""OffsetCommit (key 8), v2-9 (kio's lowest is 2; no client here sends 0-1).

v2-4: retention_time (ignored: retention is the broker's offsets_retention_ms, as in Kafka 2.1+).
v3: throttle_time. v5: retention_time removed. v6: committed_leader_epoch (returned exactly by
OffsetFetch, KAFKA-NOTES P6). v7: group_instance_id. v8: flexible. v9: GROUP_ID_NOT_FOUND instead
of ILLEGAL_GENERATION when the group does not exist (KIP-848 also names the generation
"member epoch"; classic groups use it as the generation).

The answer comes only after the commit is fsynced (group commit, coordinator/journal.py).
Metadata above 4096 bytes gets OFFSET_METADATA_TOO_LARGE for that partition.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, commit_refusals
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    OffsetCommitResponse,
    OffsetCommitResponseTopic,
)


@handler(8, versions=range(2, 10))
async def offset_commit(request: Any, ctx: RequestContext) -> OffsetCommitResponse:
    refused = commit_refusals(ctx, READ, request.group_id, [t.name for t in request.topics])
    rows = [
        (
            topic.name,
            p.partition_index,
            p.committed_offset,
            getattr(p, "committed_leader_epoch", -1),
            p.committed_metadata,
        )
        for topic in request.topics
        if topic.name not in refused
        for p in topic.partitions
    ]
    try:
        errors = (
            {}
            if not rows
            else await coordinator_of(ctx.broker).commit(
                group_id=request.group_id,
                generation_id=request.generation_id_or_member_epoch,
                member_id=request.member_id,
                group_instance_id=getattr(request, "group_instance_id", None),
                api_version=ctx.api_version,
                offsets=rows,
            )
        )
    except BrokerError as exc:
        errors = {(t, p): exc.code for t, p, *_ in rows}
    topics: list[OffsetCommitResponseTopic] = [
        {
            "name": topic.name,
            "partitions": [
                {
                    "partition_index": p.partition_index,
                    "error_code": refused.get(topic.name)
                    or errors.get((topic.name, p.partition_index), ErrorCode.none),
                }
                for p in topic.partitions
            ],
        }
        for topic in request.topics
    ]
    return {"throttle_time": 0, "topics": topics}
