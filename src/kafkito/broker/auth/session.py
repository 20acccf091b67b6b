"""One connection's SASL state machine, as a transition table (STYLE principle 3).

================  =====================  ==================  ===============================
state             requests allowed       event               next state
================  =====================  ==================  ===============================
HANDSHAKE         ApiVersions,           handshake v1        AUTHENTICATE
                  SaslHandshake          handshake v0        RAW_TOKENS
AUTHENTICATE      SaslAuthenticate       challenge sent      AUTHENTICATE
                                         success             DONE
                                         failure             FAILED
RAW_TOKENS        bare tokens (no        challenge sent      RAW_TOKENS
                  request header)        success             DONE
                                         failure             FAILED
DONE              everything             re-auth handshake   AUTHENTICATE (KIP-368)
                                         (other SaslHandshake: ILLEGAL_SASL_STATE)
FAILED            nothing                (the connection is closed after the answer)
================  =====================  ==================  ===============================

Re-authentication (KIP-368), when `connections_max_reauth_ms` > 0: a successful login answers
SaslAuthenticate (v1+) with the session's lifetime, that setting or, for OAUTHBEARER, the
token's remaining lifetime if shorter. Before it runs out the client sends SaslHandshake v1 and
SaslAuthenticate again on the same connection: same mechanism, same principal (a different one
fails the login and closes the connection, as Kafka does), and the session starts over. A
request other than SaslHandshake after the session expired closes the connection, so a client
that cannot re-authenticate (SaslAuthenticate v0, kcat's librdkafka 2.0) reconnects instead.

A request outside the allowed set closes the connection unanswered, as Kafka's
SaslServerAuthenticator does (IllegalSaslStateException). A failed login is answered after
`auth_failure_delay_ms` (connection.failed.authentication.delay.ms) to slow guessing. Logs name
the peer, the mechanism and the username, never a password or a token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum
from typing import TYPE_CHECKING

from kafkito.broker.auth.oauthbearer import (
    OAuthBearerError,
    parse_initial_response,
    validate_unsecured,
)
from kafkito.broker.auth.plain import PlainError, parse_plain
from kafkito.broker.auth.scram import DIGESTS, ScramError, ScramServer, password_matches
from kafkito.broker.auth.store import UserStore
from kafkito.errors import KafkitoError

if TYPE_CHECKING:
    from kafkito.broker.settings import BrokerSettings

__all__ = ["SaslFailed", "SaslSession", "SaslState"]

log = logging.getLogger(__name__)

API_VERSIONS = 18
SASL_HANDSHAKE = 17
SASL_AUTHENTICATE = 36


class SaslState(Enum):
    HANDSHAKE = "handshake"
    AUTHENTICATE = "authenticate"
    RAW_TOKENS = "raw-tokens"
    DONE = "done"
    FAILED = "failed"


class SaslFailed(KafkitoError):
    """Authentication failed; the message is safe to send to the client."""


_ALLOWED: dict[SaslState, frozenset[int]] = {
    SaslState.HANDSHAKE: frozenset({API_VERSIONS, SASL_HANDSHAKE}),
    SaslState.AUTHENTICATE: frozenset({SASL_AUTHENTICATE}),
    SaslState.RAW_TOKENS: frozenset(),
    SaslState.DONE: frozenset(),  # unused: everything passes once authenticated
    SaslState.FAILED: frozenset(),
}

_TRANSITIONS: dict[tuple[SaslState, str], SaslState] = {
    (SaslState.HANDSHAKE, "handshake_v0"): SaslState.RAW_TOKENS,
    (SaslState.HANDSHAKE, "handshake_v1"): SaslState.AUTHENTICATE,
    (SaslState.AUTHENTICATE, "challenge"): SaslState.AUTHENTICATE,
    (SaslState.AUTHENTICATE, "success"): SaslState.DONE,
    (SaslState.AUTHENTICATE, "failure"): SaslState.FAILED,
    (SaslState.RAW_TOKENS, "challenge"): SaslState.RAW_TOKENS,
    (SaslState.RAW_TOKENS, "success"): SaslState.DONE,
    (SaslState.RAW_TOKENS, "failure"): SaslState.FAILED,
    (SaslState.DONE, "reauth_handshake"): SaslState.AUTHENTICATE,
}


class SaslSession:
    """The SASL side of one connection on a SASL_PLAINTEXT or SASL_SSL listener."""

    def __init__(self, settings: BrokerSettings, users: UserStore) -> None:
        self.settings = settings
        self.users = users
        self.state = SaslState.HANDSHAKE
        self.mechanism: str | None = None
        self.user: str | None = None
        self._scram: ScramServer | None = None
        self.expires_ms: int | None = None
        """When the credential expires (OAUTHBEARER's token `exp`), ms since the epoch."""
        self._oauth_refused: OAuthBearerError | None = None
        self.session_expiry: float | None = None
        """time.monotonic() after which the session has expired (KIP-368); None: never."""
        self.session_lifetime_ms = 0
        """What SaslAuthenticate answers as session_lifetime_ms (0: no re-authentication)."""
        self._reauth_user: str | None = None
        """The principal of the session being re-authenticated (must not change)."""

    def _apply(self, event: str) -> None:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise AssertionError(f"SASL event {event!r} in state {self.state.value}") from None

    # -- what the connection loop asks ------------------------------------------------------

    @property
    def authenticated(self) -> bool:
        return self.state is SaslState.DONE

    @property
    def expects_raw_token(self) -> bool:
        return self.state is SaslState.RAW_TOKENS

    @property
    def state_name(self) -> str:
        return self.state.value

    def allows(self, api_key: int) -> bool:
        return self.state is SaslState.DONE or api_key in _ALLOWED[self.state]

    # -- SaslHandshake -------------------------------------------------------------------------

    @property
    def mechanisms(self) -> list[str]:
        return list(self.settings.sasl_mechanisms)

    def can_handshake(self) -> bool:
        if self.state is SaslState.DONE:  # re-authentication, when sessions expire
            return self.settings.connections_max_reauth_ms > 0
        return self.state is SaslState.HANDSHAKE

    def expired(self, now: float) -> bool:
        """Has the session run out without re-authentication (KIP-368)?"""
        return self.session_expiry is not None and now >= self.session_expiry

    def handshake(self, mechanism: str, version: int) -> bool:
        """Choose `mechanism`; False if it is not enabled (the caller answers and closes).
        On an authenticated connection this starts re-authentication: the mechanism must be
        the one of the first login, and the handshake v1."""
        reauth = self.state is SaslState.DONE
        if reauth:
            if mechanism != self.mechanism or version == 0:
                return False
            self._reauth_user = self.user
            self._oauth_refused = None
        else:
            assert self.state is SaslState.HANDSHAKE
        if mechanism not in self.settings.sasl_mechanisms:
            return False
        self.mechanism = mechanism
        self.users.reload_if_changed()
        self._scram = None
        if mechanism in DIGESTS:
            self._scram = ScramServer(
                mechanism, lambda user: self.users.credential(user, mechanism)
            )
        if reauth:
            self._apply("reauth_handshake")
        else:
            self._apply("handshake_v0" if version == 0 else "handshake_v1")
        return True

    # -- tokens --------------------------------------------------------------------------------

    async def step(self, token: bytes, peer: str) -> bytes:
        """Consume one client token and return the answer; raises SaslFailed after the delay."""
        if self.state not in (SaslState.AUTHENTICATE, SaslState.RAW_TOKENS):
            raise SaslFailed(f"no SASL token expected in state {self.state.value}")
        try:
            answer, done = await self._step(token)
        except (ScramError, PlainError, OAuthBearerError) as exc:
            self._apply("failure")
            log.warning(
                "authentication failed for %r from %s with %s: %s",
                self.user,
                peer,
                self.mechanism,
                exc,
            )
            await asyncio.sleep(self.settings.auth_failure_delay_ms / 1000)
            raise SaslFailed(
                f"authentication failed: invalid credentials with SASL mechanism {self.mechanism}"
            ) from None
        if done:
            if self._reauth_user is not None and self.user != self._reauth_user:
                self._apply("failure")
                log.warning(
                    "re-authentication from %s as %r refused: the session is %r's",
                    peer,
                    self.user,
                    self._reauth_user,
                )
                raise SaslFailed(
                    "authentication failed: cannot change principals during re-authentication"
                )
            self._apply("success")
            self._start_session()
            log.info(
                "%s %r from %s with %s",
                "re-authenticated" if self._reauth_user is not None else "authenticated",
                self.user,
                peer,
                self.mechanism,
            )
        else:
            self._apply("challenge")
        return answer

    def _start_session(self) -> None:
        """The session's lifetime (KIP-368): connections_max_reauth_ms, or the credential's
        remaining lifetime if shorter; nothing without re-authentication."""
        reauth_ms = self.settings.connections_max_reauth_ms
        if reauth_ms <= 0:
            return
        lifetime_ms = reauth_ms
        if self.expires_ms is not None:
            lifetime_ms = max(0, min(lifetime_ms, self.expires_ms - int(time.time() * 1000)))
        self.session_lifetime_ms = lifetime_ms
        self.session_expiry = time.monotonic() + lifetime_ms / 1000

    async def authenticate(self, token: bytes, peer: str) -> bytes | None:
        """A raw (v0) token: the answer, or None when the login failed (close the socket)."""
        try:
            return await self.step(token, peer)
        except SaslFailed:
            return None

    async def _step(self, token: bytes) -> tuple[bytes, bool]:
        if self.mechanism == "OAUTHBEARER":
            return self._oauth_step(token)
        if self._scram is not None:
            answer = self._scram.step(token)
            self.user = self._scram.user
            return answer, self._scram.done
        user, password = parse_plain(token)
        self.user = user
        found = self.users.any_credential(user)
        if found is None:
            # Spend the same work as for a real user, so that timing does not reveal names.
            await asyncio.to_thread(_decoy_check, password)
            raise PlainError("invalid credentials")
        mechanism, credential = found
        if not await asyncio.to_thread(password_matches, mechanism, credential, password):
            raise PlainError("invalid credentials")
        return b"", True

    def _oauth_step(self, message: bytes) -> tuple[bytes, bool]:
        """OAUTHBEARER: a valid unsecured token logs in; a refused one is answered with the
        JSON error challenge, and the client's 0x01 that follows fails the login (RFC 7628)."""
        if self._oauth_refused is not None:
            raise self._oauth_refused
        # A malformed message fails at once; a refused token gets the error challenge first
        # (Kafka's OAuthBearerSaslServer does the same).
        token, authzid, _extensions = parse_initial_response(message)
        try:
            valid = validate_unsecured(token, int(time.time() * 1000))
            if authzid is not None and authzid != valid.principal:
                raise OAuthBearerError("the authorization id differs from the token's principal")
        except OAuthBearerError as exc:
            self._oauth_refused = exc
            return exc.challenge(), False
        self.user = valid.principal
        self.expires_ms = valid.expires_ms
        return b"", True


def _decoy_check(password: str) -> None:
    from kafkito.broker.auth.scram import derive_credential
    from kafkito.broker.auth.store import DEFAULT_ITERATIONS

    derive_credential("SCRAM-SHA-512", password, salt=b"\0" * 32, iterations=DEFAULT_ITERATIONS)
