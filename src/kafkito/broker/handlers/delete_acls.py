"""DeleteAcls (key 31), v1-3.

v1: pattern type filters. v2: flexible. v3: no change. Needs ALTER on the cluster (else
CLUSTER_AUTHORIZATION_FAILED per filter); SECURITY_DISABLED without an authorizer. Each filter
answers the ACLs it deleted; the deletions are persisted (fsynced) before the answer.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.acl import AclFilter, InvalidAcl
from kafkito.broker.auth.authorizer import authorizer_of
from kafkito.broker.auth.checks import ALTER, DENIED_MESSAGES, cluster_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.handlers.create_acls import NO_AUTHORIZER
from kafkito.errors import ErrorCode, StorageError
from kafkito.protocol.responses import (
    DeleteAclsFilterResult,
    DeleteAclsMatchingAcl,
    DeleteAclsResponse,
)


def _result(
    code: ErrorCode, message: str | None, acls: list[DeleteAclsMatchingAcl] | None = None
) -> DeleteAclsFilterResult:
    return {"error_code": code, "error_message": message, "matching_acls": acls or []}


@handler(31, versions=range(1, 4))
async def delete_acls(request: Any, ctx: RequestContext) -> DeleteAclsResponse:
    authorizer = authorizer_of(ctx.broker)
    n = len(request.filters)
    results: list[DeleteAclsFilterResult]
    if authorizer is None or not authorizer.enabled:
        results = [_result(ErrorCode.security_disabled, NO_AUTHORIZER)] * n
    elif (denied := cluster_denied(ctx, ALTER)) is not None:
        results = [_result(denied, DENIED_MESSAGES[denied])] * n
    else:
        parsed: list[AclFilter | str] = []
        for f in request.filters:
            try:
                parsed.append(
                    AclFilter.parse(
                        f.resource_type_filter,
                        f.resource_name_filter,
                        f.pattern_type_filter,
                        f.principal_filter,
                        f.host_filter,
                        f.operation,
                        f.permission_type,
                    )
                )
            except InvalidAcl as exc:
                parsed.append(str(exc))
        filters = [f for f in parsed if isinstance(f, AclFilter)]
        try:
            deleted = iter(await authorizer.delete(filters))
        except (StorageError, OSError) as exc:
            return {
                "throttle_time": 0,
                "filter_results": [_result(ErrorCode.unknown_server_error, str(exc))] * n,
            }
        results = []
        for f in parsed:
            if isinstance(f, str):
                results.append(_result(ErrorCode.invalid_request, f))
                continue
            matching: list[DeleteAclsMatchingAcl] = [
                {
                    "error_code": ErrorCode.none,
                    "error_message": None,
                    "resource_type": int(acl.resource_type),
                    "resource_name": acl.name,
                    "pattern_type": int(acl.pattern_type),
                    "principal": acl.principal,
                    "host": acl.host,
                    "operation": int(acl.operation),
                    "permission_type": int(acl.permission),
                }
                for acl in next(deleted)
            ]
            results.append(_result(ErrorCode.none, None, matching))
    return {"throttle_time": 0, "filter_results": results}
