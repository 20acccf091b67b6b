"""EndTxn (key 26), v0-3.

v1: no change. v2: PRODUCER_FENCED replaces INVALID_PRODUCER_EPOCH (KIP-588). v3: flexible.
v4-5 (KIP-890 part 2: TRANSACTION_ABORTABLE, the epoch bumped by every EndTxn) are not served,
and the `transaction.version` feature is not advertised: no client here sends them.

Commits or aborts the open transaction: the answer comes once every marker is durable and, on
commit, the pending offsets are committed (txn/coordinator.py says why this differs from
Kafka, which answers after journaling the decision). EndTxn with no transaction open
(no AddPartitionsToTxn or AddOffsetsToTxn first) is INVALID_TXN_STATE; a retry of the EndTxn
that completed the transaction succeeds again.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import WRITE, require_txn
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import transactions_of
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import EndTxnResponse


@handler(26, versions=range(0, 4))
async def end_txn(request: Any, ctx: RequestContext) -> EndTxnResponse:
    code = ErrorCode.none
    try:
        require_txn(ctx, WRITE, request.transactional_id)  # raises *_AUTHORIZATION_FAILED
        await transactions_of(ctx.broker).end_txn(
            request.transactional_id,
            int(request.producer_id),
            int(request.producer_epoch),
            bool(request.committed),
            ctx.api_version,
        )
    except BrokerError as exc:
        code = exc.code
    return {"throttle_time": 0, "error_code": code}
