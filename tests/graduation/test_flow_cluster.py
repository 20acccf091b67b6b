"""The consume flow on a 3-node Apache Kafka: per-key order, retry topics, dead letters,
commit after success, and a rebalance between two members of one group."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from gradkit import (
    Running,
    Seen,
    create_topic,
    fully_committed,
    read_all,
    wait_for,
)

from kafkito.client import Record as Out
from kafkito.client import Writer
from kafkito.flow import Flow, Record, Reject, RetryLater, RetryPolicy, letters
from kafkito.testing.apache_kafka import ApacheKafka

StartFlow = Callable[[Flow], Running]


def keyed(start: int, count: int, keys: int, next_seq: dict[str, int]) -> list[Out]:
    """Records {"id", "seq"} keyed k0..k<keys-1>; seq counts per key across calls."""
    out = []
    for i in range(start, start + count):
        key = f"k{i % keys}"
        seq = next_seq.get(key, 0)
        next_seq[key] = seq + 1
        out.append(Out(json.dumps({"id": i, "seq": seq}).encode(), key=key))
    return out


def test_flow_keeps_key_order_retries_through_topics_and_dead_letters(
    kafka: ApacheKafka, topic: str, group: str, start_flow: StartFlow
) -> None:
    create_topic(kafka.bootstrap, topic, partitions=3)
    poison = b"\xff{not json"
    with Writer(topic, brokers=kafka.bootstrap) as writer:
        writer.write_many(keyed(0, 300, 12, {}))
        source = writer.write(poison, headers=[("trace", b"\x00\x01")], key=b"poison")
        writer.write(json.dumps({"id": 1005, "seq": 0}), key="late")  # ok on its 3rd attempt
        writer.write(json.dumps({"id": 1007, "seq": 0}), key="rejected")
        writer.write(json.dumps({"id": 1011, "seq": 0}), key="hopeless")  # never works
    seen = Seen()
    attempts: dict[int, list[int]] = {}
    lock = threading.Lock()

    def handle(record: Record[dict[str, int]]) -> None:
        n = record.value["id"]
        with lock:
            attempts.setdefault(n, []).append(record.attempt)
        if n == 1005 and record.attempt < 3:
            raise RetryLater("not yet")
        if n == 1007:
            raise Reject("bad order")
        if n == 1011:
            raise TimeoutError("the service never answers")
        seen.add((record.key or b"").decode(), record.value["seq"])

    policy = RetryPolicy.delays([0.2, 0.2], mode="topics")
    flow = Flow(
        topic, handle, group_id=group, brokers=kafka.bootstrap, retry=policy, commit_interval_s=0.2
    )
    running = start_flow(flow)
    dead = read_all(kafka.bootstrap, letters.dead_letter_topic(topic), expect=3)
    wait_for(lambda: len(seen) >= 301, what="every good record handled")
    wait_for(
        lambda: fully_committed(kafka.bootstrap, group, topic, 3),
        what="commits up to the end of every partition",
    )
    health = flow.health()
    running.stop()

    assert seen.order_violations() == []
    assert {(k, s) for k, s in seen.distinct() if k.startswith("k")} == {
        (f"k{i % 12}", i // 12) for i in range(300)
    }
    assert attempts[1005] == [1, 2, 3] and attempts[1007] == [1] and attempts[1011] == [1, 2, 3]
    by_key = {m.key(): m for m in dead}
    assert sorted(by_key) == [b"hopeless", b"poison", b"rejected"], [m.key() for m in dead]
    letter = by_key[b"poison"]
    assert letter.value() == poison  # byte-identical, never re-encoded
    headers = letter.headers()
    assert headers[0] == ("trace", b"\x00\x01")  # the user's headers first, untouched
    found = dict(headers)
    assert found[letters.ORIGINAL_TOPIC] == topic.encode()
    assert found[letters.ORIGINAL_PARTITION] == str(source.partition).encode()
    assert found[letters.ORIGINAL_OFFSET] == str(source.offset).encode()
    assert found[letters.GROUP] == group.encode()
    assert dict(by_key[b"rejected"].headers())[letters.ATTEMPTS] == b"1"
    hopeless = dict(by_key[b"hopeless"].headers())
    assert hopeless[letters.ATTEMPTS] == b"3"
    assert hopeless[letters.EXCEPTION_TYPE] == b"builtins.TimeoutError"
    assert health["live"] and health["ready"] and health["degraded"] == [], health


def test_rebalance_between_two_flow_members_loses_nothing_and_keeps_key_order(
    kafka: ApacheKafka, topic: str, group: str, start_flow: StartFlow
) -> None:
    create_topic(kafka.bootstrap, topic, partitions=4)
    seen = Seen()
    by_member: dict[str, int] = {"a": 0, "b": 0}
    lock = threading.Lock()

    def handler(member: str) -> Callable[[Record[dict[str, int]]], None]:
        def handle(record: Record[dict[str, int]]) -> None:
            seen.add((record.key or b"").decode(), record.value["seq"])
            with lock:
                by_member[member] += 1

        return handle

    def member(name: str) -> Flow:
        # as a user configures it: the client library's YAML keys, a `flow:` section
        brokers = "".join(f"\n  - {address}" for address in kafka.bootstrap.split(","))
        config = (
            f"brokers:{brokers}\ntopic: {topic}\ngroup_id: {group}\ncommit_interval: 200ms\n"
            f"flow:\n  name: member-{name}\n  concurrency: 8\n"
        )
        return Flow.from_config(handler(name), config)

    next_seq: dict[str, int] = {}
    with Writer(topic, brokers=kafka.bootstrap) as writer:
        writer.write_many(keyed(0, 400, 16, next_seq))
        first = member("a")
        a = start_flow(first)
        wait_for(lambda: len(seen.distinct()) >= 400, what="member a's first records")
        second = member("b")
        b = start_flow(second)
        wait_for(
            lambda: (
                second.health()["assigned_partitions"] > 0
                and first.health()["assigned_partitions"] + second.health()["assigned_partitions"]
                == 4
            ),
            what="the partitions shared between both members",
        )
        writer.write_many(keyed(400, 400, 16, next_seq))
        wait_for(lambda: len(seen.distinct()) >= 800, what="800 records handled")
        a.stop()  # leaves the group: b takes every partition over
        wait_for(lambda: second.health()["assigned_partitions"] == 4, what="b owns all")
        writer.write_many(keyed(800, 200, 16, next_seq))
    wait_for(lambda: len(seen.distinct()) >= 1000, what="1000 records handled")
    wait_for(
        lambda: fully_committed(kafka.bootstrap, group, topic, 4),
        what="commits up to the end of every partition",
    )
    b.stop()
    assert seen.distinct() == {(f"k{i % 16}", i // 16) for i in range(1000)}
    assert seen.order_violations() == []
    assert by_member["a"] > 0 and by_member["b"] > 0, by_member


def test_a_failing_dead_letter_write_shows_in_health_and_clears_when_it_succeeds(
    kafka: ApacheKafka, topic: str, group: str, start_flow: StartFlow
) -> None:
    """The dead-letter topic refuses the record (too large for its max.message.bytes): the
    record stays uncommitted, health names the failing write; once the topic takes it, the
    letter is written, health clears and the commit passes it."""
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewTopic,
    )

    dlq = letters.dead_letter_topic(topic)
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    create_topic(kafka.bootstrap, topic)
    small = NewTopic(dlq, 1, config={"max.message.bytes": "1000"})
    admin.create_topics([small], operation_timeout=30)[dlq].result(60)
    big = b"x" * 5000  # not JSON: dead-lettered at once, and five times what the DLQ takes
    with Writer(topic, brokers=kafka.bootstrap) as writer:
        writer.write(big, key=b"big")
        writer.write(b'{"id": 1, "seq": 0}', key=b"after")
    handled: list[int] = []
    flow = Flow(topic, lambda v: handled.append(v["id"]), group_id=group, brokers=kafka.bootstrap)
    running = start_flow(flow)
    wait_for(lambda: flow.health()["write_error"] is not None, what="the failing write in health")
    failing = flow.health()
    assert failing["ready"] is False and failing["dead_letter_failing"] == [f"{topic}-0"], failing
    assert any("dead-letter writes failing" in r for r in failing["degraded"]), failing
    resource = ConfigResource(
        "topic",
        dlq,
        incremental_configs=[
            ConfigEntry("max.message.bytes", "100000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    admin.incremental_alter_configs([resource])[resource].result(60)
    (letter,) = read_all(kafka.bootstrap, dlq, expect=1)
    assert letter.value() == big and letter.key() == b"big"
    wait_for(lambda: fully_committed(kafka.bootstrap, group, topic, 1), what="commit past it")
    wait_for(lambda: flow.health()["degraded"] == [], what="health to clear")
    running.stop()
    assert handled == [1]
    assert (
        "MSG_SIZE_TOO_LARGE" in str(failing["write_error"])
        or "too large" in str(failing["write_error"]).lower()
    ), failing["write_error"]
