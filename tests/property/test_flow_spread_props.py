"""Hypothesis: `backpressure.spread` (the limit shared between partitions) on any state.

`spread` runs on the flow's event loop after each poll and only decides pause reasons and the
next poll's size, so it is driven here on a stand-in for the flow's state (partitions with
their trackers and pause reasons, the handler slots' saturation): no Kafka is involved. What
must hold whatever the partitions hold, what librdkafka reported and what was paused before:

* pauses for other reasons (backpressure, a retry not due, a failing dead-letter write) are
  never added or lifted;
* a new "share" pause only on a partition with records waiting, never while every handler
  slot is busy with keys waiting, never on an empty partition, and never when one
  partition alone has records (nobody to make room for);
* no "share" pause is left without another partition waiting for the room;
* every partition whose reasons changed is queued for `apply_pauses`;
* the poll size stays between 1 and `poll_batch`, and a partition assigned again is resumed.

The end-to-end checks (order, commits, nothing lost, keys side by side) are in
tests/flow/test_flow_spread.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kafkito.flow.backpressure import SHARE, UNKNOWN, Spread, spread
from kafkito.flow.records import PartitionState

TP = tuple[str, int]
OTHER_REASONS = ("backpressure", "due", "dead-letter")


@dataclass
class Clock:
    now: float = 100.0

    def monotonic(self) -> float:
        return self.now


@dataclass
class Scheduler:
    saturated: bool = False


@dataclass
class FlowState:
    """The attributes of `Flow` that `spread` reads and writes."""

    _partitions: dict[TP, PartitionState]
    max_in_flight: int
    poll_batch: int
    _scheduler: Scheduler
    _clock: Clock = field(default_factory=Clock)
    _pause_changes: set[TP] = field(default_factory=set)
    _threads: None = None
    _batch_scheduler: None = None
    batch_size: None = None


partition_st = st.fixed_dictionaries(
    {
        "received": st.integers(-1, 3000),  # one past the highest offset received; -1: none
        "pending": st.integers(0, 3000),
        "high": st.one_of(st.none(), st.just(UNKNOWN), st.integers(0, 6000)),
        "reasons": st.sets(st.sampled_from((SHARE, *OTHER_REASONS))),
    }
)


def build(parts: list[dict[str, Any]], limit: int, batch: int, saturated: bool) -> FlowState:
    partitions: dict[TP, PartitionState] = {}
    for number, part in enumerate(parts):
        state = PartitionState(generation=number + 1)
        state.tracker._next = part["received"]
        state.tracker.pending = part["pending"] if part["received"] >= 0 else 0
        state.pause_reasons = set(part["reasons"])
        partitions[("t", number)] = state
    return FlowState(partitions, limit, batch, Scheduler(saturated))


def waiting(flow: FlowState, highs: dict[TP, int], tp: TP) -> bool:
    """Records waiting as `spread` defines it (the first-records grace counts as waiting:
    the clock does not move between the calls here)."""
    high = highs.get(tp)
    received = flow._partitions[tp].tracker.next
    if high is None:
        return False
    if received >= 0:
        return high > received
    return high == UNKNOWN or high > 0


@settings(max_examples=400, deadline=None)
@given(
    parts=st.lists(partition_st, min_size=0, max_size=8),
    limit=st.integers(1, 5000),
    batch=st.integers(1, 2000),
    saturated=st.booleans(),
    rounds=st.integers(1, 3),
)
def test_spread_only_moves_share_pauses_and_only_to_make_room(
    parts: list[dict[str, Any]], limit: int, batch: int, saturated: bool, rounds: int
) -> None:
    flow = build(parts, limit, batch, saturated)
    highs = {("t", n): part["high"] for n, part in enumerate(parts) if part["high"] is not None}
    memo = Spread()
    for _ in range(rounds):  # again on the same state: decisions are stable, nothing drifts
        before = {tp: set(state.pause_reasons) for tp, state in flow._partitions.items()}
        flow._pause_changes.clear()
        cap = spread(flow, highs, memo)  # type: ignore[arg-type]
        assert 1 <= cap <= batch
        with_records = [
            tp
            for tp, state in flow._partitions.items()
            if waiting(flow, highs, tp) or state.tracker.pending
        ]
        for tp, state in flow._partitions.items():
            after = state.pause_reasons
            assert after - {SHARE} == before[tp] - {SHARE}, "another reason was touched"
            if after != before[tp]:
                assert tp in flow._pause_changes
            if SHARE in after and SHARE not in before[tp]:
                assert waiting(flow, highs, tp), f"{tp} paused with nothing waiting"
                assert not saturated, "paused while every handler slot is busy"
                assert state.tracker.pending > 0
            if SHARE in after:
                assert len(with_records) >= 2, "paused with nobody to make room for"
                assert any(
                    other != tp
                    and waiting(flow, highs, other)
                    and not flow._partitions[other].pause_reasons
                    for other in flow._partitions
                ), f"{tp} paused while no other partition waits for the room"
        if not highs:
            assert not any(SHARE in s.pause_reasons for s in flow._partitions.values())


def test_a_partition_assigned_again_is_resumed_once() -> None:
    """librdkafka keeps a pause across a revoke and a new assignment: `spread` queues a
    partition whose assignment changed, so `apply_pauses` resumes it (no reason left)."""
    flow = build(
        [{"received": -1, "pending": 0, "high": None, "reasons": set()}] * 2, 100, 50, False
    )
    memo = Spread()
    spread(flow, {}, memo)  # type: ignore[arg-type]
    assert flow._pause_changes == set()  # first sight of the assignment: nothing to lift
    flow._partitions[("t", 1)] = PartitionState(generation=9)  # revoked, then assigned again
    spread(flow, {}, memo)  # type: ignore[arg-type]
    assert flow._pause_changes == {("t", 1)}
