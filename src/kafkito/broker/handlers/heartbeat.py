"""Heartbeat (key 12), v0-4.

v1: throttle_time. v2: same. v3: group_instance_id (KIP-345). v4: flexible.
REBALANCE_IN_PROGRESS while the group rebalances tells the member to rejoin.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.protocol.responses import HeartbeatResponse


@handler(12, versions=range(0, 5))
async def heartbeat(request: Any, ctx: RequestContext) -> HeartbeatResponse:
    if denied := group_denied(ctx, READ, request.group_id):
        return {"throttle_time": 0, "error_code": denied}
    code = coordinator_of(ctx.broker).heartbeat(
        group_id=request.group_id,
        generation_id=request.generation_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
    )
    return {"throttle_time": 0, "error_code": code}
