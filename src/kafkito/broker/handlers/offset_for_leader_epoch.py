"""OffsetForLeaderEpoch (key 23), v2-4: where a leader epoch ends, for truncation detection.

v2: current_leader_epoch (fencing) and throttle_time. v3: replica_id (consumers send -1).
v4: flexible. v0-1 are gone from Kafka 4, as here. librdkafka sends exactly v2, kafka-python
v2-4, aiokafka never (KAFKA-NOTES P6): once this is advertised, librdkafka and kafka-python
validate a position that carries a leader epoch (a committed offset, a seek with an epoch, the
position after a metadata epoch change) before fetching from it (KIP-320), and treat an answer
below the position as truncation. So the answers must be Kafka's exactly (Redpanda's were not,
twice: redpanda #11864, #12063).

Kafka answers from its leader-epoch cache (LeaderEpochFileCache.endOffsetFor, entries of epoch
-> start offset; the leader adds one when it takes the partition, so even an empty partition
has its epoch). kafkito's partitions have one epoch forever, LEADER_EPOCH (0), starting at the
log start offset, so the cache is that single entry and the rules reduce to:

* requested epoch -1 (undefined) -> (-1, -1), no error;
* requested epoch == the current one -> (epoch, log end offset): "the current epoch has not
  ended", which is what makes a consumer's check pass for any position up to the end;
* requested epoch above the current one -> (-1, -1): no such epoch (clients reset);
* requested epoch below the first known one -> (requested epoch, start offset of the first
  known epoch): Kafka's answer for epochs whose data was deleted.

Before that, `current_leader_epoch` fences as everywhere else (P6): above ours ->
UNKNOWN_LEADER_EPOCH, below -> FENCED_LEADER_EPOCH, -1 -> no check; an unknown partition
answers UNKNOWN_TOPIC_OR_PARTITION. Errors carry epoch -1 and end offset -1, as Kafka's.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DESCRIBE, topic_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.state import LEADER_EPOCH
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    OffsetForLeaderEpochResponse,
    OffsetForLeaderEpochResponseEpochEndOffset,
    OffsetForLeaderEpochResponseOffsetForLeaderTopicResult,
)

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


def end_offset_for(
    requested_epoch: int, *, log_start_offset: int, log_end_offset: int
) -> tuple[int, int]:
    """(epoch, end offset) as Kafka's LeaderEpochFileCache.endOffsetFor with one entry,
    (LEADER_EPOCH, log_start_offset), and logEndOffset `log_end_offset`."""
    if requested_epoch == UNDEFINED_EPOCH:
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
    if requested_epoch == LEADER_EPOCH:
        return LEADER_EPOCH, log_end_offset
    if requested_epoch > LEADER_EPOCH:
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
    return requested_epoch, log_start_offset


def _answer(
    index: int, code: ErrorCode, epoch: int = -1, end: int = -1
) -> OffsetForLeaderEpochResponseEpochEndOffset:
    return {"error_code": code, "partition": index, "leader_epoch": epoch, "end_offset": end}


@handler(23, versions=range(2, 5))
async def offset_for_leader_epoch(
    request: Any, ctx: RequestContext
) -> OffsetForLeaderEpochResponse:
    registry = ctx.broker.topics
    topics: list[OffsetForLeaderEpochResponseOffsetForLeaderTopicResult] = []
    for topic in request.topics:
        answers: list[OffsetForLeaderEpochResponseEpochEndOffset] = []
        for wanted in topic.partitions:
            index = int(wanted.partition)
            plog = registry.partition(topic.topic, index)
            current = int(wanted.current_leader_epoch)
            if denied := topic_denied(ctx, DESCRIBE, topic.topic):
                answers.append(_answer(index, denied))
            elif plog is None:
                answers.append(_answer(index, ErrorCode.unknown_topic_or_partition))
            elif current != UNDEFINED_EPOCH and current > LEADER_EPOCH:
                answers.append(_answer(index, ErrorCode.unknown_leader_epoch))
            elif current != UNDEFINED_EPOCH and current < LEADER_EPOCH:
                answers.append(_answer(index, ErrorCode.fenced_leader_epoch))
            else:
                epoch, end = end_offset_for(
                    int(wanted.leader_epoch),
                    log_start_offset=plog.log_start_offset,
                    log_end_offset=plog.log_end_offset,
                )
                answers.append(_answer(index, ErrorCode.none, epoch, end))
        topics.append({"topic": topic.topic, "partitions": answers})
    return {"throttle_time": 0, "topics": topics}
