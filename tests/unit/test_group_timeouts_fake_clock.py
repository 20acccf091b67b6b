"""The classic group coordinator's timeouts, driven by a FakeClock instead of sleeping.

The real coordinator on a real (loaded, not listening) broker core; only time is fake. A
member's session of 30 s and the initial rebalance delay of 3 s take no wall time here.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kafkito.broker.assembly import build_core
from kafkito.broker.coordinator import GroupState, coordinator_of
from kafkito.broker.settings import BrokerSettings
from kafkito.clock import FakeClock

SESSION_MS = 30_000
REBALANCE_MS = 60_000
INITIAL_DELAY_MS = 3_000


async def _scenario(data_dir: Path) -> dict[str, object]:
    clock = FakeClock()
    settings = BrokerSettings(
        data_dir=str(data_dir), group_initial_rebalance_delay_ms=INITIAL_DELAY_MS
    )
    core = build_core(settings, clock=clock)
    await asyncio.to_thread(core.load)
    coordinator = coordinator_of(core)
    await coordinator.start()
    seen: dict[str, object] = {}
    try:
        join = asyncio.create_task(
            coordinator.join(
                group_id="g",
                member_id="",
                group_instance_id=None,
                require_known_member_id=False,
                client_id="c",
                client_host="/127.0.0.1",
                session_timeout_ms=SESSION_MS,
                rebalance_timeout_ms=REBALANCE_MS,
                protocol_type="consumer",
                protocols=[("range", b"")],
            )
        )
        await clock.advance(INITIAL_DELAY_MS / 1000 - 0.5)
        seen["joined_before_the_delay"] = join.done()
        await clock.advance(0.5)
        answer = await asyncio.wait_for(join, 1)
        member_id = str(answer["member_id"])
        seen["generation"] = answer["generation_id"]
        synced = await asyncio.wait_for(
            coordinator.sync(
                group_id="g",
                generation_id=int(answer["generation_id"]),
                member_id=member_id,
                group_instance_id=None,
                protocol_type="consumer",
                protocol_name="range",
                assignments={member_id: b"a"},
            ),
            1,
        )
        seen["assignment"] = synced["assignment"]
        group = coordinator.groups["g"]
        seen["state_after_sync"] = group.state
        await clock.advance(SESSION_MS / 1000 - 1)
        seen["member_kept_within_session"] = member_id in group.members
        await clock.advance(2)
        seen["member_kept_after_session"] = member_id in group.members
        seen["state_after_expiry"] = coordinator.groups["g"].state
    finally:
        await coordinator.stop()
    return seen


def test_a_session_timeout_and_the_initial_delay_without_sleeping(tmp_path: Path) -> None:
    started = time.monotonic()
    seen = asyncio.run(_scenario(tmp_path / "data"))
    assert seen["joined_before_the_delay"] is False  # the initial rebalance delay holds the join
    assert seen["generation"] == 1
    assert seen["assignment"] == b"a"
    assert seen["state_after_sync"] is GroupState.STABLE
    assert seen["member_kept_within_session"] is True
    assert seen["member_kept_after_session"] is False  # expired by the session timeout
    assert seen["state_after_expiry"] is GroupState.EMPTY
    assert time.monotonic() - started < 10  # 33 s of group time, not waited for
