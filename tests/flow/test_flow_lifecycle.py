"""Batches, rebalances, shutdown, long back-offs, metrics, tracing; against real brokers."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import (
    Running,
    committed,
    create_topic,
    id_records,
    produce,
    read_all,
    total_committed,
    wait_for,
)
from prometheus_client import CollectorRegistry

from kafkito.flow import BatchFailed, Flow, FlowMetrics, Record, RetryPolicy, letters
from kafkito.testing.brokers import BrokerProcess

StartFlow = Callable[[Flow], Running]
APP = str(Path(__file__).with_name("flow_app.py"))


def test_batch_handler_with_per_record_failures(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    produce(
        broker,
        topic_name,
        id_records(25, keys=3),
    )
    batches: list[list[int]] = []
    failed_once: set[int] = set()

    def handle(values: list[dict[str, int]]) -> None:
        ids = [v["id"] for v in values]
        batches.append(ids)
        bad = {
            i: ValueError("odd") for i, n in enumerate(ids) if n % 5 == 0 and n not in failed_once
        }
        failed_once.update(ids[i] for i in bad)
        if bad:
            raise BatchFailed(bad)

    running = start_flow(
        Flow(
            topic_name,
            handle,
            group_id="g",
            brokers=broker,
            batch_size=10,
            batch_timeout_s=0.2,
            retry=RetryPolicy.delays([0.01]),
            commit_interval_s=0.05,
        )
    )
    wait_for(lambda: committed(broker, "g", topic_name) == [25], what="all committed")
    running.stop()
    assert max(len(b) for b in batches) == 10
    assert all(b == sorted(b) for b in batches), "a batch is in offset order"
    assert sorted(failed_once) == [0, 5, 10, 15, 20]
    retried = [b for b in batches if len(b) == 1]
    assert sorted(b[0] for b in retried) == [0, 5, 10, 15, 20], "each failure retried alone"


@pytest.mark.parametrize(
    ("loop", "env", "expected"),
    [("uvloop", None, "uvloop"), (None, "auto", "uvloop"), (None, None, "asyncio")],
    ids=["argument", "KAFKITO_LOOP", "default"],
)
def test_the_flow_runs_on_the_event_loop_asked_for(
    broker: str,
    topic_name: str,
    monkeypatch: pytest.MonkeyPatch,
    loop: str | None,
    env: str | None,
    expected: str,
) -> None:
    if expected == "uvloop":
        pytest.importorskip("uvloop")
    if env is None:
        monkeypatch.delenv("KAFKITO_LOOP", raising=False)
    else:
        monkeypatch.setenv("KAFKITO_LOOP", env)
    produce(broker, topic_name, id_records(20, keys=4))
    seen: set[str] = set()

    async def handle(value: dict[str, int]) -> None:
        seen.add(type(asyncio.get_running_loop()).__module__.split(".")[0])
        await asyncio.sleep(0.001)

    flow = Flow(topic_name, handle, group_id="g", brokers=broker, commit_interval_s=0.05)
    running = Running(flow, loop=loop)
    try:
        wait_for(lambda: committed(broker, "g", topic_name) == [20], what="all committed")
    finally:
        running.stop()
    assert seen == {expected}


def test_second_member_joins_nothing_lost(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """C6: a rebalance mid-processing: completed work committed on revoke, no loss."""
    create_topic(broker, topic_name, partitions=4)
    total = 400
    produce(
        broker,
        topic_name,
        id_records(total),
    )
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def make(name: str) -> Callable[[dict[str, int]], None]:
        def handle(value: dict[str, int]) -> None:
            time.sleep(0.01)
            with lock:
                seen.append((name, value["id"]))

        return handle

    settings = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 300}
    first = start_flow(
        Flow(
            topic_name,
            make("a"),
            group_id="g",
            brokers=broker,
            concurrency=4,
            settings=settings,
            commit_interval_s=0.1,
        )
    )
    wait_for(lambda: len(seen) > 20, what="first member started")
    second = start_flow(
        Flow(
            topic_name,
            make("b"),
            group_id="g",
            brokers=broker,
            concurrency=4,
            settings=settings,
            commit_interval_s=0.1,
        )
    )
    wait_for(lambda: len({i for _, i in seen}) == total, timeout_s=60, what="every id")
    wait_for(lambda: sum(committed(broker, "g", topic_name, 4)) == total, what="commits")
    first.stop()
    second.stop()
    ids = [i for _, i in seen]
    assert set(ids) == set(range(total))
    assert {name for name, _ in seen} == {"a", "b"}, "the second member got partitions"
    assert len(ids) - total <= 4 * 4, "duplicates bounded by what was in flight"


def test_backoff_longer_than_max_poll_interval_causes_no_rebalance(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """F8: polling goes on during a long back-off; the member never leaves the group."""
    produce(broker, topic_name, [(b"k", b'{"id": 1}')])
    attempts: list[float] = []

    def handle(value: dict[str, int]) -> None:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise ConnectionError("later")

    flow = Flow(
        topic_name,
        handle,
        group_id="g",
        brokers=broker,
        retry=RetryPolicy.delays([8.0]),
        commit_interval_s=0.1,
        settings={
            "max.poll.interval.ms": 3000,
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 300,
        },
    )
    assigned: list[float] = []
    original = flow._on_assign

    def counting(consumer: object, partitions: list[object]) -> None:
        assigned.append(time.monotonic())
        original(consumer, partitions)

    flow._on_assign = counting  # type: ignore[method-assign]
    running = start_flow(flow)
    wait_for(lambda: len(attempts) == 2, timeout_s=30, what="the second attempt")
    wait_for(lambda: committed(broker, "g", topic_name) == [1], what="commit")
    running.stop()
    assert attempts[1] - attempts[0] >= 7.5
    assert len(assigned) == 1, "no rebalance during the back-off"


def test_sigterm_finishes_in_flight_commits_and_leaves(
    broker: str, topic_name: str, tmp_path: Path
) -> None:
    """C9/F10: SIGTERM mid-handler: the record finishes, offsets are committed, exit fast."""
    produce(broker, topic_name, [(b"k", json.dumps({"id": i}).encode()) for i in range(50)])
    out = tmp_path / "done.txt"
    proc = subprocess.Popen(
        [sys.executable, APP, broker, topic_name, "g", str(out), "--sleep-ms", "100"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        wait_for(
            lambda: out.exists() and len(out.read_text().splitlines()) >= 5,
            what="some records processed",
        )
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        elapsed = time.monotonic() - stopped_at
    finally:
        if proc.poll() is None:
            proc.kill()
    fields = [line.split() for line in out.read_text().splitlines()]
    done = [int(f[1]) for f in fields if f[1].isdigit()]  # not the rebalance lines
    assert done == list(range(len(done)))
    assert committed(broker, "g", topic_name) == [len(done)], "exactly what was completed"
    assert elapsed < 10


def test_metrics_count_what_happened(broker: str, topic_name: str, start_flow: StartFlow) -> None:
    registry = CollectorRegistry()
    produce(broker, topic_name, [(b"a", b'{"id": 1}'), (b"b", b"not json"), (b"c", b'{"id": 3}')])
    running = start_flow(
        Flow(
            topic_name,
            lambda v: None,
            group_id="g",
            brokers=broker,
            metrics=FlowMetrics.for_registry(registry),
            commit_interval_s=0.05,
        )
    )
    wait_for(lambda: committed(broker, "g", topic_name) == [3], what="commit")
    running.stop()

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"topic": topic_name, "group": "g", **labels})

    assert value("kafkito_flow_records_received_total") == 3
    assert value("kafkito_flow_records_processed_total") == 2
    assert value("kafkito_flow_records_dead_lettered_total") == 1
    assert value("kafkito_flow_records_failed_total", kind="permanent") == 1
    assert (
        registry.get_sample_value(
            "kafkito_flow_committed_offset", {"topic": topic_name, "partition": "0", "group": "g"}
        )
        == 3
    )


def test_trace_context_flows_from_headers_into_the_handler_and_dead_letters(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    from opentelemetry import trace

    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = f"00-{trace_id}-00f067aa0ba902b7-01"
    produce(broker, topic_name, [(b"k", b'{"id": 1}')], headers=[("traceparent", parent.encode())])
    seen_trace: list[str] = []

    def handle(record: Record[dict[str, int]]) -> None:
        seen_trace.append(f"{trace.get_current_span().get_span_context().trace_id:032x}")
        raise ValueError("to the dead-letter topic")

    running = start_flow(
        Flow(topic_name, handle, group_id="g", brokers=broker, retry=RetryPolicy.none())
    )
    dead = read_all(broker, letters.dead_letter_topic(topic_name), expect=1)
    running.stop()
    assert seen_trace == [trace_id]
    carried = dict(dead[0].headers())["traceparent"]
    assert carried is not None and trace_id.encode() in carried


def test_health_reports_liveness_and_readiness(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    create_topic(broker, topic_name)
    flow = Flow(topic_name, lambda v: None, group_id="g", brokers=broker)
    assert flow.health()["live"] is False
    running = start_flow(flow)
    wait_for(lambda: flow.health()["ready"], what="ready")
    report = flow.health()
    assert report["live"] and report["assigned_partitions"] == 1
    running.stop()


def test_backpressure_bounds_records_in_flight_and_polling_goes_on(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """With the handlers stuck, no more than max_in_flight records are taken in; the flow
    waits, then pauses, and keeps polling (live); once unstuck, everything is handled."""
    create_topic(broker, topic_name, partitions=2)
    produce(
        broker,
        topic_name,
        id_records(600, keys=20),
    )
    gate = threading.Event()
    seen: list[int] = []

    def handle(value: dict[str, int]) -> None:
        gate.wait(60)
        seen.append(value["id"])

    flow = Flow(
        topic_name,
        handle,
        group_id="g",
        brokers=broker,
        concurrency=4,
        max_in_flight=50,
        backpressure_wait_s=0.2,
        commit_interval_s=0.1,
        liveness_timeout_s=1.0,
    )
    running = start_flow(flow)
    wait_for(lambda: flow.health()["in_flight"] >= 40, what="records taken in")
    peak = 0
    deadline = time.monotonic() + 1.5  # several backpressure waits and polls
    while time.monotonic() < deadline:
        report = flow.health()
        peak = max(peak, report["in_flight"])
        assert report["live"], report
        time.sleep(0.01)
    assert peak <= 50
    assert seen == []
    gate.set()
    wait_for(lambda: len(seen) >= 600, what="600 records")
    wait_for(
        lambda: total_committed(broker, "g", topic_name, 2) == 600,
        what="commits",
    )
    running.stop()
    assert sorted(seen) == list(range(600))


@pytest.mark.tansu
def test_main_flow_against_tansu(
    tansu: BrokerProcess, topic_name: str, start_flow: StartFlow
) -> None:
    bootstrap = tansu.bootstrap
    create_topic(bootstrap, topic_name, partitions=1)
    create_topic(bootstrap, letters.dead_letter_topic(topic_name), partitions=1)
    produce(
        bootstrap, topic_name, [(b"a", b'{"id": 1}'), (b"b", b"\xffpoison"), (b"a", b'{"id": 2}')]
    )
    handled: list[int] = []
    running = start_flow(
        Flow(
            topic_name,
            lambda v: handled.append(v["id"]),
            group_id="g",
            brokers=bootstrap,
            commit_interval_s=0.1,
        )
    )
    dead = read_all(bootstrap, letters.dead_letter_topic(topic_name), expect=1, timeout_s=60)
    wait_for(lambda: committed(bootstrap, "g", topic_name) == [3], timeout_s=60, what="commit")
    running.stop()
    assert handled == [1, 2]
    assert dead[0].value() == b"\xffpoison"


def test_handler_longer_than_max_poll_interval_causes_no_rebalance(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """C7: a sync handler that runs past max.poll.interval.ms; polling goes on meanwhile."""
    produce(broker, topic_name, [(b"k", b'{"id": 1}'), (b"k", b'{"id": 2}')])
    done: list[int] = []

    def handle(value: dict[str, int]) -> None:
        if value["id"] == 1:
            time.sleep(4.5)
        done.append(value["id"])

    rebalances: list[str] = []
    flow = Flow(
        topic_name,
        handle,
        group_id="g",
        brokers=broker,
        commit_interval_s=0.1,
        settings={
            "max.poll.interval.ms": 3000,
            "session.timeout.ms": 3000,
            "heartbeat.interval.ms": 300,
        },
        on_rebalance=lambda kind, tps: rebalances.append(kind),
    )
    running = start_flow(flow)
    wait_for(lambda: committed(broker, "g", topic_name) == [2], timeout_s=30, what="commit")
    running.stop()
    assert done == [1, 2]
    assert rebalances == ["assigned", "revoked"], "one assignment, revoked only at stop"


def test_rebalance_during_a_retry_drops_it_and_the_new_owner_takes_over(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """F9: the old owner's retry state is dropped on revoke and nothing is committed for it;
    the new owner starts from the committed offset and finishes the record."""
    create_topic(broker, topic_name, partitions=1)
    produce(broker, topic_name, [(b"a", b'{"id": 0}'), (b"b", b'{"id": 1}')])
    first_attempts: list[int] = []
    second_seen: list[int] = []

    def failing(value: dict[str, int]) -> None:
        first_attempts.append(value["id"])
        if value["id"] == 0:
            raise ConnectionError("backend down")

    settings = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 300}
    first = start_flow(
        Flow(
            topic_name,
            failing,
            group_id="g",
            brokers=broker,
            retry=RetryPolicy.delays([30.0]),
            commit_interval_s=0.05,
            settings=settings,
            revoke_grace_s=1,
        )
    )
    wait_for(lambda: 0 in first_attempts and 1 in first_attempts, what="first attempts")
    time.sleep(0.3)
    assert committed(broker, "g", topic_name) in ([-1001], [0]), "record 0 is unresolved"
    first.stop()  # leaves the group while record 0 waits for its retry
    assert committed(broker, "g", topic_name) in ([-1001], [0]), "nothing committed past it"
    second = start_flow(
        Flow(
            topic_name,
            lambda v: second_seen.append(v["id"]),
            group_id="g",
            brokers=broker,
            commit_interval_s=0.05,
            settings=settings,
        )
    )
    wait_for(lambda: committed(broker, "g", topic_name) == [2], what="the new owner's commit")
    second.stop()
    assert second_seen == [0, 1], "the new owner re-reads from the committed offset"
