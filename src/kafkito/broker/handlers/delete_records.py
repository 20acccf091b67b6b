"""DeleteRecords (key 21), v0-2.

v0: per partition, delete every record below an offset. v1: same (a new throttle contract).
v2: flexible.

Deleting moves the partition's log start offset (the low watermark) up to the offset given;
segments wholly below it are removed, and readers can no longer fetch below it. Offset -1 means
the high watermark (delete everything written); an offset above the high watermark, or another
negative one, is OFFSET_OUT_OF_RANGE; an offset below the current start changes nothing. The
answer carries the resulting low watermark (KAFKA-NOTES §6 P15). The new start is persisted in
the metadata log, so a restart does not bring the records back.
"""

from __future__ import annotations

import logging
from typing import Any

from kafkito.broker.auth.checks import DELETE, topic_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    DeleteRecordsPartitionResult,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
)

log = logging.getLogger(__name__)

HIGH_WATERMARK = -1


def _answer(index: int, code: ErrorCode, low_watermark: int = -1) -> DeleteRecordsPartitionResult:
    return {"partition_index": index, "error_code": code, "low_watermark": low_watermark}


@handler(21, versions=range(0, 3))
async def delete_records(request: Any, ctx: RequestContext) -> DeleteRecordsResponse:
    """Each partition on its own: one unknown partition never fails its siblings."""
    registry = ctx.broker.topics
    topics: list[DeleteRecordsTopicResult] = []
    for topic in request.topics:
        answers: list[DeleteRecordsPartitionResult] = []
        for wanted in topic.partitions:
            index = int(wanted.partition_index)
            plog = registry.partition(topic.name, index)
            if denied := topic_denied(ctx, DELETE, topic.name):
                answers.append(_answer(index, denied))
                continue
            if plog is None:
                answers.append(_answer(index, ErrorCode.unknown_topic_or_partition))
                continue
            offset = int(wanted.offset)
            high_watermark = plog.high_watermark
            if offset == HIGH_WATERMARK:
                offset = high_watermark
            if not 0 <= offset <= high_watermark:
                answers.append(_answer(index, ErrorCode.offset_out_of_range))
                continue
            if offset > plog.log_start_offset:
                plog.delete_records_before(offset)
                await registry.persist_log_start(topic.name, index, plog.log_start_offset)
                log.info(
                    "%s-%d: records below offset %d deleted by client %s",
                    topic.name,
                    index,
                    plog.log_start_offset,
                    ctx.client_id,
                )
            answers.append(_answer(index, ErrorCode.none, plog.log_start_offset))
        topics.append({"name": topic.name, "partitions": answers})
    return {"throttle_time": 0, "topics": topics}
