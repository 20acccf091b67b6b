"""ListTransactions (key 66), v0-1.

v1: duration_filter (KIP-994: only transactions open longer than that many ms; -1 for all).

Every transactional id the coordinator knows, with its producer id and state, filtered by
state names (an unknown name is echoed in unknown_state_filters, as Kafka does), producer ids
and duration. Used by admin tools (`kafka-transactions.sh list`).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DESCRIBE, txn_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import TxnState, transactions_of
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    ListTransactionsResponse,
    ListTransactionsResponseTransactionState,
)

_STATE_NAMES = {s.value for s in TxnState}


@handler(66, versions=range(0, 2))
async def list_transactions(request: Any, ctx: RequestContext) -> ListTransactionsResponse:
    coordinator = transactions_of(ctx.broker)
    states = set(request.state_filters)
    pids = {int(p) for p in request.producer_id_filters}
    duration_ms = int(getattr(request, "duration_filter", -1))
    now = coordinator.wall_ms()
    rows: list[ListTransactionsResponseTransactionState] = []
    for meta in coordinator.list():
        if states and meta.state.value not in states:
            continue
        if pids and meta.producer_id not in pids:
            continue
        if txn_denied(ctx, DESCRIBE, meta.transactional_id):
            continue
        if duration_ms >= 0 and (meta.start_ms < 0 or now - meta.start_ms < duration_ms):
            continue
        rows.append(
            {
                "transactional_id": meta.transactional_id,
                "producer_id": meta.producer_id,
                "transaction_state": meta.state.value,
            }
        )
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "unknown_state_filters": sorted(states - _STATE_NAMES),
        "transaction_states": rows,
    }
