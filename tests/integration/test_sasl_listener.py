"""The SASL state machine of a SASL_PLAINTEXT listener, driven byte by byte over real sockets.

RELIABILITY S2/S3/S4/S5/S8 and KAFKA-NOTES P17: before authentication only ApiVersions,
SaslHandshake and SaslAuthenticate pass, anything else closes the connection unanswered and
changes nothing; SaslHandshake v0 switches to bare tokens; failures are answered after a delay
and close; pre-auth frames are capped at 512 KiB; an authentication deadline holds; passwords
never reach the log.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.serial import entity_reader

from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.protocol.codec import response_schema
from kafkito.testing.wire import request_frame

PASSWORD = "s3cret-Pa55"
AUTH_TIMEOUT_MS = 1500


def encode(api_key: int, version: int, body: dict[str, Any], correlation_id: int = 1) -> bytes:
    return request_frame(api_key, version, correlation_id, body, client_id="raw-test")


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    (size,) = struct.unpack(">i", recv_exact(sock, 4))
    return recv_exact(sock, size)


def read_answer(sock: socket.socket, api_key: int, version: int) -> Any:
    data = read_frame(sock)
    schema = response_schema(api_key, version)
    offset = 5 if schema.__header_schema__.__version__ >= 1 else 4
    body, _ = entity_reader(schema)(data, offset)
    return body


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the peer closes (EOF or reset) within `seconds` without sending anything."""
    sock.settimeout(seconds)
    try:
        data = sock.recv(1)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    assert data == b"", f"expected a close, got bytes {data!r}"
    return True


def connect(bootstrap: str) -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    return sock


def users_file(tmp_path: Path) -> str:
    path = str(tmp_path / "users.json")
    store = UserStore.load(path, missing_ok=True)
    store.set_password("alice", PASSWORD)
    store.save()
    return path


@pytest.fixture
def sasl_broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(
        port=0,
        data_dir=str(tmp_path / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users_file(tmp_path),
        auth_timeout_ms=AUTH_TIMEOUT_MS,
    )
    with broker:
        yield broker


def handshake(sock: socket.socket, mechanism: str, version: int) -> Any:
    sock.sendall(encode(17, version, {"mechanism": mechanism}))
    return read_answer(sock, 17, version)


def plain_token(user: str, password: str) -> bytes:
    return b"\0" + user.encode() + b"\0" + password.encode()


def metadata_works(sock: socket.socket, topic: str) -> bool:
    sock.sendall(encode(3, 4, {"topics": [{"name": topic}], "allow_auto_topic_creation": True}, 9))
    answer = read_answer(sock, 3, 4)
    return [t.name for t in answer.topics] == [topic]


@pytest.mark.parametrize("version", [0, 1])
def test_metadata_before_authentication_closes_unanswered_and_creates_nothing(
    sasl_broker: Broker, version: int
) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        if version == 1:  # mid-exchange (AUTHENTICATE state) is no better than before it
            assert int(handshake(sock, "PLAIN", 1).error_code) == 0
        sock.sendall(
            encode(3, 4, {"topics": [{"name": "sneaky"}], "allow_auto_topic_creation": True})
        )
        assert closed_within(sock, 5)
    assert sasl_broker.core is not None
    assert "sneaky" not in sasl_broker.core.topics.by_name


def test_api_versions_then_handshake_v1_then_authenticate_opens_everything(
    sasl_broker: Broker,
) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        sock.sendall(encode(18, 0, {}))
        keys = {int(k.api_key) for k in read_answer(sock, 18, 0).api_keys}
        assert {17, 36} <= keys
        answer = handshake(sock, "PLAIN", 1)
        assert int(answer.error_code) == 0
        assert set(answer.mechanisms) == {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}
        sock.sendall(encode(36, 2, {"auth_bytes": plain_token("alice", PASSWORD)}))
        auth = read_answer(sock, 36, 2)
        assert int(auth.error_code) == 0 and auth.session_lifetime.total_seconds() == 0
        assert metadata_works(sock, "opened")
        # A second handshake on an authenticated connection is an illegal state, not a close.
        assert int(handshake(sock, "PLAIN", 1).error_code) == 34


def test_handshake_v0_then_raw_plain_token_authenticates(sasl_broker: Broker) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        assert int(handshake(sock, "PLAIN", 0).error_code) == 0
        token = plain_token("alice", PASSWORD)
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert read_frame(sock) == b""  # PLAIN's (empty) server answer, as a bare token
        assert metadata_works(sock, "raw-ok")


def test_handshake_v0_wrong_password_closes_after_the_delay(sasl_broker: Broker) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        assert int(handshake(sock, "PLAIN", 0).error_code) == 0
        token = plain_token("alice", "wrong")
        started = time.monotonic()
        sock.sendall(struct.pack(">i", len(token)) + token)
        assert closed_within(sock, 5)
        assert time.monotonic() - started >= 0.09


def test_wrong_password_is_answered_58_after_the_delay_then_closed(
    sasl_broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kafkito")
    with connect(sasl_broker.bootstrap) as sock:
        assert int(handshake(sock, "PLAIN", 1).error_code) == 0
        started = time.monotonic()
        sock.sendall(encode(36, 1, {"auth_bytes": plain_token("alice", "Wrong-Pa55")}))
        answer = read_answer(sock, 36, 1)
        elapsed = time.monotonic() - started
        assert int(answer.error_code) == 58
        assert "PLAIN" in answer.error_message and "Wrong-Pa55" not in answer.error_message
        assert elapsed >= 0.09  # connection.failed.authentication.delay.ms = 100
        assert closed_within(sock, 5)
    # The broker keeps serving, and the good password still works.
    with connect(sasl_broker.bootstrap) as sock:
        handshake(sock, "PLAIN", 1)
        sock.sendall(encode(36, 1, {"auth_bytes": plain_token("alice", PASSWORD)}))
        assert int(read_answer(sock, 36, 1).error_code) == 0
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "authentication failed for 'alice'" in logged
    assert "Wrong-Pa55" not in logged and PASSWORD not in logged


def test_unsupported_mechanism_is_answered_33_with_the_list_then_closed(
    sasl_broker: Broker,
) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        answer = handshake(sock, "GSSAPI", 1)
        assert int(answer.error_code) == 33
        assert "SCRAM-SHA-512" in answer.mechanisms
        assert closed_within(sock, 5)


def test_authenticate_without_handshake_closes(sasl_broker: Broker) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        sock.sendall(encode(36, 1, {"auth_bytes": plain_token("alice", PASSWORD)}))
        assert closed_within(sock, 5)


def test_pre_auth_frame_above_512_kib_closes_at_once(sasl_broker: Broker) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        sock.sendall(struct.pack(">i", 512 * 1024 + 1) + b"\0" * 100)
        assert closed_within(sock, 2)
    with connect(sasl_broker.bootstrap) as sock:  # exactly the cap is merely a (bad) request
        sock.sendall(struct.pack(">i", 512 * 1024) + b"\0" * 100)
        assert not closed_within(sock, 0.3)


def test_unauthenticated_connection_is_closed_at_the_auth_deadline(sasl_broker: Broker) -> None:
    with connect(sasl_broker.bootstrap) as sock:
        sock.sendall(encode(18, 0, {}))
        read_answer(sock, 18, 0)
        started = time.monotonic()
        assert closed_within(sock, AUTH_TIMEOUT_MS / 1000 + 3)
        assert time.monotonic() - started >= AUTH_TIMEOUT_MS / 1000 - 0.5


def test_user_added_while_running_can_log_in(sasl_broker: Broker, tmp_path: Path) -> None:
    store = UserStore.load(sasl_broker.settings.sasl_users_file or "")
    store.set_password("bob,=x", "bobs-pw")  # a name that needs SCRAM escaping
    store.save()
    with connect(sasl_broker.bootstrap) as sock:
        handshake(sock, "PLAIN", 1)
        sock.sendall(encode(36, 1, {"auth_bytes": plain_token("bob,=x", "bobs-pw")}))
        assert int(read_answer(sock, 36, 1).error_code) == 0


def test_sasl_handshake_on_a_plaintext_listener_is_an_illegal_state(tmp_path: Path) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap, connect(bootstrap) as sock:
        assert int(handshake(sock, "PLAIN", 1).error_code) == 34
        assert metadata_works(sock, "plain-listener")  # the connection stays usable


def test_bad_login_storm_leaves_authenticated_clients_served(sasl_broker: Broker) -> None:
    """RELIABILITY S9, scaled down: 10 threads x 10 wrong PLAIN logins, while a logged-in
    client keeps asking for metadata; its answers keep coming within a generous bound."""
    failures: list[str] = []

    def storm() -> None:
        for _ in range(10):
            try:
                with connect(sasl_broker.bootstrap) as sock:
                    handshake(sock, "PLAIN", 1)
                    sock.sendall(encode(36, 1, {"auth_bytes": plain_token("alice", "guess")}))
                    if int(read_answer(sock, 36, 1).error_code) != 58:
                        failures.append("a wrong password was not refused")
            except OSError as exc:
                failures.append(repr(exc))

    with connect(sasl_broker.bootstrap) as good:
        handshake(good, "PLAIN", 1)
        good.sendall(encode(36, 1, {"auth_bytes": plain_token("alice", PASSWORD)}))
        assert int(read_answer(good, 36, 1).error_code) == 0
        threads = [threading.Thread(target=storm) for _ in range(10)]
        for t in threads:
            t.start()
        slowest = 0.0
        rounds = 0
        while any(t.is_alive() for t in threads):
            started = time.monotonic()
            assert metadata_works(good, "storm")
            slowest = max(slowest, time.monotonic() - started)
            rounds += 1
        for t in threads:
            t.join()
    assert not failures, failures[:3]
    assert rounds > 0 and slowest < 5.0, (rounds, slowest)
