"""The consume flow against the embedded broker over TCP (RELIABILITY F1-F10, C4-C9)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pydantic
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

from kafkito.flow import Flow, Record, Reject, RetryLater, RetryPolicy, letters

FAST_RETRY = RetryPolicy.delays([0.05, 0.05])
StartFlow = Callable[[Flow], Running]


class Click(pydantic.BaseModel):
    id: int
    user: str


def test_every_record_is_handled_once_and_committed(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    create_topic(broker, topic_name, partitions=3)
    produce(
        broker,
        topic_name,
        id_records(300, keys=7, prefix="u"),
    )
    seen: list[int] = []
    lock = threading.Lock()

    def handle(value: dict[str, int]) -> None:
        with lock:
            seen.append(value["id"])

    running = start_flow(
        Flow(topic_name, handle, group_id="g", brokers=broker, commit_interval_s=0.1)
    )
    wait_for(lambda: len(seen) >= 300, what="300 records")
    wait_for(
        lambda: total_committed(broker, "g", topic_name, 3) == 300,
        what="commits",
    )
    running.stop()
    assert sorted(seen) == list(range(300))


def test_same_key_in_order_different_keys_in_parallel(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    produce(
        broker,
        topic_name,
        id_records(200, keys=10),
    )
    per_key: dict[bytes, list[int]] = defaultdict(list)
    active = 0
    peak = 0

    async def handle(record: Record[dict[str, int]]) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.005)
        assert record.key is not None
        per_key[record.key].append(record.value["id"])
        active -= 1

    running = start_flow(Flow(topic_name, handle, group_id="g", brokers=broker, concurrency=8))
    wait_for(lambda: sum(len(v) for v in per_key.values()) >= 200, what="200 records")
    running.stop()
    for key, ids in per_key.items():
        assert ids == sorted(ids), f"key {key!r} out of order"
    assert peak > 1, "different keys should run at the same time"
    assert peak <= 8


def test_sync_handler_threads_keep_key_order_and_a_retrying_key_holds_only_itself(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """Sync handlers run on handler threads: keys in order, in parallel, and a record that
    retries in place holds back its own key only."""
    create_topic(broker, topic_name, partitions=2)
    produce(
        broker,
        topic_name,
        id_records(300, keys=10),
    )
    lock = threading.Lock()
    order: list[tuple[bytes, int]] = []
    failures = 0
    active = peak = 0

    def handle(record: Record[dict[str, int]]) -> None:
        nonlocal failures, active, peak
        assert record.key is not None
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            if record.value["id"] == 5 and failures < 2:
                failures += 1
                raise RetryLater("not yet", delay_s=0.3)
            time.sleep(0.001)
            with lock:
                order.append((record.key, record.value["id"]))
        finally:
            with lock:
                active -= 1

    running = start_flow(
        Flow(
            topic_name,
            handle,
            group_id="g",
            brokers=broker,
            concurrency=4,
            retry=RetryPolicy.delays([0.3, 0.3, 0.3]),
            commit_interval_s=0.1,
        )
    )
    wait_for(lambda: len(order) >= 300, what="300 records")
    wait_for(
        lambda: total_committed(broker, "g", topic_name, 2) == 300,
        what="commits",
    )
    running.stop()
    assert failures == 2
    assert sorted(i for _, i in order) == list(range(300))
    for key in {k for k, _ in order}:
        ids = [i for k, i in order if k == key]
        assert ids == sorted(ids), f"key {key!r} out of order"
    # While id 5 (key k5) waited ~0.6 s to retry, the other keys went on: most of them were
    # done before it; nothing of k5 after id 5 was.
    done_before_5 = order[: order.index((b"k5", 5))]
    assert not [i for k, i in done_before_5 if k == b"k5" and i > 5]
    assert len(done_before_5) > 200
    assert 1 < peak <= 4


def test_poison_pill_goes_to_the_dead_letter_topic_byte_identical(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """F1: undecodable bytes are never re-serialized; headers say where they came from."""
    poison = b"\xff\x00 not json"
    produce(
        broker,
        topic_name,
        [(b"k1", b'{"id": 1, "user": "a"}'), (b"k2", poison), (b"k3", b'{"id": 3, "user": "c"}')],
        headers=[("trace", b"t-1")],
    )
    handled: list[int] = []

    def handle(click: Click) -> None:
        handled.append(click.id)

    running = start_flow(
        Flow(topic_name, handle, group_id="g", brokers=broker, commit_interval_s=0.1)
    )
    dead = read_all(broker, letters.dead_letter_topic(topic_name), expect=1)
    wait_for(lambda: committed(broker, "g", topic_name) == [3], what="lag 0")
    running.stop()
    assert sorted(handled) == [1, 3]
    assert len(dead) == 1
    msg = dead[0]
    assert (msg.key(), msg.value()) == (b"k2", poison)
    headers = dict(msg.headers())
    assert headers["trace"] == b"t-1"
    assert headers[letters.ORIGINAL_TOPIC] == topic_name.encode()
    assert headers[letters.ORIGINAL_PARTITION] == b"0"
    assert headers[letters.ORIGINAL_OFFSET] == b"1"
    assert headers[letters.GROUP] == b"g"
    assert headers[letters.EXCEPTION_TYPE] == b"kafkito.flow.codecs.DecodeError"


def test_validation_failure_is_dead_lettered_without_retries(broker: str, topic_name: str) -> None:
    """F2: a model that does not validate is permanent: first failure, no handler call."""
    produce(broker, topic_name, [(b"k", b'{"id": "not a number", "user": "a"}')])
    calls: list[int] = []
    running = Running(
        Flow(
            topic_name,
            lambda click: calls.append(1),
            group_id="g",
            brokers=broker,
            model=Click,
            retry=FAST_RETRY,
        )
    )
    dead = read_all(broker, letters.dead_letter_topic(topic_name), expect=1)
    running.stop()
    assert calls == []
    headers = dict(dead[0].headers())
    assert headers[letters.EXCEPTION_TYPE] == b"kafkito.flow.codecs.ValidationFailed"
    assert headers[letters.ATTEMPTS] == b"1"


def test_transient_failures_retry_then_dead_letter(broker: str, topic_name: str) -> None:
    """F3: bounded retries with backoff; per-key order kept; exhausted -> DLQ."""
    produce(broker, topic_name, [(b"a", b'{"id": 1}'), (b"a", b'{"id": 2}'), (b"b", b'{"id": 3}')])
    attempts: dict[int, int] = defaultdict(int)
    order: list[int] = []

    def handle(record: Record[dict[str, int]]) -> None:
        n = record.value["id"]
        attempts[n] += 1
        assert record.attempt == attempts[n]
        if n == 1 and attempts[n] < 3:
            raise RetryLater("not yet")
        if n == 3:
            raise ConnectionError("always down")
        order.append(n)

    running = Running(
        Flow(
            topic_name,
            handle,
            group_id="g",
            brokers=broker,
            retry=FAST_RETRY,
            commit_interval_s=0.1,
        )
    )
    dead = read_all(broker, letters.dead_letter_topic(topic_name), expect=1)
    wait_for(lambda: committed(broker, "g", topic_name) == [3], what="commit past all")
    running.stop()
    assert order == [1, 2], "record 2 (same key) waited for record 1's retries"
    assert attempts == {1: 3, 2: 1, 3: 3}
    headers = dict(dead[0].headers())
    assert headers[letters.ATTEMPTS] == b"3"
    assert headers[letters.EXCEPTION_TYPE] == b"builtins.ConnectionError"


def test_reject_skips_retries(broker: str, topic_name: str, start_flow: StartFlow) -> None:
    produce(broker, topic_name, [(b"a", b'{"id": 1}')])
    calls: list[int] = []

    def handle(value: dict[str, int]) -> None:
        calls.append(value["id"])
        raise Reject("quantity must be positive")

    running = start_flow(Flow(topic_name, handle, group_id="g", brokers=broker, retry=FAST_RETRY))
    dead = read_all(broker, letters.dead_letter_topic(topic_name), expect=1)
    running.stop()
    assert calls == [1]
    assert dict(dead[0].headers())[letters.EXCEPTION_MESSAGE] == b"quantity must be positive"


def test_commit_never_passes_a_record_still_retrying(broker: str, topic_name: str) -> None:
    """F4: record 0 retries (another key) while 1..9 succeed: the commit stays at 0."""
    produce(broker, topic_name, id_records(10))
    release = threading.Event()
    done: set[int] = set()

    def handle(value: dict[str, int]) -> None:
        if value["id"] == 0 and not release.is_set():
            raise RetryLater("held", delay_s=0.05)
        done.add(value["id"])

    running = Running(
        Flow(
            topic_name,
            handle,
            group_id="g",
            brokers=broker,
            retry=RetryPolicy.delays([0.05] * 400),
            commit_interval_s=0.05,
        )
    )
    wait_for(lambda: done >= set(range(1, 10)), what="records 1..9")
    time.sleep(0.5)  # several commit intervals
    assert committed(broker, "g", topic_name) in ([-1001], [0])
    release.set()
    wait_for(lambda: committed(broker, "g", topic_name) == [10], what="commit after release")
    running.stop()


def test_dead_letter_failure_keeps_the_record_and_turns_health_red(
    broker: str, topic_name: str, start_flow: StartFlow
) -> None:
    """F5/F6: a dead-letter write that fails is retried; nothing is committed meanwhile."""
    dlq = letters.dead_letter_topic(topic_name)
    create_topic(broker, dlq, config={"max.message.bytes": "2000"})
    produce(broker, topic_name, [(b"k", b"x" * 5000)])  # not JSON, and too big for the DLQ
    flow = Flow(topic_name, lambda v: None, group_id="g", brokers=broker, commit_interval_s=0.05)
    running = start_flow(flow)
    wait_for(lambda: flow.health()["dead_letter_failing"] != [], what="red health")
    assert flow.health()["ready"] is False
    time.sleep(0.3)
    assert committed(broker, "g", topic_name) in ([-1001], [0]), "nothing past the record"
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        ResourceType,
    )

    admin = AdminClient({"bootstrap.servers": broker})
    resource = ConfigResource(
        ResourceType.TOPIC,
        dlq,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "1048588", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(10)
    dead = read_all(broker, dlq, expect=1, timeout_s=60)
    wait_for(lambda: committed(broker, "g", topic_name) == [1], what="commit after recovery")
    assert flow.health()["dead_letter_failing"] == []
    running.stop()
    assert dead[0].value() == b"x" * 5000


def test_retry_topics_deliver_late_records_without_blocking_others(
    broker: str, topic_name: str
) -> None:
    """Non-blocking retries: <topic>.retry.<n> with delays; others flow meanwhile."""
    produce(
        broker,
        topic_name,
        [(b"slow", b'{"id": 0}'), (b"bad", b'{"id": 1}')]
        + [(f"k{i}".encode(), json.dumps({"id": i}).encode()) for i in range(2, 12)],
    )
    attempts: dict[int, list[int]] = defaultdict(list)
    finished: dict[int, float] = {}

    def handle(record: Record[dict[str, int]]) -> None:
        n = record.value["id"]
        attempts[n].append(record.attempt)
        if n == 0 and record.attempt < 3:
            raise RetryLater("later")
        if n == 1:
            raise TimeoutError("never works")
        finished[n] = time.monotonic()

    policy = RetryPolicy.delays([0.3, 0.3], mode="topics")
    running = Running(
        Flow(topic_name, handle, group_id="g", brokers=broker, retry=policy, commit_interval_s=0.1)
    )
    dead = read_all(broker, letters.dead_letter_topic(topic_name), expect=1, timeout_s=30)
    wait_for(lambda: 0 in finished, what="record 0 on its third attempt")
    running.stop()
    assert attempts[0] == [1, 2, 3]
    assert attempts[1] == [1, 2, 3]
    assert all(finished[i] < finished[0] for i in range(2, 12)), "others were not held back"
    headers = dict(dead[0].headers())
    assert headers[letters.ORIGINAL_TOPIC] == topic_name.encode()
    assert headers[letters.ORIGINAL_OFFSET] == b"1"
    assert headers[letters.ATTEMPTS] == b"3"
    retried = read_all(broker, letters.retry_topic(topic_name, 2), expect=2)
    assert sorted(dict(m.headers())[letters.ATTEMPT] for m in retried) == [b"2", b"2"]


def test_failed_handler_is_read_again_after_restart(broker: str, topic_name: str) -> None:
    """C4: an unresolved record is not committed; the next run gets it again."""
    produce(broker, topic_name, [(b"k", b'{"id": 1}'), (b"k", b'{"id": 2}')])
    seen: list[int] = []

    def stuck(value: dict[str, int]) -> None:
        seen.append(value["id"])
        if value["id"] == 2:
            raise RetryLater("stuck", delay_s=60)

    first = Running(
        Flow(
            topic_name,
            stuck,
            group_id="g",
            brokers=broker,
            retry=RetryPolicy.delays([60]),
            commit_interval_s=0.05,
            shutdown_grace_s=1,
        )
    )
    wait_for(lambda: 2 in seen, what="record 2 attempted")
    wait_for(lambda: committed(broker, "g", topic_name) == [1], what="commit of record 1")
    first.stop()
    assert committed(broker, "g", topic_name) == [1]
    again: list[int] = []
    second = Running(
        Flow(
            topic_name,
            lambda v: again.append(v["id"]),
            group_id="g",
            brokers=broker,
            commit_interval_s=0.05,
        )
    )
    wait_for(lambda: again == [2], what="record 2 again")
    wait_for(lambda: committed(broker, "g", topic_name) == [2], what="final commit")
    second.stop()


def test_settings_that_break_the_commit_promise_are_refused(broker: str) -> None:
    from kafkito.flow import FlowError

    with pytest.raises(FlowError, match=r"enable\.auto\.offset\.store"):
        Flow(
            "t",
            lambda v: None,
            group_id="g",
            brokers=broker,
            settings={"enable.auto.offset.store": True},
        )


def test_flow_from_yaml_config(broker: str, topic_name: str, start_flow: StartFlow) -> None:
    from kafkito.flow import FlowError

    produce(broker, topic_name, [(b"k", b'{"id": 1}')])
    attempts: list[int] = []

    def handle(record: Record[dict[str, int]]) -> None:
        attempts.append(record.attempt)
        if record.attempt < 3:
            raise RetryLater("again")

    yaml_text = f"""
brokers: [{broker}]
topic: {topic_name}
group_id: from-yaml
commit_interval: 100ms
flow:
  retry: {{1: 50ms, 2: 50ms}}
  concurrency: 4
  ordering: partition
  max_in_flight: 200
  backpressure_wait: 250ms
"""
    flow = Flow.from_config(handle, yaml_text)
    assert (flow.retry.delays_s, flow.concurrency, flow.ordering) == ((0.05, 0.05), 4, "partition")
    assert (flow.max_in_flight, flow.backpressure_wait_s) == (200, 0.25)
    running = start_flow(flow)
    wait_for(lambda: committed(broker, "from-yaml", topic_name) == [1], what="commit")
    running.stop()
    assert attempts == [1, 2, 3]
    with pytest.raises(FlowError, match=r"flow\.retries: unknown key"):
        Flow.from_config(handle, {"topic": "t", "group_id": "g", "flow": {"retries": 3}})
