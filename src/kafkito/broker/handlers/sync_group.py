"""SyncGroup (key 14), v0-5.

v1: throttle_time. v2: same. v3: group_instance_id (KIP-345). v4: flexible. v5: protocol_type
and protocol_name in request and answer; a mismatch with the group's is INCONSISTENT_GROUP_PROTOCOL,
and so is a request without them (Kafka checks that before authorization).
The leader's request carries every member's assignment; everyone else waits for it.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode


@handler(14, versions=range(0, 6))
async def sync_group(request: Any, ctx: RequestContext) -> dict[str, Any]:
    # Kafka's order: v5's mandatory protocol fields first (INCONSISTENT_GROUP_PROTOCOL), then
    # READ on the group.
    missing = ctx.api_version >= 5 and (
        request.protocol_type is None or request.protocol_name is None
    )
    if missing or (denied := group_denied(ctx, READ, request.group_id)):
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.inconsistent_group_protocol if missing else denied,
            "protocol_type": None,
            "protocol_name": None,
            "assignment": b"",
        }
    answer = await coordinator_of(ctx.broker).sync(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments},
    )
    return {"throttle_time": 0, **answer}
