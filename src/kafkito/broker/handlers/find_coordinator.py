"""FindCoordinator (key 10), v0-6.

v1: key_type (0 group, 1 transaction), throttle_time, error_message. v3: flexible. v4: batches,
`coordinator_keys` in and a `coordinators` array out (KIP-699). v5-6: same layout (v6 adds share
groups, key_type 2, which this broker does not have: INVALID_REQUEST).

One node coordinates everything, so every group and transactional id maps to this broker.
"""

from __future__ import annotations

from typing import Any

import kafkito.broker.coordinator  # noqa: F401 - registers the coordinator installer
from kafkito.broker.auth.checks import DENIED_MESSAGES, coordinator_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    FindCoordinatorResponse,
    FindCoordinatorResponseCoordinator,
)

GROUP_KEY, TRANSACTION_KEY = 0, 1


def _answer(ctx: RequestContext, key: str, key_type: int) -> FindCoordinatorResponseCoordinator:
    if key_type not in (GROUP_KEY, TRANSACTION_KEY):
        return {
            "key": key,
            "error_code": ErrorCode.invalid_request,
            "error_message": f"unsupported key type {key_type}",
            "node_id": -1,
            "host": "",
            "port": -1,
        }
    if denied := coordinator_denied(ctx, key, key_type):  # DESCRIBE on the group or txn id
        return {
            "key": key,
            "error_code": denied,
            "error_message": DENIED_MESSAGES[denied],
            "node_id": -1,
            "host": "",
            "port": -1,
        }
    return {
        "key": key,
        "error_code": ErrorCode.none,
        "error_message": None,
        "node_id": ctx.broker.settings.node_id,
        "host": ctx.broker.host,
        "port": ctx.broker.port,
    }


@handler(10, versions=range(0, 7))
async def find_coordinator(request: Any, ctx: RequestContext) -> FindCoordinatorResponse:
    key_type = int(getattr(request, "key_type", GROUP_KEY))
    if ctx.api_version >= 4:
        coordinators = [_answer(ctx, key, key_type) for key in request.coordinator_keys]
        return {"throttle_time": 0, "coordinators": coordinators}
    # v0-3 answer one key at the top level, where the response has no `key` field
    single = _answer(ctx, request.key, key_type)
    return {
        "throttle_time": 0,
        "error_code": single["error_code"],
        "error_message": single["error_message"],
        "node_id": single["node_id"],
        "host": single["host"],
        "port": single["port"],
    }
