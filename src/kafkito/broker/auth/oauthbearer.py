"""SASL OAUTHBEARER (RFC 7628, KIP-255) with unsecured JWTs, as Kafka offers for development; pure.

Kafka's default server-side OAUTHBEARER handler (OAuthBearerUnsecuredValidatorCallbackHandler)
accepts an *unsecured* JWS: `base64url(header) . base64url(claims) .` with an empty signature
and `"alg": "none"`. It is for development and tests only: anyone may claim any principal. This
module does what that handler does:

* the client's first message (OAuthBearerClientInitialResponse) is
  `n,[a=<authzid>],` 0x01 `auth=Bearer <token>` (0x01 `key=value`)* 0x01 0x01; an authzid, if
  given, must equal the token's principal;
* the token's claims must hold the principal (`sub`), `exp` (seconds since the epoch, a number)
  in the future, and `iat`, when present, not in the future; `scope` is a string or a list;
* the principal is `User:<sub>` for ACLs.

A refused token is answered with a JSON error challenge (`{"status":"invalid_token"}`); the
client then sends a lone 0x01 and the login fails (RFC 7628 section 3.2.3), which the SASL
session drives.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from kafkito.errors import KafkitoError

__all__ = ["OAuthBearerError", "Token", "parse_initial_response", "validate_unsecured"]

MAX_TOKEN_BYTES = 64 * 1024
"""A token longer than this is refused before decoding (the pre-login frame cap is larger)."""
PRINCIPAL_CLAIM = "sub"


class OAuthBearerError(KafkitoError):
    """A refused OAUTHBEARER message; `status` goes into the JSON error challenge."""

    def __init__(self, message: str, status: str = "invalid_token") -> None:
        super().__init__(message)
        self.status = status

    def challenge(self) -> bytes:
        return json.dumps({"status": self.status}, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Token:
    """A validated unsecured token: its principal and expiry (ms since the epoch)."""

    principal: str
    expires_ms: int
    scope: tuple[str, ...]


def parse_initial_response(message: bytes) -> tuple[str, str | None, dict[str, str]]:
    """(token, authzid or None, extensions) of a client's first message; OAuthBearerError."""
    if len(message) > MAX_TOKEN_BYTES:
        raise OAuthBearerError(f"OAUTHBEARER message of {len(message)} bytes is too long")
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise OAuthBearerError("OAUTHBEARER message is not UTF-8") from None
    gs2, sep, rest = text.partition("\x01")
    if not sep or not gs2.startswith("n,") or not gs2.endswith(","):
        raise OAuthBearerError("malformed OAUTHBEARER message: expected a GS2 header 'n,,'")
    authzid_part = gs2[2:-1]
    authzid = None
    if authzid_part:
        if not authzid_part.startswith("a="):
            raise OAuthBearerError("malformed OAUTHBEARER GS2 header")
        authzid = authzid_part[2:]
    if not rest.endswith("\x01\x01"):
        raise OAuthBearerError("malformed OAUTHBEARER message: no final 0x01 0x01")
    pairs: dict[str, str] = {}
    for item in rest[:-2].split("\x01"):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise OAuthBearerError("malformed OAUTHBEARER key=value pair")
        pairs[key] = value
    auth = pairs.pop("auth", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise OAuthBearerError("OAUTHBEARER message has no 'auth=Bearer <token>'")
    return token.strip(), authzid, pairs


def _b64_json(part: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError):
        raise OAuthBearerError(f"the token's {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise OAuthBearerError(f"the token's {what} is not a JSON object")
    return value


def validate_unsecured(token: str, now_ms: int) -> Token:
    """Validate an unsecured JWS as Kafka's unsecured validator does; OAuthBearerError."""
    parts = token.split(".")
    if len(parts) != 3:
        raise OAuthBearerError("the token is not a JWS of three dot-separated parts")
    header = _b64_json(parts[0], "header")
    claims = _b64_json(parts[1], "claims")
    if header.get("alg") != "none" or parts[2]:
        raise OAuthBearerError("only unsecured tokens (alg none, no signature) are accepted")
    principal = claims.get(PRINCIPAL_CLAIM)
    if not isinstance(principal, str) or not principal.strip():
        raise OAuthBearerError(f"the token has no principal claim {PRINCIPAL_CLAIM!r}")
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise OAuthBearerError("the token has no numeric expiration claim 'exp'")
    expires_ms = int(exp * 1000)
    if expires_ms <= now_ms:
        raise OAuthBearerError("the token has expired")
    iat = claims.get("iat")
    if iat is not None:
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            raise OAuthBearerError("the token's 'iat' claim is not a number")
        if int(iat * 1000) > now_ms:
            raise OAuthBearerError("the token was issued in the future ('iat')")
    scope = claims.get("scope", [])
    if isinstance(scope, str):
        scope = tuple(scope.split())
    elif isinstance(scope, list) and all(isinstance(s, str) for s in scope):
        scope = tuple(scope)
    else:
        raise OAuthBearerError("the token's 'scope' claim is neither a string nor a list")
    return Token(principal.strip(), expires_ms, scope)


def unsecured_token(principal: str, *, lifetime_s: float, now_s: float) -> str:
    """An unsecured JWS for `principal`, as librdkafka's and Kafka's test login modules make
    (for tests and the kafka-python/aiokafka token providers)."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    claims = {"sub": principal, "iat": now_s, "exp": now_s + lifetime_s}
    return f"{part({'alg': 'none'})}.{part(claims)}."
