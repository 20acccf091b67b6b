"""kafkito.pubsub against the real Pub/Sub emulator: publish, confirm, read, ack, nack, leases.

Every test talks gRPC to the emulator started by the `pubsub_emulator` fixture, with its own
project; no part of Pub/Sub is mocked.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pskit import make_topic, make_topic_subscription, read_for, read_until

from kafkito.pubsub import (
    BrokerUnreachableError,
    ConfigError,
    DeliveryError,
    HealthChecker,
    Message,
    MessageTooLargeError,
    Reader,
    Record,
    TopicWriter,
    UnknownSubscriptionError,
    UnknownTopicError,
    Writer,
    current_message,
    message_key,
)
from kafkito.testing import free_port


def test_write_is_confirmed_and_round_trips_attributes_and_key(project: str) -> None:
    make_topic(project, "clicks", subscription="clicks-sub", enable_message_ordering=True)
    with Writer("clicks", project_id=project) as writer:
        first = writer.write(b"one", {"source": "web", "raw": b"bytes"}, key="user-1")
        second = writer.write_value("two")
        third = writer.write_with_key(b"three", b"user-2", [("h", "v")])
    assert first.topic == "clicks" and first.message_id
    assert len({first.message_id, second.message_id, third.message_id}) == 3

    seen: list[tuple[Message, bytes | None]] = []

    def handle(message: Message) -> None:
        assert current_message.get() is message
        seen.append((message, message_key.get()))

    with Reader("clicks-sub", project_id=project) as reader:
        timer = threading.Timer(30, reader.stop)
        timer.start()
        assert reader.read_message(handle, limit=3, handle_signals=False) == 3
        timer.cancel()
    by_value = {m.value: (m, key) for m, key in seen}
    one, one_key = by_value[b"one"]
    assert one.headers == {"source": "web", "raw": "bytes"}
    assert one.key == b"user-1" and one_key == b"user-1"
    assert one.message_id == first.message_id
    assert one.publish_time_ms is not None and one.publish_time_ms > 0
    assert one.subscription == "clicks-sub"
    two, two_key = by_value[b"two"]
    assert two.headers == {} and two.key is None and two_key is None
    assert by_value[b"three"][0].headers == {"h": "v"}
    assert current_message.get() is None and message_key.get() is None


def test_write_many_confirms_every_message_and_topic_writer_picks_topics(project: str) -> None:
    make_topic(project, "bulk", subscription="bulk-sub")
    make_topic(project, "other", subscription="other-sub")
    values = [f"m{i}".encode() for i in range(300)]
    with Writer("bulk", {"topic": {"count_threshold": 50}}, project_id=project) as writer:
        deliveries = writer.write_many([*values[:150], *(Record(v) for v in values[150:])])
    assert len(deliveries) == 300
    assert len({d.message_id for d in deliveries}) == 300
    with TopicWriter(project_id=project) as writer:
        assert writer.write("other", b"x", {"k": "v"}).topic == "other"
        assert len(writer.write_many("other", [b"y", Record(b"z", headers={"a": "b"})])) == 2

    with Reader("bulk-sub", project_id=project) as reader:
        got = read_until(reader, 300)
    assert sorted(v for v, _ in got) == sorted(values)
    with Reader("other-sub", project_id=project) as reader:
        got = read_until(reader, 3)
    assert sorted((v, tuple(h.items())) for v, h in got) == [
        (b"x", (("k", "v"),)),
        (b"y", ()),
        (b"z", (("a", "b"),)),
    ]


def test_ordering_keys_keep_order_per_key(project: str) -> None:
    make_topic(project, "ordered", subscription="ordered-sub", enable_message_ordering=True)
    keys = ["a", "b", "c"]
    records = [Record(f"{k}:{i}", key=k) for i in range(40) for k in keys]
    with Writer("ordered", project_id=project) as writer:
        writer.write_many(records)
    with Reader("ordered-sub", {"key": "key"}, project_id=project) as reader:
        got = read_until(reader, len(records))
    for k in keys:
        sequence = [int(v.split(b":")[1]) for v, h in got if h["key"] == k]
        assert sequence == list(range(40)), f"key {k} out of order: {sequence}"


def test_handler_exception_nacks_so_the_message_comes_back_at_once(project: str) -> None:
    # ack deadline 60 s: a redelivery within the read window below can only come from a nack
    make_topic(project, "fails", subscription="fails-sub", ack_deadline_seconds=60)
    with Writer("fails", project_id=project) as writer:
        sent = writer.write(b"poison")

    def explode(value: bytes, headers: dict[str, str]) -> None:
        raise ValueError("handler failed")

    with Reader("fails-sub", project_id=project) as reader:
        with pytest.raises(ValueError, match="handler failed"):
            reader.read(explode, handle_signals=False)
        seen: list[str] = []
        timer = threading.Timer(20, reader.stop)
        timer.start()
        reader.read_message(lambda m: seen.append(m.message_id), limit=1, handle_signals=False)
        timer.cancel()
    assert seen == [sent.message_id]


def test_slow_handler_keeps_its_lease_and_acks_are_final(project: str) -> None:
    """A handler slower than the ack deadline (10 s) keeps its message: the client extends the
    lease, so a second reader on the same subscription gets nothing, neither the slow message
    nor the one acked before it (an ack that was not sent would show up after 10 s)."""
    make_topic(project, "slow", subscription="slow-sub", ack_deadline_seconds=10)
    with Writer("slow", project_id=project) as writer:
        writer.write_many([b"fast", b"slow"])
    slow_started = threading.Event()

    def handle(value: bytes, headers: dict[str, str]) -> None:
        if value == b"slow":
            slow_started.set()
            time.sleep(13)

    config = {"subscription": {"max_outstanding_messages": 1}}
    first = Reader("slow-sub", config, project_id=project)
    handled: list[int] = []
    worker = threading.Thread(
        target=lambda: handled.append(first.read(handle, limit=2, handle_signals=False))
    )
    worker.start()
    try:
        if not slow_started.wait(30):
            # the emulator may hand "slow" first: then "fast" waits behind it (flow control 1)
            pytest.fail("the slow message never reached the first reader")
        with Reader("slow-sub", project_id=project) as second:
            stolen = read_for(second, 14)
    finally:
        worker.join(60)
        first.close()
    assert handled == [2]
    assert stolen == [], f"redelivered while leased or after ack: {stolen}"


def test_flow_control_bounds_the_messages_held(project: str) -> None:
    make_topic(project, "flow")
    bounds = {
        "by-count": ({"max_outstanding_messages": 3}, 3),
        # messages of ~1020 bytes: the client hands one out while under the byte limit, so
        # the limit is passed by at most one message (2 x 1020 < 2500 lets a third through)
        "by-bytes": ({"max_outstanding_bytes": 2500}, 3),
        "free": ({}, None),
    }
    for name in bounds:
        make_topic_subscription(project, "flow", name)
    with Writer("flow", project_id=project) as writer:
        writer.write_many([b"x" * 1000 for _ in range(40)])

    def slow(value: bytes, headers: dict[str, str]) -> None:
        time.sleep(0.005)

    for name, (settings, bound) in bounds.items():
        with Reader(name, {"subscription": settings}, project_id=project) as reader:
            read_until(reader, 40, handler=slow)
            if bound is None:  # unbounded, the client takes many at once: the bounds can fail
                assert reader.core.max_held > 3
            else:
                assert 1 <= reader.core.max_held <= bound, name


def test_stop_is_clean_and_the_next_read_goes_on(project: str) -> None:
    make_topic(project, "stop", subscription="stop-sub", ack_deadline_seconds=60)
    values = {f"v{i}".encode() for i in range(60)}
    with Writer("stop", project_id=project) as writer:
        writer.write_many(sorted(values))
    first_pass: list[bytes] = []
    with Reader("stop-sub", project_id=project) as reader:

        def handle(value: bytes, headers: dict[str, str]) -> None:
            first_pass.append(value)
            if len(first_pass) == 10:
                reader.stop()

        timer = threading.Timer(30, reader.stop)
        timer.start()
        handled = reader.read(handle, handle_signals=False)
        timer.cancel()
        assert handled == len(first_pass) == 10
        # the stream stays open between reads (as a Kafka consumer stays subscribed)
        second_pass = [v for v, _ in read_until(reader, 50, timeout_s=30)]
    assert sorted(first_pass + second_pass) == sorted(values)


def test_close_gives_back_what_the_reader_held_and_loses_nothing(project: str) -> None:
    """close() nacks the messages received and not handled; none is lost, none handled twice.
    They come back when their lease (10 s here) runs out; the emulator sends them 10 to 30 s
    after the close (docs/pubsub.md, "Emulator limits met")."""
    make_topic(project, "close", subscription="close-sub", ack_deadline_seconds=10)
    values = {f"v{i}".encode() for i in range(30)}
    with Writer("close", project_id=project) as writer:
        writer.write_many(sorted(values))
    short_leases = {"subscription": {"ack_deadline": "10s"}}
    with Reader("close-sub", short_leases, project_id=project) as reader:
        first_pass = [v for v, _ in read_until(reader, 5)]
        assert reader.core.held > 0  # it received more than it handled
    with Reader("close-sub", project_id=project) as reader:
        second_pass = [v for v, _ in read_until(reader, 25, timeout_s=90)]
        assert read_for(reader, 1.0) == []
    assert sorted(first_pass + second_pass) == sorted(values)


def test_health_reports_the_subscription_and_the_reader(project: str) -> None:
    make_topic(project, "health", subscription="health-sub", ack_deadline_seconds=20)
    checker = HealthChecker(subscription="health-sub", project_id=project)
    try:
        data = checker.check()
        assert data["subscription"] == f"projects/{project}/subscriptions/health-sub"
        assert data["topic"] == f"projects/{project}/topics/health"
        assert data["ack_deadline_s"] == 20
        assert data["backlog"] is None and "Monitoring" in data["backlog_source"]
        assert checker.health()["status"] == "UP"
    finally:
        checker.close()
    missing = HealthChecker("ps", subscription="nowhere", project_id=project)
    try:
        document = missing.health()
    finally:
        missing.close()
    assert document["status"] == "DOWN"
    assert "'nowhere' does not exist" in document["details"]["ps"]["data"]["error"]

    with Writer("health", project_id=project) as writer:
        writer.write(b"a")
    with Reader("health-sub", project_id=project) as reader:
        read_until(reader, 1)
        with_reader = HealthChecker(reader=reader)
        try:
            progress = with_reader.check()
        finally:
            with_reader.close()
    assert progress["handled"] == 1 and progress["held"] == 0


def test_missing_topic_and_subscription_are_clear_errors(project: str) -> None:
    with pytest.raises(UnknownTopicError, match="'ghost' does not exist"):
        Writer("ghost", project_id=project)
    with pytest.raises(UnknownSubscriptionError, match="'ghost-sub' does not exist") as info:
        Reader("ghost-sub", project_id=project)
    assert info.value.subscription == "ghost-sub"
    with pytest.raises(ConfigError, match="needs topic_id") as missing:
        Reader("ghost-sub", {"create_if_missing": True}, project_id=project)
    assert missing.value.key == "topic_id"
    make_topic(project, "real")
    with TopicWriter(project_id=project) as writer:
        with pytest.raises(UnknownTopicError, match="'ghost'"):
            writer.write("ghost", b"lost?")
        assert writer.write("real", b"still works").message_id  # the writer is not broken


def test_create_if_missing_makes_topic_and_subscription(project: str) -> None:
    config = {"topic_id": "made", "create_if_missing": True}
    with Reader("made-sub", config, project_id=project) as reader:  # made before any write
        with Writer("made", {"create_if_missing": True}, project_id=project) as writer:
            writer.write_with_key(b"hello", "k")
        got = read_until(reader, 1)
    assert got == [(b"hello", {})]


def test_bad_messages_are_refused_before_sending_and_lose_nothing(project: str) -> None:
    make_topic(project, "strict", subscription="strict-sub")
    with Writer("strict", project_id=project) as writer:
        with pytest.raises(ValueError, match="needs data or at least one attribute"):
            writer.write(b"")
        with pytest.raises(ValueError, match="'timeout' cannot be published"):
            writer.write(b"x", {"timeout": "5"})
        with pytest.raises(ValueError, match="not UTF-8"):
            writer.write(b"x", {"bin": b"\xff"})
        with pytest.raises(ValueError, match="ordering key is text"):
            writer.write(b"x", key=b"\xff")
        with pytest.raises(TypeError, match="values must be bytes, str or None"):
            writer.write(12)  # type: ignore[arg-type]
        with pytest.raises(MessageTooLargeError, match="too large"):
            writer.write(b"x" * (10 * 1024 * 1024 + 1))
        with pytest.raises(ValueError, match="not UTF-8"):
            writer.write_many([b"ok-1", Record(b"bad", headers={"b": b"\xfe"}), b"never"])
        assert writer.write(b"after").message_id
    with Reader("strict-sub", project_id=project) as reader:
        got = sorted(v for v, _ in read_until(reader, 2))
        assert got == [b"after", b"ok-1"]  # the batch's earlier message went; nothing else
        assert read_for(reader, 1.0) == []
    with Writer("strict", {"message_ordering": False}, project_id=project) as unordered:
        with pytest.raises(ConfigError, match="message_ordering") as info:
            unordered.write(b"x", key="k")
        assert info.value.key == "message_ordering"


def test_unreachable_pubsub_is_a_prompt_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens on the port: the first call fails after the configured retries (the
    google client's own retry, 60 s and more, is not stacked on top), and a write gives up
    after client.timeout instead of waiting forever."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
    config = {"retry": {1: "100ms", 2: "100ms"}, "client": {"timeout": "1s"}}
    with pytest.raises(BrokerUnreachableError, match="after 3 attempt") as info:
        Writer("somewhere", config, project_id="nowhere")
    assert info.value.attempts == 3
    with pytest.raises(BrokerUnreachableError, match="UNAVAILABLE"):
        Reader("somewhere-sub", config, project_id="nowhere")
    writer = TopicWriter(config, project_id="nowhere")
    try:
        with pytest.raises(DeliveryError, match="no confirmation") as failed:
            writer.write("somewhere", b"x", key="k")
        assert failed.value.retriable
    finally:
        writer.close()


def test_one_probe_serves_kafka_and_pubsub_checkers(project: str, tmp_path: Path) -> None:
    """kafkito.client's serve_health takes any checker of the seed's shape: a service that
    uses both backends answers one /health for both, DOWN when either is."""
    import json
    import urllib.error
    import urllib.request

    from kafkito import Broker
    from kafkito.client import HealthChecker as KafkaHealthChecker
    from kafkito.client import serve_health

    make_topic(project, "probe", subscription="probe-sub")
    pubsub = HealthChecker("pubsub", subscription="probe-sub", project_id=project)
    missing = HealthChecker("pubsub-missing", subscription="nowhere", project_id=project)
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        kafka = KafkaHealthChecker("kafka", brokers=bootstrap)
        try:
            with serve_health([kafka, pubsub]) as probe:
                with urllib.request.urlopen(probe.url, timeout=20) as answer:
                    document = json.loads(answer.read())
                assert answer.status == 200
                assert document["status"] == "UP"
                assert set(document["details"]) == {"kafka", "pubsub"}
            with serve_health([kafka, missing]) as probe:
                with pytest.raises(urllib.error.HTTPError) as down:
                    urllib.request.urlopen(probe.url, timeout=20)
                assert down.value.code == 500
                document = json.loads(down.value.read())
                assert document["details"]["kafka"]["status"] == "UP"
                assert document["details"]["pubsub-missing"]["status"] == "DOWN"
        finally:
            pubsub.close()
            missing.close()
