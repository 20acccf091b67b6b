"""SyncGroup (key 14), v0-5.

v1: throttle_time. v2: same. v3: group_instance_id (KIP-345). v4: flexible. v5: protocol_type
and protocol_name in request and answer; a mismatch with the group's is INCONSISTENT_GROUP_PROTOCOL,
and so is a request without them (Kafka checks that before authorization).
The leader's request carries every member's assignment; everyone else waits for it.
"""

from __future__ import annotations

from typing import Any, cast

from kafkito.broker.auth.checks import READ, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import SyncGroupResponse


@handler(14, versions=range(0, 6))
async def sync_group(request: Any, ctx: RequestContext) -> SyncGroupResponse:
    # Kafka's order: v5's mandatory protocol fields first (INCONSISTENT_GROUP_PROTOCOL), then
    # READ on the group.
    missing = ctx.api_version >= 5 and (
        request.protocol_type is None or request.protocol_name is None
    )
    if missing:
        return _refused(ErrorCode.inconsistent_group_protocol)
    if denied := group_denied(ctx, READ, request.group_id):
        return _refused(denied)
    answer = await coordinator_of(ctx.broker).sync(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        protocol_type=getattr(request, "protocol_type", None),
        protocol_name=getattr(request, "protocol_name", None),
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments},
    )
    # The coordinator's answer is plain data of its own (coordinator/ returns dict[str, Any]):
    # its keys are checked by codec.build at run time, not by mypy.
    return {"throttle_time": 0, **cast(SyncGroupResponse, answer)}


def _refused(code: ErrorCode) -> SyncGroupResponse:
    return {
        "throttle_time": 0,
        "error_code": code,
        "protocol_type": None,
        "protocol_name": None,
        "assignment": b"",
    }
