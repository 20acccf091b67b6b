"""ListGroups (key 16), v0-5.

v1: throttle_time. v2: same. v3: flexible. v4: states_filter in, group_state out (KIP-518).
v5: types_filter in, group_type out (KIP-848): "classic", or "consumer" for the groups of the
consumer protocol (protocol_type "consumer", states Empty/Assigning/Reconciling/Stable).
Filters compare case-insensitively, as Kafka does.
"""

from __future__ import annotations

from typing import Any, cast

from kafkito.broker.auth.checks import listed_groups
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    ListGroupsResponse,
    ListGroupsResponseListedGroup,
)

GROUP_TYPE = "classic"
CONSUMER_GROUP_TYPE = "consumer"


@handler(16, versions=range(0, 6))
async def list_groups(request: Any, ctx: RequestContext) -> ListGroupsResponse:
    states = {s.lower() for s in getattr(request, "states_filter", ())}
    types = {t.lower() for t in getattr(request, "types_filter", ())}
    groups: list[ListGroupsResponseListedGroup] = []
    if not types or GROUP_TYPE in types:
        for group in coordinator_of(ctx.broker).list_groups():
            if states and group.state.value.lower() not in states:
                continue
            groups.append(
                {
                    "group_id": group.group_id,
                    "protocol_type": group.protocol_type or "",
                    "group_state": group.state.value,
                    "group_type": GROUP_TYPE,
                }
            )
    if not types or CONSUMER_GROUP_TYPE in types:
        for consumer_group in coordinator_of(ctx.broker).consumer.groups.values():
            state = consumer_group.state().value
            if states and state.lower() not in states:
                continue
            groups.append(
                {
                    "group_id": consumer_group.group_id,
                    "protocol_type": "consumer",
                    "group_state": state,
                    "group_type": CONSUMER_GROUP_TYPE,
                }
            )
    # all with DESCRIBE on the cluster, else per group (auth/checks filters plain dicts)
    visible = listed_groups(ctx, cast(list[dict[str, Any]], groups))
    groups = cast(list[ListGroupsResponseListedGroup], visible)
    return {"throttle_time": 0, "error_code": ErrorCode.none, "groups": groups}
