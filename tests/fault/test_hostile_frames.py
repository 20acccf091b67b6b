"""Lying frame sizes and garbage on the wire (RELIABILITY B22/B23, STYLE principle 5).

A bad frame closes its own connection and nothing else: a bystander connection opened first
keeps getting answers, fast, after every hostile one; the request bytes held by the broker fall
back to zero; nothing the broker does is logged as an internal error (ERROR means "we broke").
The hypothesis test fuzzes the connection loop itself (framing, headers, SASL gate, dispatch)
with raw garbage, garbage in valid frames, and garbage behind valid request headers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkito import Broker
from kafkito.broker.auth import UserStore
from kafkito.broker.dispatch import advertised_versions
from kafkito.testing.wire import WireClient, request_frame

MAX_FRAME = 1024 * 1024
ANSWER_BOUND_S = 5.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    root: Path = tmp_path_factory.mktemp("hostile")
    b = Broker(
        port=0,
        data_dir=str(root / "data"),
        max_frame_bytes=MAX_FRAME,
        message_max_bytes=512 * 1024,
        request_read_timeout_ms=2000,
    )
    with b:
        yield b


@pytest.fixture(scope="module")
def bystander(broker: Broker) -> Iterator[WireClient]:
    with WireClient(broker.bootstrap, timeout_s=ANSWER_BOUND_S) as client:
        yield client


def still_served(client: WireClient) -> float:
    """Seconds an ApiVersions round trip takes on the bystander's connection."""
    started = time.monotonic()
    answer = client.request(18, 3, {"client_software_name": "by", "client_software_version": "1"})
    assert int(answer.error_code) == 0
    return time.monotonic() - started


def budget_used(broker: Broker) -> int:
    assert broker.core is not None and broker._loop is not None
    budget = broker.core.inflight

    async def read() -> int:
        return budget.used

    return asyncio.run_coroutine_threadsafe(read(), broker._loop).result(5)


def connect(broker: Broker) -> socket.socket:
    host, port = broker.bootstrap.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=5)


def closed_by_peer(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        while data := sock.recv(65536):
            del data  # an answer (e.g. an error response) may come first; then the close
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize(
    "size",
    [-1, -(2**31), 2**31 - 1, MAX_FRAME + 1, 0, 3, 7],
    ids=["minus-1", "int32-min", "int32-max", "limit+1", "zero", "3", "7"],
)
def test_lying_frame_size_closes_at_once_and_allocates_nothing(
    broker: Broker, bystander: WireClient, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kafkito")
    with connect(broker) as sock:
        started = time.monotonic()
        sock.sendall(struct.pack(">i", size) + b"\x00" * 64)
        assert closed_by_peer(sock, 2)
        assert time.monotonic() - started < 1.5
    assert budget_used(broker) == 0
    assert still_served(bystander) < ANSWER_BOUND_S
    assert any("closing connection" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_frame_just_under_the_limit_is_read_then_refused_as_a_request(
    broker: Broker, bystander: WireClient
) -> None:
    """MAX_FRAME itself passes the size check; its garbage header then closes the connection."""
    with connect(broker) as sock:
        sock.sendall(struct.pack(">i", MAX_FRAME) + b"\x7f" * MAX_FRAME)
        assert closed_by_peer(sock, 5)
    assert budget_used(broker) == 0
    assert still_served(bystander) < ANSWER_BOUND_S


def _api_frames() -> st.SearchStrategy[bytes]:
    """Valid size prefix + valid request header of an advertised (key, version) + garbage."""
    routes = [(k, v) for k, lo, hi in advertised_versions() for v in range(lo, hi + 1)]

    def frame(route: tuple[int, int], correlation_id: int, garbage: bytes) -> bytes:
        key, version = route
        head = struct.pack(">hhih", key, version, correlation_id, 4) + b"fuzz"
        body = head + garbage
        return struct.pack(">i", len(body)) + body

    return st.builds(
        frame, st.sampled_from(routes), st.integers(-(2**31), 2**31 - 1), st.binary(max_size=300)
    )


def _framed_garbage() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=8, max_size=300).map(lambda b: struct.pack(">i", len(b)) + b)


def _valid_then_garbage() -> st.SearchStrategy[bytes]:
    ok = request_frame(3, 4, 1, {"topics": None, "allow_auto_topic_creation": False})
    return st.binary(max_size=100).map(lambda b: ok + b)


GARBAGE = st.one_of(
    st.binary(max_size=300), _framed_garbage(), _api_frames(), _valid_then_garbage()
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(payload=GARBAGE)
def test_garbage_closes_only_its_own_connection(
    broker: Broker, bystander: WireClient, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kafkito")
    caplog.clear()
    with connect(broker) as sock:
        sock.sendall(payload)
        closed_by_peer(sock, 0.1)  # answered, closed, or waiting for more: all are fine
    assert still_served(bystander) < ANSWER_BOUND_S
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [(r.getMessage(), r.exc_info) for r in errors][:1]


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    root: Path = tmp_path_factory.mktemp("hostile-sasl")
    users = UserStore.load(str(root / "users.json"), missing_ok=True)
    users.set_password("alice", "pw")
    users.save()
    b = Broker(
        port=0,
        data_dir=str(root / "data"),
        security_protocol="SASL_PLAINTEXT",
        sasl_users_file=users.path,
        request_read_timeout_ms=2000,
    )
    with b:
        yield b


def _sasl_openings() -> st.SearchStrategy[bytes]:
    """A handshake (v0 or v1, a real or bogus mechanism) followed by garbage."""
    handshake = st.builds(
        lambda v, m: request_frame(17, v, 1, {"mechanism": m}),
        st.sampled_from([0, 1]),
        st.sampled_from(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", ""]),
    )
    tail = st.one_of(st.binary(max_size=200), _framed_garbage(), _api_frames())
    return st.builds(lambda h, t: h + t, handshake, tail)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(payload=st.one_of(GARBAGE, _sasl_openings()))
def test_garbage_before_authentication_closes_only_its_own_connection(
    sasl_broker: Broker, payload: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kafkito")
    caplog.clear()
    with connect(sasl_broker) as sock:
        sock.sendall(payload)
        closed_by_peer(sock, 0.1)
    with WireClient(sasl_broker.bootstrap, timeout_s=ANSWER_BOUND_S) as client:
        handshake = client.request(17, 1, {"mechanism": "PLAIN"})
        assert int(handshake.error_code) == 0
        answer = client.request(36, 2, {"auth_bytes": b"\0alice\0pw"})
        assert int(answer.error_code) == 0
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, [(r.getMessage(), r.exc_info) for r in errors][:1]
    assert sasl_broker.core is not None
    assert set(sasl_broker.core.topics.by_name) <= {"__consumer_offsets"}  # nothing created


def test_budget_returns_to_zero_after_the_fuzzing(broker: Broker, bystander: WireClient) -> None:
    deadline = time.monotonic() + 5
    while budget_used(broker) != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert budget_used(broker) == 0
    assert still_served(bystander) < ANSWER_BOUND_S
