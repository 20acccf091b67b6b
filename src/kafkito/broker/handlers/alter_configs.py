"""AlterConfigs (key 33), v0-2: the non-incremental kind.

v0: resources with their full new config set; validate_only. v1: same (a new throttle
contract). v2: flexible.

Non-incremental means the keys given **replace all** dynamic configs of the resource: a topic
override left out of the request returns to its default (KAFKA-NOTES §6 P12: librdkafka's
AlterConfigs is this kind). A key with a null value fails the resource with INVALID_REQUEST, as
in Kafka 4.1 (tests/integration/test_differential_admin.py). Every key is
checked before anything changes; the first bad one fails the resource with INVALID_CONFIG (40)
and a message naming it. A change reaches the live partition logs at once (the next append sees
the new max.message.bytes, the next retention pass the new retention) and is persisted in the
metadata log, so it survives a restart.

A BROKER resource names the cluster-wide defaults ("") or this node (its id); its configs replace
that scope's dynamic broker configs (configs.py), which take effect at once on every partition
log and persist in the metadata log. As in Kafka, a key that cannot change at run time, a bad
value, or another broker id is INVALID_REQUEST (42); Kafka's dynamic keys that kafkito has no
mechanism for (Kerberos, SSL engine details, thread pools: broker_keys_kafka.py) are checked
for their type, stored and described, without effect; unlike Kafka, which stores unknown broker
keys for plugins, an unknown key is INVALID_CONFIG naming it (kafkito has no plugins, and a typo
must not pass for a change; docs/broker.md). The helpers here are shared with
IncrementalAlterConfigs.

A GROUP resource (KIP-848 group configs, group_configs.py) replaces that group's configs: an
unknown key or a bad value is INVALID_CONFIG with Kafka's message, the default group ""
INVALID_REQUEST.

Each resource is checked and changed under `topics.admin_lock`, so admin changes apply one at a
time, in order (Kafka's controller serializes them too).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafkito.broker.auth.checks import ALTER_CONFIGS, require_config
from kafkito.broker.broker_keys_kafka import (
    KAFKA_STATIC_BROKER_KEYS,
    STORED_BROKER_KEYS,
    stored_value_error,
)
from kafkito.broker.configs import (
    BROKER_CONFIGS,
    DYNAMIC_BROKER_CONFIGS,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    topic_default_values,
    validate_broker_config,
    validate_topic_config,
)
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.group_configs import (
    RESOURCE_GROUP,
    group_config_error,
    group_resource_error,
)
from kafkito.broker.handlers.describe_configs import broker_resource_error
from kafkito.broker.state import Topic, topic_name_error
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    AlterConfigsResourceResponse,
    AlterConfigsResponse,
)

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


def broker_scope(broker: BrokerCore, name: str) -> int | None:
    """The scope a BROKER resource names: None for cluster-wide (""), else this node's id."""
    if (reason := broker_resource_error(name, broker.settings.node_id)) is not None:
        raise BrokerError(ErrorCode.invalid_request, reason)
    return None if name == "" else broker.settings.node_id


def check_broker_keys(keys: list[str]) -> None:
    """Refuse unknown and read-only broker keys (raises BrokerError)."""
    known = BROKER_CONFIGS.keys() | STORED_BROKER_KEYS.keys() | KAFKA_STATIC_BROKER_KEYS
    unknown = sorted(key for key in keys if key not in known)
    if unknown:
        raise BrokerError(
            ErrorCode.invalid_config, f"unknown broker config {', '.join(map(repr, unknown))}"
        )
    static = sorted(
        key for key in keys if key not in DYNAMIC_BROKER_CONFIGS and key not in STORED_BROKER_KEYS
    )
    # Kafka's words (DynamicBrokerConfig.validateConfigs), so searches find them
    if static:
        raise BrokerError(
            ErrorCode.invalid_request,
            f"Cannot update these configs dynamically: Set({', '.join(static)})",
        )


def check_broker_scopes(keys: list[str], node: int | None) -> None:
    """Refuse Kafka's keys that cannot be set at this scope (`node` None: cluster-wide), after
    their values were checked, as Kafka orders it. `keys` are those of the resulting set: Kafka
    checks where a key is *set*, so removing one is allowed anywhere. Raises BrokerError."""
    where = {key: STORED_BROKER_KEYS[key].scope for key in keys if key in STORED_BROKER_KEYS}
    if listener := sorted(key for key, scope in where.items() if scope == "listener"):
        raise BrokerError(
            ErrorCode.invalid_request,
            "These security configs can be dynamically updated only per-listener using the "
            f"listener prefix: HashSet({', '.join(listener)})",
        )
    per_node = sorted(key for key, scope in where.items() if scope == "node")
    if per_node and node is None:
        raise BrokerError(
            ErrorCode.invalid_request,
            "Cannot update these configs at default cluster level, broker id must be "
            f"specified: Set({', '.join(per_node)})",
        )


async def replace_broker_configs(
    broker: BrokerCore, node: int | None, configs: Mapping[str, str], *, validate_only: bool
) -> None:
    """Validate every key, then (unless validate_only) make `configs` the dynamic broker
    configs of one scope (None: cluster-wide). The caller holds `topics.admin_lock`."""
    check_broker_keys(list(configs))
    retention_ms = topic_default_values(broker.settings, broker.topics.dynamic)["retention.ms"]
    for key, value in configs.items():
        stored = STORED_BROKER_KEYS.get(key)
        if stored is not None:
            reason = stored_value_error(stored, value)
        else:
            reason = validate_broker_config(key, value, retention_ms)
        if reason is not None:
            raise BrokerError(ErrorCode.invalid_request, reason)
    check_broker_scopes(list(configs), node)
    if validate_only:
        return
    dynamic = broker.topics.dynamic
    current = dynamic.cluster if node is None else dynamic.node
    if dict(configs) != current:
        await broker.topics.set_broker_configs_locked(node, dict(configs))
        log.info(
            "dynamic broker configs (%s) now %s",
            "cluster-wide" if node is None else f"node {node}",
            sorted(configs.items()),
        )


async def replace_topic_configs(
    broker: BrokerCore, topic: Topic, configs: Mapping[str, str], *, validate_only: bool
) -> None:
    """Validate every key, then (unless validate_only) make `configs` the topic's overrides.
    The caller holds `topics.admin_lock`."""
    for key, value in configs.items():
        if (reason := validate_topic_config(key, value)) is not None:
            raise BrokerError(ErrorCode.invalid_config, reason)
    if validate_only:
        return
    if dict(configs) != topic.configs:
        await broker.topics.set_configs_locked(topic.name, dict(configs))
        log.info("topic %s: configs now %s", topic.name, sorted(configs.items()))


def group_name(name: str) -> str:
    """The group a GROUP resource names; raises BrokerError for the default resource ""."""
    if (reason := group_resource_error(name)) is not None:
        raise BrokerError(ErrorCode.invalid_request, reason)
    return name


async def replace_group_configs(
    broker: BrokerCore, group_id: str, configs: Mapping[str, str], *, validate_only: bool
) -> None:
    """Validate every key (Kafka's GroupConfig.validate), then (unless validate_only) make
    `configs` the group's configs. The caller holds `topics.admin_lock`."""
    extra = broker.settings.extra
    for key, value in configs.items():
        if (reason := group_config_error(key, value, extra)) is not None:
            raise BrokerError(ErrorCode.invalid_config, reason)
    if validate_only:
        return
    coordinator = coordinator_of(broker)
    if dict(configs) != coordinator.group_configs.get(group_id, {}):
        await coordinator.set_group_configs_locked(group_id, dict(configs))


def resource_answer(
    rtype: int, name: str, error: BrokerError | None = None
) -> AlterConfigsResourceResponse:
    """One resource's answer; IncrementalAlterConfigs' entity has the same fields."""
    return {
        "error_code": ErrorCode.none if error is None else error.code,
        "error_message": None if error is None else str(error),
        "resource_type": rtype,
        "resource_name": name,
    }


async def _replace(
    broker: BrokerCore, rtype: int, name: str, wanted: dict[str, str], validate_only: bool
) -> None:
    if rtype == RESOURCE_TOPIC:
        topic = find_topic(broker, name)
        await replace_topic_configs(broker, topic, wanted, validate_only=validate_only)
    elif rtype == RESOURCE_BROKER:
        node = broker_scope(broker, name)
        await replace_broker_configs(broker, node, wanted, validate_only=validate_only)
    elif rtype == RESOURCE_GROUP:
        group_id = group_name(name)
        await replace_group_configs(broker, group_id, wanted, validate_only=validate_only)
    else:
        raise BrokerError(
            ErrorCode.invalid_request, f"config resource type {rtype} is not supported"
        )


@handler(33, versions=range(0, 3))
async def alter_configs(request: Any, ctx: RequestContext) -> AlterConfigsResponse:
    """Each resource on its own: one refused resource never fails its siblings."""
    broker = ctx.broker
    validate_only = bool(request.validate_only)
    answers: list[AlterConfigsResourceResponse] = []
    for resource in request.resources:
        rtype, name = int(resource.resource_type), resource.resource_name
        wanted = {c.name: c.value for c in resource.configs if c.value is not None}
        try:
            require_config(ctx, ALTER_CONFIGS, rtype, name)  # raises *_AUTHORIZATION_FAILED
            if nulls := sorted(c.name for c in resource.configs if c.value is None):
                raise BrokerError(ErrorCode.invalid_request, f"null value for {', '.join(nulls)}")
            async with broker.topics.admin_lock:
                await _replace(broker, rtype, name, wanted, validate_only)
        except BrokerError as exc:
            answers.append(resource_answer(rtype, name, exc))
            continue
        answers.append(resource_answer(rtype, name))
    return {"throttle_time": 0, "responses": answers}
