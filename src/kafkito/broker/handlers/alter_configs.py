"""AlterConfigs (key 33), v0-2: the non-incremental kind.

v0: resources with their full new config set; validate_only. v1: same (a new throttle
contract). v2: flexible.

Non-incremental means the keys given **replace all** dynamic configs of the resource: a topic
override left out of the request returns to its default (KAFKA-NOTES §6 P12: librdkafka's
AlterConfigs is this kind). Keys with a null value are dropped, as Kafka does. Every key is
checked before anything changes; the first bad one fails the resource with INVALID_CONFIG (40)
and a message naming it. A change reaches the live partition logs at once (the next append sees
the new max.message.bytes, the next retention pass the new retention) and is persisted in the
metadata log, so it survives a restart.

Broker settings are fixed at start: altering a broker key fails with INVALID_CONFIG naming it; an
empty set (nothing dynamic to replace) succeeds. A broker name other than this node's id, or ""
for cluster defaults, is INVALID_REQUEST. The helpers here are shared with
IncrementalAlterConfigs.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafkito.broker.configs import (
    BROKER_CONFIGS,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    validate_topic_config,
)
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.handlers.describe_configs import broker_resource_error
from kafkito.broker.state import Topic, topic_name_error
from kafkito.errors import BrokerError, ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)


def find_topic(broker: BrokerCore, name: str) -> Topic:
    """The topic a config resource names; raises BrokerError with the code to answer."""
    if (reason := topic_name_error(name)) is not None:
        raise BrokerError(ErrorCode.invalid_topic_exception, reason)
    topic = broker.topics.get(name)
    if topic is None:
        raise BrokerError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
    return topic


def refuse_broker_change(broker: BrokerCore, name: str, keys: list[str]) -> None:
    """Check a broker resource; raise BrokerError unless nothing is to change."""
    if (reason := broker_resource_error(name, broker.settings.node_id)) is not None:
        raise BrokerError(ErrorCode.invalid_request, reason)
    for key in keys:
        if key in BROKER_CONFIGS:
            raise BrokerError(
                ErrorCode.invalid_config,
                f"broker config {key!r} is read-only: kafkito's broker settings are fixed at start",
            )
        raise BrokerError(ErrorCode.invalid_config, f"unknown broker config {key!r}")


def replace_topic_configs(
    broker: BrokerCore, topic: Topic, configs: Mapping[str, str], *, validate_only: bool
) -> None:
    """Validate every key, then (unless validate_only) make `configs` the topic's overrides."""
    for key, value in configs.items():
        if (reason := validate_topic_config(key, value)) is not None:
            raise BrokerError(ErrorCode.invalid_config, reason)
    if validate_only:
        return
    if dict(configs) != topic.configs:
        broker.topics.set_configs(topic.name, dict(configs))
        log.info("topic %s: configs now %s", topic.name, sorted(configs.items()))


def resource_answer(rtype: int, name: str, error: BrokerError | None = None) -> dict[str, Any]:
    return {
        "error_code": ErrorCode.none if error is None else error.code,
        "error_message": None if error is None else str(error),
        "resource_type": rtype,
        "resource_name": name,
    }


@handler(33, versions=range(0, 3))
async def alter_configs(request: Any, ctx: RequestContext) -> dict[str, Any]:
    """Each resource on its own: one refused resource never fails its siblings."""
    broker = ctx.broker
    validate_only = bool(request.validate_only)
    answers = []
    for resource in request.resources:
        rtype, name = int(resource.resource_type), resource.resource_name
        wanted = {c.name: c.value for c in resource.configs if c.value is not None}
        try:
            if rtype == RESOURCE_TOPIC:
                topic = find_topic(broker, name)
                replace_topic_configs(broker, topic, wanted, validate_only=validate_only)
            elif rtype == RESOURCE_BROKER:
                refuse_broker_change(broker, name, list(wanted))
            else:
                raise BrokerError(
                    ErrorCode.invalid_request, f"config resource type {rtype} is not supported"
                )
        except BrokerError as exc:
            answers.append(resource_answer(rtype, name, exc))
            continue
        answers.append(resource_answer(rtype, name))
    return {"throttle_time": 0, "responses": answers}
