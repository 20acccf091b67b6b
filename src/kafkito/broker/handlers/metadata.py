"""Metadata (key 3), v0-12.

v1: null topics = all topics, controller_id, is_internal. v2: cluster_id. v4:
allow_auto_topic_creation. v5: offline_replicas. v7: leader_epoch. v8: authorized operations of
topics (v8+) and of the cluster (v8-10), INT32_MIN when not requested (KAFKA-NOTES P11). v9:
flexible. v10: topic ids. v12: topic name nullable in the request (lookup by id).

One broker is leader, replica and ISR of everything, with a constant leader epoch of 0. The
advertised address is the one actually bound (port 0 allowed). Unknown topics are created when
the request allows it and the broker is configured to.

Authorization (broker/auth): topics the principal may not DESCRIBE are left out of an
all-topics answer and answered TOPIC_AUTHORIZATION_FAILED when named (their existence is not
disclosed); auto-creation needs CREATE on the cluster or the topic. Authorized operations are
what the principal may do (everything the resource type supports without an authorizer); only
valid AclOperation bits (3-14) are set, never -1 (P11: a bit 15 made kafka-python fail).
"""

from __future__ import annotations

import uuid
from typing import Any

from kafkito.broker.auth import checks
from kafkito.broker.auth.checks import authorized_ops, cluster_ops, create_topic_denied
from kafkito.broker.dispatch import RawBody, RequestContext, handler
from kafkito.broker.request_quota import throttle_encoded
from kafkito.broker.state import LEADER_EPOCH, Topic, topic_name_error
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.hot.metadata import METADATA_VERSIONS, encode_metadata_response

AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
ZERO_UUID = uuid.UUID(int=0)

# Kafka's AclOperation codes; bit i of an authorized-operations field stands for code i.
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = 3, 4, 5, 6, 7, 8
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE = 9, 10, 11, 12


def operations_mask(*operations: int) -> int:
    """The authorized-operations bit field allowing `operations`."""
    mask = 0
    for operation in operations:
        assert 3 <= operation <= 14, operation
        mask |= 1 << operation
    return mask


# What Kafka's AclEntry.supportedOperations lists per resource type.
TOPIC_OPERATIONS = operations_mask(
    READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS
)
CLUSTER_OPERATIONS = operations_mask(
    CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE
)
GROUP_OPERATIONS = operations_mask(READ, DESCRIBE, DELETE)


def topic_metadata(
    topic: Topic, node_id: int, authorized_operations: int = AUTHORIZED_OPERATIONS_OMITTED
) -> dict[str, Any]:
    """A topic's entry: its partitions as a count (protocol/hot/metadata.py writes them)."""
    return {
        "error_code": ErrorCode.none,
        "name": topic.name,
        "topic_id": topic.topic_id,
        "is_internal": topic.internal,
        "partition_count": len(topic.partitions),
        "leader_epoch": LEADER_EPOCH,
        "topic_authorized_operations": authorized_operations,
    }


def missing_topic(
    name: str | None, code: ErrorCode, topic_id: uuid.UUID = ZERO_UUID
) -> dict[str, Any]:
    return {
        "error_code": code,
        "name": name,
        "topic_id": topic_id,
        "is_internal": False,
        "partition_count": 0,
        "leader_epoch": LEADER_EPOCH,
        "topic_authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def _describable(ctx: RequestContext, name: str) -> bool:
    return checks.allowed(ctx, checks.DESCRIBE, checks.TOPIC, name)


@handler(3, versions=METADATA_VERSIONS)
async def metadata(request: Any, ctx: RequestContext) -> RawBody:
    broker = ctx.broker
    node = broker.settings.node_id
    registry = broker.topics
    # Before v4 the request had no flag and creation was implied.
    allow_create = bool(request.allow_auto_topic_creation) if ctx.api_version >= 4 else True
    allow_create = allow_create and broker.settings.auto_create_topics
    ops_asked = bool(getattr(request, "include_topic_authorized_operations", False))

    def shown(topic: Topic) -> dict[str, Any]:
        return topic_metadata(topic, node, authorized_ops(ctx, checks.TOPIC, topic.name, ops_asked))

    requested = request.topics
    if requested is None or (ctx.api_version == 0 and not requested):
        topics = [shown(t) for t in registry.by_name.values() if _describable(ctx, t.name)]
    else:
        topics = []
        for wanted in requested:
            name = getattr(wanted, "name", None)
            wanted_id = getattr(wanted, "topic_id", None)
            if name is None and wanted_id is not None and wanted_id != ZERO_UUID:
                found = registry.by_id.get(wanted_id)
                if found and (denied := checks.topic_denied(ctx, checks.DESCRIBE, found.name)):
                    topics.append(missing_topic(None, denied, wanted_id))
                    continue
                topics.append(
                    shown(found)
                    if found
                    else missing_topic(None, ErrorCode.unknown_topic_id, wanted_id)
                )
                continue
            if name is None:
                topics.append(missing_topic(None, ErrorCode.invalid_topic_exception))
                continue
            if denied := checks.topic_denied(
                ctx, checks.DESCRIBE, name
            ):  # existence is not disclosed
                topics.append(missing_topic(name, denied))
                continue
            topic = registry.get(name)
            if topic is None and topic_name_error(name) is not None:
                # Kafka answers a name that can never exist so, whether or not creation was
                # allowed: the client learns it is wrong, not that it might appear later.
                topics.append(missing_topic(name, ErrorCode.invalid_topic_exception))
                continue
            if topic is None and allow_create:
                if denied := create_topic_denied(ctx, name):  # CREATE on cluster or topic
                    topics.append(missing_topic(name, denied))
                    continue
                try:
                    topic = await registry.create(name, broker.settings.num_partitions)
                except BrokerError as exc:
                    # another request created it while this one waited for the admin lock
                    topic = registry.get(name)
                    if topic is None:
                        topics.append(missing_topic(name, exc.code))
                        continue
            topics.append(
                shown(topic) if topic else missing_topic(name, ErrorCode.unknown_topic_or_partition)
            )
    # Encoded by hand: kio's generic writer took ~0.4 s for a 10,000-partition topic.
    body = {
        # a request quota's throttle: a RawBody is past metered_handle's reach (v3+ tell it)
        "throttle_time": await throttle_encoded(ctx, can_tell=ctx.api_version >= 3),
        "brokers": [{"node_id": node, "host": broker.host, "port": broker.port, "rack": None}],
        "cluster_id": broker.cluster_id,
        "controller_id": node,
        "topics": topics,
        "cluster_authorized_operations": cluster_ops(
            ctx, bool(getattr(request, "include_cluster_authorized_operations", False))
        ),
    }
    return RawBody([encode_metadata_response(ctx.api_version, body)])
