"""DescribeAcls (key 29), v1-3.

v1: pattern type filters (ANY, MATCH, LITERAL, PREFIXED). v2: flexible. v3: no change.
Needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED); SECURITY_DISABLED without
an authorizer. The matching ACLs are grouped by resource pattern, as Kafka answers.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.acl import AclFilter, InvalidAcl
from kafkito.broker.auth.authorizer import authorizer_of
from kafkito.broker.auth.checks import DENIED_MESSAGES, DESCRIBE, cluster_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.handlers.create_acls import NO_AUTHORIZER
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    DescribeAclsResponse,
    DescribeAclsResponseAclDescription,
)


def _failed(code: ErrorCode, message: str | None) -> DescribeAclsResponse:
    return {"throttle_time": 0, "error_code": code, "error_message": message, "resources": []}


@handler(29, versions=range(1, 4))
async def describe_acls(request: Any, ctx: RequestContext) -> DescribeAclsResponse:
    authorizer = authorizer_of(ctx.broker)
    if authorizer is None or not authorizer.enabled:
        return _failed(ErrorCode.security_disabled, NO_AUTHORIZER)
    if (denied := cluster_denied(ctx, DESCRIBE)) is not None:
        return _failed(denied, DENIED_MESSAGES[denied])
    try:
        wanted = AclFilter.parse(
            request.resource_type_filter,
            request.resource_name_filter,
            request.pattern_type_filter,
            request.principal_filter,
            request.host_filter,
            request.operation,
            request.permission_type,
        )
    except InvalidAcl as exc:
        return _failed(ErrorCode.invalid_request, str(exc))
    resources: dict[tuple[int, str, int], list[DescribeAclsResponseAclDescription]] = {}
    for acl in authorizer.describe(wanted):
        key = (int(acl.resource_type), acl.name, int(acl.pattern_type))
        resources.setdefault(key, []).append(
            {
                "principal": acl.principal,
                "host": acl.host,
                "operation": int(acl.operation),
                "permission_type": int(acl.permission),
            }
        )
    return {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
        "error_message": None,
        "resources": [
            {"resource_type": t, "resource_name": n, "pattern_type": p, "acls": acls}
            for (t, n, p), acls in resources.items()
        ],
    }
