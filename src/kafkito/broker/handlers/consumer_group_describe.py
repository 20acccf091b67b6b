"""ConsumerGroupDescribe (key 69), v0-1: KIP-848 groups, members with epochs and assignments.

v1: member_type per member (1: a member of the consumer protocol). A group that does not
exist, or is a classic group, gets GROUP_ID_NOT_FOUND, as in Kafka: librdkafka's
DescribeConsumerGroups tries this API first and falls back to DescribeGroups on exactly that
error (KAFKA-NOTES P2), so classic groups are still described.
"""

from __future__ import annotations

from typing import Any, cast

from kafkito.broker.auth.checks import (
    DENIED_MESSAGES,
    DESCRIBE,
    GROUP,
    authorized_ops,
    group_denied,
)
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.protocol.responses import (
    ConsumerGroupDescribeResponse,
    ConsumerGroupDescribeResponseDescribedGroup,
)


@handler(69, versions=range(0, 2))
async def consumer_group_describe(
    request: Any, ctx: RequestContext
) -> ConsumerGroupDescribeResponse:
    groups = coordinator_of(ctx.broker).consumer
    include_ops = bool(request.include_authorized_operations)
    # ConsumerGroups.describe is plain data of its own (coordinator/ returns dict[str, Any]): its
    # keys are checked by codec.build at run time, not by mypy.
    described: list[ConsumerGroupDescribeResponseDescribedGroup] = []
    for group_id in request.group_ids:
        if denied := group_denied(ctx, DESCRIBE, group_id):
            described.append(
                {
                    **cast(
                        ConsumerGroupDescribeResponseDescribedGroup, groups.describe("", False, 0)
                    ),
                    "group_id": group_id,
                    "error_code": denied,
                    "error_message": DENIED_MESSAGES[denied],
                }
            )
            continue
        ops = authorized_ops(ctx, GROUP, group_id, include_ops)
        described.append(
            cast(
                ConsumerGroupDescribeResponseDescribedGroup,
                groups.describe(group_id, include_ops, ops),
            )
        )
    return {"throttle_time": 0, "groups": described}
