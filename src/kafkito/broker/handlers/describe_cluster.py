"""DescribeCluster (key 60), v0-2.

v0: cluster id, controller, brokers, cluster authorized operations. v1: endpoint_type in the
request and the answer (1 = brokers, 2 = controllers). v2: include_fenced_brokers, is_fenced.

kafka-python's describe_cluster uses v1 (librdkafka answers DescribeCluster from Metadata). The
one node is broker and controller; like a Kafka broker, it answers only for broker endpoints and
refuses controller endpoints with MISMATCHED_ENDPOINT_TYPE, an empty cluster id and controller
-1, as Kafka 4.1 does (clients ask controllers directly for those). Authorized operations are
INT32_MIN unless asked for, then every cluster operation (there are no ACLs; KAFKA-NOTES §6 P11).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import cluster_ops
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import DescribeClusterResponse

ENDPOINT_BROKERS = 1


@handler(60, versions=range(0, 3))
async def describe_cluster(request: Any, ctx: RequestContext) -> DescribeClusterResponse:
    broker = ctx.broker
    node = broker.settings.node_id
    endpoint_type = int(getattr(request, "endpoint_type", ENDPOINT_BROKERS))
    answer: DescribeClusterResponse = {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "error_message": None,
        "endpoint_type": endpoint_type,
        "cluster_id": broker.cluster_id,
        "controller_id": node,
        "brokers": [],
        "cluster_authorized_operations": cluster_ops(
            ctx, bool(request.include_cluster_authorized_operations)
        ),
    }
    if endpoint_type != ENDPOINT_BROKERS:
        answer["error_code"] = ErrorCode.mismatched_endpoint_type
        answer["cluster_id"] = ""
        answer["controller_id"] = -1
        answer["error_message"] = f"endpoint type {endpoint_type} is not served by a broker"
        return answer
    answer["brokers"] = [
        {
            "broker_id": node,
            "host": broker.host,
            "port": broker.port,
            "rack": None,
            "is_fenced": False,
        }
    ]
    return answer
