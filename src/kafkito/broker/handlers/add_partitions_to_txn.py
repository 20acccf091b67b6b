"""AddPartitionsToTxn (key 24), v0-3.

v1: no change. v2: PRODUCER_FENCED replaces INVALID_PRODUCER_EPOCH (KIP-588). v3: flexible.
v4-5 (KIP-890's batched broker-to-broker verification form) are not served: no client here sends
them (librdkafka sends only v0, kafka-python up to 3, aiokafka 0; KAFKA-NOTES §1) and the broker
has no other brokers to verify for.

A partition that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION and every other partition
of the request with OPERATION_NOT_ATTEMPTED, as in Kafka: a transaction gains all of the
request's partitions or none. The answer comes after the addition is journaled (fsynced).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import WRITE, require_txn, txn_topic_refusals
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import transactions_of
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import AddPartitionsToTxnResponse


@handler(24, versions=range(0, 4))
async def add_partitions_to_txn(request: Any, ctx: RequestContext) -> AddPartitionsToTxnResponse:
    wanted = [
        (topic.name, int(p)) for topic in request.v3_and_below_topics for p in topic.partitions
    ]
    try:
        require_txn(ctx, WRITE, request.v3_and_below_transactional_id)  # raises
        if refused := txn_topic_refusals(ctx, WRITE, wanted):
            raise refused  # TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED
        codes = await transactions_of(ctx.broker).add_partitions(
            request.v3_and_below_transactional_id,
            int(request.v3_and_below_producer_id),
            int(request.v3_and_below_producer_epoch),
            wanted,
            ctx.api_version,
        )
    except BrokerError as exc:
        codes = getattr(exc, "codes", None) or dict.fromkeys(wanted, exc.code)
    # In request order; Kafka's order is that of a hash map (it varies with the topic name).
    return {
        "throttle_time": 0,
        "results_by_topic_v3_and_below": [
            {
                "name": topic.name,
                "results_by_partition": [
                    {
                        "partition_index": int(p),
                        "partition_error_code": codes.get((topic.name, int(p)), ErrorCode.none),
                    }
                    for p in topic.partitions
                ],
            }
            for topic in request.v3_and_below_topics
        ],
    }
