"""ListOffsets (key 2), v1-9.

v1: one offset per partition (no old-style list). v2: isolation_level (read_committed: LATEST
is the last stable offset, and a timestamp lookup finds nothing at or above it, as in Kafka).
v4: current_leader_epoch
in, leader_epoch out. v6: flexible. v7: MAX_TIMESTAMP (-3). v8-9: tiered-storage timestamps
(-4, -5), which on a single local log equal EARLIEST-LOCAL (-4 -> log start) and LATEST-TIERED
(-5 -> nothing tiered: -1). A special timestamp sent below the version that introduced it is
answered UNSUPPORTED_VERSION for that partition, as Kafka does (-3 below v7, -4 below v8, -5
below v9, and any other negative one); a timestamp that finds no record answers offset -1
with leader epoch -1.

Each partition is answered on its own: one unknown partition never fails its siblings.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.checks import DESCRIBE, topic_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.state import LEADER_EPOCH
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    ListOffsetsPartitionResponse,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)

LATEST, EARLIEST, MAX_TIMESTAMP, EARLIEST_LOCAL, LATEST_TIERED = -1, -2, -3, -4, -5
_SINCE_VERSION = {MAX_TIMESTAMP: 7, EARLIEST_LOCAL: 8, LATEST_TIERED: 9}
"""The first ListOffsets version that knows each special timestamp (Kafka's ListOffsetsRequest)."""


def _answer(
    index: int, code: ErrorCode, timestamp: int = -1, offset: int = -1
) -> ListOffsetsPartitionResponse:
    found = code == ErrorCode.none and offset >= 0
    return {
        "partition_index": index,
        "error_code": code,
        "timestamp": timestamp,
        "offset": offset,
        "leader_epoch": LEADER_EPOCH if found else -1,
    }


@handler(2, versions=range(1, 10))
async def list_offsets(request: Any, ctx: RequestContext) -> ListOffsetsResponse:
    registry = ctx.broker.topics
    txns = ctx.broker.transactions
    read_committed = int(getattr(request, "isolation_level", 0)) == 1
    topics: list[ListOffsetsTopicResponse] = []
    for topic in request.topics:
        answers: list[ListOffsetsPartitionResponse] = []
        denied = topic_denied(ctx, DESCRIBE, topic.name)
        for wanted in topic.partitions:
            index = int(wanted.partition_index)
            plog = registry.partition(topic.name, index)
            epoch = int(getattr(wanted, "current_leader_epoch", -1))
            if denied is not None:
                answers.append(_answer(index, denied))
                continue
            if plog is None:
                answers.append(_answer(index, ErrorCode.unknown_topic_or_partition))
                continue
            if epoch > LEADER_EPOCH:
                answers.append(_answer(index, ErrorCode.unknown_leader_epoch))
                continue
            ts = int(wanted.timestamp)
            # read_committed sees up to the last stable offset (kafkito.broker.txn)
            end = plog.high_watermark if txns is None else txns.visible_end(plog, read_committed)
            if ctx.api_version < _SINCE_VERSION.get(ts, 0):
                answers.append(_answer(index, ErrorCode.unsupported_version))
            elif ts == LATEST:
                answers.append(_answer(index, ErrorCode.none, -1, end))
            elif ts in (EARLIEST, EARLIEST_LOCAL):
                answers.append(_answer(index, ErrorCode.none, -1, plog.log_start_offset))
            elif ts == MAX_TIMESTAMP:
                max_ts, offset = plog.max_timestamp()
                answers.append(_answer(index, ErrorCode.none, max_ts, offset))
            elif ts == LATEST_TIERED:
                answers.append(_answer(index, ErrorCode.none, -1, -1))
            elif ts < 0:  # a special timestamp from a later version: Kafka's answer too
                answers.append(_answer(index, ErrorCode.unsupported_version))
            else:
                # Kafka answers the found record's own timestamp, not the one asked for.
                found = plog.lookup_timestamp(ts)
                if found is None or found[0] >= end:
                    answers.append(_answer(index, ErrorCode.none, -1, -1))
                else:
                    answers.append(_answer(index, ErrorCode.none, found[1], found[0]))
        topics.append({"name": topic.name, "partitions": answers})
    return {"throttle_time": 0, "topics": topics}
