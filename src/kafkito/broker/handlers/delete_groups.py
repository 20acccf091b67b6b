"""DeleteGroups (key 42), v0-2.

v1: same as v0. v2: flexible. Per group: GROUP_ID_NOT_FOUND if it does not exist,
NON_EMPTY_GROUP while it has members (KAFKA-NOTES P15), otherwise the group and its committed
offsets are deleted and the tombstone is fsynced before the answer.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DELETE, group_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import BrokerError
from kafkito.protocol.responses import (
    DeleteGroupsResponse,
    DeleteGroupsResponseDeletableGroupResult,
)


@handler(42, versions=range(0, 3))
async def delete_groups(request: Any, ctx: RequestContext) -> DeleteGroupsResponse:
    coordinator = coordinator_of(ctx.broker)
    results: list[DeleteGroupsResponseDeletableGroupResult] = []
    for group_id in request.groups_names:
        if denied := group_denied(ctx, DELETE, group_id):
            results.append({"group_id": group_id, "error_code": denied})
            continue
        try:
            code = await coordinator.delete_group(group_id)
        except BrokerError as exc:
            code = exc.code
        results.append({"group_id": group_id, "error_code": code})
    return {"throttle_time": 0, "results": results}
