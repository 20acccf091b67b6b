"""DeleteTopics (key 20), v1-6.

v1: throttle_time_ms. v4: flexible. v5: error_message per topic. v6: topics named by name or by
topic id (`topics` replaces `topic_names`); the answer carries both.

A missing name is UNKNOWN_TOPIC_OR_PARTITION, a missing id UNKNOWN_TOPIC_ID (KAFKA-NOTES §6 P5);
naming a topic both ways, or neither, is INVALID_REQUEST. Deletion closes the partition logs and
removes their files; a topic created again under the same name gets a new id and a new directory
(the id is part of it), so no old data can reappear, not even after a restart.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from kafkito.broker.auth.checks import DELETE, DESCRIBE, topic_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    DeleteTopicsResponse,
    DeleteTopicsResponseDeletableTopicResult,
)

log = logging.getLogger(__name__)

ZERO_UUID = uuid.UUID(int=0)


def _answer(
    name: str | None, topic_id: uuid.UUID, code: ErrorCode, message: str | None = None
) -> DeleteTopicsResponseDeletableTopicResult:
    return {"name": name, "topic_id": topic_id, "error_code": code, "error_message": message}


@handler(20, versions=range(1, 7))
async def delete_topics(request: Any, ctx: RequestContext) -> DeleteTopicsResponse:
    """Delete each topic on its own: one unknown topic never fails its siblings."""
    registry = ctx.broker.topics
    if ctx.api_version >= 6:
        wanted = [(t.name, t.topic_id or ZERO_UUID) for t in request.topics]
    else:
        wanted = [(name, ZERO_UUID) for name in request.topic_names]
    answers: list[DeleteTopicsResponseDeletableTopicResult] = []
    for name, topic_id in wanted:
        if name is not None and topic_id != ZERO_UUID:
            answers.append(
                _answer(
                    name,
                    topic_id,
                    ErrorCode.invalid_request,
                    "give a topic name or a topic id, not both",
                )
            )
            continue
        if name is None:
            by_id = registry.by_id.get(topic_id)
            if topic_id == ZERO_UUID or by_id is None:
                answers.append(
                    _answer(
                        None, topic_id, ErrorCode.unknown_topic_id, f"unknown topic id {topic_id}"
                    )
                )
                continue
            name = by_id.name
        if denied := topic_denied(ctx, DESCRIBE, name):  # existence is not disclosed
            answers.append(_answer(name, topic_id, denied, "Authorization failed."))
            continue
        topic = registry.get(name)
        if topic is None:
            answers.append(
                _answer(
                    name,
                    ZERO_UUID,
                    ErrorCode.unknown_topic_or_partition,
                    f"unknown topic {name!r}",
                )
            )
            continue
        if denied := topic_denied(ctx, DELETE, name):
            answers.append(_answer(name, topic_id, denied, "Authorization failed."))
            continue
        if topic.internal:
            answers.append(
                _answer(
                    name,
                    topic.topic_id,
                    ErrorCode.invalid_request,
                    f"topic {name!r} is internal and cannot be deleted",
                )
            )
            continue
        try:
            await registry.delete(name)
        except BrokerError as exc:
            answers.append(_answer(name, topic.topic_id, exc.code, str(exc)))
            continue
        log.info("client %s deleted topic %s (id %s)", ctx.client_id, name, topic.topic_id)
        answers.append(_answer(name, topic.topic_id, ErrorCode.none))
    return {"throttle_time": 0, "responses": answers}
