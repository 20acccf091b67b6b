"""DescribeClientQuotas (key 48), v0-1: the configured client quotas that match a filter.

v1: flexible. The filter and its errors are Kafka's (ClientQuotasImage.describe, in
broker/quotas.py); a refused filter answers its error and message with null entries.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DENIED_MESSAGES, DESCRIBE_CONFIGS, cluster_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.quotas import QuotaError, quotas_of
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import DescribeClientQuotasResponse


@handler(48, versions=range(0, 2))
async def describe_client_quotas(request: Any, ctx: RequestContext) -> DescribeClientQuotasResponse:
    manager = quotas_of(ctx.broker)
    assert manager is not None, "the quota manager installs itself with its module"
    components = [(c.entity_type, int(c.match_type), c.match) for c in request.components]
    try:
        if denied := cluster_denied(ctx, DESCRIBE_CONFIGS):
            raise QuotaError(denied, DENIED_MESSAGES[denied])
        found = manager.describe(components, bool(request.strict))
    except QuotaError as exc:
        return {
            "throttle_time": 0,
            "error_code": exc.code,
            "error_message": exc.message,
            "entries": None,
        }
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "error_message": "",  # Kafka's answer without an error carries "", not null
        "entries": [
            {
                "entity": [{"entity_type": t, "entity_name": n} for t, n in entity],
                "values": [{"key": k, "value": v} for k, v in sorted(values.items())],
            }
            for entity, values in found
        ],
    }
