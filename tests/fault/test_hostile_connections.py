"""Hostile and careless connections against the embedded broker (RELIABILITY B23-B26, S3).

Each test runs a bystander, a well-behaved confluent-kafka client that produces a record and
fetches it back, round after round, for the whole test; it must keep completing rounds within
a generous bound (BYSTANDER_BOUND_S, no tight timing) while the other sockets misbehave.
Limits are set small so that the whole file runs in well under a minute on two shared cores.
Broker-side counts (connections, asyncio tasks, byte budget, fds) are read on the broker's own
event loop and must return to their baseline once the misbehaving sockets are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from kafkito import Broker
from kafkito.protocol.records import build_batch
from kafkito.testing.wire import WireClient, request_frame

BYSTANDER_BOUND_S = 10.0
T = TypeVar("T")


# -- helpers -------------------------------------------------------------------------------------


def on_loop(broker: Broker, fn: Callable[[], T]) -> T:
    """Run `fn` on the broker's event loop thread (its state is owned by that loop)."""

    async def call() -> T:
        return fn()

    loop = broker._loop
    assert loop is not None
    return asyncio.run_coroutine_threadsafe(call(), loop).result(5)


def broker_tasks(broker: Broker) -> int:
    return on_loop(broker, lambda: len(asyncio.all_tasks()))


def open_connections(broker: Broker) -> int:
    assert broker.core is not None
    listener = broker.core.listener
    return on_loop(broker, lambda: len(listener.connections))


def budget_used(broker: Broker) -> int:
    assert broker.core is not None
    budget = broker.core.inflight
    return on_loop(broker, lambda: budget.used)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.05)


def connect(bootstrap: str, source: str = "127.0.0.1") -> socket.socket:
    host, port = bootstrap.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    return sock


def closed_by_peer(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def api_versions_answered(sock: socket.socket) -> bool:
    sock.sendall(request_frame(18, 0, 7, {}))
    sock.settimeout(5)
    try:
        prefix = sock.recv(4)
    except (ConnectionResetError, TimeoutError):
        return False
    return len(prefix) == 4


def produce_frame(topic: str, acks: int = 1) -> bytes:
    body = {
        "transactional_id": None,
        "acks": acks,
        "timeout": 5000,
        "topic_data": [
            {
                "name": topic,
                "partition_data": [{"index": 0, "records": build_batch([(b"k", b"v")])}],
            }
        ],
    }
    return request_frame(0, 7, 1, body)


def _collect_into(errors: list[Any]) -> Callable[[Any, Any], None]:
    return lambda err, msg: errors.append(err)


class Bystander:
    """A well-behaved client: produce one record, fetch it back, repeat; times every round."""

    def __init__(self, bootstrap: str) -> None:
        self.topic = f"bystander-{uuid.uuid4().hex[:8]}"
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        self.producer.produce(self.topic, b"warm-up")
        assert self.producer.flush(15) == 0
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "bystander",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 100,
            }
        )
        self.consumer.assign([TopicPartition(self.topic, 0, 1)])
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            started = time.monotonic()
            value = f"round-{i}".encode()
            delivered: list[Any] = []
            self.producer.produce(self.topic, value, on_delivery=_collect_into(delivered))
            self.producer.flush(BYSTANDER_BOUND_S)
            if delivered != [None]:
                self.failures.append(f"round {i}: produce {delivered}")
            got = None
            while got != value and time.monotonic() - started < BYSTANDER_BOUND_S:
                msg = self.consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    got = msg.value()
            if got != value:
                self.failures.append(f"round {i}: fetch did not return {value!r}")
            self.latencies.append(time.monotonic() - started)
            i += 1
            self._stop.wait(0.05)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(BYSTANDER_BOUND_S * 2)
        self.consumer.close()
        self.producer.flush(5)

    def check(self) -> None:
        assert self.latencies, "the bystander completed no round"
        assert not self.failures, self.failures[:3]
        assert max(self.latencies) < BYSTANDER_BOUND_S, max(self.latencies)


@pytest.fixture
def make_broker(tmp_path: Path) -> Iterator[Callable[..., Broker]]:
    started: list[Broker] = []

    def make(**settings: Any) -> Broker:
        settings.setdefault("max_connections_per_ip", 5000)
        broker = Broker(port=0, data_dir=str(tmp_path / f"data{len(started)}"), **settings)
        broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


# -- B24/B25: many idle connections, the idle timeout, the connection caps -----------------------


def test_thousand_idle_connections_are_held_then_closed_at_the_idle_timeout(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker(idle_timeout_ms=4000)
    with Bystander(broker.bootstrap) as bystander:
        time.sleep(0.5)
        with_bystander = open_connections(broker)
        base_fds, base_tasks = open_fds(), broker_tasks(broker)
        socks = [connect(broker.bootstrap) for _ in range(1000)]
        try:
            wait_until(lambda: open_connections(broker) >= 1000, 20, "1000 connections")
            started = time.monotonic()
            assert all(closed_by_peer(s, 15) for s in socks)
            assert time.monotonic() - started < 15
        finally:
            for s in socks:
                s.close()
        # The bystander's own connections come and go (librdkafka reconnects idle ones).
        wait_until(lambda: open_connections(broker) <= with_bystander + 5, 10, "idle closed")
        # 1000 sockets are 2000 fds and 2000 tasks; what is left is the bystander's churn.
        wait_until(lambda: open_fds() <= base_fds + 10, 10, "fds back to baseline")
        wait_until(lambda: broker_tasks(broker) <= base_tasks + 10, 10, "tasks back to baseline")
    bystander.check()


def test_connection_caps_refuse_cleanly_and_free_their_slots(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker(max_connections=8, max_connections_per_ip=5)
    assert broker.core is not None
    local = [connect(broker.bootstrap) for _ in range(5)]
    assert all(api_versions_answered(s) for s in local)
    over_ip = connect(broker.bootstrap)
    assert closed_by_peer(over_ip, 2), "6th connection from one address was not refused"
    other = [connect(broker.bootstrap, source="127.0.0.2") for _ in range(3)]
    assert all(api_versions_answered(s) for s in other)
    over_all = connect(broker.bootstrap, source="127.0.0.2")
    assert closed_by_peer(over_all, 2), "9th connection was not refused"
    assert broker.core.listener.refused == 2
    local[0].close()
    wait_until(lambda: open_connections(broker) == 7, 5, "a slot freed")
    again = connect(broker.bootstrap)
    assert api_versions_answered(again), "a freed slot was not reusable"
    for s in [*local, over_ip, *other, over_all, again]:
        s.close()
    wait_until(lambda: open_connections(broker) == 0, 5, "all closed")


# -- B23: lying sizes cost only the bytes actually sent; the byte budget holds -------------------


def test_thousand_sockets_declaring_100_mb_hold_only_what_they_sent(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker(request_read_timeout_ms=60_000)
    rss_before = rss_bytes()
    with Bystander(broker.bootstrap) as bystander:
        socks = [connect(broker.bootstrap) for _ in range(1000)]
        try:
            for s in socks:
                s.sendall(struct.pack(">i", 100_000_000) + b"\0" * 1000)
            # Exactly the bytes received are held: nothing is reserved from a declared size.
            wait_until(lambda: budget_used(broker) >= 1_000_000, 20, "1 MB received")
            time.sleep(0.5)
            assert 1_000_000 <= budget_used(broker) < 1_000_000 + 100_000
            grown = rss_bytes() - rss_before
            assert grown < 300 * 1024 * 1024, f"RSS grew {grown} bytes"
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: budget_used(broker) < 100_000, 10, "budget released")
    bystander.check()


def test_byte_budget_pauses_reads_and_cuts_stalled_requests(
    make_broker: Callable[..., Broker],
) -> None:
    limit = 2 * 1024 * 1024
    broker = make_broker(
        max_frame_bytes=1024 * 1024,
        message_max_bytes=512 * 1024,
        max_inflight_bytes=limit,
        request_read_timeout_ms=2000,
    )
    peak = 0
    with Bystander(broker.bootstrap) as bystander:
        socks = [connect(broker.bootstrap) for _ in range(6)]
        try:
            for s in socks:  # 6 x (1 MiB - 1 byte) > the 2 MiB budget
                s.settimeout(0.5)
                with contextlib.suppress(TimeoutError):
                    s.sendall(struct.pack(">i", 1024 * 1024) + b"\0" * (1024 * 1024 - 1))
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                peak = max(peak, budget_used(broker))
                time.sleep(0.05)
            assert limit // 2 < peak <= limit + 64 * 1024  # spent, and never over (one chunk)
            assert all(closed_by_peer(s, 10) for s in socks)  # cut at the read deadline
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: budget_used(broker) < 64 * 1024, 10, "budget released")
    bystander.check()


# -- B24: slowloris ------------------------------------------------------------------------------


def test_slowloris_drip_is_cut_off_at_the_request_deadline(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker(request_read_timeout_ms=1500, idle_timeout_ms=60_000)
    frame = request_frame(18, 0, 1, {})
    with Bystander(broker.bootstrap) as bystander:
        quiet = connect(broker.bootstrap)  # sends nothing: only the idle timeout applies
        drip = connect(broker.bootstrap)
        started = time.monotonic()
        sent = 0
        try:
            for byte in frame:
                drip.sendall(bytes([byte]))
                sent += 1
                if closed_by_peer(drip, 0.25):
                    break
            elapsed = time.monotonic() - started
            assert sent < len(frame), "the whole frame was accepted at 4 bytes/s"
            assert 1.2 < elapsed < 5, elapsed
            assert not closed_by_peer(quiet, 0.2)
            assert api_versions_answered(quiet)
        finally:
            drip.close()
            quiet.close()
    bystander.check()


# -- B26: disconnects mid-request and during a long poll -----------------------------------------


def log_end(broker: Broker, topic: str) -> int:
    assert broker.core is not None
    plog = broker.core.topics.partition(topic, 0)
    assert plog is not None
    return on_loop(broker, lambda: plog.log_end_offset)


def create_topic(bootstrap: str, topic: str) -> None:
    with WireClient(bootstrap) as client:
        client.request(3, 4, {"topics": [{"name": topic}], "allow_auto_topic_creation": True})


def test_disconnect_mid_request_appends_nothing_and_leaks_nothing(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker()
    topic = f"half-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    base_tasks = broker_tasks(broker)
    frame = produce_frame(topic)
    for cut in (2, 4, 20, len(frame) // 2, len(frame) - 1):
        with connect(broker.bootstrap) as sock:
            sock.sendall(frame[:cut])
            time.sleep(0.05)
    wait_until(lambda: open_connections(broker) == 0, 5, "connections closed")
    assert log_end(broker, topic) == 0
    assert budget_used(broker) == 0
    wait_until(lambda: broker_tasks(broker) <= base_tasks, 5, "tasks back to baseline")
    with WireClient(broker.bootstrap) as client:  # the next whole request lands at offset 0
        client.send_raw(produce_frame(topic))
        frame_bytes = client.read_frame()
        assert frame_bytes is not None
    assert log_end(broker, topic) == 1


def test_fully_received_produce_then_close_is_appended_once(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker()
    topic = f"whole-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    with connect(broker.bootstrap) as sock:
        sock.sendall(produce_frame(topic))
    wait_until(lambda: log_end(broker, topic) >= 1, 5, "the produce appended")
    time.sleep(0.3)
    assert log_end(broker, topic) == 1


def live_waiters(broker: Broker, topic: str) -> tuple[int, int]:
    assert broker.core is not None
    plog = broker.core.topics.partition(topic, 0)
    assert plog is not None
    waiters = plog._waiters
    return on_loop(broker, lambda: (sum(not w.done() for w in waiters), len(waiters)))


def fetch_body(topic: str, max_wait_ms: int) -> dict[str, Any]:
    return {
        "replica_id": -1,
        "max_wait": max_wait_ms,
        "min_bytes": 1,
        "max_bytes": 1 << 20,
        "isolation_level": 0,
        "session_id": 0,
        "session_epoch": -1,
        "topics": [
            {
                "topic": topic,
                "partitions": [
                    {
                        "partition": 0,
                        "current_leader_epoch": -1,
                        "fetch_offset": 0,
                        "log_start_offset": -1,
                        "partition_max_bytes": 1 << 20,
                    }
                ],
            }
        ],
        "forgotten_topics_data": [],
        "rack_id": "",
    }


def test_disconnect_during_long_poll_fetch_leaves_no_waiter_or_task(
    make_broker: Callable[..., Broker],
) -> None:
    broker = make_broker()
    topic = f"poll-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    base_tasks = broker_tasks(broker)
    socks = [connect(broker.bootstrap) for _ in range(20)]
    for s in socks:
        s.sendall(request_frame(1, 11, 1, fetch_body(topic, 30_000)))
    wait_until(lambda: live_waiters(broker, topic)[0] == 20, 5, "20 long polls waiting")
    assert broker_tasks(broker) > base_tasks
    for s in socks:
        s.close()
    wait_until(lambda: live_waiters(broker, topic)[0] == 0, 5, "waiters released")
    wait_until(lambda: broker_tasks(broker) <= base_tasks, 5, "tasks back to baseline")
    wait_until(lambda: open_connections(broker) == 0, 5, "connections closed")
    assert budget_used(broker) == 0
    # Long polls that simply time out on an idle partition do not pile up futures either.
    with WireClient(broker.bootstrap) as client:
        for _ in range(30):
            client.request(1, 11, fetch_body(topic, 5))
        assert live_waiters(broker, topic)[1] <= 1


def test_client_that_never_reads_its_answers_is_cut_off(
    make_broker: Callable[..., Broker], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kafkito.broker.server")
    broker = make_broker(response_write_timeout_ms=1500)
    topic = f"unread-{uuid.uuid4().hex[:8]}"
    create_topic(broker.bootstrap, topic)
    with WireClient(broker.bootstrap) as client:  # ~900 KB to fetch, again and again
        client.send_raw(produce_frame_of(topic, 900 * 1024))
        assert client.read_frame() is not None
    with Bystander(broker.bootstrap) as bystander:
        host, port = broker.bootstrap.rsplit(":", 1)
        greedy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.connect((host, int(port)))
        me = "{}:{}".format(*greedy.getsockname()[:2])
        try:
            for i in range(40):  # ~36 MB of answers that are never read
                greedy.sendall(request_frame(1, 11, i, fetch_body(topic, 0)))
            wait_until(
                lambda: any(
                    me in r.getMessage() and "answer not taken" in r.getMessage()
                    for r in caplog.records
                ),
                15,
                "the greedy reader cut off",
            )
            received = 0
            greedy.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while chunk := greedy.recv(1 << 20):
                    received += len(chunk)
            assert received < 40 * 900 * 1024  # cut off, not served to the end
        finally:
            greedy.close()
        wait_until(lambda: budget_used(broker) < 64 * 1024, 10, "budget released")
    bystander.check()


def produce_frame_of(topic: str, value_bytes: int) -> bytes:
    body = {
        "transactional_id": None,
        "acks": 1,
        "timeout": 5000,
        "topic_data": [
            {
                "name": topic,
                "partition_data": [
                    {"index": 0, "records": build_batch([(b"k", b"x" * value_bytes)])}
                ],
            }
        ],
    }
    return request_frame(0, 7, 1, body)
