"""CreateAcls (key 30), v1-3.

v1: pattern types (LITERAL, PREFIXED). v2: flexible. v3: no change. (v0 is gone in Kafka 4.)
Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED on every creation); without an
authorizer every creation answers SECURITY_DISABLED, as a Kafka broker without one does. Each
creation is checked on its own (INVALID_REQUEST with Kafka's message); the valid ones are
persisted together, fsynced, before the answer (broker/auth/authorizer.py).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth.acl import Acl, InvalidAcl
from kafkito.broker.auth.authorizer import authorizer_of
from kafkito.broker.auth.checks import ALTER, DENIED_MESSAGES, cluster_denied
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode, StorageError
from kafkito.protocol.responses import CreateAclsResponse

NO_AUTHORIZER = "No Authorizer is configured on the broker"


@handler(30, versions=range(1, 4))
async def create_acls(request: Any, ctx: RequestContext) -> CreateAclsResponse:
    authorizer = authorizer_of(ctx.broker)
    results: list[tuple[ErrorCode, str | None]] = []
    if authorizer is None or not authorizer.enabled:
        results = [(ErrorCode.security_disabled, NO_AUTHORIZER)] * len(request.creations)
    elif (denied := cluster_denied(ctx, ALTER)) is not None:
        results = [(denied, DENIED_MESSAGES[denied])] * len(request.creations)
    else:
        valid: list[Acl] = []
        for c in request.creations:
            try:
                acl = Acl.parse(
                    c.resource_type,
                    c.resource_name,
                    c.resource_pattern_type,
                    c.principal,
                    c.host,
                    c.operation,
                    c.permission_type,
                )
            except InvalidAcl as exc:
                results.append((ErrorCode.invalid_request, str(exc)))
                continue
            valid.append(acl)
            results.append((ErrorCode.none, ""))  # Kafka answers "" on success
        try:
            await authorizer.create(valid)
        except (StorageError, OSError, ValueError) as exc:
            code = (
                ErrorCode.policy_violation
                if isinstance(exc, ValueError)
                else ErrorCode.unknown_server_error
            )
            results = [
                (code, str(exc)) if error is ErrorCode.none else (error, message)
                for error, message in results
            ]
    return {
        "throttle_time": 0,
        "results": [{"error_code": e, "error_message": m} for e, m in results],
    }
