"""LeaveGroup (key 13), v0-5.

v1: throttle_time. v2: same. v3: a batch of members, each with member_id and group_instance_id
and its own error (KIP-345; an admin may remove a static member by instance id alone). v4:
flexible. v5: a reason per member (logged by Kafka, ignored here).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.protocol.responses import (
    LeaveGroupResponse,
    LeaveGroupResponseMemberResponse,
)


@handler(13, versions=range(0, 6))
async def leave_group(request: Any, ctx: RequestContext) -> LeaveGroupResponse:
    if denied := group_denied(ctx, READ, request.group_id):
        return {"throttle_time": 0, "error_code": denied, "members": []}
    coordinator = coordinator_of(ctx.broker)
    if ctx.api_version < 3:
        _, errors = coordinator.leave(request.group_id, [(request.member_id, None)])
        return {"throttle_time": 0, "error_code": errors[0]}
    leaving = [(m.member_id, m.group_instance_id) for m in request.members]
    code, errors = coordinator.leave(request.group_id, leaving)
    members: list[LeaveGroupResponseMemberResponse] = [
        {"member_id": member_id, "group_instance_id": instance_id, "error_code": error}
        for (member_id, instance_id), error in zip(leaving, errors, strict=True)
    ]
    return {"throttle_time": 0, "error_code": code, "members": members}
