"""Classic group sessions expire exactly at their deadline (a timer per member, as Kafka).

The real coordinator on a loaded (not listening) broker core, driven by a FakeClock: a member
is still there a millisecond before its deadline and gone at it, a heartbeat moves the
deadline, and three static members closed together leave the group Empty, deletable, at the
very instant their sessions end (librdkafka's 0081 DescribeConsumerGroups deletes its group
exactly one session after closing such members; a 100 ms sweep lost that race).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from kafkito.broker.assembly import build_core
from kafkito.broker.coordinator import GroupState, coordinator_of
from kafkito.broker.coordinator.coordinator import Coordinator
from kafkito.broker.settings import BrokerSettings
from kafkito.clock import FakeClock
from kafkito.errors import ErrorCode

SESSION_MS = 6_000
REBALANCE_MS = 10_000


def _join(coordinator: Coordinator, member_id: str, instance: str | None) -> Any:
    return coordinator.join(
        group_id="g",
        member_id=member_id,
        group_instance_id=instance,
        require_known_member_id=False,
        client_id="c",
        client_host="/127.0.0.1",
        session_timeout_ms=SESSION_MS,
        rebalance_timeout_ms=REBALANCE_MS,
        protocol_type="consumer",
        protocols=[("range", b"")],
    )


async def _stable_group(
    clock: FakeClock, coordinator: Coordinator, instances: list[str | None]
) -> list[str]:
    """Members joined and synced; returns their ids (the first is the leader)."""
    joins = [asyncio.create_task(_join(coordinator, "", i)) for i in instances]
    await clock.advance(0.2)  # past the initial rebalance delay (100 ms): one generation
    answers = [await asyncio.wait_for(j, 1) for j in joins]
    ids = [str(a["member_id"]) for a in answers]
    generation = int(answers[0]["generation_id"])
    leader = str(answers[0]["leader"])
    syncs = [
        asyncio.create_task(
            coordinator.sync(
                group_id="g",
                generation_id=generation,
                member_id=mid,
                group_instance_id=inst,
                protocol_type="consumer",
                protocol_name="range",
                assignments={m: b"a" for m in ids} if mid == leader else {},
            )
        )
        for mid, inst in zip(ids, instances, strict=True)
    ]
    for s in syncs:
        assert (await asyncio.wait_for(s, 1))["error_code"] == ErrorCode.none
    return ids


async def _run(data_dir: Path, scenario: Any) -> dict[str, object]:
    clock = FakeClock()
    settings = BrokerSettings(data_dir=str(data_dir), group_initial_rebalance_delay_ms=100)
    core = build_core(settings, clock=clock)
    await asyncio.to_thread(core.load)
    coordinator = coordinator_of(core)
    await coordinator.start()
    try:
        result: dict[str, object] = await scenario(clock, coordinator)
    finally:
        await coordinator.stop()
    return result


async def _one_member(clock: FakeClock, coordinator: Coordinator) -> dict[str, object]:
    seen: dict[str, object] = {}
    (member_id,) = await _stable_group(clock, coordinator, [None])
    group = coordinator.groups["g"]
    # synced at this instant: the session runs from here
    await clock.advance(2.0)
    code = coordinator.heartbeat(
        group_id="g", generation_id=1, member_id=member_id, group_instance_id=None
    )
    seen["heartbeat"] = code
    await clock.advance(SESSION_MS / 1000 - 0.001)
    seen["kept_1ms_before"] = member_id in group.members
    await clock.advance(0.001)
    seen["kept_at_deadline"] = member_id in group.members
    seen["state"] = group.state
    return seen


async def _three_static(clock: FakeClock, coordinator: Coordinator) -> dict[str, object]:
    seen: dict[str, object] = {}
    ids = await _stable_group(clock, coordinator, ["i1", "i2", "i3"])
    # each member's last sign of life 20 ms apart, as consumers closing one after another
    for n, mid in enumerate(ids):
        coordinator.heartbeat(
            group_id="g", generation_id=1, member_id=mid, group_instance_id=f"i{n + 1}"
        )
        await clock.advance(0.02)
    last_touch = 0.02  # the third member was touched 0.02 s before now
    await clock.advance(SESSION_MS / 1000 - last_touch - 0.001)
    seen["members_1ms_before"] = len(coordinator.groups["g"].members)
    await clock.advance(0.001)
    seen["members_at_deadline"] = len(coordinator.groups["g"].members)
    seen["state"] = coordinator.groups["g"].state
    seen["delete"] = await coordinator.delete_group("g")
    return seen


def test_a_member_expires_exactly_at_its_deadline(tmp_path: Path) -> None:
    started = time.monotonic()
    seen = asyncio.run(_run(tmp_path / "data", _one_member))
    assert seen["heartbeat"] == ErrorCode.none
    assert seen["kept_1ms_before"] is True  # the heartbeat moved the deadline 2 s on
    assert seen["kept_at_deadline"] is False
    assert seen["state"] is GroupState.EMPTY
    assert time.monotonic() - started < 10


def test_static_members_closed_together_are_gone_when_the_last_session_ends(
    tmp_path: Path,
) -> None:
    seen = asyncio.run(_run(tmp_path / "data", _three_static))
    assert seen["members_1ms_before"] == 1  # the first two expired 20 and 40 ms earlier
    assert seen["members_at_deadline"] == 0
    assert seen["state"] is GroupState.EMPTY
    assert seen["delete"] == ErrorCode.none


async def _consumer_member(clock: FakeClock, coordinator: Coordinator) -> dict[str, object]:
    """A KIP-848 member: its own timer ends it at the group's session (45 s by default)."""
    seen: dict[str, object] = {}

    async def heartbeat(member_id: str, epoch: int) -> dict[str, object]:
        return await coordinator.consumer.heartbeat(
            api_version=1,
            group_id="k",
            member_id=member_id,
            member_epoch=epoch,
            instance_id=None,
            rack_id=None,
            rebalance_timeout_ms=30_000,
            subscribed=() if epoch == 0 else None,
            regex=None,
            server_assignor=None,
            owned=frozenset() if epoch == 0 else None,
            client_id="c",
            client_host="/127.0.0.1",
        )

    joined = await heartbeat("m1", 0)
    seen["joined"] = joined["error_code"]
    await clock.advance(10)
    again = await heartbeat("m1", int(str(joined["member_epoch"])))
    seen["heartbeat"] = again["error_code"]
    group = coordinator.consumer.groups["k"]
    await clock.advance(45 - 0.001)
    seen["kept_1ms_before"] = "m1" in group.members
    await clock.advance(0.001)
    seen["kept_at_deadline"] = "m1" in group.members
    return seen


def test_a_consumer_group_member_expires_exactly_at_its_deadline(tmp_path: Path) -> None:
    seen = asyncio.run(_run(tmp_path / "data", _consumer_member))
    assert seen["joined"] == seen["heartbeat"] == ErrorCode.none
    assert seen["kept_1ms_before"] is True  # the heartbeat at 10 s moved the deadline to 55 s
    assert seen["kept_at_deadline"] is False
