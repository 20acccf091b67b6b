"""DescribeUserScramCredentials (key 50), v0 (flexible).

Lists the SCRAM credentials of the broker's users: per user, each mechanism (1 SCRAM-SHA-256,
2 SCRAM-SHA-512) and its iteration count, never a salt or key. Null or empty `users` means every
user; a named user without credentials is RESOURCE_NOT_FOUND, one named twice
DUPLICATE_RESOURCE, with Kafka 4.1's messages. DESCRIBE on the CLUSTER is required (else a
top-level CLUSTER_AUTHORIZATION_FAILED and no results), as in Kafka.

The users are those of the broker's user store (`--sasl-users-file`, managed by `kafkito users`
and by AlterUserScramCredentials); a broker without one keeps admin-made credentials in
`<data dir>/users.json` (`users_path`), ready for a SASL listener pointed at it. The file is read
off the event loop at each request, so changes by `kafkito users` show at once.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from kafkito.broker.auth.checks import DESCRIBE, cluster_denied
from kafkito.broker.auth.store import UserStore, UserStoreError
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    DescribeUserScramCredentialsResponse,
    DescribeUserScramCredentialsResponseCredentialInfo,
    DescribeUserScramCredentialsResult,
)

if TYPE_CHECKING:
    from kafkito.broker.settings import BrokerSettings

MECHANISM_IDS = {"SCRAM-SHA-256": 1, "SCRAM-SHA-512": 2}
"""Kafka's ScramMechanism type ids."""
MECHANISM_NAMES = {v: k for k, v in MECHANISM_IDS.items()}


def users_path(settings: BrokerSettings) -> str:
    """The user store admin requests read and write."""
    return settings.sasl_users_file or os.path.join(settings.data_path, "users.json")


async def load_users(settings: BrokerSettings) -> UserStore:
    """The user store, read in a worker thread (a missing file is an empty store)."""
    return await asyncio.to_thread(UserStore.load, users_path(settings), missing_ok=True)


def _result(
    user: str,
    code: ErrorCode,
    message: str,
    infos: list[DescribeUserScramCredentialsResponseCredentialInfo],
) -> DescribeUserScramCredentialsResult:
    return {"user": user, "error_code": code, "error_message": message, "credential_infos": infos}


@handler(50, versions=range(0, 1))
async def describe_user_scram_credentials(
    request: Any, ctx: RequestContext
) -> DescribeUserScramCredentialsResponse:
    answer: DescribeUserScramCredentialsResponse = {
        "throttle_time": 0,
        "error_code": ErrorCode.none,
    }
    if (denied := cluster_denied(ctx, DESCRIBE)) is not None:
        return {**answer, "error_code": denied, "error_message": None, "results": []}
    try:
        store = await load_users(ctx.broker.settings)
    except (OSError, UserStoreError) as exc:
        message = f"cannot read the user store: {exc}"
        return {**answer, "error_code": ErrorCode.unknown_server_error, "error_message": message,
                "results": []}  # fmt: skip
    named = [u.name for u in request.users] if request.users else sorted(store.users)
    results: list[DescribeUserScramCredentialsResult] = []
    seen: set[str] = set()
    for user in named:
        if user in seen:
            continue
        seen.add(user)
        if named.count(user) > 1:
            results.append(
                _result(
                    user,
                    ErrorCode.duplicate_resource,
                    "Cannot describe SCRAM credentials for the same user twice in a single "
                    f"request: {user}",
                    [],
                )
            )
            continue
        credentials = store.users.get(user)
        if not credentials:
            message = f"Attempt to describe a user credential that does not exist: {user}"
            results.append(_result(user, ErrorCode.resource_not_found, message, []))
            continue
        infos: list[DescribeUserScramCredentialsResponseCredentialInfo] = [
            {"mechanism": MECHANISM_IDS[m], "iterations": c.iterations}
            for m, c in sorted(credentials.items(), key=lambda mc: MECHANISM_IDS[mc[0]])
        ]
        results.append(_result(user, ErrorCode.none, "", infos))
    return {**answer, "error_message": "", "results": results}
