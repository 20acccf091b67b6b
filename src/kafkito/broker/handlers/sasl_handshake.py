"""SaslHandshake (key 17), v0-1.

v0: the client names a mechanism; the tokens that follow travel as bare size-prefixed frames
without a request header (kafka-python can still do this). v1: the tokens travel inside
SaslAuthenticate requests. Both answer with the enabled mechanisms.

UNSUPPORTED_SASL_MECHANISM for a mechanism not enabled (the connection is then closed, as
Kafka does); ILLEGAL_SASL_STATE on a listener without SASL or on a connection past its
handshake. The connection loop lets only ApiVersions and this request through before it.
"""

from __future__ import annotations

from typing import Any

from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import ErrorCode
from kafkito.protocol.responses import SaslHandshakeResponse


@handler(17, versions=range(0, 2))
async def sasl_handshake(request: Any, ctx: RequestContext) -> SaslHandshakeResponse:
    connection = ctx.connection
    session = getattr(connection, "sasl", None)
    if session is None or not session.can_handshake():
        return {"error_code": ErrorCode.illegal_sasl_state, "mechanisms": []}
    if not session.handshake(str(request.mechanism), ctx.api_version):
        connection.close_after_answer = True
        return {
            "error_code": ErrorCode.unsupported_sasl_mechanism,
            "mechanisms": session.mechanisms,
        }
    return {"error_code": ErrorCode.none, "mechanisms": session.mechanisms}
