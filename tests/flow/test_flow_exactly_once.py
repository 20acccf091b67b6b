"""Flow(exactly_once=True): consume, transform, produce, with outputs, retry and dead-letter
writes and offsets in one transaction per commit, on kafkito's broker and on Apache Kafka.

The checker (eoskit) reads the outputs with read_committed and compares them with the
group's committed offsets: every input below the commit has exactly one output, and no input
above it has one. It runs after a stop in the middle of the stream and at the end.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eoskit import check_agreement, committed_offsets, id_values, read_committed, transform
from harness import Running, create_topic, produce, read_all, wait_for

from kafkito import Broker
from kafkito.flow import Flow, FlowError, Out, Record, Reject, RetryLater, RetryPolicy, letters
from kafkito.flow.exactly_once import HeldOutputs, outputs_of, transactional_id_for
from kafkito.testing.apache_kafka import ApacheKafka

PARTITIONS = 3


@pytest.fixture(params=["kafkito", "kafka"])
def eos_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "kafka":
        kafka: ApacheKafka = request.getfixturevalue("kafka_reference")
        yield kafka.bootstrap
        return
    with Broker(port=0, data_dir=str(tmp_path / "data")) as bootstrap:
        yield bootstrap


def topics(bootstrap: str) -> tuple[str, str, str]:
    suffix = uuid.uuid4().hex[:8]
    names = (f"eos-in-{suffix}", f"eos-out-{suffix}", f"eos-g-{suffix}")
    for topic in names[:2]:
        create_topic(bootstrap, topic, PARTITIONS)
    return names


def flow_of(bootstrap: str, in_topic: str, group: str, handler: Any, **kw: Any) -> Flow:
    return Flow(
        in_topic,
        handler,
        group_id=group,
        brokers=bootstrap,
        exactly_once=True,
        commit_interval_s=0.2,
        settings={"session.timeout.ms": 6000, "heartbeat.interval.ms": 500},
        **kw,
    )


def test_consume_transform_produce_exactly_once(eos_cluster: str) -> None:
    """Stopped half-way, outputs and committed offsets agree; restarted, it finishes with
    every input's output exactly once."""
    in_topic, out_topic, group = topics(eos_cluster)
    total = 2000
    produce(eos_cluster, in_topic, id_values(total, keys=50))
    handle = transform(out_topic)
    progress: list[int] = []

    def slow_start(record: Record[dict[str, Any]]) -> Out:
        progress.append(1)
        return handle(record)

    first = Running(flow_of(eos_cluster, in_topic, group, slow_start, max_in_flight=100))
    wait_for(lambda: len(progress) >= total // 4, what="a quarter handled")
    first.stop()
    half = check_agreement(eos_cluster, group, in_topic, out_topic, PARTITIONS)
    assert 0 < sum(half["committed"]) <= total

    second = Running(flow_of(eos_cluster, in_topic, group, handle))
    wait_for(
        lambda: sum(committed_offsets(eos_cluster, group, in_topic, PARTITIONS)) == total,
        timeout_s=60,
        what="every input committed",
    )
    second.stop()
    end = check_agreement(eos_cluster, group, in_topic, out_topic, PARTITIONS)
    assert end["outputs"] == total


def test_retries_and_dead_letters_go_in_the_same_transactions(eos_cluster: str) -> None:
    """Retry-topic and dead-letter writes are part of the transactions: each failing record
    reaches its retry topic and the dead-letter topic once, and the others their output once."""
    in_topic, out_topic, group = topics(eos_cluster)
    total = 300
    produce(eos_cluster, in_topic, id_values(total, keys=30))
    handle = transform(out_topic)
    tries: dict[int, int] = {}

    def flaky(record: Record[dict[str, Any]]) -> Out:
        ident = record.value["id"]
        if ident % 50 == 7:
            raise Reject("poison")  # dead-lettered at once
        if ident % 10 == 3:
            tries[ident] = tries.get(ident, 0) + 1
            if tries[ident] == 1:
                raise RetryLater("once", delay_s=0.1)  # to the retry topic, then handled
        return handle(record)

    running = Running(
        flow_of(
            eos_cluster,
            in_topic,
            group,
            flaky,
            retry=RetryPolicy.delays([0.1], mode="topics"),
        )
    )
    poison = [i for i in range(total) if i % 50 == 7]
    retried = [i for i in range(total) if i % 10 == 3]
    try:
        dead = read_all(eos_cluster, f"{in_topic}.dlq", expect=len(poison), timeout_s=60)
        wait_for(
            lambda: len(read_committed(eos_cluster, out_topic, PARTITIONS)) == total - len(poison),
            timeout_s=60,
            what="every good record's output",
        )
    finally:
        running.stop()
    ids = sorted(json.loads(m.value())["id"] for m in dead)
    assert ids == poison
    outputs = read_committed(eos_cluster, out_topic, PARTITIONS)
    out_ids = sorted(int(v.split(":")[2]) for v in outputs)
    assert out_ids == sorted(set(range(total)) - set(poison))
    retry_topic = letters.retry_topic(in_topic, 2)
    retry_records = read_all(eos_cluster, retry_topic, expect=len(retried))
    assert sorted(json.loads(m.value())["id"] for m in retry_records) == retried
    assert sum(committed_offsets(eos_cluster, group, in_topic, PARTITIONS)) == total


def test_a_failed_transaction_is_aborted_and_the_records_handled_again(broker: str) -> None:
    """An output the broker refuses (larger than its topic allows) fails the transaction: it
    is aborted, the partitions go back to the last commit and the records are handled again.
    Once the handler writes smaller outputs, every input has its output exactly once, and
    nothing of the aborted attempts is visible."""
    in_topic, out_topic, group = topics(broker)
    small = f"{out_topic}-small"
    create_topic(broker, small, PARTITIONS, config={"max.message.bytes": "2000"})
    total = 200
    produce(broker, in_topic, id_values(total, keys=20))
    handle = transform(out_topic)
    calls: list[int] = []
    oversize = [True]

    def split(record: Record[dict[str, Any]]) -> Out:
        calls.append(record.value["id"])
        out = handle(record)
        if record.value["id"] % 2 == 0:
            return out
        padding = "x" * 5000 if oversize[0] else ""
        return Out(small, f"{out.value}:{padding}", key=out.key)

    running = Running(flow_of(broker, in_topic, group, split))
    try:
        wait_for(lambda: len(calls) > total * 2, what="records handled again after aborts")
        assert running.flow.health()["commit_error"] is not None
        assert committed_offsets(broker, group, in_topic, PARTITIONS) == [0] * PARTITIONS
        assert read_committed(broker, out_topic, PARTITIONS) == []
        oversize[0] = False
        wait_for(
            lambda: sum(committed_offsets(broker, group, in_topic, PARTITIONS)) == total,
            timeout_s=60,
            what="every input committed once the outputs fit",
        )
        assert running.flow.health()["commit_error"] is None
    finally:
        running.stop()
    evens = read_committed(broker, out_topic, PARTITIONS)
    odds = read_committed(broker, small, PARTITIONS)
    assert sorted(int(v.split(":")[2]) for v in evens) == list(range(0, total, 2))
    assert sorted(int(v.split(":")[2]) for v in odds) == list(range(1, total, 2))


def test_a_second_instance_with_the_same_transactional_id_fences_the_first(
    broker: str,
) -> None:
    in_topic, out_topic, group = topics(broker)
    produce(broker, in_topic, id_values(50, keys=5))
    handle = transform(out_topic)
    first = Running(flow_of(broker, in_topic, group, handle, transactional_id="same"))
    wait_for(
        lambda: sum(committed_offsets(broker, group, in_topic, PARTITIONS)) == 50,
        what="the first instance's commits",
    )
    second = Running(flow_of(broker, in_topic, group, handle, transactional_id="same"))
    try:
        # The second fences the first in init_transactions, before it joins the group: once it
        # holds partitions, the fence is up (records produced earlier could all be handled and
        # committed by the first, which would then idle, never meeting its fence).
        wait_for(
            lambda: second.flow.health()["assigned_partitions"] > 0,
            timeout_s=60,
            what="the second instance in the group",
        )
        # Keys on every partition: the first instance is fenced when it next writes, so
        # whatever partition it keeps after the rebalance must get records (5 keys could all
        # hash to the second's partitions, and the first would idle, never fenced).
        produce(broker, in_topic, id_values(60, keys=30))
        wait_for(lambda: not first.thread.is_alive(), timeout_s=60, what="the first to stop")
        assert isinstance(first.error, FlowError)
        assert "fenced" in str(first.error)
        wait_for(
            lambda: sum(committed_offsets(broker, group, in_topic, PARTITIONS)) == 110,
            timeout_s=60,
            what="the second instance to take over",
        )
    finally:
        second.stop()
    check_agreement(broker, group, in_topic, out_topic, PARTITIONS)


def test_options_and_config() -> None:
    with pytest.raises(FlowError, match="batch"):
        Flow("t", lambda v: None, group_id="g", exactly_once=True, batch_size=10)
    with pytest.raises(FlowError, match="read_committed"):
        Flow(
            "t",
            lambda v: None,
            group_id="g",
            exactly_once=True,
            settings={"isolation.level": "read_uncommitted"},
        )
    flow = Flow.from_config(
        lambda v: None,
        "brokers: [127.0.0.1:1]\ntopic: t\ngroup_id: g\nflow:\n  exactly_once: true\n",
    )
    assert flow.exactly_once
    assert flow.transactional_id == transactional_id_for("g", flow.name, {})
    assert Flow("t", lambda v: None, group_id="g").transactional_id is None
    pinned = transactional_id_for("g", "n", {"group.instance.id": "node-7"})
    assert pinned == "kafkito-flow.g.node-7"


def test_outputs_of_and_held_outputs() -> None:
    assert outputs_of(None) is None
    assert outputs_of(True) is None
    assert outputs_of([1, 2]) is None
    assert outputs_of(Out("t", "v", key="k", headers={"h": "x"})) == [
        ("t", b"k", b"v", [("h", b"x")])
    ]
    assert outputs_of((Out("a", b"1"), Out("b", None))) == [
        ("a", None, b"1", None),
        ("b", None, None, None),
    ]
    with pytest.raises(TypeError, match="only Out"):
        outputs_of([Out("a", b"1"), "b"])
    with pytest.raises(TypeError, match="value"):
        outputs_of(Out("a", 3))  # type: ignore[arg-type]
    held = HeldOutputs()
    held.add(5, [("t", None, b"5", None)])
    held.add(2, [("t", None, b"2a", None), ("t", None, b"2b", None)])
    held.add(9, [("t", None, b"9", None)])
    assert [r[2] for r in held.take_below(6)] == [b"2a", b"2b", b"5"]
    assert held.count == 1
    assert held.take_below(6) == []
    assert [r[2] for r in held.take_below(10)] == [b"9"]
    assert held.count == 0


def test_partitions_move_between_instances_exactly_once(eos_cluster: str) -> None:
    """A second instance joins mid-stream and the first leaves later: each rebalance commits
    what is resolved in a transaction before the partitions go (KIP-447 group metadata), and
    the outputs still match the committed offsets exactly once."""
    in_topic, out_topic, group = topics(eos_cluster)
    total = 3000
    produce(eos_cluster, in_topic, id_values(total, keys=60))
    handle = transform(out_topic)
    handled: list[int] = []
    rebalances: list[str] = []

    def slow(record: Record[dict[str, Any]]) -> Out:
        time.sleep(0.001)
        handled.append(1)
        return handle(record)

    def flow_named(name: str) -> Flow:
        return flow_of(
            eos_cluster,
            in_topic,
            group,
            slow,
            name=name,
            concurrency=2,
            on_rebalance=lambda kind, tps: rebalances.append(f"{name} {kind}"),
        )

    first = Running(flow_named("eos-a"))
    wait_for(lambda: len(handled) > total // 5, what="the first instance's progress")
    second = Running(flow_named("eos-b"))
    try:
        wait_for(lambda: "eos-b assigned" in rebalances, timeout_s=60, what="b's assignment")
        wait_for(lambda: len(handled) > total // 2, timeout_s=60, what="both running")
        first.stop()
        wait_for(
            lambda: sum(committed_offsets(eos_cluster, group, in_topic, PARTITIONS)) == total,
            timeout_s=90,
            what="every input committed",
        )
    finally:
        second.stop()
    assert "eos-a revoked" in rebalances
    figures = check_agreement(eos_cluster, group, in_topic, out_topic, PARTITIONS)
    assert figures["outputs"] == total
