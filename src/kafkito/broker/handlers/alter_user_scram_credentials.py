"""AlterUserScramCredentials (key 51), v0 (flexible).

Upserts and deletes SCRAM credentials in the broker's user store (the file `kafkito users`
manages, see describe_user_scram_credentials.users_path). An upsertion carries what the client
derived (KIP-554): the salt, the iteration count and SaltedPassword = Hi(password, salt, i); the
broker keeps StoredKey and ServerKey computed from it (RFC 5802), never the password. A
deletion removes one mechanism of a user.

Checks, per user, with Kafka 4.1's codes and messages: ALTER on the CLUSTER
(CLUSTER_AUTHORIZATION_FAILED), a user named more than once in the request (deletions and
upsertions together) DUPLICATE_RESOURCE, an empty name or iterations outside 4096-16384
UNACCEPTABLE_CREDENTIAL, a mechanism other than 1/2 UNSUPPORTED_SASL_MECHANISM, deleting a
credential that does not exist RESOURCE_NOT_FOUND. kafkito also refuses an empty salted
password (UNACCEPTABLE_CREDENTIAL; Kafka fails it with UNKNOWN_SERVER_ERROR). Users that pass
are written in one atomic file replace (fsync, rename) off the event loop, under the admin
lock; the SASL listener re-reads the file at its next login.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import hmac
import logging
from typing import Any

from kafkito.broker.auth.checks import ALTER, cluster_denied
from kafkito.broker.auth.scram import DIGESTS, ScramCredential
from kafkito.broker.auth.store import UserStoreError
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.handlers.describe_user_scram_credentials import MECHANISM_NAMES, load_users
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import (
    AlterUserScramCredentialsResponse,
)

log = logging.getLogger(__name__)

MIN_ITERATIONS, MAX_ITERATIONS = 4096, 16384
"""Kafka's ScramMechanism bounds."""


def credential_from_salted(
    mechanism: str, salt: bytes, iterations: int, salted_password: bytes
) -> ScramCredential:
    """StoredKey and ServerKey from the client's SaltedPassword (RFC 5802 §3); pure."""
    digest = DIGESTS[mechanism]
    client_key = hmac.digest(salted_password, b"Client Key", digest)
    return ScramCredential(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(digest, client_key).digest(),
        server_key=hmac.digest(salted_password, b"Server Key", digest),
    )


def _upsertion_error(up: Any) -> tuple[ErrorCode, str] | None:
    if not up.name:
        return ErrorCode.unacceptable_credential, "Username must not be empty"
    if int(up.mechanism) not in MECHANISM_NAMES:
        return ErrorCode.unsupported_sasl_mechanism, "Unknown SCRAM mechanism"
    if int(up.iterations) < MIN_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too few iterations"
    if int(up.iterations) > MAX_ITERATIONS:
        return ErrorCode.unacceptable_credential, "Too many iterations"
    if not up.salted_password:
        return ErrorCode.unacceptable_credential, "Salted password must not be empty"
    return None


@handler(51, versions=range(0, 1))
async def alter_user_scram_credentials(
    request: Any, ctx: RequestContext
) -> AlterUserScramCredentialsResponse:
    users_in_order = list(
        dict.fromkeys([d.name for d in request.deletions] + [u.name for u in request.upsertions])
    )
    errors: dict[str, tuple[ErrorCode, str | None]] = {}
    if (denied := cluster_denied(ctx, ALTER)) is not None:
        errors = dict.fromkeys(users_in_order, (denied, None))
        return _answer(users_in_order, errors)
    counts = collections.Counter(
        [d.name for d in request.deletions] + [u.name for u in request.upsertions]
    )
    for user, n in counts.items():
        if n > 1:
            message = "A user credential cannot be altered twice in the same request"
            errors[user] = (ErrorCode.duplicate_resource, message)
    for deletion in request.deletions:
        if deletion.name in errors:
            continue
        if not deletion.name:
            errors[deletion.name] = (
                ErrorCode.unacceptable_credential,
                "Username must not be empty",
            )
        elif int(deletion.mechanism) not in MECHANISM_NAMES:
            errors[deletion.name] = (
                ErrorCode.unsupported_sasl_mechanism,
                "Unknown SCRAM mechanism",
            )
    for up in request.upsertions:
        if up.name not in errors and (error := _upsertion_error(up)) is not None:
            errors[up.name] = error
    settings = ctx.broker.settings
    async with ctx.broker.topics.admin_lock:  # read-modify-write of the file, one at a time
        try:
            store = await load_users(settings)
        except (OSError, UserStoreError) as exc:
            failed = (ErrorCode.unknown_server_error, f"cannot read the user store: {exc}")
            return _answer(users_in_order, {u: errors.get(u, failed) for u in users_in_order})
        changed: list[str] = []
        for deletion in request.deletions:
            if deletion.name in errors:
                continue
            mechanism = MECHANISM_NAMES[int(deletion.mechanism)]
            credentials = store.users.get(deletion.name, {})
            if mechanism not in credentials:
                message = "Attempt to delete a user credential that does not exist"
                errors[deletion.name] = (ErrorCode.resource_not_found, message)
                continue
            del credentials[mechanism]
            if not credentials:
                del store.users[deletion.name]
            changed.append(deletion.name)
        for up in request.upsertions:
            if up.name in errors:
                continue
            mechanism = MECHANISM_NAMES[int(up.mechanism)]
            store.users.setdefault(up.name, {})[mechanism] = credential_from_salted(
                mechanism, bytes(up.salt), int(up.iterations), bytes(up.salted_password)
            )
            changed.append(up.name)
        if changed:
            try:
                await asyncio.to_thread(store.save)
            except OSError as exc:
                log.error("cannot write the user store %s: %s", store.path, exc)
                failed = (ErrorCode.unknown_server_error, "cannot write the user store")
                errors.update(dict.fromkeys(changed, failed))
            else:
                log.info("SCRAM credentials changed for %s", ", ".join(sorted(set(changed))))
    return _answer(users_in_order, errors)


def _answer(
    users: list[str], errors: dict[str, tuple[ErrorCode, str | None]]
) -> AlterUserScramCredentialsResponse:
    return {
        "throttle_time": 0,
        "results": [
            {
                "user": user,
                "error_code": errors.get(user, (ErrorCode.none, None))[0],
                "error_message": errors.get(user, (ErrorCode.none, None))[1],
            }
            for user in users
        ],
    }
