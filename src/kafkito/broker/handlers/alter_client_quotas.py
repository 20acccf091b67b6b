"""AlterClientQuotas (key 49), v0-1: set or remove client quotas (user, client-id, ip).

v1: flexible. Each entry is checked and answered on its own, with Kafka's errors and messages
(ClientQuotaControlManager, in broker/quotas.py); validate_only checks without changing
anything. Accepted changes are persisted in the metadata log (fsynced) before the answer, and
the throttling of Produce and Fetch follows them from the next request on.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import ALTER_CONFIGS, cluster_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.quotas import entity_of, quotas_of
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import AlterClientQuotasResponse


@handler(49, versions=range(0, 2))
async def alter_client_quotas(request: Any, ctx: RequestContext) -> AlterClientQuotasResponse:
    manager = quotas_of(ctx.broker)
    assert manager is not None, "the quota manager installs itself with its module"
    entries = [
        (
            entity_of((e.entity_type, e.entity_name) for e in entry.entity),
            [(op.key, None if op.remove else float(op.value)) for op in entry.ops],
        )
        for entry in request.entries
    ]
    if denied := cluster_denied(ctx, ALTER_CONFIGS):
        results: list[tuple[ErrorCode, str | None]] = [(denied, None)] * len(entries)
    else:
        results = await manager.alter(entries, bool(request.validate_only))
    return {
        "throttle_time": 0,
        "entries": [
            {
                "error_code": code,
                "error_message": message,
                "entity": [
                    {"entity_type": e.entity_type, "entity_name": e.entity_name}
                    for e in entry.entity
                ],
            }
            for entry, (code, message) in zip(request.entries, results, strict=True)
        ],
    }
