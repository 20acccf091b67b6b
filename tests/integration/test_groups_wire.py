"""The group coordinator over raw requests: every error code Kafka gives, at every version served.

Real clients recover from fencing on their own, so the codes themselves (RELIABILITY B14-B16,
KAFKA-NOTES P10/P11/P15) are checked here with hand-built requests on real TCP connections.
JoinGroup and SyncGroup block until the group moves on, so concurrent members use one
connection each and send before they read.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kio.schema.errors import ErrorCode

from kafkito import Broker
from kafkito.testing.wire import WireClient

E = ErrorCode
JOIN, SYNC, HEARTBEAT, LEAVE, COMMIT, FETCH = 11, 14, 12, 13, 8, 9
INT32_MIN = -(2**31)


@pytest.fixture
def bootstrap(tmp_path: Path) -> Iterator[str]:
    """No initial rebalance delay: joins complete as soon as every member is in."""
    with Broker(
        port=0, data_dir=str(tmp_path / "data"), group_initial_rebalance_delay_ms=0
    ) as address:
        yield address


def new_group() -> str:
    return f"g-{uuid.uuid4().hex[:10]}"


def make_topic(client: WireClient, partitions: int = 1) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    answer = client.request(
        19,
        4,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "assignments": [],
                    "configs": [],
                }
            ],
            "timeout": 10_000,
            "validate_only": False,
        },
    )
    assert answer.topics[0].error_code == E.none
    return name


def join_body(
    group: str,
    member_id: str = "",
    *,
    instance: str | None = None,
    protocols: tuple[tuple[str, bytes], ...] = (("range", b"meta"),),
    session_ms: int = 6000,
    rebalance_ms: int = 6000,
    protocol_type: str = "consumer",
) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout": session_ms,
        "rebalance_timeout": rebalance_ms,
        "member_id": member_id,
        "group_instance_id": instance,
        "protocol_type": protocol_type,
        "protocols": [{"name": n, "metadata": m} for n, m in protocols],
        "reason": None,
    }


def join(client: WireClient, group: str, version: int = 5, **kw: Any) -> Any:
    """JoinGroup, doing the KIP-394 handshake when the broker asks for it."""
    answer = client.request(JOIN, version, join_body(group, **kw))
    if answer.error_code == E.member_id_required:
        kw["member_id"] = answer.member_id
        answer = client.request(JOIN, version, join_body(group, **kw))
    return answer


def sync(
    client: WireClient,
    group: str,
    generation: int,
    member_id: str,
    assignments: dict[str, bytes] | None = None,
    version: int = 3,
    **extra: Any,
) -> Any:
    body = {
        "group_id": group,
        "generation_id": generation,
        "member_id": member_id,
        "group_instance_id": extra.pop("instance", None),
        "assignments": [{"member_id": m, "assignment": a} for m, a in (assignments or {}).items()],
        **extra,
    }
    return client.request(SYNC, version, body)


def heartbeat(client: WireClient, group: str, generation: int, member_id: str, **kw: Any) -> Any:
    body = {
        "group_id": group,
        "generation_id": generation,
        "member_id": member_id,
        "group_instance_id": kw.get("instance"),
    }
    return client.request(HEARTBEAT, kw.get("version", 3), body).error_code


def commit(
    client: WireClient,
    group: str,
    topic: str,
    offset: int,
    *,
    generation: int = -1,
    member_id: str = "",
    instance: str | None = None,
    metadata: str | None = "",
    epoch: int = -1,
    partition: int = 0,
    version: int = 8,
) -> ErrorCode:
    body = {
        "group_id": group,
        "generation_id_or_member_epoch": generation,
        "member_id": member_id,
        "group_instance_id": instance,
        "retention_time": -1,
        "topics": [
            {
                "name": topic,
                "partitions": [
                    {
                        "partition_index": partition,
                        "committed_offset": offset,
                        "committed_leader_epoch": epoch,
                        "committed_metadata": metadata,
                    }
                ],
            }
        ],
    }
    answer = client.request(COMMIT, version, body)
    return answer.topics[0].partitions[0].error_code  # type: ignore[no-any-return]


def fetch(
    client: WireClient, group: str, topic: str | None, version: int = 8, partitions: int = 1
) -> Any:
    """The first partition row of OffsetFetch (topic None asks for every partition)."""
    topics = (
        None if topic is None else [{"name": topic, "partition_indexes": list(range(partitions))}]
    )
    if version >= 8:
        answer = client.request(
            FETCH,
            version,
            {"groups": [{"group_id": group, "topics": topics}], "require_stable": True},
        )
        found = answer.groups[0].topics
    else:
        answer = client.request(
            FETCH, version, {"group_id": group, "topics": topics, "require_stable": True}
        )
        found = answer.topics
    return found[0].partitions[0] if found else None


def stable_member(client: WireClient, group: str, **kw: Any) -> tuple[str, int]:
    """Join and sync a lone member; (member id, generation)."""
    joined = join(client, group, **kw)
    assert joined.error_code == E.none, joined
    synced = sync(client, group, joined.generation_id, joined.member_id, {joined.member_id: b"A"})
    assert synced.error_code == E.none
    return joined.member_id, joined.generation_id


# -- JoinGroup and SyncGroup -------------------------------------------------------------------


def test_kip394_member_id_required_then_generation_one(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        first = client.request(JOIN, 5, join_body(group))
        assert first.error_code == E.member_id_required
        assert first.member_id and first.generation_id == -1
        joined = client.request(JOIN, 5, join_body(group, first.member_id))
    assert joined.error_code == E.none
    assert joined.generation_id == 1  # never 0 (aiokafka skips LeaveGroup for 0)
    assert joined.leader == joined.member_id == first.member_id
    assert [(m.member_id, m.metadata) for m in joined.members] == [(joined.member_id, b"meta")]


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_join_before_v4_needs_no_handshake(bootstrap: str, version: int) -> None:
    with WireClient(bootstrap) as client:
        joined = client.request(JOIN, version, join_body(new_group()))
    assert joined.error_code == E.none and joined.generation_id == 1
    assert joined.protocol_name == "range"


def test_pending_member_id_expires_after_its_session(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        stable_member(client, group)
        first = client.request(JOIN, 5, join_body(group, session_ms=1000))
        assert first.error_code == E.member_id_required
        time.sleep(1.5)
        late = client.request(JOIN, 5, join_body(group, first.member_id, session_ms=1000))
    assert late.error_code == E.unknown_member_id


def test_leader_gets_every_members_metadata_and_sync_hands_out_assignments(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        a_id, gen = stable_member(a, group, protocols=(("range", b"from-a"),))
        b_first = b.request(JOIN, 5, join_body(group, protocols=(("range", b"from-b"),)))
        b.send(JOIN, 5, join_body(group, b_first.member_id, protocols=(("range", b"from-b"),)))
        assert heartbeat(a, group, gen, a_id) == E.rebalance_in_progress
        a_join = a.request(JOIN, 5, join_body(group, a_id, protocols=(("range", b"from-a"),)))
        _, b_join = b.read_response(JOIN, 5)
        assert a_join.generation_id == b_join.generation_id == gen + 1
        assert a_join.leader == b_join.leader == a_id
        assert {(m.member_id, m.metadata) for m in a_join.members} == {
            (a_id, b"from-a"),
            (b_join.member_id, b"from-b"),
        }
        assert b_join.members == ()  # only the leader computes the assignment
        # the follower's SyncGroup waits for the leader's
        b.send(
            SYNC,
            3,
            {
                "group_id": group,
                "generation_id": gen + 1,
                "member_id": b_join.member_id,
                "assignments": [],
            },
        )
        # a commit with a valid member and generation while the assignment is pending
        topic = make_topic(a)
        assert (
            commit(a, group, topic, 5, generation=gen + 1, member_id=a_id)
            == E.rebalance_in_progress
        )
        a_sync = sync(a, group, gen + 1, a_id, {a_id: b"for-a", b_join.member_id: b"for-b"})
        _, b_sync = b.read_response(SYNC, 3)
    assert (a_sync.error_code, a_sync.assignment) == (E.none, b"for-a")
    assert (b_sync.error_code, b_sync.assignment) == (E.none, b"for-b")


def test_sync_v5_checks_protocol_and_join_checks_protocols(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        a_id, gen = stable_member(a, group)
        bad = sync(
            a, group, gen, a_id, version=5, protocol_type="consumer", protocol_name="roundrobin"
        )
        assert bad.error_code == E.inconsistent_group_protocol
        good = sync(a, group, gen, a_id, version=5, protocol_type="consumer", protocol_name="range")
        assert (good.error_code, good.protocol_name, good.assignment) == (E.none, "range", b"A")
        other = join(b, group, protocols=(("roundrobin", b""),))
        assert other.error_code == E.inconsistent_group_protocol
        other_type = join(b, group, protocol_type="connect")
        assert other_type.error_code == E.inconsistent_group_protocol


# -- fencing (B14-B16) ---------------------------------------------------------------------------


def test_stale_generation_and_unknown_member_commits_are_refused(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        topic = make_topic(client)
        member_id, gen = stable_member(client, group)
        assert commit(client, group, topic, 1, generation=gen, member_id=member_id) == E.none
        assert (
            commit(client, group, topic, 2, generation=gen + 7, member_id=member_id)
            == E.illegal_generation
        )
        assert (
            commit(client, group, topic, 3, generation=gen, member_id="nobody")
            == E.unknown_member_id
        )
        # an assign()-mode commit while the group has members
        assert commit(client, group, topic, 4) == E.unknown_member_id
        assert heartbeat(client, group, gen + 1, member_id) == E.illegal_generation
        assert heartbeat(client, group, gen, "nobody") == E.unknown_member_id
        assert heartbeat(client, group, gen, member_id) == E.none
        assert fetch(client, group, topic).committed_offset == 1


def test_duplicate_static_instance_fences_the_old_member(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        topic = make_topic(a)
        a_id, gen = stable_member(a, group, instance="app-1")
        # the same instance id comes back (a restarted process): no rebalance, a new member id
        b_join = join(b, group, instance="app-1")
        assert b_join.error_code == E.none and b_join.member_id != a_id
        assert b_join.generation_id == gen
        b_sync = sync(b, group, gen, b_join.member_id, instance="app-1")
        assert (b_sync.error_code, b_sync.assignment) == (E.none, b"A")  # assignment kept
        assert heartbeat(a, group, gen, a_id, instance="app-1") == E.fenced_instance_id
        assert (
            commit(a, group, topic, 9, generation=gen, member_id=a_id, instance="app-1")
            == E.fenced_instance_id
        )
        assert heartbeat(b, group, gen, b_join.member_id, instance="app-1") == E.none


def test_member_silent_past_its_session_loses_partitions_and_late_commit(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b:
        topic = make_topic(a)
        a_id, _ = stable_member(a, group, session_ms=1000)
        b_first = b.request(JOIN, 5, join_body(group, session_ms=1000))
        b.send(JOIN, 5, join_body(group, b_first.member_id, session_ms=1000))
        a_join = join(a, group, member_id=a_id, session_ms=1000)
        _, b_join = b.read_response(JOIN, 5)
        gen = a_join.generation_id
        b.send(
            SYNC,
            3,
            {
                "group_id": group,
                "generation_id": gen,
                "member_id": b_join.member_id,
                "assignments": [],
            },
        )
        sync(a, group, gen, a_id, {a_id: b"p0", b_join.member_id: b"p1"})
        b.read_response(SYNC, 3)
        # b pauses (SIGSTOP, a GC pause...); a keeps heartbeating and is told to rejoin
        deadline = time.monotonic() + 10
        while heartbeat(a, group, gen, a_id) != E.rebalance_in_progress:
            assert time.monotonic() < deadline, "b was never expired"
            time.sleep(0.2)
        alone = join(a, group, member_id=a_id, session_ms=1000)
        assert alone.generation_id == gen + 1 and [m.member_id for m in alone.members] == [a_id]
        assert sync(a, group, gen + 1, a_id, {a_id: b"p0p1"}).assignment == b"p0p1"
        # b wakes up and commits what it processed: refused, nothing overwritten
        assert (
            commit(b, group, topic, 50, generation=gen, member_id=b_join.member_id)
            == E.unknown_member_id
        )
        assert heartbeat(b, group, gen, b_join.member_id) == E.unknown_member_id
        assert commit(a, group, topic, 7, generation=gen + 1, member_id=a_id) == E.none
        assert fetch(a, group, topic).committed_offset == 7


def test_rebalance_timeout_drops_a_member_that_does_not_rejoin(bootstrap: str) -> None:
    group = new_group()
    kw: dict[str, Any] = {"session_ms": 6000, "rebalance_ms": 1500}
    with WireClient(bootstrap) as a, WireClient(bootstrap) as b, WireClient(bootstrap) as c:
        a_id, gen = stable_member(a, group, **kw)
        c_first = c.request(JOIN, 5, join_body(group, **kw))
        c.send(JOIN, 5, join_body(group, c_first.member_id, **kw))
        a_join = join(a, group, member_id=a_id, **kw)
        _, c_join = c.read_response(JOIN, 5)
        assert a_join.generation_id == c_join.generation_id == gen + 1
        # now b joins and a never rejoins although it keeps heartbeating
        b_first = b.request(JOIN, 5, join_body(group, **kw))
        b.send(JOIN, 5, join_body(group, b_first.member_id, **kw))
        c.send(JOIN, 5, join_body(group, c_join.member_id, **kw))
        started = time.monotonic()
        for _ in range(4):
            assert heartbeat(a, group, gen + 1, a_id) == E.rebalance_in_progress
            time.sleep(0.1)
        _, b_join = b.read_response(JOIN, 5)
        _, c_join2 = c.read_response(JOIN, 5)
        waited = time.monotonic() - started
    assert b_join.generation_id == c_join2.generation_id == gen + 2
    assert 1.0 < waited < 5
    leader_view = b_join if b_join.members else c_join2
    assert sorted(m.member_id for m in leader_view.members) == sorted(
        [b_join.member_id, c_join.member_id]
    )


def test_leave_group_every_version(bootstrap: str) -> None:
    for version in range(6):
        group = new_group()
        with WireClient(bootstrap) as client:
            member_id, _ = stable_member(client, group, instance="i-1" if version >= 3 else None)
            if version < 3:
                answer = client.request(LEAVE, version, {"group_id": group, "member_id": member_id})
                assert answer.error_code == E.none
                again = client.request(LEAVE, version, {"group_id": group, "member_id": member_id})
                assert again.error_code == E.unknown_member_id
            else:
                body = {
                    "group_id": group,
                    "members": [
                        {"member_id": member_id, "group_instance_id": "i-1", "reason": "bye"},
                        {"member_id": "ghost", "group_instance_id": None, "reason": None},
                    ],
                }
                answer = client.request(LEAVE, version, body)
                assert answer.error_code == E.none
                assert [m.error_code for m in answer.members] == [E.none, E.unknown_member_id]
            described = client.request(15, 0, {"groups": [group]}).groups[0]
            assert described.group_state == "Empty", version


def test_several_groups_rebalance_at_once(bootstrap: str) -> None:
    """Eight groups of three members, all joining at once, each looping like a real client."""
    groups = [new_group() for _ in range(8)]
    synced: dict[str, dict[int, tuple[int, str, bytes]]] = {g: {} for g in groups}
    errors: list[BaseException] = []
    deadline = time.monotonic() + 40

    def settled(group: str) -> bool:
        views = synced[group]
        return len(views) == 3 and len({gen for gen, _, _ in views.values()}) == 1

    def run(group: str, index: int) -> None:
        member_id = ""
        try:
            with WireClient(bootstrap, timeout_s=30) as client:
                while time.monotonic() < deadline:
                    joined = join(client, group, member_id=member_id, session_ms=10_000)
                    assert joined.error_code == E.none, joined.error_code
                    member_id, gen = joined.member_id, joined.generation_id
                    plan = {m.member_id: m.member_id.encode() for m in joined.members}
                    done = sync(client, group, gen, member_id, plan)
                    if done.error_code == E.rebalance_in_progress:
                        continue
                    assert done.error_code == E.none, done.error_code
                    synced[group][index] = (gen, member_id, done.assignment)
                    while not settled(group) and time.monotonic() < deadline:
                        code = heartbeat(client, group, gen, member_id)
                        if code == E.rebalance_in_progress:
                            break
                        assert code == E.none, code
                        time.sleep(0.05)
                    if settled(group):
                        return
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(g, i)) for g in groups for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    for group, views in synced.items():
        assert settled(group), (group, views)
        # the leader's plan reached every member: each got its own id back
        assert all(assignment == mid.encode() for _, mid, assignment in views.values())


def test_initial_rebalance_delay_gathers_members_into_one_generation(tmp_path: Path) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "d"), group_initial_rebalance_delay_ms=600) as bs:
        group = new_group()
        with WireClient(bs) as a, WireClient(bs) as b:
            started = time.monotonic()
            a_first = a.request(JOIN, 5, join_body(group))
            a.send(JOIN, 5, join_body(group, a_first.member_id))
            time.sleep(0.2)
            b_first = b.request(JOIN, 5, join_body(group))
            b.send(JOIN, 5, join_body(group, b_first.member_id))
            _, a_join = a.read_response(JOIN, 5)
            _, b_join = b.read_response(JOIN, 5)
            waited = time.monotonic() - started
    assert a_join.generation_id == b_join.generation_id == 1
    assert len((a_join if a_join.members else b_join).members) == 2
    assert 0.6 <= waited < 3


# -- offsets ---------------------------------------------------------------------------------


def test_assign_mode_commit_round_trips_metadata_and_leader_epoch(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        topic = make_topic(client)
        assert commit(client, group, topic, 42, metadata="ck:é✓", epoch=3) == E.none
        row = fetch(client, group, topic, version=9)
        assert (row.committed_offset, row.committed_leader_epoch, row.metadata, row.error_code) == (
            42,
            3,
            "ck:é✓",
            E.none,
        )
        assert commit(client, group, topic, 43, metadata=None, version=2) == E.none
        assert fetch(client, group, topic, version=3).metadata is None
        never = fetch(client, new_group(), topic, version=5)
        assert (never.committed_offset, never.committed_leader_epoch, never.metadata) == (
            -1,
            -1,
            "",
        )


def test_offset_metadata_above_4096_bytes_is_refused(bootstrap: str) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        topic = make_topic(client)
        assert commit(client, group, topic, 1, metadata="x" * 4096) == E.none
        assert commit(client, group, topic, 2, metadata="x" * 4097) == E.offset_metadata_too_large
        assert fetch(client, group, topic).committed_offset == 1


def test_commit_to_a_missing_group_or_topic(bootstrap: str) -> None:
    with WireClient(bootstrap) as client:
        topic = make_topic(client)
        assert (
            commit(client, new_group(), topic, 1, generation=3, member_id="m", version=8)
            == E.illegal_generation
        )
        assert (
            commit(client, new_group(), topic, 1, generation=3, member_id="m", version=9)
            == E.group_id_not_found
        )
        assert commit(client, new_group(), "no-such-topic", 1) == E.unknown_topic_or_partition
        assert commit(client, new_group(), topic, 1, partition=5) == E.unknown_topic_or_partition


@pytest.mark.parametrize("version", range(1, 10))
def test_offset_fetch_every_version(bootstrap: str, version: int) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        topic = make_topic(client, partitions=2)
        assert commit(client, group, topic, 11, epoch=0, metadata="m") == E.none
        row = fetch(client, group, topic, version=version, partitions=2)
        assert (row.partition_index, row.committed_offset, row.metadata) == (0, 11, "m")
        if version >= 5:
            assert row.committed_leader_epoch == 0
        if version >= 2:  # null topics: every committed partition, and only those
            every = fetch(client, group, None, version=version)
            assert (every.partition_index, every.committed_offset) == (0, 11)


@pytest.mark.parametrize("version", range(2, 10))
def test_offset_commit_every_version(bootstrap: str, version: int) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        topic = make_topic(client)
        assert commit(client, group, topic, 100 + version, version=version) == E.none
        assert fetch(client, group, topic).committed_offset == 100 + version


# -- FindCoordinator, ListGroups, DescribeGroups, DeleteGroups ------------------------------------


@pytest.mark.parametrize("version", range(7))
def test_find_coordinator_every_version(bootstrap: str, version: int) -> None:
    host, port = bootstrap.rsplit(":", 1)
    with WireClient(bootstrap) as client:
        if version < 4:
            answer = client.request(10, version, {"key": "g", "key_type": 0})
            assert (answer.error_code, answer.host, answer.port) == (E.none, host, int(port))
        else:
            answer = client.request(10, version, {"key_type": 0, "coordinator_keys": ["a", "b"]})
            assert [(c.key, c.error_code, c.port) for c in answer.coordinators] == [
                ("a", E.none, int(port)),
                ("b", E.none, int(port)),
            ]
        if version >= 1:
            body = {"key": "g", "key_type": 2, "coordinator_keys": ["g"]}
            answer = client.request(10, version, body)
            code = answer.coordinators[0].error_code if version >= 4 else answer.error_code
            assert code == E.invalid_request


def test_list_describe_and_delete_groups(bootstrap: str) -> None:
    busy, idle = new_group(), new_group()
    with WireClient(bootstrap) as client:
        topic = make_topic(client)
        member_id, _ = stable_member(client, busy)
        assert commit(client, idle, topic, 5) == E.none
        for version in range(6):
            listed = client.request(16, version, {"states_filter": [], "types_filter": []})
            found = {g.group_id: g for g in listed.groups}
            assert {busy, idle} <= set(found)
            if version >= 4:
                assert found[busy].group_state == "Stable"
                assert found[idle].group_state == "Empty"
                only = client.request(
                    16, version, {"states_filter": ["stable"], "types_filter": []}
                )
                assert busy in {g.group_id for g in only.groups}
                assert idle not in {g.group_id for g in only.groups}
        assert found[busy].protocol_type == "consumer" and found[idle].protocol_type == ""
        for version in range(6):
            body = {"groups": [busy, "nope"], "include_authorized_operations": False}
            described = client.request(15, version, body).groups
            assert described[0].group_state == "Stable"
            assert described[0].protocol_data == "range"
            assert [(m.member_id, m.member_assignment) for m in described[0].members] == [
                (member_id, b"A")
            ]
            assert (described[1].error_code, described[1].group_state) == (E.none, "Dead")
            if version >= 3:
                assert described[0].authorized_operations == INT32_MIN
                asked = client.request(15, version, {**body, "include_authorized_operations": True})
                ops = asked.groups[0].authorized_operations
                assert ops > 0 and ops & ~0x7FFF == 0  # only valid bits (0-14)
        for version in range(3):
            answer = client.request(42, version, {"groups_names": [busy, "nope"]})
            assert [r.error_code for r in answer.results] == [
                E.non_empty_group,
                E.group_id_not_found,
            ]
        deleted = client.request(42, 2, {"groups_names": [idle]})
        assert deleted.results[0].error_code == E.none
        assert fetch(client, idle, topic).committed_offset == -1
        assert idle not in {g.group_id for g in client.request(16, 0, {}).groups}


def test_offsets_of_an_empty_group_expire(tmp_path: Path) -> None:
    with Broker(port=0, data_dir=str(tmp_path / "d"), offsets_retention_ms=300) as bs:
        group = new_group()
        with WireClient(bs) as client:
            topic = make_topic(client)
            assert commit(client, group, topic, 8) == E.none
            assert fetch(client, group, topic).committed_offset == 8
            deadline = time.monotonic() + 10
            while fetch(client, group, topic).committed_offset != -1:
                assert time.monotonic() < deadline, "offsets never expired"
                time.sleep(0.1)
            assert group not in {g.group_id for g in client.request(16, 0, {}).groups}


def test_offsets_and_generations_survive_a_restart(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    group = new_group()
    with (
        Broker(port=0, data_dir=data, group_initial_rebalance_delay_ms=0) as bs,
        WireClient(bs) as client,
    ):
        topic = make_topic(client)
        member_id, gen = stable_member(client, group)
        assert (
            commit(
                client, group, topic, 77, generation=gen, member_id=member_id, metadata="x", epoch=0
            )
            == E.none
        )
    with (
        Broker(port=0, data_dir=data, group_initial_rebalance_delay_ms=0) as bs,
        WireClient(bs) as client,
    ):
        row = fetch(client, group, topic)
        assert (row.committed_offset, row.metadata, row.committed_leader_epoch) == (77, "x", 0)
        # the old member is unknown (it rejoins); generations never repeat
        assert heartbeat(client, group, gen, member_id) == E.unknown_member_id
        _, new_gen = stable_member(client, group)
        assert new_gen > gen


def test_commits_compact_the_metadata_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kafkito.broker.coordinator import persistence

    monkeypatch.setattr(persistence, "COMPACT_AFTER_RECORDS", 50)
    data = str(tmp_path / "d")
    group = new_group()
    broker = Broker(port=0, data_dir=data)
    with broker as bs, WireClient(bs) as client:
        topic = make_topic(client)
        assert broker.core is not None
        start_bytes = broker.core.metalog.size_bytes
        for offset in range(400):
            assert commit(client, group, topic, offset, metadata=f"m{offset}") == E.none
        grown = broker.core.metalog.size_bytes - start_bytes
        one_record = len(f"m{offset}") + 100  # a JSON offset record with its frame, roughly
        assert grown < 100 * one_record  # 400 commits, kept to about one compaction period
    with Broker(port=0, data_dir=data) as bs, WireClient(bs) as client:
        row = fetch(client, group, topic)
        assert (row.committed_offset, row.metadata) == (399, "m399")


@pytest.mark.parametrize("version", range(6))
def test_sync_and_heartbeat_every_version(bootstrap: str, version: int) -> None:
    group = new_group()
    with WireClient(bootstrap) as client:
        joined = join(client, group)
        answer = sync(
            client,
            group,
            joined.generation_id,
            joined.member_id,
            {joined.member_id: b"plan"},
            version=version,
            protocol_type="consumer",
            protocol_name="range",
        )
        assert (answer.error_code, answer.assignment) == (E.none, b"plan")
        hb_version = min(version, 4)
        gen, member_id = joined.generation_id, joined.member_id
        assert heartbeat(client, group, gen, member_id, version=hb_version) == E.none
        assert heartbeat(client, group, gen + 1, member_id, version=hb_version) == (
            E.illegal_generation
        )
