"""DescribeProducers (key 61), v0.

Per partition, the producers the broker keeps state for (kafkito.broker.producers): producer
id, epoch, last sequence, last timestamp, and the first offset of its open transaction there
(-1 when none). `coordinator_epoch` is -1 before the producer's first transaction marker in the
partition and 0 after it, this broker's only coordinator epoch. Unknown partitions get
UNKNOWN_TOPIC_OR_PARTITION. Used by admin tools (`kafka-transactions.sh describe-producers`).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import READ, topic_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    DescribeProducersResponse,
    DescribeProducersResponsePartitionResponse,
    DescribeProducersResponseProducerState,
    DescribeProducersResponseTopicResponse,
)


@handler(61, versions=range(0, 1))
async def describe_producers(request: Any, ctx: RequestContext) -> DescribeProducersResponse:
    broker = ctx.broker
    topics: list[DescribeProducersResponseTopicResponse] = []
    for topic in request.topics:
        partitions: list[DescribeProducersResponsePartitionResponse] = []
        for index in topic.partition_indexes:
            plog = broker.topics.partition(topic.name, int(index))
            denied = topic_denied(ctx, READ, topic.name)
            if plog is None or denied:
                partitions.append(
                    {
                        "partition_index": int(index),
                        "error_code": denied or ErrorCode.unknown_topic_or_partition,
                        "error_message": None,
                        "active_producers": [],
                    }
                )
                continue
            txns = broker.transactions.state_for(plog) if broker.transactions else None
            rows: list[DescribeProducersResponseProducerState] = []
            if broker.producers is not None:
                for pid, entry in sorted(broker.producers.state_for(plog).entries.items()):
                    rows.append(
                        {
                            "producer_id": pid,
                            "producer_epoch": entry.epoch,
                            "last_sequence": entry.last_seq,
                            "last_timestamp": entry.last_timestamp,
                            "coordinator_epoch": (
                                0 if txns is not None and pid in txns.marked else -1
                            ),
                            "current_txn_start_offset": (
                                txns.open.get(pid, -1) if txns is not None else -1
                            ),
                        }
                    )
            partitions.append(
                {
                    "partition_index": int(index),
                    "error_code": ErrorCode.none,
                    "error_message": None,
                    "active_producers": rows,
                }
            )
        topics.append({"name": topic.name, "partitions": partitions})
    return {"throttle_time": 0, "topics": topics}
