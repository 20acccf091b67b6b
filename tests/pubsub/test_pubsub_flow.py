"""The consume flow on Pub/Sub (kafkito.pubsub.Flow) against the emulator: the Kafka flow's
handler code, retries, dead letters with their attributes, order per key, flow control, bad
input, and ack only after success."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any

import pydantic
import pytest
from prometheus_client import CollectorRegistry
from pskit import make_topic, make_topic_subscription, pull_until, read_for, read_until, run_flow

from kafkito.flow import BatchFailed, FlowMetrics, Record, Reject, RetryLater, RetryPolicy
from kafkito.pubsub import (
    Flow,
    FlowError,
    Reader,
    UnknownSubscriptionError,
    UnknownTopicError,
    Writer,
    current_message,
)
from kafkito.pubsub import Record as Out


class Click(pydantic.BaseModel):
    user: str
    page: str


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_round_trip_with_the_kafka_flows_handler_code(project: str) -> None:
    """A handler written for kafkito.flow (a Record of a pydantic model) runs unchanged: the
    key is the ordering key as bytes, the headers the attributes as bytes, acked after."""
    make_topic(project, "clicks", subscription="clicks-sub", enable_message_ordering=True)
    with Writer("clicks", project_id=project) as writer:
        writer.write_many(
            [
                Out(
                    json.dumps({"user": f"u{i % 3}", "page": f"/p{i}"}),
                    key=f"u{i % 3}",
                    headers={"source": "web", "n": str(i)},
                )
                for i in range(12)
            ]
        )
    got: list[tuple[bytes | None, str, dict[str, bytes | None], str | None]] = []

    def handle(record: Record[Click]) -> None:
        message = current_message.get()
        got.append((record.key, record.value.page, record.headers, message and message.message_id))
        assert record.topic == "clicks" and record.partition == -1 and record.attempt == 1

    registry = CollectorRegistry()
    flow = Flow(
        "clicks-sub", handle, project_id=project, metrics=FlowMetrics.for_registry(registry)
    )
    run_flow(flow, lambda: len(got) == 12)
    assert sorted(page for _, page, _, _ in got) == sorted(f"/p{i}" for i in range(12))
    for key, page, headers, message_id in got:
        n = int(page[2:])
        assert key == f"u{n % 3}".encode()
        assert headers == {"source": b"web", "n": str(n).encode()}
        assert message_id
    labels = {"topic": "clicks", "group": "clicks-sub"}
    assert metric(registry, "kafkito_flow_records_processed_total", **labels) == 12
    assert metric(registry, "kafkito_flow_records_received_total", **labels) == 12
    assert metric(registry, "kafkito_flow_handler_seconds_count", **labels) == 12
    assert flow.health()["live"] is False  # stopped


def test_acks_only_after_the_handler_returns(project: str) -> None:
    """Messages whose handler had not returned when the flow stopped come back (after the ack
    deadline); the handled ones do not."""
    make_topic(project, "acks", subscription="acks-sub", ack_deadline_seconds=10)
    with Writer("acks", project_id=project) as writer:
        writer.write_many([f"m{i}".encode() for i in range(10)])
    release = threading.Event()
    done: list[str] = []

    def handle(value: bytes) -> None:
        if int(value[1:]) % 2:  # odd ones never finish before the stop
            release.wait(30)
            return
        done.append(value.decode())

    config = {"subscription": {"ack_deadline": "10s"}}
    first = Flow("acks-sub", handle, project_id=project, config=config, shutdown_grace_s=0.5)
    try:
        run_flow(first, lambda: len(done) == 5)
    finally:
        release.set()
    again: list[str] = []
    second = Flow(
        "acks-sub",
        lambda value: again.append(value.decode()),
        decoder="raw",
        project_id=project,
        config=config,
    )
    began = time.monotonic()
    # the five come back when their deadline passes; wait a little more for anything else
    try:
        run_flow(second, lambda: len(again) >= 5 and time.monotonic() - began > 13, timeout_s=60)
    finally:
        print("again", again, time.monotonic() - began)
    assert sorted(again) == [f"m{i}" for i in range(1, 10, 2)]


def test_retry_in_place_then_dead_letters_with_attributes(project: str) -> None:
    """RetryLater is retried in place; Reject, an undecodable payload and a failure that runs
    out of attempts go to `<topic>.dlq` with the origin and exception as attributes."""
    make_topic(project, "orders", subscription="orders-sub")
    make_topic(project, "orders.dlq", subscription="dlq-watch")
    attempts: dict[str, list[int]] = {}

    def handle(record: Record[dict[str, Any]]) -> None:
        kind = record.value["kind"]
        attempts.setdefault(kind, []).append(record.attempt)
        if kind == "flaky" and record.attempt < 3:
            raise RetryLater("not yet", delay_s=0.05)
        if kind == "bad":
            raise Reject("quantity must be positive")
        if kind == "broken":
            raise ConnectionError("inventory down")

    with Writer("orders", project_id=project) as writer:
        for kind in ("ok", "flaky", "bad", "broken"):
            writer.write(json.dumps({"kind": kind}), {"kind": kind})
        writer.write(b"{not json", {"kind": "garbage"}, key="k-1")
    flow = Flow("orders-sub", handle, project_id=project, retry=RetryPolicy.delays([0.05, 0.05]))
    run_flow(flow, lambda: flow.handled + flow.dead_lettered == 5)
    assert attempts == {"ok": [1], "flaky": [1, 2, 3], "bad": [1], "broken": [1, 2, 3]}
    assert (flow.handled, flow.dead_lettered) == (2, 3)
    with Reader("dlq-watch", project_id=project) as watcher:
        letters = {h["kind"]: (v, h) for v, h in read_until(watcher, 3)}
    assert set(letters) == {"bad", "broken", "garbage"}
    value, headers = letters["garbage"]
    assert value == b"{not json"  # the bytes as they came, never re-encoded
    assert headers["x-kafkito-exception-type"] == "kafkito.flow.codecs.DecodeError"
    assert headers["x-kafkito-attempts"] == "1"
    assert headers["x-kafkito-original-topic"] == "orders"
    assert headers["x-kafkito-group"] == "orders-sub"
    assert headers["x-kafkito-original-message-id"]
    assert int(headers["x-kafkito-original-timestamp"]) > 1_600_000_000_000
    assert letters["bad"][1]["x-kafkito-exception-type"] == "kafkito.flow.outcomes.Reject"
    assert letters["bad"][1]["x-kafkito-exception-message"] == "quantity must be positive"
    broken = letters["broken"][1]
    assert broken["x-kafkito-exception-type"] == "builtins.ConnectionError"
    assert broken["x-kafkito-attempts"] == "3"


def test_nack_with_backoff_redelivers_after_the_delay(project: str) -> None:
    """mode="topics" (non-blocking) on Pub/Sub: the ack deadline is set to the delay and the
    message is released; Pub/Sub redelivers it then, and the next messages do not wait."""
    make_topic(project, "later", subscription="later-sub")
    seen: list[tuple[str, int, float]] = []

    def handle(record: Record[str]) -> None:
        seen.append((record.value, record.attempt, time.monotonic()))
        if record.value == "slow" and record.attempt < 3:
            raise RetryLater("backend busy")

    with Writer("later", project_id=project) as writer:
        writer.write_many(["slow", "fast"])
    flow = Flow(
        "later-sub", handle, project_id=project, retry=RetryPolicy.delays([2, 2], mode="topics")
    )
    run_flow(flow, lambda: flow.handled == 2, timeout_s=40)
    slow = [(attempt, at) for value, attempt, at in seen if value == "slow"]
    assert [attempt for attempt, _ in slow] == [1, 2, 3]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(slow)]
    assert all(gap >= 1.5 for gap in gaps), gaps
    fast_at = next(at for value, _, at in seen if value == "fast")
    assert fast_at < slow[1][1]  # not held behind the retried message


def test_subscription_retry_and_dead_letter_policies(project: str) -> None:
    """retry="subscription": the flow nacks and Pub/Sub backs off; with a dead-letter policy
    the flow writes the last attempt to the policy's topic itself, with its attributes."""
    make_topic(project, "dead", subscription="dead-watch")
    make_topic(
        project,
        "work",
        subscription="work-sub",
        dead_letter_policy={
            "dead_letter_topic": f"projects/{project}/topics/dead",
            "max_delivery_attempts": 5,
        },
        retry_policy={"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 2}},
    )
    make_topic_subscription(project, "work", "work-plain")
    attempts: list[int] = []
    times: list[float] = []

    def handle(record: Record[bytes]) -> None:
        attempts.append(record.attempt)
        times.append(time.monotonic())
        raise ValueError("cannot handle")

    with Writer("work", project_id=project) as writer:
        writer.write(b"poison", {"id": "7"})
    flow = Flow("work-sub", handle, project_id=project, retry="subscription")
    run_flow(flow, lambda: flow.dead_lettered == 1, timeout_s=60)
    assert attempts == [1, 2, 3, 4, 5]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Pub/Sub's backoff (1 s to 2 s); the emulator redelivers the first nack at once
    assert all(gap >= 0.9 for gap in gaps[1:]), gaps
    assert flow.dead_letter_to == f"projects/{project}/topics/dead"
    with Reader("dead-watch", project_id=project) as watcher:
        [(value, headers)] = read_until(watcher, 1)
    assert value == b"poison" and headers["id"] == "7"
    assert headers["x-kafkito-attempts"] == "5"
    assert headers["x-kafkito-exception-type"] == "builtins.ValueError"
    assert headers["x-kafkito-group"] == "work-sub"
    # a subscription without a retry policy: retry="subscription" is refused, saying why
    plain = Flow("work-plain", handle, project_id=project, retry="subscription")
    with pytest.raises(FlowError, match="needs a retry policy"):
        run_flow(plain, lambda: False)


def test_order_per_ordering_key_under_concurrency(project: str) -> None:
    make_topic(project, "keyed", subscription="keyed-sub", enable_message_ordering=True)
    keys = [f"user-{k}" for k in range(6)]
    with Writer("keyed", project_id=project) as writer:
        writer.write_many([Out(f"{key}:{i}", key=key) for i in range(30) for key in keys])
    seen: dict[str, list[int]] = {}
    running = 0
    most = 0
    lock = threading.Lock()

    def handle(value: str) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        key, n = value.split(":")
        time.sleep(0.002 * (int(n) % 3))
        with lock:
            seen.setdefault(key, []).append(int(n))
            running -= 1

    flow = Flow("keyed-sub", handle, project_id=project, concurrency=8)
    run_flow(flow, lambda: flow.handled == 180, timeout_s=60)
    assert seen == {key: list(range(30)) for key in keys}
    assert most > 1  # keys ran in parallel


def test_flow_control_bounds_what_is_held(project: str) -> None:
    make_topic(project, "flood", subscription="flood-sub")
    with Writer("flood", project_id=project) as writer:
        writer.write_many([f"{i}" for i in range(60)])
    flow = Flow(
        "flood-sub",
        lambda value: time.sleep(0.01),
        decoder="raw",
        project_id=project,
        max_in_flight=5,
        concurrency=4,
    )
    held: list[int] = []

    def done() -> bool:
        if flow._core is not None:
            held.append(flow.core.max_held)
        return flow.handled == 60

    run_flow(flow, done, timeout_s=60)
    assert 1 <= max(held) <= 5


def test_async_and_batch_handlers(project: str) -> None:
    make_topic(project, "batched", subscription="batched-sub")
    make_topic(project, "batched.dlq", subscription="batched-dlq")
    with Writer("batched", project_id=project) as writer:
        writer.write_many([json.dumps({"n": i}) for i in range(20)])
    batches: list[list[int]] = []

    async def handle(values: list[dict[str, int]]) -> None:
        await asyncio.sleep(0)
        numbers = [v["n"] for v in values]
        failed = {i: Reject("thirteen") for i, n in enumerate(numbers) if n == 13}
        if failed:
            batches.append([n for n in numbers if n != 13])
            raise BatchFailed(failed)
        batches.append(numbers)

    flow = Flow("batched-sub", handle, project_id=project, batch_size=8, batch_timeout_s=0.2)
    run_flow(flow, lambda: flow.handled + flow.dead_lettered == 20)
    assert sorted(n for batch in batches for n in batch) == [n for n in range(20) if n != 13]
    assert max(len(batch) for batch in batches) > 1
    with Reader("batched-dlq", project_id=project) as watcher:
        [(value, headers)] = read_until(watcher, 1)
    assert json.loads(value) == {"n": 13}
    assert headers["x-kafkito-exception-message"] == "thirteen"


def test_bad_input_clear_errors_nothing_lost(project: str) -> None:
    # a subscription that does not exist, in this project or in a wrong one
    with pytest.raises(UnknownSubscriptionError, match="nope-sub"):
        run_flow(Flow("nope-sub", print, project_id=project), lambda: False)
    make_topic(project, "real", subscription="real-sub")
    with pytest.raises(UnknownSubscriptionError, match="real-sub"):
        run_flow(Flow("real-sub", print, project_id=project + "-wrong"), lambda: False)
    # the dead-letter topic is missing and may not be created: an error at start
    with pytest.raises(UnknownTopicError, match=r"real\.dlq"):
        run_flow(Flow("real-sub", print, project_id=project, create_topics=False), lambda: False)

    # an annotation the flow cannot decode to: refused before anything is read
    def wrong(value: int) -> None: ...

    with pytest.raises(FlowError, match="cannot decode"):
        Flow("real-sub", wrong, project_id=project)
    with pytest.raises(FlowError, match="no meaning on Pub/Sub"):
        Flow("real-sub", print, project_id=project, ordering="partition")
    # undecodable payloads among good ones: every message is handled or dead-lettered
    with Writer("real", project_id=project) as writer:
        writer.write_many([b'{"user": "a", "page": "/"}', b"\xff\xfe", b'{"user": 1}', b"[]"])
    good: list[Click] = []
    flow = Flow("real-sub", good.append, model=Click, project_id=project)
    run_flow(flow, lambda: flow.handled + flow.dead_lettered == 4)
    assert (len(good), flow.dead_lettered) == (1, 3)
    with Reader("real-sub", project_id=project) as reader:
        assert read_for(reader, 1.5) == []  # all four were acked


CHILD = """
import sys, time
from kafkito.pubsub import Flow

def handle(value: bytes) -> None:
    time.sleep(0.05)
    print(value.decode(), flush=True)  # after the handler's work, before the ack

Flow("crash-sub", handle, project_id=sys.argv[1], concurrency=2,
     config={"subscription": {"ack_deadline": "10s"}}).run()
"""


def test_flow_killed_with_sigkill_loses_nothing(project: str) -> None:
    import os
    import signal
    import subprocess
    import sys

    make_topic(project, "crash", subscription="crash-sub", ack_deadline_seconds=10)
    values = {f"v{i}" for i in range(40)}
    with Writer("crash", project_id=project) as writer:
        writer.write_many(sorted(values))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, project],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    by_child: list[str] = []
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while len(by_child) < 5 and time.monotonic() < deadline:
            line = child.stdout.readline()
            if not line:
                break
            by_child.append(line.strip())
        assert len(by_child) == 5, child.stderr.read() if child.stderr else ""
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert child.stdout is not None
        by_child += [line.strip() for line in child.stdout.read().splitlines()]
    missing = values - set(by_child)
    assert missing, "the child handled everything before the kill: nothing was tested"
    seen: set[str] = set()
    flow = Flow("crash-sub", lambda v: seen.add(v), decoder="text", project_id=project)
    # The emulator never forgets the killed child's stream (it fails on the RST_STREAM of a
    # dead connection, docs/pubsub.md) and hands it the redelivered messages again, all at
    # once, after each 10 s deadline. Usually the next round goes to the new flow (10-20 s
    # here); under CPU load it went to the dead stream for 150 s in 1 run of 3 (and in a CI
    # run). Then the flow stops, and plain pulls, which the emulator serves besides its
    # streams, show whether the messages are still there: lost is what neither got.
    run_flow(flow, lambda: missing <= seen, timeout_s=60, fail_on_timeout=False)
    if not missing <= seen:
        seen |= pull_until(project, "crash-sub", missing - seen, timeout_s=120)
    assert missing <= seen, f"lost after kill -9: {sorted(missing - seen)}"
