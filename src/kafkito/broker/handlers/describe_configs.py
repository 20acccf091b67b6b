"""DescribeConfigs (key 32), v1-4.

v1: include_synonyms, config_source (replaces is_default), synonyms. v2: same as v1. v3:
include_documentation, config_type and documentation per config. v4: flexible.

Resources are TOPIC (2), BROKER (4) and GROUP (32, KIP-848 group configs: every key of
group_configs.py, the group's value or the broker's). A topic lists **every** topic key
(KAFKA-NOTES §6 P12: kafka-python's alter_configs checks names against this list) with its
effective value, source, read-only and sensitive flags; a broker (its id) lists every broker
key, read-only unless it is a dynamic one (configs.py), and "" lists the cluster-wide dynamic
defaults set. Naming keys returns just those (unknown names are left out; null or empty means
all, as in Kafka). Synonyms are sent only when asked for, documentation only when asked for;
config_type always (v3+).

Errors per resource: an unknown topic is UNKNOWN_TOPIC_OR_PARTITION, a bad topic name
INVALID_TOPIC_EXCEPTION; a broker name other than this node's id or "" INVALID_REQUEST; any
other resource type INVALID_REQUEST.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from kafkito.broker.auth.checks import DESCRIBE_CONFIGS, require_config
from kafkito.broker.configs import (
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    ConfigValue,
    describe_broker_configs,
    describe_cluster_defaults,
    describe_topic_configs,
)
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.group_configs import (
    RESOURCE_GROUP,
    describe_group_configs,
    group_resource_error,
)
from kafkito.broker.state import topic_name_error
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    DescribeConfigsResourceResult,
    DescribeConfigsResponse,
    DescribeConfigsResult,
)

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore


def broker_resource_error(name: str, node_id: int) -> str | None:
    """Why `name` does not name this broker (Kafka's message), or None; "" is cluster-wide."""
    if name == "":
        return None
    try:
        named = int(name)
    except ValueError:
        return f"Node id must be an integer, but it is: {name}"
    if named != node_id:
        return f"Unexpected broker id, expected {node_id}, but received {named}"
    return None


def _describe(broker: BrokerCore, resource_type: int, name: str) -> list[ConfigValue]:
    """Every config of one resource; raises BrokerError with the code to answer."""
    if resource_type == RESOURCE_TOPIC:
        if (reason := topic_name_error(name)) is not None:
            raise BrokerError(ErrorCode.invalid_topic_exception, reason)
        topic = broker.topics.get(name)
        if topic is None:
            raise BrokerError(ErrorCode.unknown_topic_or_partition, f"unknown topic {name!r}")
        return describe_topic_configs(topic.configs, broker.settings, broker.topics.dynamic)
    if resource_type == RESOURCE_BROKER:
        if (reason := broker_resource_error(name, broker.settings.node_id)) is not None:
            raise BrokerError(ErrorCode.invalid_request, reason)
        if name == "":
            return describe_cluster_defaults(broker.topics.dynamic)
        return describe_broker_configs(broker.settings, broker.port, broker.topics.dynamic)
    if resource_type == RESOURCE_GROUP:
        if (reason := group_resource_error(name)) is not None:
            raise BrokerError(ErrorCode.invalid_request, reason)
        overrides = coordinator_of(broker).group_configs.get(name, {})
        return describe_group_configs(overrides, broker.settings.extra)
    raise BrokerError(
        ErrorCode.invalid_request, f"config resource type {resource_type} is not supported"
    )


@handler(32, versions=range(1, 5))
async def describe_configs(request: Any, ctx: RequestContext) -> DescribeConfigsResponse:
    """Each resource on its own: one unknown topic never fails its siblings."""
    synonyms = bool(request.include_synonyms)
    documentation = bool(getattr(request, "include_documentation", False))
    results: list[DescribeConfigsResult] = []
    for resource in request.resources:
        rtype, name = int(resource.resource_type), resource.resource_name
        try:
            require_config(ctx, DESCRIBE_CONFIGS, rtype, name)  # raises *_AUTHORIZATION_FAILED
            described = _describe(ctx.broker, rtype, name)
        except BrokerError as exc:
            results.append(
                {
                    "error_code": exc.code,
                    "error_message": str(exc),
                    "resource_type": rtype,
                    "resource_name": name,
                    "configs": [],
                }
            )
            continue
        keys = resource.configuration_keys
        if keys:  # null or empty: all keys, as Kafka's ConfigHelper does
            wanted = set(keys)
            described = [c for c in described if c.name in wanted]
        results.append(
            {
                "error_code": ErrorCode.none,
                "error_message": None,
                "resource_type": rtype,
                "resource_name": name,
                # ConfigEntry.as_dict (broker/configs.py) is plain data of its own: its keys are
                # checked by codec.build at run time, not by mypy.
                "configs": [
                    cast(
                        DescribeConfigsResourceResult,
                        c.as_dict(synonyms=synonyms, documentation=documentation),
                    )
                    for c in described
                ],
            }
        )
    return {"throttle_time": 0, "results": results}
