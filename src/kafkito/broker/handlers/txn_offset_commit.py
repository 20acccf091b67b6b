"""TxnOffsetCommit (key 28), v0-3.

v1: no change. v2: committed_leader_epoch. v3: flexible; generation_id, member_id and
group_instance_id (KIP-447: the group checks the member when one is named; PRODUCER_FENCED
replaces INVALID_PRODUCER_EPOCH).

Offsets committed inside a transaction: journaled with it, invisible to OffsetFetch (which
answers UNSTABLE_OFFSET_COMMIT to require_stable fetches meanwhile) and committed to the group
only when the transaction commits. The group must have been added with AddOffsetsToTxn first,
else INVALID_TXN_STATE (Kafka 4 gives the same code when the offsets partition was not added).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, WRITE, commit_refusals, require_txn
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import transactions_of
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import TxnOffsetCommitResponse


@handler(28, versions=range(0, 4))
async def txn_offset_commit(request: Any, ctx: RequestContext) -> TxnOffsetCommitResponse:
    refused = commit_refusals(ctx, READ, request.group_id, [t.name for t in request.topics])
    rows = [
        (
            topic.name,
            int(p.partition_index),
            int(p.committed_offset),
            int(getattr(p, "committed_leader_epoch", -1)),
            p.committed_metadata,
        )
        for topic in request.topics
        if topic.name not in refused
        for p in topic.partitions
    ]
    try:
        require_txn(ctx, WRITE, request.transactional_id)  # raises *_AUTHORIZATION_FAILED
        codes = (
            {}
            if not rows
            else await transactions_of(ctx.broker).txn_offset_commit(
                request.transactional_id,
                request.group_id,
                int(request.producer_id),
                int(request.producer_epoch),
                int(getattr(request, "generation_id", -1)),
                str(getattr(request, "member_id", "")),
                getattr(request, "group_instance_id", None),
                rows,
                ctx.api_version,
            )
        )
    except BrokerError as exc:
        refused = {t.name: exc.code for t in request.topics}
        codes = {}
    return {
        "throttle_time": 0,
        "topics": [
            {
                "name": topic.name,
                "partitions": [
                    {
                        "partition_index": int(p.partition_index),
                        "error_code": refused.get(topic.name)
                        or codes.get((topic.name, int(p.partition_index)), ErrorCode.none),
                    }
                    for p in topic.partitions
                ],
            }
            for topic in request.topics
        ],
    }
