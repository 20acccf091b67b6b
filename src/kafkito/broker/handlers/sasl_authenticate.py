"""SaslAuthenticate (key 36), v0-2.

v0: auth_bytes in, error_code, error_message and auth_bytes out. v1: session_lifetime_ms (KIP-368
re-authentication): 0 unless `connections_max_reauth_ms` is set, then the session's lifetime,
after which the client re-authenticates on the same connection (broker/auth/session.py). v2:
flexible.

The token goes to the connection's SaslSession (kafkito.broker.auth). A failure answers
SASL_AUTHENTICATION_FAILED with a message that names the mechanism but never the password,
after `auth_failure_delay_ms` (as Kafka answers), and the connection is closed
CLOSE_GRACE_S after the answer is written: sent together with the close, the answer was lost
to kafka-python about one time in three (its transport takes the close before the bytes; the
same happens against Apache Kafka, which closes at once), and the user saw "socket
disconnected" instead of "authentication failed".
ILLEGAL_SASL_STATE when no SaslHandshake v1 came first (or on a listener without SASL).
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.auth import SaslFailed, SaslState
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import SaslAuthenticateResponse

CLOSE_GRACE_S = 0.2
"""How long a failed login's connection stays open after its answer (see above)."""


@handler(36, versions=range(0, 3))
async def sasl_authenticate(request: Any, ctx: RequestContext) -> SaslAuthenticateResponse:
    connection = ctx.connection
    session = getattr(connection, "sasl", None)
    if session is None or session.state is not SaslState.AUTHENTICATE:
        connection.close_after_answer = True
        return {
            "error_code": ErrorCode.illegal_sasl_state,
            "error_message": "SaslAuthenticate without a SaslHandshake v1 before it",
            "auth_bytes": b"",
            "session_lifetime": 0,
        }
    try:
        answer = await session.step(bytes(request.auth_bytes), ctx.peer)
    except SaslFailed as exc:
        connection.close_after_answer = True
        connection.close_delay_s = CLOSE_GRACE_S
        return {
            "error_code": ErrorCode.sasl_authentication_failed,
            "error_message": str(exc),
            "auth_bytes": b"",
            "session_lifetime": 0,
        }
    return {
        "error_code": ErrorCode.none,
        "error_message": None,
        "auth_bytes": answer,
        "session_lifetime": session.session_lifetime_ms if session.authenticated else 0,
    }
