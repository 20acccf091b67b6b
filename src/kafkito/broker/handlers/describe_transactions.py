"""DescribeTransactions (key 65), v0.

Per transactional id: its state, timeout, the start of the open transaction (-1 when none is
open), producer id and epoch, and the partitions of the open transaction by topic; an unknown
id gets TRANSACTIONAL_ID_NOT_FOUND. Used by admin tools (`kafka-transactions.sh describe`).

Difference from Kafka: a group added with AddOffsetsToTxn shows in Kafka as the group's
`__consumer_offsets` partition; this broker has no such topic and lists only data partitions.
"""

from __future__ import annotations

import datetime
from typing import Any

from kafkito.broker.auth.checks import DESCRIBE, txn_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import transactions_of
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    DescribeTransactionsResponse,
    DescribeTransactionsResponseTransactionState,
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _start_time(ms: int) -> datetime.datetime:
    """kio's i64 timestamp field is not nullable: -1 (no transaction open) is 1 ms before the
    epoch on the wire, as Kafka writes it."""
    return _EPOCH + datetime.timedelta(milliseconds=ms)


@handler(65, versions=range(0, 1))
async def describe_transactions(request: Any, ctx: RequestContext) -> DescribeTransactionsResponse:
    coordinator = transactions_of(ctx.broker)
    answers: list[DescribeTransactionsResponseTransactionState] = []
    for txn_id in request.transactional_ids:
        meta = coordinator.txns.get(txn_id)
        denied = txn_denied(ctx, DESCRIBE, txn_id)
        if meta is None or denied:
            answers.append(
                {
                    "error_code": denied or ErrorCode.transactional_id_not_found,
                    "transactional_id": txn_id,
                    "transaction_state": "",
                    "transaction_timeout": 0,
                    "transaction_start_time": _start_time(-1),
                    "producer_id": -1,
                    "producer_epoch": -1,
                    "topics": [],
                }
            )
            continue
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(meta.partitions):
            by_topic.setdefault(topic, []).append(partition)
        answers.append(
            {
                "error_code": ErrorCode.none,
                "transactional_id": txn_id,
                "transaction_state": meta.state.value,
                "transaction_timeout": meta.timeout_ms,
                "transaction_start_time": _start_time(meta.start_ms),
                "producer_id": meta.producer_id,
                "producer_epoch": meta.epoch,
                "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()],
            }
        )
    return {"throttle_time": 0, "transaction_states": answers}
