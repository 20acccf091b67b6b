"""SCRAM and PLAIN message logic and the user store, as pure functions (no broker needed).

The SCRAM exchange is checked against the example of RFC 7677 §3 (SCRAM-SHA-256), and each
refusal RELIABILITY S4/S5/S8 asks for is provoked on purpose.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from pathlib import Path

import pytest

from kafkito.broker.auth.plain import PlainError, parse_plain
from kafkito.broker.auth.scram import (
    ScramCredential,
    ScramError,
    ScramServer,
    derive_credential,
    escape_username,
    password_matches,
    unescape_username,
)
from kafkito.broker.auth.store import UserStore, UserStoreError

# RFC 7677 §3: user "user", password "pencil".
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="


def rfc_server(password: str = "pencil") -> ScramServer:
    credential = derive_credential("SCRAM-SHA-256", password, salt=RFC_SALT, iterations=4096)
    return ScramServer(
        "SCRAM-SHA-256",
        lambda user: credential if user == "user" else None,
        nonce=lambda: RFC_SERVER_NONCE,
    )


def test_rfc7677_example_exchange_passes_byte_for_byte() -> None:
    server = rfc_server()
    assert server.step(RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.step(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    assert server.done and server.user == "user"


def test_wrong_password_fails_at_the_proof() -> None:
    server = rfc_server(password="not-pencil")
    server.step(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="invalid credentials"):
        server.step(RFC_CLIENT_FINAL)
    assert not server.done


def test_client_final_nonce_must_equal_the_server_first_nonce() -> None:
    """CVE-2024-56128: a replayed client-final with another nonce is refused."""
    server = ScramServer(
        "SCRAM-SHA-256",
        lambda user: derive_credential("SCRAM-SHA-256", "pencil", salt=RFC_SALT),
        nonce=lambda: "another-server-nonce",
    )
    server.step(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="nonce"):
        server.step(RFC_CLIENT_FINAL)


def test_librdkafka_before_2_6_1_doubled_client_nonce_is_accepted_nothing_else() -> None:
    """Debian's kcat (librdkafka 2.0.2) sends r=cnonce+cnonce+snonce; it still binds our snonce."""
    client = derive_credential("SCRAM-SHA-256", "pencil", salt=RFC_SALT)
    cnonce, full = "rOprNGfwEbeRWgbNEkqO", "rOprNGfwEbeRWgbNEkqO" + RFC_SERVER_NONCE
    for sent, accepted in ((cnonce + full, True), (full + cnonce, False), (cnonce, False)):
        server = rfc_server()
        server.step(RFC_CLIENT_FIRST)
        without_proof = f"c=biws,r={sent}"
        auth = ",".join((RFC_CLIENT_FIRST[3:].decode(), RFC_SERVER_FIRST.decode(), without_proof))
        salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        signature = hmac.digest(client.stored_key, auth.encode(), "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        final = f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
        if accepted:
            assert server.step(final).startswith(b"v=")
        else:
            with pytest.raises(ScramError, match="nonce"):
                server.step(final)


def test_channel_binding_echo_must_match_the_gs2_header() -> None:
    server = rfc_server()
    server.step(RFC_CLIENT_FIRST)
    with pytest.raises(ScramError, match="channel binding"):
        server.step(RFC_CLIENT_FINAL.replace(b"c=biws", b"c=eSws"))


@pytest.mark.parametrize(
    ("client_first", "why"),
    [
        (b"n,a=admin,n=user,r=abc", "authorization id"),  # CVE-2017-12610
        (b"p=tls-unique,,n=user,r=abc", "channel binding"),
        (b"n,,n=us=er,r=abc", "escape"),
        (b"n,,n=,r=abc", "empty username"),
        (b"n,,r=abc", "malformed"),
        (b"n,,n=user,r=abc,tokenauth=true", "delegation"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_or_hostile_client_first_is_refused(client_first: bytes, why: str) -> None:
    with pytest.raises(ScramError, match=why):
        rfc_server().step(client_first)


def test_a_proof_of_the_wrong_length_or_encoding_is_refused() -> None:
    for bad in (b"p=AAAA", b"p=!!notbase64!!"):
        server = rfc_server()
        server.step(RFC_CLIENT_FIRST)
        head = RFC_CLIENT_FINAL[: RFC_CLIENT_FINAL.index(b",p=") + 1]
        with pytest.raises(ScramError, match="proof"):
            server.step(head + bad)


def test_unknown_user_gets_a_stable_plausible_challenge_then_fails() -> None:
    first = rfc_server().step(b"n,,n=nobody,r=abc").decode()
    again = rfc_server().step(b"n,,n=nobody,r=abc").decode()
    salt = [p for p in first.split(",") if p.startswith("s=")]
    assert salt == [p for p in again.split(",") if p.startswith("s=")]  # no name probing
    assert ",i=4096" in first


def test_username_escapes_round_trip() -> None:
    assert escape_username("a,b=c") == "a=2Cb=3Dc"
    assert unescape_username("a=2Cb=3Dc") == "a,b=c"


def test_credentials_have_random_salts_and_enough_iterations() -> None:
    one = derive_credential("SCRAM-SHA-512", "pw")
    two = derive_credential("SCRAM-SHA-512", "pw")
    assert one.salt != two.salt and len(one.salt) >= 16
    assert one.iterations >= 4096
    assert password_matches("SCRAM-SHA-512", one, "pw")
    assert not password_matches("SCRAM-SHA-512", one, "pW")
    with pytest.raises(ValueError, match="iterations"):
        derive_credential("SCRAM-SHA-256", "pw", iterations=1000)


def test_stored_key_is_the_rfc_definition() -> None:
    c = derive_credential("SCRAM-SHA-256", "pencil", salt=RFC_SALT)
    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", RFC_SALT, 4096)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    assert c == ScramCredential(
        RFC_SALT,
        4096,
        hashlib.sha256(client_key).digest(),
        hmac.digest(salted, b"Server Key", "sha256"),
    )


@pytest.mark.parametrize(
    ("token", "why"),
    [
        (b"\0alice\0", "empty"),
        (b"\0\0pw", "empty"),
        (b"bob\0alice\0pw", "authorization id"),  # CVE-2017-12610
        (b"alice\0pw", "malformed"),
        (b"\0alice\0pw\0x", "malformed"),
        (b"\0al\xffice\0pw", "UTF-8"),
    ],
)
def test_plain_refuses_empty_impersonating_or_malformed_messages(token: bytes, why: str) -> None:
    with pytest.raises(PlainError, match=why):
        parse_plain(token)


def test_plain_accepts_an_authzid_equal_to_the_user() -> None:
    assert parse_plain(b"alice\0alice\0pw") == ("alice", "pw")
    assert parse_plain(b"\0alice\0pw") == ("alice", "pw")


def test_store_file_is_0600_and_holds_no_password(tmp_path: Path) -> None:
    path = str(tmp_path / "users.json")
    store = UserStore.load(path, missing_ok=True)
    store.set_password("alice", "correct horse battery staple")
    store.save()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = Path(path).read_text()
    assert "correct horse" not in text
    assert set(json.loads(text)["users"]["alice"]) == {"SCRAM-SHA-256", "SCRAM-SHA-512"}
    loaded = UserStore.load(path)
    mechanism, credential = loaded.any_credential("alice") or ("", None)
    assert credential is not None
    assert password_matches(mechanism, credential, "correct horse battery staple")


def test_store_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "users.json")
    store = UserStore.load(path, missing_ok=True)
    store.set_password("alice", "pw")
    store.save()
    os.chmod(path, 0o644)
    with pytest.raises(UserStoreError, match="chmod 600"):
        UserStore.load(path)


def test_store_with_weak_iterations_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    weak = {"salt": "AAAA", "iterations": 10, "stored_key": "AAAA", "server_key": "AAAA"}
    path.write_text(json.dumps({"version": 1, "users": {"a": {"SCRAM-SHA-256": weak}}}))
    os.chmod(path, 0o600)
    with pytest.raises(UserStoreError, match="iterations"):
        UserStore.load(str(path))
