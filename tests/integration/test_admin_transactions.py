"""Admin.list_transactions / describe_transactions / describe_producers, on kafkito's broker and
on Apache Kafka, over transactions made by real transactional producers (open, committed,
aborted: kafkito.testing.transactions). The same assertions hold on both brokers; the last
test compares the two views directly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kafkito import Broker
from kafkito.aio import Admin as AioAdmin
from kafkito.client import (
    Admin,
    ConfigError,
    RawProducer,
    UnknownTopicError,
    UnknownTransactionError,
)
from kafkito.client.txn_admin import TransactionListing
from kafkito.testing.apache_kafka import ApacheKafka
from kafkito.testing.transactions import OPEN_TIMEOUT_MS, TxnScene, three_transactions


@pytest.fixture(params=["kafkito", "kafka"])
def bootstrap(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "kafka":
        reference: ApacheKafka = request.getfixturevalue("kafka_reference")
        yield reference.bootstrap
        return
    with Broker(port=0, data_dir=str(tmp_path / "data")) as address:
        yield address


def settled(admin: Admin, scene: TxnScene) -> dict[str, TransactionListing]:
    """Our three transactions once none is preparing (Kafka answers EndTxn before its
    markers are written, so CompleteCommit shows a moment later)."""
    deadline = time.monotonic() + 30
    while True:
        rows = {
            t.transactional_id: t
            for t in admin.list_transactions()
            if t.transactional_id in scene.ids
        }
        if not any(t.state.startswith("Prepare") for t in rows.values()):
            return rows
        assert time.monotonic() < deadline, f"still preparing after 30 s: {rows}"
        time.sleep(0.05)


def test_list_describe_and_producers(bootstrap: str) -> None:
    started_ms = int(time.time() * 1000)
    with three_transactions(bootstrap) as scene, Admin(brokers=bootstrap) as admin:
        rows = settled(admin, scene)
        assert {k: v.state for k, v in rows.items()} == {
            scene.open_id: "Ongoing",
            scene.committed_id: "CompleteCommit",
            scene.aborted_id: "CompleteAbort",
        }
        pids = {k: v.producer_id for k, v in rows.items()}
        assert len(set(pids.values())) == 3 and all(p >= 0 for p in pids.values())
        assert all(v.coordinator >= 0 for v in rows.values())

        ongoing = [t.transactional_id for t in admin.list_transactions(states=["Ongoing"])]
        assert scene.open_id in ongoing
        assert scene.committed_id not in ongoing and scene.aborted_id not in ongoing
        by_pid = admin.list_transactions(producer_ids=[pids[scene.committed_id]])
        assert [t.transactional_id for t in by_pid] == [scene.committed_id]
        assert (
            admin.list_transactions(states=["CompleteAbort"], producer_ids=[pids[scene.open_id]])
            == []
        )

        opened, committed, aborted = admin.describe_transactions(*scene.ids)
        assert opened.transactional_id == scene.open_id
        assert (opened.state, opened.is_open, opened.timeout_ms) == (
            "Ongoing",
            True,
            OPEN_TIMEOUT_MS,
        )
        assert opened.partitions == ((scene.topic, 0),)
        assert opened.producer_id == pids[scene.open_id] and opened.producer_epoch >= 0
        assert opened.start_ms is not None
        assert started_ms - 1000 <= opened.start_ms <= int(time.time() * 1000) + 1000
        age = opened.age_ms()
        assert age is not None and 0 <= age < 120_000
        left = opened.expires_in_ms()
        assert left is not None and 0 < left <= OPEN_TIMEOUT_MS
        for done, state in ((committed, "CompleteCommit"), (aborted, "CompleteAbort")):
            assert (done.state, done.is_open, done.partitions) == (state, False, ())
            # Kafka keeps the last transaction's start, kafkito reports none
            assert done.start_ms is None or started_ms - 1000 <= done.start_ms
            assert done.age_ms() is None
        # the coordinator that describes is the one that lists
        assert opened.coordinator == rows[scene.open_id].coordinator

        producers = admin.describe_producers(scene.topic)
        where = {(p.partition, p.producer_id): p for p in producers}
        assert set(where) == {
            (0, pids[scene.open_id]),
            (0, pids[scene.committed_id]),
            (1, pids[scene.committed_id]),
            (1, pids[scene.aborted_id]),
        }
        open_p0 = where[(0, pids[scene.open_id])]
        assert (open_p0.topic, open_p0.txn_start_offset, open_p0.last_sequence) == (
            scene.topic,
            0,
            0,
        )
        assert open_p0.coordinator_epoch == -1  # no marker of its own yet
        for key in (
            (0, pids[scene.committed_id]),
            (1, pids[scene.committed_id]),
            (1, pids[scene.aborted_id]),
        ):
            assert where[key].txn_start_offset is None, where[key]
            assert where[key].coordinator_epoch >= 0, where[key]
            assert (
                where[key].last_timestamp_ms is not None
                and where[key].last_timestamp_ms >= started_ms - 1000
            )
        only_p1 = admin.describe_producers(scene.topic, [1])
        assert {p.partition for p in only_p1} == {1}

        # the open one commits: it leaves the open list and the partition's open offset
        scene.producers["open"].commit_transaction(30)
        rows = settled(admin, scene)
        assert rows[scene.open_id].state == "CompleteCommit"
        (described,) = admin.describe_transactions(scene.open_id)
        assert (described.is_open, described.age_ms(), described.partitions) == (False, None, ())
        after = {
            (p.partition, p.producer_id): p for p in admin.describe_producers(scene.topic, [0])
        }
        assert after[(0, pids[scene.open_id])].txn_start_offset is None


def test_bad_input_gets_clear_errors(bootstrap: str) -> None:
    with Admin(brokers=bootstrap) as admin:
        with pytest.raises(
            UnknownTransactionError, match="no transaction coordinator knows"
        ) as caught:
            admin.describe_transactions("never-used-id")
        assert caught.value.transactional_id == "never-used-id"
        with pytest.raises(ConfigError, match="unknown transaction state 'Open'"):
            admin.list_transactions(states=["Open"])
        with pytest.raises(ConfigError, match="cannot be empty"):
            admin.describe_transactions("")
        with pytest.raises(UnknownTopicError):
            admin.describe_producers("no-such-topic-here")
        admin.create_topic(name := f"one-{time.monotonic_ns()}", partitions=1)
        with pytest.raises(UnknownTopicError, match="no partition 3"):
            admin.describe_producers(name, [3])
        assert admin.describe_producers(name) == []
        assert admin.describe_transactions() == []


def test_aio_admin_mirrors(bootstrap: str) -> None:
    with three_transactions(bootstrap) as scene:

        async def look() -> tuple[Any, Any, Any]:
            async with AioAdmin(brokers=bootstrap) as admin:
                listed = await admin.list_transactions(states=["Ongoing"])
                described = await admin.describe_transactions(scene.open_id)
                producers = await admin.describe_producers(scene.topic, [0])
                return listed, described, producers

        listed, described, producers = asyncio.run(look())
        assert scene.open_id in {t.transactional_id for t in listed}
        assert described[0].partitions == ((scene.topic, 0),)
        assert any(p.txn_start_offset == 0 for p in producers)


def _view(bootstrap: str) -> dict[str, Any]:
    """What the admin API shows of the scene, with ids and times replaced by roles."""
    with three_transactions(bootstrap) as scene, Admin(brokers=bootstrap) as admin:
        rows = settled(admin, scene)
        role = {v.producer_id: k.split("-")[0] for k, v in rows.items()}
        described = admin.describe_transactions(*scene.ids)
        return {
            "listed": sorted((k.split("-")[0], v.state) for k, v in rows.items()),
            "described": [
                (d.state, d.timeout_ms, d.age_ms() is not None, [p for _, p in d.partitions])
                for d in described
            ],
            "producers": sorted(
                (
                    p.partition,
                    role[p.producer_id],
                    p.last_sequence,
                    p.txn_start_offset,
                    p.coordinator_epoch >= 0,
                )
                for p in admin.describe_producers(scene.topic)
            ),
        }


def test_same_view_as_apache_kafka(tmp_path: Path, kafka_reference: ApacheKafka) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "data")) as ours:
        mine = _view(ours)
    theirs = _view(kafka_reference.bootstrap)
    assert mine == theirs


def test_routing_on_a_three_node_cluster(apache_kafka: ApacheKafka) -> None:
    """Several coordinators and leaders: ListTransactions is merged from every broker,
    DescribeTransactions goes to each id's coordinator, DescribeProducers to each leader."""
    bootstrap = apache_kafka.bootstrap
    with Admin(brokers=bootstrap) as admin:
        topic = f"routed-{time.monotonic_ns()}"
        admin.create_topic(topic, partitions=6, replication_factor=3)
        # create_topic waits until one broker lists the topic; the one asked next may learn of
        # it a moment later (three nodes, each with its own metadata image).
        deadline = time.monotonic() + 30
        while True:
            try:
                described = admin.describe_topic(topic)
                break
            except UnknownTopicError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        leaders = {p.partition: p.leader for p in described.partitions}
        assert len(set(leaders.values())) > 1, leaders  # spread over the nodes
    producers = []
    ids = [f"routed-{i}-{time.monotonic_ns()}" for i in range(6)]
    try:
        for partition, tid in enumerate(ids):
            producer = RawProducer(brokers=bootstrap, settings={"transactional.id": tid})
            producers.append(producer)
            producer.init_transactions(60)
            producer.begin_transaction()
            producer.produce(topic, b"v", partition=partition)
            assert producer.flush(30) == 0
        with Admin(brokers=bootstrap) as admin:
            listed = {t.transactional_id: t for t in admin.list_transactions(states=["Ongoing"])}
            assert set(ids) <= set(listed)
            coordinators = {listed[i].coordinator for i in ids}
            described = admin.describe_transactions(*ids)
            assert [d.transactional_id for d in described] == ids
            assert [d.coordinator for d in described] == [listed[i].coordinator for i in ids]
            assert [d.partitions for d in described] == [((topic, p),) for p in range(6)]
            states = admin.describe_producers(topic)
            assert sorted((s.partition, s.txn_start_offset) for s in states) == [
                (p, 0) for p in range(6)
            ]
            nodes = {b.node_id for b in admin.describe_cluster().brokers}
            assert coordinators <= nodes and len(nodes) == 3
    finally:
        for producer in producers:
            with contextlib.suppress(Exception):
                producer.abort_transaction(30)
            producer.close(10)
