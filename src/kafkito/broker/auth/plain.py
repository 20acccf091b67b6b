"""SASL PLAIN (RFC 4616) message parsing; pure.

The one client message is `[authzid] NUL authcid NUL passwd`, UTF-8. An empty username or
password is refused, and so is an authzid that names anyone but the user itself (Kafka's fix for
CVE-2017-12610: PLAIN must not let one user act as another). The password is then checked
against the user's SCRAM credential (kafkito.broker.auth.scram.password_matches), so the store
never holds it. PLAIN sends the password in the clear: use it over TLS or on loopback only.
"""

from __future__ import annotations

from kafkito.errors import KafkitoError

__all__ = ["PlainError", "parse_plain"]


class PlainError(KafkitoError):
    """A malformed or refused PLAIN message; the message never holds the password."""


def parse_plain(token: bytes) -> tuple[str, str]:
    """(username, password) from a PLAIN message; raises PlainError."""
    parts = token.split(b"\0")
    if len(parts) != 3:
        raise PlainError("malformed PLAIN message: expected authzid NUL authcid NUL passwd")
    try:
        authzid, user, password = (part.decode("utf-8") for part in parts)
    except UnicodeDecodeError:
        raise PlainError("PLAIN message is not UTF-8") from None
    if not user or not password:
        raise PlainError("PLAIN username and password must not be empty")
    if authzid and authzid != user:
        raise PlainError("authorization id differs from the username")
    return user, password
