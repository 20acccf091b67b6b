"""The one-line authorization checks handlers make, over the broker's `AclAuthorizer`.

Each handler asks with one call: `topic_denied(ctx, READ, name)` returns the error to answer
(TOPIC_AUTHORIZATION_FAILED) or None; likewise `group_denied`, `cluster_denied`,
`txn_denied`; `allowed` when a handler filters (Metadata hides what may not be described);
`authorized_ops` for the authorized-operations fields. Without an authorizer (the default)
every check passes and the fields list every operation the resource type supports, so
handlers need no second code path.

The principal is Kafka's: `User:<SASL user>`, or `User:ANONYMOUS` on a connection without SASL;
the host is the peer's IP address, as Kafka's ACL hosts are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kafkito.broker.auth.acl import CLUSTER_NAME, AclOperation, ResourceType, supported_operations
from kafkito.broker.auth.authorizer import authorizer_of
from kafkito.errors import BrokerError, ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.dispatch import RequestContext

__all__ = [
    "ALTER",
    "ALTER_CONFIGS",
    "AUTHORIZED_OPERATIONS_OMITTED",
    "CLUSTER_ACTION",
    "CREATE",
    "DELETE",
    "DESCRIBE",
    "DESCRIBE_CONFIGS",
    "IDEMPOTENT_WRITE",
    "READ",
    "WRITE",
    "allowed",
    "authorized_ops",
    "cluster_denied",
    "group_denied",
    "principal_of",
    "topic_denied",
    "txn_denied",
]

AUTHORIZED_OPERATIONS_OMITTED = -(2**31)
"""What an authorized-operations field holds when it was not asked for (KAFKA-NOTES P11)."""

Op = AclOperation
READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE = (
    Op.READ,
    Op.WRITE,
    Op.CREATE,
    Op.DELETE,
    Op.ALTER,
    Op.DESCRIBE,
)
CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS = (
    Op.CLUSTER_ACTION,
    Op.DESCRIBE_CONFIGS,
    Op.ALTER_CONFIGS,
)
IDEMPOTENT_WRITE = Op.IDEMPOTENT_WRITE
TOPIC, GROUP, CLUSTER = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.CLUSTER
TRANSACTIONAL_ID = ResourceType.TRANSACTIONAL_ID


def principal_of(ctx: RequestContext) -> str:
    """Kafka's principal of the request's connection: User:<SASL user> or User:ANONYMOUS."""
    user = getattr(ctx.connection, "authenticated_user", None)
    return f"User:{user or 'ANONYMOUS'}"


def host_of(ctx: RequestContext) -> str:
    """The peer's IP address ("1.2.3.4:5678" and "::1:5678" lose the port)."""
    host = ctx.peer.rpartition(":")[0]
    return host or ctx.peer


def allowed(ctx: RequestContext, operation: AclOperation, rtype: ResourceType, name: str) -> bool:
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None or not authorizer.enabled:
        return True
    return authorizer.allows(principal_of(ctx), host_of(ctx), operation, rtype, name)


def allowed_any(ctx: RequestContext, operation: AclOperation, rtype: ResourceType) -> bool:
    """The operation on some resource of the type (Kafka's authorizeByResourceType)."""
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None or not authorizer.enabled:
        return True
    return authorizer.allows_any(principal_of(ctx), host_of(ctx), operation, rtype)


def topic_denied(ctx: RequestContext, operation: AclOperation, name: str) -> ErrorCode | None:
    if allowed(ctx, operation, TOPIC, name):
        return None
    return ErrorCode.topic_authorization_failed


def group_denied(ctx: RequestContext, operation: AclOperation, group: str) -> ErrorCode | None:
    if allowed(ctx, operation, GROUP, group):
        return None
    return ErrorCode.group_authorization_failed


def cluster_denied(ctx: RequestContext, operation: AclOperation) -> ErrorCode | None:
    if allowed(ctx, operation, CLUSTER, CLUSTER_NAME):
        return None
    return ErrorCode.cluster_authorization_failed


def txn_denied(ctx: RequestContext, operation: AclOperation, txn_id: str) -> ErrorCode | None:
    if allowed(ctx, operation, TRANSACTIONAL_ID, txn_id):
        return None
    return ErrorCode.transactional_id_authorization_failed


def create_topic_denied(ctx: RequestContext, name: str) -> ErrorCode | None:
    """CREATE on the cluster, or else on the topic (Kafka's CreateTopics and auto-create)."""
    if allowed(ctx, CREATE, CLUSTER, CLUSTER_NAME):
        return None
    return topic_denied(ctx, CREATE, name)


def idempotent_denied(ctx: RequestContext) -> ErrorCode | None:
    """InitProducerId without a transactional id: IDEMPOTENT_WRITE on the cluster, or WRITE on
    some topic (KIP-679); else CLUSTER_AUTHORIZATION_FAILED."""
    if allowed(ctx, IDEMPOTENT_WRITE, CLUSTER, CLUSTER_NAME) or allowed_any(ctx, WRITE, TOPIC):
        return None
    return ErrorCode.cluster_authorization_failed


def authorized_ops(ctx: RequestContext, rtype: ResourceType, name: str, asked: bool) -> int:
    """An authorized-operations field: the bits of the supported operations the principal
    may do on the resource, or INT32_MIN when the request did not ask."""
    if not asked:
        return AUTHORIZED_OPERATIONS_OMITTED
    mask = 0
    for operation in supported_operations(rtype):
        if allowed(ctx, operation, rtype, name):
            mask |= 1 << int(operation)
    return mask


def cluster_ops(ctx: RequestContext, asked: bool) -> int:
    return authorized_ops(ctx, CLUSTER, CLUSTER_NAME, asked)


_CONFIG_TOPIC, _CONFIG_BROKER, _CONFIG_BROKER_LOGGER, _CONFIG_GROUP = 2, 4, 8, 32
"""Config resource types of Describe/AlterConfigs (Kafka's ConfigResource.Type)."""


def require_config(ctx: RequestContext, operation: AclOperation, rtype: int, name: str) -> None:
    """Describe/AlterConfigs: the operation on the topic, or on the cluster for broker
    resources, on the group for group resources (KIP-848 group configs); raises
    BrokerError(TOPIC_, CLUSTER_ or GROUP_AUTHORIZATION_FAILED) with Kafka's message."""
    if rtype == _CONFIG_TOPIC:
        denied = topic_denied(ctx, operation, name)
    elif rtype == _CONFIG_GROUP:
        denied = group_denied(ctx, operation, name)
    elif rtype in (_CONFIG_BROKER, _CONFIG_BROKER_LOGGER):
        denied = cluster_denied(ctx, operation)
    else:
        return
    if denied is not None:
        raise BrokerError(denied, DENIED_MESSAGES[denied])


DENIED_MESSAGES = {
    ErrorCode.topic_authorization_failed: "Topic authorization failed.",
    ErrorCode.group_authorization_failed: "Group authorization failed.",
    ErrorCode.cluster_authorization_failed: "Cluster authorization failed.",
    ErrorCode.transactional_id_authorization_failed: "Transactional Id authorization failed.",
}
"""Kafka's Errors messages for the four codes, for answers that carry a message."""


def coordinator_denied(ctx: RequestContext, key: str, key_type: int) -> ErrorCode | None:
    """FindCoordinator: DESCRIBE on the group (key type 0) or transactional id (1)."""
    if key_type == 1:
        return txn_denied(ctx, DESCRIBE, key)
    return group_denied(ctx, DESCRIBE, key)


def describe_denied(group_id: str, code: ErrorCode) -> dict[str, Any]:
    """DescribeGroups' answer for a group it may not describe (Kafka's groupError)."""
    return {
        "error_code": code,
        "group_id": group_id,
        "group_state": "",
        "protocol_type": "",
        "protocol_data": "",
        "members": [],
        "authorized_operations": AUTHORIZED_OPERATIONS_OMITTED,
    }


def listed_groups(ctx: RequestContext, groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ListGroups: every group with DESCRIBE on the cluster, else those it may describe."""
    if allowed(ctx, DESCRIBE, CLUSTER, CLUSTER_NAME):
        return groups
    return [g for g in groups if allowed(ctx, DESCRIBE, GROUP, g["group_id"])]


def heartbeat_denied(ctx: RequestContext, group_id: str, subscribed: Any) -> ErrorCode | None:
    """ConsumerGroupHeartbeat: READ on the group, then DESCRIBE on every subscribed topic
    (GROUP_ or TOPIC_AUTHORIZATION_FAILED; Kafka answers them without a message)."""
    if denied := group_denied(ctx, READ, group_id):
        return denied
    if any(not allowed(ctx, DESCRIBE, TOPIC, t) for t in subscribed or ()):
        return ErrorCode.topic_authorization_failed
    return None


def denied_topics(ctx: RequestContext, operation: AclOperation, names: Any) -> dict[str, ErrorCode]:
    """The names (of those given) the operation is refused on, with the error to answer."""
    return {n: e for n in set(names) if (e := topic_denied(ctx, operation, n)) is not None}


def commit_refusals(
    ctx: RequestContext, operation: AclOperation, group_id: str, topics: list[str]
) -> dict[str, ErrorCode]:
    """OffsetCommit and TxnOffsetCommit: READ on the group (else every topic answers
    GROUP_AUTHORIZATION_FAILED), then the operation on each topic."""
    if denied := group_denied(ctx, READ, group_id):
        return dict.fromkeys(topics, denied)
    return denied_topics(ctx, operation, topics)


def fetch_visible(ctx: RequestContext, answer: Any, *, every_topic: bool) -> Any:
    """OffsetFetch's rows (topic, [(partition, committed, error)]) as the principal may see
    them: topics it may not describe are left out when every topic was asked for, else their
    partitions answer TOPIC_AUTHORIZATION_FAILED without an offset (UNAUTHORIZED_PARTITION)."""
    shown = []
    for topic, rows in answer:
        if (denied := topic_denied(ctx, DESCRIBE, topic)) is None:
            shown.append((topic, rows))
        elif not every_topic:
            shown.append((topic, [(partition, None, denied) for partition, _, _ in rows]))
    return shown


def require_txn(ctx: RequestContext, operation: AclOperation, txn_id: str | None) -> None:
    """Raise BrokerError(TRANSACTIONAL_ID_AUTHORIZATION_FAILED) unless allowed."""
    if txn_id is not None and (denied := txn_denied(ctx, operation, txn_id)):
        raise BrokerError(denied, DENIED_MESSAGES[denied])


def require_group(ctx: RequestContext, operation: AclOperation, group_id: str) -> None:
    """Raise BrokerError(GROUP_AUTHORIZATION_FAILED) unless allowed."""
    if denied := group_denied(ctx, operation, group_id):
        raise BrokerError(denied, DENIED_MESSAGES[denied])


class _Refusals(BrokerError):
    """Per-partition refusals of AddPartitionsToTxn, carried as `codes`."""

    def __init__(self, codes: dict[tuple[str, int], ErrorCode]) -> None:
        super().__init__(ErrorCode.topic_authorization_failed, "Topic authorization failed.")
        self.codes = codes


def txn_topic_refusals(
    ctx: RequestContext, operation: AclOperation, wanted: list[tuple[str, int]]
) -> BrokerError | None:
    """AddPartitionsToTxn: with any topic refused, those answer TOPIC_AUTHORIZATION_FAILED
    and every other partition OPERATION_NOT_ATTEMPTED (nothing is added), as Kafka does."""
    refused = denied_topics(ctx, operation, (t for t, _ in wanted))
    if not refused:
        return None
    return _Refusals({(t, p): refused.get(t, ErrorCode.operation_not_attempted) for t, p in wanted})


_ATTRIBUTES_LOW_BYTE, _TRANSACTIONAL_BIT = 22, 0x10
"""Where a v2 record batch keeps its transactional flag (KAFKA-NOTES §4)."""


def produce_txn_denied(ctx: RequestContext, request: Any) -> ErrorCode | None:
    """Produce with transactional batches needs WRITE on its transactional id (Kafka's
    hasTransactionalRecords check, before any topic): else every partition answers
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED."""
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None or not authorizer.enabled:
        return None
    transactional = any(
        p.records is not None
        and len(p.records) > _ATTRIBUTES_LOW_BYTE
        and p.records[_ATTRIBUTES_LOW_BYTE] & _TRANSACTIONAL_BIT
        for t in request.topics
        for p in t.partitions
    )
    if not transactional:
        return None
    if request.transactional_id is None:
        return ErrorCode.transactional_id_authorization_failed
    return txn_denied(ctx, WRITE, request.transactional_id)
