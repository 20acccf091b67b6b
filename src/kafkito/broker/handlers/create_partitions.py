"""CreatePartitions (key 37), v0-3.

v0: topics with a new total count and optional assignments; validate_only. v1: same (a new
throttle contract). v2: flexible. v3: same as v2.

Every topic named in the request is in the answer (KAFKA-NOTES §6 P15: Tansu once returned
none). A count not above the current one is INVALID_PARTITIONS (37); an unknown topic
UNKNOWN_TOPIC_OR_PARTITION; assignments must list exactly one replica, this node, per new
partition (INVALID_REPLICA_ASSIGNMENT 39); a topic named twice INVALID_REQUEST. validate_only
runs every check and adds nothing.
"""

from __future__ import annotations

import collections
import logging
from typing import Any

from kafkito.broker.auth.checks import ALTER, topic_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.handlers.create_topics import MAX_PARTITIONS_PER_TOPIC
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    CreatePartitionsResponse,
    CreatePartitionsTopicResult,
)

log = logging.getLogger(__name__)


def _answer(name: str, code: ErrorCode, message: str | None = None) -> CreatePartitionsTopicResult:
    return {"name": name, "error_code": code, "error_message": message}


def _check(request_topic: Any, current: int, node: int) -> tuple[ErrorCode, str] | None:
    count = int(request_topic.count)
    if count <= current:
        return (
            ErrorCode.invalid_partitions,
            f"topic {request_topic.name!r} has {current} partitions; {count} would not add any",
        )
    if count > MAX_PARTITIONS_PER_TOPIC:
        return (
            ErrorCode.invalid_partitions,
            f"{count} partitions is above the limit of {MAX_PARTITIONS_PER_TOPIC}",
        )
    assignments = request_topic.assignments
    if assignments is not None:
        if len(assignments) != count - current:
            return (
                ErrorCode.invalid_replica_assignment,
                f"{len(assignments)} assignments for {count - current} new partitions",
            )
        for assignment in assignments:
            if list(assignment.broker_ids) != [node]:
                return (
                    ErrorCode.invalid_replica_assignment,
                    f"this single-node cluster has only broker {node}",
                )
    return None


@handler(37, versions=range(0, 4))
async def create_partitions(request: Any, ctx: RequestContext) -> CreatePartitionsResponse:
    """Each topic on its own; the answer names every topic of the request."""
    broker = ctx.broker
    registry = broker.topics
    counts = collections.Counter(t.name for t in request.topics)
    answers: list[CreatePartitionsTopicResult] = []
    answered: set[str] = set()
    for wanted in request.topics:
        name = wanted.name
        if counts[name] > 1:
            if name not in answered:
                answers.append(
                    _answer(name, ErrorCode.invalid_request, f"topic {name!r} is named twice")
                )
                answered.add(name)
            continue
        if denied := topic_denied(ctx, ALTER, name):  # before existence, as Kafka checks
            answers.append(_answer(name, denied, "Authorization failed."))
            continue
        topic = registry.get(name)
        if topic is None:
            answers.append(
                _answer(name, ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
            )
            continue
        current = len(topic.partitions)
        problem = _check(wanted, current, broker.settings.node_id)
        if problem is not None:
            answers.append(_answer(name, *problem))
            continue
        try:
            await registry.add_partitions(
                name, int(wanted.count), validate_only=bool(request.validate_only)
            )
        except BrokerError as exc:
            answers.append(_answer(name, exc.code, str(exc)))
            continue
        if not request.validate_only:
            log.info("topic %s: partitions %d -> %d", name, current, int(wanted.count))
        answers.append(_answer(name, ErrorCode.none))
    return {"throttle_time": 0, "results": answers}
