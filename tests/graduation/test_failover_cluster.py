"""Broker failover on a 3-node Apache Kafka (RF 3, min.insync.replicas=2): SIGKILL the leader
of the test topic under a running Writer (acks=all, idempotent) and under a running flow.

What must hold: leadership moves; nothing acknowledged is lost; the idempotent writer leaves no
duplicates; the flow keeps per-key order; the health a user looks at (HealthChecker, and
`Flow.health()`) shows the lost broker while it is down and clears once it is back.

The tests kill a node of the session's shared cluster and start it again in the fixture's
teardown, whatever happens, and wait until the cluster lists all three nodes again, so the
tests that follow find the cluster whole.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from gradkit import (
    Running,
    Seen,
    create_topic,
    fully_committed,
    leaders,
    read_all,
    wait_for,
)

from kafkito.client import DeliveryError, HealthChecker, Writer
from kafkito.client import Record as Out
from kafkito.flow import Flow, Record
from kafkito.testing.apache_kafka import ApacheKafka

StartFlow = Callable[[Flow], Running]


class Faults:
    """Kills nodes of a cluster; `heal()` starts every killed one again."""

    def __init__(self, kafka: ApacheKafka) -> None:
        self.kafka = kafka
        self.killed: list[int] = []

    def kill(self, node_id: int) -> None:
        self.killed.append(node_id)
        self.kafka.kill(node_id)

    def heal(self) -> None:
        for node_id in self.killed:
            self.kafka.start_broker(node_id)  # a no-op when the test started it already
        wanted = {node.node_id for node in self.kafka.nodes}
        wait_for(lambda: self.kafka.listed_brokers() == wanted, what="every node listed again")


@pytest.fixture
def faults(kafka: ApacheKafka) -> Iterator[Faults]:
    faults = Faults(kafka)
    try:
        yield faults
    finally:
        faults.heal()


class Feeder:
    """A Writer (acks=all, idempotent: the defaults) writing numbered, keyed records in
    batches on a thread until stopped; remembers which ones the brokers acknowledged."""

    def __init__(self, writer: Writer, keys: int, batch: int = 50) -> None:
        self.writer = writer
        self.keys = keys
        self.batch = batch
        self.acked: list[int] = []
        self.failures: list[str] = []
        self.next_id = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def record(self, n: int) -> Out:
        key = f"k{n % self.keys}"
        return Out(f'{{"id": {n}, "seq": {n // self.keys}}}'.encode(), key=key)

    def _run(self) -> None:
        while not self._stop.is_set():
            ids = list(range(self.next_id, self.next_id + self.batch))
            self.next_id += self.batch
            try:
                self.writer.write_many([self.record(n) for n in ids])
            except DeliveryError as exc:  # not acknowledged: may or may not be there
                self.failures.append(str(exc))
                continue
            with self._lock:
                self.acked += ids

    def count(self) -> int:
        with self._lock:
            return len(self.acked)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(120)
        assert not self.thread.is_alive(), "the writer did not finish its last batch"


def leader_of(kafka: ApacheKafka, topic: str, partition: int = 0) -> int:
    leader = leaders(kafka.bootstrap, topic)[partition]
    assert leader > 0, f"{topic}[{partition}] has no leader"
    return leader


def test_writer_loses_nothing_and_duplicates_nothing_when_the_leader_is_killed(
    kafka: ApacheKafka, faults: Faults, topic: str
) -> None:
    create_topic(kafka.bootstrap, topic, partitions=1)
    with Writer(topic, brokers=kafka.bootstrap) as writer:
        checker = HealthChecker("writer", writer=writer)
        assert checker.check()["brokers_down"] == []
        feeder = Feeder(writer, keys=1)
        try:
            wait_for(lambda: feeder.count() >= 500, what="500 records acknowledged")
            victim = leader_of(kafka, topic)
            faults.kill(victim)
            at_kill = feeder.count()
            wait_for(
                lambda: leaders(kafka.bootstrap, topic).get(0, -1) not in (victim, -1),
                what="leadership to move off the killed node",
            )
            wait_for(
                lambda: checker.check()["brokers_down"] == [victim],
                what=f"the health check to see broker {victim} down",
            )
            degraded = checker.health()
            wait_for(lambda: feeder.count() >= at_kill + 500, what="writes on the new leader")
            kafka.start_broker(victim)
            wait_for(
                lambda: checker.check()["degraded"] == [],
                what="the health check to clear once the broker is back and in sync",
            )
            wait_for(lambda: feeder.count() >= at_kill + 1000, what="writes after the restart")
        finally:
            feeder.stop()
    assert feeder.failures == [], "a write raised although the cluster kept a quorum"
    assert degraded["status"] == "UP", degraded  # one node of three down: degraded, not down
    data = degraded["details"]["writer"]["data"]
    assert data["brokers"] == 2 and f"broker {victim} is down" in data["degraded"], data

    acked = set(feeder.acked)
    messages = read_all(kafka.bootstrap, topic, expect=len(acked))
    stored = [json.loads(m.value())["id"] for m in messages]
    assert acked - set(stored) == set(), "acknowledged records lost"
    duplicates = len(stored) - len(set(stored))
    assert duplicates == 0, f"{duplicates} duplicates from the idempotent writer"
    assert stored == sorted(stored), "records of one partition out of write order"


def test_flow_keeps_order_and_shows_the_lost_broker_when_the_leader_is_killed(
    kafka: ApacheKafka, faults: Faults, topic: str, group: str, start_flow: StartFlow
) -> None:
    create_topic(kafka.bootstrap, topic, partitions=3)
    seen = Seen()

    def handle(record: Record[dict[str, int]]) -> None:
        seen.add((record.key or b"").decode(), record.value["seq"])

    flow = Flow(topic, handle, group_id=group, brokers=kafka.bootstrap, commit_interval_s=0.2)
    running = start_flow(flow)
    snapshots: list[dict[str, Any]] = []
    with Writer(topic, brokers=kafka.bootstrap) as writer:
        feeder = Feeder(writer, keys=12, batch=60)
        try:
            wait_for(lambda: len(seen.distinct()) >= 300, what="300 records handled")
            assert flow.health()["degraded"] == [], flow.health()
            victim = leader_of(kafka, topic)
            faults.kill(victim)
            wait_for(
                lambda: all(
                    leader not in (victim, -1)
                    for leader in leaders(kafka.bootstrap, topic).values()
                ),
                what="leadership of every partition to move off the killed node",
            )
            wait_for(
                lambda: flow.health()["brokers_down"] == [victim],
                what=f"the flow's health to show broker {victim} down",
            )
            snapshots.append(flow.health())
            at_kill = len(seen.distinct())
            wait_for(lambda: len(seen.distinct()) >= at_kill + 300, what="handling after the kill")
            kafka.start_broker(victim)
            wait_for(
                lambda: flow.health()["degraded"] == [],
                what="the flow's health to clear once the broker is back",
            )
            snapshots.append(flow.health())
        finally:
            feeder.stop()
    acked = set(feeder.acked)
    wait_for(lambda: set(_ids(seen, feeder)) >= acked, what="every acknowledged record handled")
    wait_for(lambda: fully_committed(kafka.bootstrap, group, topic, 3), what="final commits")
    running.stop()

    down, back = snapshots
    redelivered = len(seen) - len(seen.distinct())  # at-least-once: allowed, reported
    print(f"flow health with broker {victim} down: {down}; {redelivered} handled twice")
    assert feeder.failures == [], "a write raised although the cluster kept a quorum"
    assert down["live"] and f"broker {victim} is down" in down["degraded"], down
    assert back["brokers_down"] == [] and back["live"] and back["ready"], back
    assert seen.order_violations() == []
    stored = read_all(kafka.bootstrap, topic, expect=len(acked))
    values = [m.value() for m in stored]
    assert len(values) == len(set(values)), "duplicates from the idempotent writer"


def _ids(seen: Seen, feeder: Feeder) -> list[int]:
    """The ids handled: key k<i % keys> and seq i // keys give back i."""
    return [int(k[1:]) + seq * feeder.keys for k, seq in seen.distinct()]
