"""Consumer groups with every client: confluent-kafka, aiokafka, kafka-python and kcat (-G).

Each member is a child process (compat/test_groups_worker.py) so that it can leave cleanly
(SIGTERM), crash (SIGKILL) or stall (SIGSTOP). The python members commit every message
synchronously and report which commits the broker acknowledged; that is what lets the tests
tell "re-read inside the in-flight window" (allowed after a crash) from "re-read something
already committed" (a bug), and check that nothing is ever skipped.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from compat.test_groups_worker import (
    SESSION_MS,
    Member,
    create_topic,
    describe_group,
    kcat_member,
    produce,
    python_member,
    stable_with,
    unstick_kafka_python,
    wait_for,
)
from kafkito import Broker

PARTITIONS = 6
LIBS = ["ck", "aio", "kp"]
# a session timeout, the rebalance that follows, and a 2-core machine shared with others
MOVE_S = SESSION_MS / 1000 + 15


@pytest.fixture
def group_broker(tmp_path: Path) -> Iterator[str]:
    """The embedded broker with a short initial rebalance delay (tests stay fast)."""
    with Broker(
        port=0, data_dir=str(tmp_path / "data"), group_initial_rebalance_delay_ms=100
    ) as bootstrap:
        yield bootstrap


def member(lib: str, bootstrap: str, group: str, topic: str, **kw: str) -> Member:
    if lib == "kcat":
        return kcat_member(bootstrap, group, topic)
    return python_member(lib, bootstrap, group, topic, **kw)


def seen_by_all(members: list[Member]) -> Counter[str]:
    return Counter(v for m in members for v in m.values())


@pytest.mark.parametrize("lib", [*LIBS, "kcat"])
def test_three_members_read_each_message_exactly_once(group_broker: str, lib: str) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, PARTITIONS)
    members = [member(lib, group_broker, group, topic) for _ in range(3)]
    try:
        wait_for(lambda: stable_with(group_broker, group, 3, PARTITIONS), 60, "3 members, stable")
        values = [f"v{i}" for i in range(300)]
        produce(group_broker, topic, values, PARTITIONS)
        wait_for(lambda: sum(seen_by_all(members).values()) >= 300, 60, "300 messages read")
    finally:
        for m in members:
            m.terminate()
    seen = seen_by_all(members)
    assert set(seen) == set(values)
    assert max(seen.values()) == 1, [v for v, n in seen.items() if n > 1][:10]
    per_member = [len(m.values()) for m in members]
    assert all(n > 0 for n in per_member), per_member  # partitions spread over all members


@pytest.mark.parametrize("assignor", ["cooperative-sticky", "roundrobin"])
def test_client_side_assignors_with_confluent(group_broker: str, assignor: str) -> None:
    """The leader assigns from every member's metadata; cooperative-sticky rebalances
    incrementally (members keep their partitions across joins and leaves)."""
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, PARTITIONS)
    members = [python_member("ck", group_broker, group, topic, assignor=assignor)]
    values: list[str] = []
    try:
        wait_for(lambda: stable_with(group_broker, group, 1, PARTITIONS), 60, "first member")
        for round_ in range(2):
            members.append(python_member("ck", group_broker, group, topic, assignor=assignor))
            n = len(members)
            wait_for(lambda n=n: stable_with(group_broker, group, n, PARTITIONS), MOVE_S, "join")
            new = [f"{round_}-{i}" for i in range(60)]
            values.extend(new)
            produce(group_broker, topic, new, PARTITIONS)
            wait_for(lambda: set(values) <= set(seen_by_all(members)), 60, "read")
        members[0].terminate()
        wait_for(lambda: stable_with(group_broker, group, 2, PARTITIONS), MOVE_S, "leave")
        new = [f"last-{i}" for i in range(60)]
        values.extend(new)
        produce(group_broker, topic, new, PARTITIONS)
        wait_for(lambda: set(values) <= set(seen_by_all(members)), 60, "read after leave")
    finally:
        for m in members:
            m.terminate()
    seen = seen_by_all(members)
    assert set(seen) == set(values) and max(seen.values()) == 1
    assert all(m.values() for m in members)


def _check_no_skip_no_committed_reread(members: list[Member], values: list[str]) -> None:
    """Nothing skipped; a message read twice was in a crashed member's in-flight window."""
    seen = seen_by_all(members)
    assert set(values) <= set(seen), sorted(set(values) - set(seen))[:10]
    reads: dict[str, list[tuple[Member, int, int]]] = {}
    for m in members:
        for e in m.of("msg"):
            reads.setdefault(e["v"], []).append((m, e["p"], e["o"]))
    for value, where in reads.items():
        if len(where) < 2:
            continue
        crashed = [(m, p, o) for m, p, o in where if m.proc.returncode == -9]
        assert len(where) == 2 and len(crashed) == 1, f"{value} read {len(where)} times"
        dead, partition, offset = crashed[0]
        committed = dead.last_commits().get(partition, 0)
        assert offset >= committed, f"{value} at {partition}/{offset} re-read below {committed}"


@pytest.mark.parametrize("lib", LIBS)
def test_join_leave_and_crash_move_partitions(group_broker: str, lib: str) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, PARTITIONS)
    values: list[str] = []

    def batch(tag: str) -> None:
        new = [f"{tag}-{i}" for i in range(60)]
        values.extend(new)
        produce(group_broker, topic, new, PARTITIONS)
        wait_for(lambda: set(values) <= set(seen_by_all(everyone)), 60, f"batch {tag} read")

    first = member(lib, group_broker, group, topic)
    everyone = [first]
    try:
        wait_for(lambda: stable_with(group_broker, group, 1, PARTITIONS), 60, "first member")
        batch("a")
        joiner = member(lib, group_broker, group, topic)
        everyone.append(joiner)
        wait_for(lambda: stable_with(group_broker, group, 2, PARTITIONS), MOVE_S, "join")
        batch("b")
        joiner.terminate()  # clean: LeaveGroup, partitions move at once
        wait_for(lambda: stable_with(group_broker, group, 1, PARTITIONS), MOVE_S, "leave")
        batch("c")
        crasher = member(lib, group_broker, group, topic)
        everyone.append(crasher)
        wait_for(lambda: stable_with(group_broker, group, 2, PARTITIONS), MOVE_S, "rejoin")
        new = [f"d-{i}" for i in range(60)]
        values.extend(new)
        produce(group_broker, topic, new, PARTITIONS)
        wait_for(lambda: len(crasher.values()) > 0, 60, "the crasher reads")
        crasher.kill()
        # its partitions come back to the survivor within the session timeout
        wait_for(lambda: stable_with(group_broker, group, 1, PARTITIONS), MOVE_S, "expiry")
        batch("e")
    finally:
        for m in everyone:
            m.terminate()
    _check_no_skip_no_committed_reread(everyone, values)
    assert len(joiner.values()) > 0 and len(crasher.values()) > 0


@pytest.mark.parametrize("lib", [*LIBS, "kcat"])
def test_two_groups_read_everything_and_resume_after_commit(group_broker: str, lib: str) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, 2)
    first = [f"one-{i}" for i in range(40)]
    produce(group_broker, topic, first, 2)
    groups = [f"g1-{uuid.uuid4().hex[:6]}", f"g2-{uuid.uuid4().hex[:6]}"]
    readers = [member(lib, group_broker, g, topic) for g in groups]
    try:
        for r in readers:
            wait_for(lambda r=r: len(r.values()) >= 40, 60, "each group reads all")
    finally:
        for r in readers:
            r.terminate()
    for r in readers:
        assert sorted(r.values()) == sorted(first)
    second = [f"two-{i}" for i in range(40)]
    produce(group_broker, topic, second, 2)
    again = member(lib, group_broker, groups[0], topic)
    try:
        wait_for(lambda: len(again.values()) >= 40, 60, "resume")
        if lib != "kcat":  # kcat commits on a timer and at close, and prints nothing of it
            wait_for(lambda: len(again.of("commit")) >= 40, 30, "commits")
    finally:
        again.terminate()
    assert sorted(again.values()) == sorted(second)  # exactly after the last commit


@pytest.mark.parametrize("lib", LIBS)
def test_auto_offset_reset_latest_skips_history(group_broker: str, lib: str) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, 2)
    produce(group_broker, topic, [f"old-{i}" for i in range(20)], 2)
    late = member(lib, group_broker, group, topic, reset="latest")
    try:
        wait_for(lambda: stable_with(group_broker, group, 1, 2), 60, "stable")
        # "latest" is resolved once the member reads anything: send probes until it does
        deadline = time.monotonic() + 30
        while not late.values():
            assert time.monotonic() < deadline, "the member never read a probe"
            produce(group_broker, topic, ["probe-0", "probe-1"], 2)
            time.sleep(0.3)
        new = [f"new-{i}" for i in range(20)]
        produce(group_broker, topic, new, 2)
        wait_for(lambda: set(new) <= set(late.values()), 30, "new messages")
    finally:
        late.terminate()
    assert not [v for v in late.values() if v.startswith("old-")]


def test_kcat_member_shows_in_describe_and_leaves(group_broker: str) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, 2)
    reader = kcat_member(group_broker, group, topic)
    try:
        wait_for(lambda: stable_with(group_broker, group, 1, 2), 60, "kcat joins")
    finally:
        reader.terminate()
    state, members = describe_group(group_broker, group)
    assert (state, members) == ("Empty", {})


def _committed(bootstrap: str, group: str, topic: str) -> int:
    from kafkito.testing.wire import WireClient

    with WireClient(bootstrap) as client:
        body = {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0]}]}
        return int(client.request(9, 3, body).topics[0].partitions[0].committed_offset)


def _seek_ck(bootstrap: str, group: str, topic: str) -> list[str]:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    c.subscribe([topic])
    got: list[str] = []
    deadline = time.monotonic() + 30
    while len(got) < 9 and time.monotonic() < deadline:
        msg = c.poll(0.2)
        if msg is None or msg.error():
            continue
        got.append(msg.value().decode())
        if len(got) == 1:
            c.seek(TopicPartition(topic, 0, 12))
    c.commit(asynchronous=False)
    c.close()
    return got


def _seek_kp(bootstrap: str, group: str, topic: str) -> list[str]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    got: list[str] = []
    deadline = time.monotonic() + 30
    stuck_since: float | None = None
    while len(got) < 9 and time.monotonic() < deadline:
        for records in c.poll(timeout_ms=200, max_records=1).values():
            got.extend(r.value.decode() for r in records)
            if len(got) == 1:
                c.seek(TopicPartition(topic, 0), 12)
        stuck_since = unstick_kafka_python(c, stuck_since)
    c.commit()
    c.close()
    return got


def _seek_aio(bootstrap: str, group: str, topic: str) -> list[str]:
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def run() -> list[str]:
        c = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c.start()
        try:
            got = [(await asyncio.wait_for(c.getone(), 30)).value.decode()]
            c.seek(TopicPartition(topic, 0), 12)
            while len(got) < 9:
                got.append((await asyncio.wait_for(c.getone(), 30)).value.decode())
            await c.commit()
        finally:
            await c.stop()
        return got

    return asyncio.run(run())


@pytest.mark.parametrize("lib", LIBS)
def test_seek_then_commit_then_resume(group_broker: str, lib: str) -> None:
    topic, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    create_topic(group_broker, topic, 1)
    produce(group_broker, topic, [f"v{i}" for i in range(20)], 1)
    seek = {"ck": _seek_ck, "kp": _seek_kp, "aio": _seek_aio}[lib]
    assert seek(group_broker, group, topic) == ["v0", *(f"v{i}" for i in range(12, 20))]
    assert _committed(group_broker, group, topic) == 20
    produce(group_broker, topic, ["v20"], 1)
    reader = python_member(lib, group_broker, group, topic)
    try:
        wait_for(lambda: reader.values(), 30, "resume")
    finally:
        reader.terminate()
    assert reader.values() == ["v20"]
