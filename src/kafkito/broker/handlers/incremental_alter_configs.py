"""IncrementalAlterConfigs (key 44), v0-1.

v0: resources with per-key operations; validate_only. v1: flexible.

Operations: SET (0) a value, DELETE (1) an override (back to the default), APPEND (2) and
SUBTRACT (3) items of a list key (cleanup.policy), starting from its effective value, default
included. Keys not named keep their values. A key named twice in one resource, or an unknown
operation, is INVALID_REQUEST, as is SET with a null value; an unknown key, a bad value, or
APPEND/SUBTRACT on a key that is not a list is INVALID_CONFIG naming the key. Everything is
checked before anything changes.

A BROKER resource ("" cluster-wide, or this node's id) changes that scope's dynamic broker
configs (see AlterConfigs for the errors); APPEND and SUBTRACT start from the scope's dynamic
value, else Kafka's default (Kafka's ConfigurationControlManager does the same).

A GROUP resource (KIP-848 group configs, group_configs.py) changes that group's configs.

Each resource reads its current configs, applies the operations and writes the result under
`topics.admin_lock`: two concurrent alters of one resource both take effect, one after the
other (read outside the lock, the second would write back the configs it read before the first
one's change, losing it).
"""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kafkito.broker.auth.checks import ALTER_CONFIGS, require_config
from kafkito.broker.broker_keys_kafka import STORED_BROKER_KEYS
from kafkito.broker.configs import (
    BROKER_TO_TOPIC,
    LIST_SEPARATOR,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
    TOPIC_CONFIGS,
    ConfigKey,
    split_list,
    topic_default_values,
)
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.group_configs import RESOURCE_GROUP, as_config_keys
from kafkito.broker.handlers.alter_configs import (
    broker_scope,
    check_broker_keys,
    find_topic,
    group_name,
    replace_broker_configs,
    replace_group_configs,
    replace_topic_configs,
    resource_answer,
)
from kafkito.broker.state import Topic
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.responses import (
    IncrementalAlterConfigsResponse,
    IncrementalAlterConfigsResponseAlterConfigsResourceResponse,
)

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3
_OPERATION_NAMES = {SET: "SET", DELETE: "DELETE", APPEND: "APPEND", SUBTRACT: "SUBTRACT"}


def apply_operations(
    current: dict[str, str],
    defaults: dict[str, str | None],
    operations: list[tuple[str, int, Any]],
    keys: Mapping[str, ConfigKey] = TOPIC_CONFIGS,
) -> dict[str, str]:
    """The overrides after `operations` (name, op, value), with `keys` giving each name's type;
    pure. Raises BrokerError."""
    counts = collections.Counter(name for name, _, _ in operations)
    if twice := sorted(name for name, n in counts.items() if n > 1):
        raise BrokerError(ErrorCode.invalid_request, f"config keys named twice: {twice}")
    result = dict(current)
    for name, op, value in operations:
        if op not in _OPERATION_NAMES:
            raise BrokerError(ErrorCode.invalid_request, f"unknown config operation {op}")
        key = keys.get(name)
        if key is None:
            raise BrokerError(ErrorCode.invalid_config, f"unknown topic config {name!r}")
        if op == DELETE:
            result.pop(name, None)
            continue
        if value is None:
            raise BrokerError(
                ErrorCode.invalid_request, f"null value for {_OPERATION_NAMES[op]} of {name!r}"
            )
        if op == SET:
            result[name] = value
            continue
        if key.type != "list":
            raise BrokerError(
                ErrorCode.invalid_config,
                # Kafka's words (ConfigurationControlManager, and GroupConfigManager alike)
                f"Can't {_OPERATION_NAMES[op]} to key {name} because its type is not LIST.",
            )
        base = result.get(name, defaults.get(name)) or ""
        items = split_list(base)
        given = split_list(value)
        if op == APPEND:
            items += given
        else:
            items = [item for item in items if item not in given]
        result[name] = LIST_SEPARATOR.join(dict.fromkeys(items))  # each item once, in order
    return result


_GROUP_KEYS = as_config_keys()
_BROKER_KEYS: dict[str, ConfigKey] = {
    **BROKER_TO_TOPIC,
    **{k.name: ConfigKey(k.name, k.default, k.type, "") for k in STORED_BROKER_KEYS.values()},
}
"""Every broker key a client may change, with its type (APPEND and SUBTRACT need it)."""


async def _alter_group(
    broker: BrokerCore, name: str, operations: list[tuple[str, int, Any]], validate_only: bool
) -> None:
    group_id = group_name(name)
    unknown = sorted({n for n, _, _ in operations} - set(_GROUP_KEYS))
    if unknown:
        raise BrokerError(ErrorCode.invalid_config, f"Unknown group config name: {unknown[0]}")
    current = coordinator_of(broker).group_configs.get(group_id, {})
    wanted = apply_operations(current, {}, operations, _GROUP_KEYS)
    await replace_group_configs(broker, group_id, wanted, validate_only=validate_only)


async def _alter_topic(
    broker: BrokerCore, topic: Topic, operations: list[tuple[str, int, Any]], validate_only: bool
) -> None:
    defaults = topic_default_values(broker.settings, broker.topics.dynamic)
    wanted = apply_operations(topic.configs, defaults, operations)
    await replace_topic_configs(broker, topic, wanted, validate_only=validate_only)


async def _alter_broker(
    broker: BrokerCore, name: str, operations: list[tuple[str, int, Any]], validate_only: bool
) -> None:
    node = broker_scope(broker, name)
    check_broker_keys([n for n, _, _ in operations])
    dynamic = broker.topics.dynamic
    current = dynamic.cluster if node is None else dynamic.node
    defaults = {name: key.default for name, key in _BROKER_KEYS.items()}
    wanted = apply_operations(current, defaults, operations, _BROKER_KEYS)
    await replace_broker_configs(broker, node, wanted, validate_only=validate_only)


@handler(44, versions=range(0, 2))
async def incremental_alter_configs(
    request: Any, ctx: RequestContext
) -> IncrementalAlterConfigsResponse:
    """Each resource on its own: one refused resource never fails its siblings."""
    broker = ctx.broker
    validate_only = bool(request.validate_only)
    answers: list[IncrementalAlterConfigsResponseAlterConfigsResourceResponse] = []
    for resource in request.resources:
        rtype, name = int(resource.resource_type), resource.resource_name
        operations = [(c.name, int(c.config_operation), c.value) for c in resource.configs]
        try:
            require_config(ctx, ALTER_CONFIGS, rtype, name)  # raises *_AUTHORIZATION_FAILED
            async with broker.topics.admin_lock:  # read, apply and write as one change
                if rtype == RESOURCE_TOPIC:
                    await _alter_topic(broker, find_topic(broker, name), operations, validate_only)
                elif rtype == RESOURCE_BROKER:
                    await _alter_broker(broker, name, operations, validate_only)
                elif rtype == RESOURCE_GROUP:
                    await _alter_group(broker, name, operations, validate_only)
                else:
                    raise BrokerError(
                        ErrorCode.invalid_request, f"config resource type {rtype} is not supported"
                    )
        except BrokerError as exc:
            answers.append(resource_answer(rtype, name, exc))
            continue
        answers.append(resource_answer(rtype, name))
    return {"throttle_time": 0, "responses": answers}
