"""ConsumerGroupHeartbeat (key 68), v0-1: the KIP-848 consumer-group protocol.

v0: an empty member id on join is filled in by the coordinator. v1: the member id is made by
the consumer and required, and subscribed_topic_regex is added (librdkafka sends v1 only, and
only with `group.protocol=consumer`). One request both joins, heartbeats, reports the owned
partitions and leaves (member epoch -1; -2 for a static member that will be back); the group
logic is in coordinator/consumer_group.py. The answer waits for the group's fsync.
"""

from __future__ import annotations

from typing import Any, cast

from kafkito.broker.auth.checks import heartbeat_denied
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.handlers.join_group import client_host
from kafkito.errors import BrokerError
from kafkito.protocol.codec import ms
from kafkito.protocol.responses import ConsumerGroupHeartbeatResponse


@handler(68, versions=range(0, 2))
async def consumer_group_heartbeat(
    request: Any, ctx: RequestContext
) -> ConsumerGroupHeartbeatResponse:
    owned = None
    if request.topic_partitions is not None:
        owned = frozenset(
            (t.topic_id, int(p)) for t in request.topic_partitions for p in t.partitions
        )
    subscribed = request.subscribed_topic_names
    if denied := heartbeat_denied(ctx, request.group_id, subscribed):
        return {
            "throttle_time": 0,
            "error_code": denied,
            "error_message": None,
            "member_id": None,
            "member_epoch": 0,
            "heartbeat_interval": 0,
            "assignment": None,
        }
    try:
        # The coordinator's answer is plain data of its own (coordinator/ returns
        # dict[str, Any]): its keys are checked by codec.build at run time, not by mypy.
        answer = await coordinator_of(ctx.broker).consumer.heartbeat(
            api_version=ctx.api_version,
            group_id=request.group_id,
            member_id=request.member_id,
            member_epoch=request.member_epoch,
            instance_id=request.instance_id,
            rack_id=request.rack_id,
            rebalance_timeout_ms=ms(request.rebalance_timeout),
            subscribed=tuple(subscribed) if subscribed is not None else None,
            regex=getattr(request, "subscribed_topic_regex", None),
            server_assignor=request.server_assignor,
            owned=owned,
            client_id=ctx.client_id or "",
            client_host=client_host(ctx),
        )
        return cast(ConsumerGroupHeartbeatResponse, answer)
    except BrokerError as exc:  # stopping, or the group's fsync failed: the member retries
        return {
            "throttle_time": 0,
            "error_code": exc.code,
            "error_message": str(exc),
            "member_id": None,
            "member_epoch": 0,
            "heartbeat_interval": 0,
            "assignment": None,
        }
