"""A transaction timeout, driven by a FakeClock instead of sleeping.

The real transaction coordinator on a loaded (not listening) broker core; only time is fake. A
transaction with a 60 s timeout is still open a second before it and aborted (its producer
fenced: the epoch goes up) within the ticker's next checks (every second) after it; a minute
of transaction time takes no wall time here. The markers, the journal, indexes and snapshots
are written to a real data directory, so the test lets a little real time pass for those
fsyncs between small advances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from kafkito.broker.assembly import build_core
from kafkito.broker.coordinator import coordinator_of
from kafkito.broker.settings import BrokerSettings
from kafkito.broker.txn import transactions_of
from kafkito.broker.txn.states import TxnState
from kafkito.clock import FakeClock

TIMEOUT_MS = 60_000


async def _settle(clock: FakeClock, condition: Callable[[], bool], clock_s: float) -> float:
    """Advance the clock in small steps until `condition` holds, at most `clock_s` of clock
    time; returns the clock time it took. Between steps a little real time passes: the ticker
    also writes indexes and snapshots in worker threads (real time), and registers its next
    sleep on the clock only when they are done."""
    taken = 0.0
    while not condition() and taken < clock_s:
        for _ in range(20):  # real time for worker threads (fsyncs, snapshot writes)
            if condition():
                return taken
            await asyncio.sleep(0.005)
        await clock.advance(0.25)
        taken += 0.25
    return taken


async def _scenario(data_dir: Path) -> dict[str, object]:
    clock = FakeClock()
    core = build_core(BrokerSettings(data_dir=str(data_dir)), clock=clock)
    await asyncio.to_thread(core.load)
    groups = coordinator_of(core)
    txns = transactions_of(core)
    await groups.start()
    await txns.start()
    seen: dict[str, object] = {}
    try:
        await core.topics.create("t", 1, {})
        pid, epoch = await txns.init_producer_id("tx", TIMEOUT_MS, -1, -1, 4)
        added = await txns.add_partitions("tx", pid, epoch, [("t", 0)], 4)
        seen["added"] = list(added.values())
        meta = txns.txns["tx"]
        seen["state_open"] = meta.state
        await clock.advance(TIMEOUT_MS / 1000 - 1)
        seen["state_before_timeout"] = txns.txns["tx"].state
        await clock.advance(1)  # the timeout
        seen["clock_s_to_abort"] = await _settle(
            clock, lambda: txns.txns["tx"].state is TxnState.COMPLETE_ABORT, 10
        )
        seen["state_after_timeout"] = txns.txns["tx"].state
        seen["epoch_after"] = txns.txns["tx"].epoch
        seen["epoch_before"] = epoch
    finally:
        await txns.stop()
        await groups.stop()
    return seen


def test_a_transaction_times_out_without_sleeping(tmp_path: Path) -> None:
    started = time.monotonic()
    seen = asyncio.run(_scenario(tmp_path / "data"))
    assert seen["added"] == [0]
    assert seen["state_open"] is TxnState.ONGOING
    assert seen["state_before_timeout"] is TxnState.ONGOING
    assert seen["state_after_timeout"] is TxnState.COMPLETE_ABORT
    assert float(seen["clock_s_to_abort"]) <= 5  # type: ignore[arg-type]  # the next checks (1 s)
    assert int(seen["epoch_after"]) > int(seen["epoch_before"])  # type: ignore[call-overload]
    assert time.monotonic() - started < 20  # a minute of transaction time, not waited for
