"""AddOffsetsToTxn (key 25), v0-3.

v1: no change. v2: PRODUCER_FENCED replaces INVALID_PRODUCER_EPOCH (KIP-588). v3: flexible.

Adds a consumer group to the open transaction (opening one if none is open): the offsets the
producer then commits for it with TxnOffsetCommit stay pending until EndTxn commits them. In
Kafka this adds the group's `__consumer_offsets` partition; here the group itself is recorded.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, WRITE, require_group, require_txn
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import transactions_of
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import AddOffsetsToTxnResponse


@handler(25, versions=range(0, 4))
async def add_offsets_to_txn(request: Any, ctx: RequestContext) -> AddOffsetsToTxnResponse:
    code = ErrorCode.none
    try:
        require_txn(ctx, WRITE, request.transactional_id)  # raises *_AUTHORIZATION_FAILED
        require_group(ctx, READ, request.group_id)
        await transactions_of(ctx.broker).add_offsets(
            request.transactional_id,
            int(request.producer_id),
            int(request.producer_epoch),
            request.group_id,
            ctx.api_version,
        )
    except BrokerError as exc:
        code = exc.code
    return {"throttle_time": 0, "error_code": code}
