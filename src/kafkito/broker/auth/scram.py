"""SCRAM-SHA-256/512 server side (RFC 5802, RFC 7677); pure: no I/O, no clock, chance passed in.

The exchange, with the names RFC 5802 §3 gives its values::

    client-first   n,[a=authzid],n=user,r=cnonce[,ext]         gs2 header + client-first-bare
    server-first   r=cnonce+snonce,s=base64(salt),i=iterations
    client-final   c=base64(gs2 header),r=cnonce+snonce,p=base64(ClientProof)
    server-final   v=base64(ServerSignature)

The broker stores, per user and mechanism, only salt, iterations, StoredKey = H(ClientKey) and
ServerKey (never the password). It checks the proof by recovering ClientKey = ClientProof XOR
HMAC(StoredKey, AuthMessage) and comparing H(ClientKey) with StoredKey in constant time
(hmac.compare_digest; CVE-2021-38153). The client-final nonce must equal the server-first one
(CVE-2024-56128). librdkafka < 2.6.1, Debian's kcat among them, sends the client nonce twice,
`cnonce + cnonce + snonce`: that form is accepted too, since it still holds this exchange's
fresh server nonce and the proof covers the text as sent. The channel-binding echo must equal
the gs2 header, an authzid must name the user itself (CVE-2017-12610), and iterations are at
least 4096 (RFC 7677 §4). Usernames escape `,` and `=` as `=2C` and `=3D`. An unknown user
gets a plausible server-first (a salt derived from a per-process secret) and fails at the
proof, so that usernames cannot be probed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from kafkito.errors import KafkitoError

__all__ = [
    "DIGESTS",
    "MIN_ITERATIONS",
    "ScramCredential",
    "ScramError",
    "ScramServer",
    "derive_credential",
    "escape_username",
    "unescape_username",
]

DIGESTS = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}
"""Mechanism name -> hashlib digest name."""
MIN_ITERATIONS = 4096
SALT_BYTES = 32


class ScramError(KafkitoError):
    """The exchange failed; the message says why and never holds a secret."""


@dataclass(frozen=True, slots=True)
class ScramCredential:
    """What the broker keeps for one user and one mechanism (RFC 5802 §3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def derive_credential(
    mechanism: str, password: str, *, salt: bytes | None = None, iterations: int = MIN_ITERATIONS
) -> ScramCredential:
    """Salt and hash `password` into a stored credential (random salt unless one is given)."""
    if iterations < MIN_ITERATIONS:
        raise ValueError(f"iterations {iterations} is below the minimum {MIN_ITERATIONS}")
    digest = DIGESTS[mechanism]
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", digest)
    return ScramCredential(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.new(digest, client_key).digest(),
        server_key=hmac.digest(salted, b"Server Key", digest),
    )


def password_matches(mechanism: str, credential: ScramCredential, password: str) -> bool:
    """Does `password` hash to `credential`? (For SASL PLAIN against a SCRAM store.)"""
    candidate = derive_credential(
        mechanism, password, salt=credential.salt, iterations=credential.iterations
    )
    return hmac.compare_digest(candidate.stored_key, credential.stored_key)


def escape_username(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


def unescape_username(saslname: str) -> str:
    """Undo `=2C`/`=3D`; any other `=` (or a bare `,`) is malformed (RFC 5802 §5.1)."""
    out: list[str] = []
    i = 0
    while i < len(saslname):
        ch = saslname[i]
        if ch == ",":
            raise ScramError("malformed username")
        if ch == "=":
            code = saslname[i + 1 : i + 3]
            if code == "2C":
                out.append(",")
            elif code == "3D":
                out.append("=")
            else:
                raise ScramError("malformed username escape")
            i += 3
            continue
        out.append(ch)
        i += 1
    return "".join(out)


class _State(Enum):
    CLIENT_FIRST = "client-first"
    CLIENT_FINAL = "client-final"
    DONE = "done"
    FAILED = "failed"


Lookup = Callable[[str], ScramCredential | None]


def _random_nonce() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


_FAKE_SALT_KEY = secrets.token_bytes(32)


class ScramServer:
    """One SCRAM exchange, server side: `step(client_first)`, then `step(client_final)`."""

    def __init__(
        self,
        mechanism: str,
        lookup: Lookup,
        *,
        nonce: Callable[[], str] = _random_nonce,
    ) -> None:
        self.mechanism = mechanism
        self.digest = DIGESTS[mechanism]
        self._lookup = lookup
        self._nonce = nonce
        self._state = _State.CLIENT_FIRST
        self.user: str | None = None
        self._credential: ScramCredential | None = None
        self._known = False
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._client_nonce = ""
        self._full_nonce = ""

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    def step(self, token: bytes) -> bytes:
        """Consume one client message, return the server's answer; raise ScramError on failure."""
        try:
            if self._state is _State.CLIENT_FIRST:
                answer = self._client_first(token)
                self._state = _State.CLIENT_FINAL
                return answer
            if self._state is _State.CLIENT_FINAL:
                answer = self._client_final(token)
                self._state = _State.DONE
                return answer
        except ScramError:
            self._state = _State.FAILED
            raise
        self._state = _State.FAILED
        raise ScramError(f"no SCRAM message expected in state {self._state.value}")

    def _client_first(self, token: bytes) -> bytes:
        text = _text(token)
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise ScramError("malformed client-first message")
        cbind, authzid_part, bare = parts
        if cbind.startswith("p="):
            raise ScramError("channel binding is not supported")
        if cbind not in ("n", "y"):
            raise ScramError("malformed gs2 header")
        authzid = None
        if authzid_part:
            if not authzid_part.startswith("a="):
                raise ScramError("malformed authzid")
            authzid = unescape_username(authzid_part[2:])
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise ScramError("malformed client-first message")
        user = unescape_username(attrs[0][2:])
        client_nonce = attrs[1][2:]
        if not user:
            raise ScramError("empty username")
        if not client_nonce or not client_nonce.isprintable():
            raise ScramError("malformed client nonce")
        for extension in attrs[2:]:
            # Kafka's only extension is tokenauth (delegation tokens), which we do not serve.
            if extension.startswith("tokenauth=") and extension != "tokenauth=false":
                raise ScramError("delegation tokens are not supported")
        if authzid is not None and authzid != user:
            raise ScramError("authorization id differs from the username")
        self.user = user
        credential = self._lookup(user)
        self._known = credential is not None
        if credential is None:
            credential = self._fake_credential(user)
        self._credential = credential
        self._gs2_header = f"{cbind},{authzid_part},"
        self._client_first_bare = bare
        self._client_nonce = client_nonce
        self._full_nonce = client_nonce + self._nonce()
        salt = base64.b64encode(credential.salt).decode()
        self._server_first = f"r={self._full_nonce},s={salt},i={credential.iterations}"
        return self._server_first.encode()

    def _client_final(self, token: bytes) -> bytes:
        text = _text(token)
        without_proof, sep, proof_b64 = text.rpartition(",p=")
        if not sep:
            raise ScramError("client-final message without proof")
        attrs = without_proof.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("c=") or not attrs[1].startswith("r="):
            raise ScramError("malformed client-final message")
        if not hmac.compare_digest(
            attrs[0][2:], base64.b64encode(self._gs2_header.encode()).decode()
        ):
            raise ScramError("channel binding data differs from the gs2 header")
        nonce = attrs[1][2:].encode()
        if not (
            hmac.compare_digest(nonce, self._full_nonce.encode())
            or hmac.compare_digest(nonce, (self._client_nonce + self._full_nonce).encode())
        ):
            raise ScramError("client-final nonce differs from the server-first nonce")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ScramError("malformed client proof") from None
        credential = self._credential
        assert credential is not None
        if len(proof) != len(credential.stored_key):
            raise ScramError("client proof of the wrong length")
        auth_message = ",".join((self._client_first_bare, self._server_first, without_proof))
        message = auth_message.encode()
        client_signature = hmac.digest(credential.stored_key, message, self.digest)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        stored_key = hashlib.new(self.digest, client_key).digest()
        if not hmac.compare_digest(stored_key, credential.stored_key) or not self._known:
            raise ScramError("invalid credentials")
        server_signature = hmac.digest(credential.server_key, message, self.digest)
        return b"v=" + base64.b64encode(server_signature)

    def _fake_credential(self, user: str) -> ScramCredential:
        seed = hmac.digest(_FAKE_SALT_KEY, f"{self.mechanism}\0{user}".encode(), "sha256")
        size = hashlib.new(self.digest).digest_size
        return ScramCredential(seed, MIN_ITERATIONS, secrets.token_bytes(size), b"\0" * size)


def _text(token: bytes) -> str:
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        raise ScramError("SCRAM message is not UTF-8") from None
    if "\0" in text:
        raise ScramError("SCRAM message holds a NUL")
    return text
