"""DescribeGroups (key 15), v0-5.

v1: throttle_time. v2: same. v3: include_authorized_operations in, authorized_operations out
(INT32_MIN when not asked for, KAFKA-NOTES P11; READ|DELETE|DESCRIBE when asked, there being no
authorizer). v4: group_instance_id per member. v5: flexible. A group that does not exist is
described as Dead with no error, as Kafka does before v6.
Member metadata is shown only while the group is Stable; assignments always (Kafka's GroupSummary).
"""

from __future__ import annotations

from typing import Any, cast

from kafkito.broker.auth.checks import (
    DESCRIBE,
    GROUP,
    authorized_ops,
    describe_denied,
    group_denied,
)
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.coordinator.coordinator import describe
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.protocol.responses import (
    DescribeGroupsResponse,
    DescribeGroupsResponseDescribedGroup,
)


@handler(15, versions=range(0, 6))
async def describe_groups(request: Any, ctx: RequestContext) -> DescribeGroupsResponse:
    coordinator = coordinator_of(ctx.broker)
    include_ops = bool(getattr(request, "include_authorized_operations", False))
    # describe() (coordinator/) and describe_denied() (auth/checks) build plain dicts of their
    # own: their keys are checked by codec.build at run time, not by mypy.
    groups: list[DescribeGroupsResponseDescribedGroup] = []
    for group_id in request.groups:
        if denied := group_denied(ctx, DESCRIBE, group_id):
            groups.append(
                cast(DescribeGroupsResponseDescribedGroup, describe_denied(group_id, denied))
            )
            continue
        described = describe(coordinator.groups.get(group_id), group_id, include_ops)
        described["authorized_operations"] = authorized_ops(ctx, GROUP, group_id, include_ops)
        groups.append(cast(DescribeGroupsResponseDescribedGroup, described))
    return {"throttle_time": 0, "groups": groups}
