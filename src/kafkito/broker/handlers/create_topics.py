"""CreateTopics (key 19), v2-7.

v1: validate_only, error_message. v2: throttle_time_ms. v4: num_partitions and
replication_factor may be -1 (broker defaults). v5: flexible; the answer carries the topic's
partition count, replication factor and configs. v7: topic id.

One node: replication_factor above 1 gets INVALID_REPLICATION_FACTOR (38); an assignment naming
another broker INVALID_REPLICA_ASSIGNMENT (39); a bad name INVALID_TOPIC_EXCEPTION (17); a
config that does not validate INVALID_CONFIG (40) naming the key; a partition count below 1 or
above MAX_PARTITIONS_PER_TOPIC INVALID_PARTITIONS (37). A name given twice fails with
INVALID_REQUEST, answered once (Kafka answers by name). validate_only runs every check and
creates nothing.
"""

from __future__ import annotations

import collections
import uuid
from typing import Any, cast

from kafkito.broker.auth.checks import create_topic_denied
from kafkito.broker.configs import describe_topic_configs, validate_topic_config
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    CreateTopicsResponse,
    CreateTopicsResponseCreatableTopicConfigs,
    CreateTopicsResponseCreatableTopicResult,
)

MAX_PARTITIONS_PER_TOPIC = 10_000
"""Each partition is a directory of open files: a bound, checked where the request enters."""
_CONFIG_FIELDS = ("name", "value", "read_only", "config_source", "is_sensitive")
"""What CreateTopics' config rows hold of DescribeConfigs' (no synonyms, type or doc)."""


def _failed(name: str, code: ErrorCode, message: str) -> CreateTopicsResponseCreatableTopicResult:
    return {
        "name": name,
        "topic_id": uuid.UUID(int=0),
        "error_code": code,
        "error_message": message,
        "num_partitions": -1,
        "replication_factor": -1,
        "configs": [],
    }


@handler(19, versions=range(2, 8))
async def create_topics(request: Any, ctx: RequestContext) -> CreateTopicsResponse:
    """Each topic on its own: one refused topic never fails its siblings."""
    broker = ctx.broker
    node = broker.settings.node_id
    answers: list[CreateTopicsResponseCreatableTopicResult] = []
    counts = collections.Counter(wanted.name for wanted in request.topics)
    answered: set[str] = set()
    for wanted in request.topics:
        name = wanted.name
        if counts[name] > 1:
            if name not in answered:
                answers.append(
                    _failed(name, ErrorCode.invalid_request, f"topic {name!r} is named twice")
                )
                answered.add(name)
            continue
        if denied := create_topic_denied(ctx, name):  # CREATE on the cluster or the topic
            answers.append(_failed(name, denied, "Authorization failed."))
            continue
        rf = int(wanted.replication_factor)
        partitions = int(wanted.num_partitions)
        if wanted.assignments:
            if partitions != -1 or rf != -1:
                answers.append(
                    _failed(
                        name,
                        ErrorCode.invalid_request,
                        "give either assignments or partitions and replication",
                    )
                )
                continue
            bad = [a for a in wanted.assignments if list(a.broker_ids) != [node]]
            if bad:
                answers.append(
                    _failed(
                        name,
                        ErrorCode.invalid_replica_assignment,
                        f"this single-node cluster has only broker {node}",
                    )
                )
                continue
            indexes = sorted(int(a.partition_index) for a in wanted.assignments)
            if indexes != list(range(len(indexes))):
                answers.append(
                    _failed(
                        name,
                        ErrorCode.invalid_replica_assignment,
                        "partition indexes must be 0..n-1",
                    )
                )
                continue
            partitions, rf = len(indexes), 1
        if rf == -1:
            rf = 1
        if rf != 1:
            answers.append(
                _failed(
                    name,
                    ErrorCode.invalid_replication_factor,
                    f"replication factor {rf} is larger than the 1 broker of this cluster"
                    if rf > 1
                    else f"replication factor {rf} is invalid",
                )
            )
            continue
        if partitions == -1:
            partitions = broker.settings.num_partitions
        if partitions > MAX_PARTITIONS_PER_TOPIC:
            answers.append(
                _failed(
                    name,
                    ErrorCode.invalid_partitions,
                    f"{partitions} partitions is above the limit of {MAX_PARTITIONS_PER_TOPIC}",
                )
            )
            continue
        configs: dict[str, str] = {}
        config_error = None
        for c in wanted.configs:
            if c.value is None:
                config_error = f"null value for topic config {c.name!r}"
                break
            config_error = validate_topic_config(c.name, c.value)
            if config_error:
                break
            configs[c.name] = c.value
        if config_error:
            answers.append(_failed(name, ErrorCode.invalid_config, config_error))
            continue
        try:
            topic = await broker.topics.create(
                name, partitions, configs, validate_only=bool(request.validate_only)
            )
        except BrokerError as exc:
            answers.append(_failed(name, exc.code, str(exc)))
            continue
        # DescribeConfigs' rows cut to _CONFIG_FIELDS: keys chosen at run time (checked there by
        # codec.build), so mypy takes them on trust.
        described = [
            cast(
                CreateTopicsResponseCreatableTopicConfigs, {key: row[key] for key in _CONFIG_FIELDS}
            )
            for row in (
                entry.as_dict(synonyms=False, documentation=False)
                for entry in describe_topic_configs(configs, broker.settings, broker.topics.dynamic)
            )
        ]
        answers.append(
            {
                "name": name,
                "topic_id": topic.topic_id,
                "error_code": ErrorCode.none,
                "error_message": None,
                "num_partitions": partitions,
                "replication_factor": 1,
                "configs": described,
            }
        )
    return {"throttle_time": 0, "topics": answers}
