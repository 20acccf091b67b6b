"""JoinGroup (key 11), v0-7.

v1: rebalance_timeout (v0 uses the session timeout for both). v2: throttle_time. v3: same.
v4: an empty member id gets MEMBER_ID_REQUIRED and an id to join with (KIP-394). v5:
group_instance_id, static membership (KIP-345). v6: flexible. v7: protocol_type and
protocol_name in the answer (nullable protocol_name). The group logic is the coordinator's.
"""

from __future__ import annotations

from typing import Any, cast

from kafkito.broker.auth.checks import READ, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.protocol.codec import ms
from kafkito.protocol.responses import JoinGroupResponse


def client_host(ctx: RequestContext) -> str:
    """Kafka's form of the peer address: '/127.0.0.1'."""
    return "/" + ctx.peer.rsplit(":", 1)[0]


@handler(11, versions=range(0, 8))
async def join_group(request: Any, ctx: RequestContext) -> JoinGroupResponse:
    if denied := group_denied(ctx, READ, request.group_id):  # JoinGroupRequest.getErrorResponse
        return {
            "throttle_time": 0,
            "error_code": denied,
            "generation_id": -1,
            "protocol_type": None,
            "protocol_name": "",
            "leader": "",
            "member_id": "",
            "members": [],
        }
    session_ms = ms(request.session_timeout)
    rebalance_ms = ms(request.rebalance_timeout) if ctx.api_version >= 1 else session_ms
    answer = await coordinator_of(ctx.broker).join(
        group_id=request.group_id,
        member_id=request.member_id,
        group_instance_id=getattr(request, "group_instance_id", None),
        require_known_member_id=ctx.api_version >= 4,
        client_id=ctx.client_id or "",
        client_host=client_host(ctx),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=rebalance_ms,
        protocol_type=request.protocol_type,
        protocols=[(p.name, bytes(p.metadata)) for p in request.protocols],
    )
    if ctx.api_version < 7 and answer["protocol_name"] is None:
        answer = {**answer, "protocol_name": ""}  # not nullable before v7
    # The coordinator's answer is plain data of its own (coordinator/ returns dict[str, Any]):
    # its keys are checked by codec.build at run time, not by mypy.
    return {"throttle_time": 0, **cast(JoinGroupResponse, answer)}
