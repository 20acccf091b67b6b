"""The group state table and the pure rules of a group (no broker, no I/O)."""

from __future__ import annotations

import itertools

import pytest

from kafkito.broker.coordinator.group import Group, Member
from kafkito.broker.coordinator.states import (
    TRANSITIONS,
    GroupEvent,
    GroupState,
    InvalidTransition,
    next_state,
)


def test_every_pair_outside_the_table_raises() -> None:
    for state, event in itertools.product(GroupState, GroupEvent):
        if (state, event) in TRANSITIONS:
            assert next_state(state, event) is TRANSITIONS[(state, event)]
        else:
            with pytest.raises(InvalidTransition):
                next_state(state, event)


def test_a_group_goes_round_the_classic_cycle() -> None:
    group = Group("g")
    for event, expected in [
        (GroupEvent.REBALANCE, GroupState.PREPARING_REBALANCE),
        (GroupEvent.JOIN_COMPLETE, GroupState.COMPLETING_REBALANCE),
        (GroupEvent.SYNC_COMPLETE, GroupState.STABLE),
        (GroupEvent.REBALANCE, GroupState.PREPARING_REBALANCE),
        (GroupEvent.JOIN_EMPTY, GroupState.EMPTY),
        (GroupEvent.DELETE, GroupState.DEAD),
    ]:
        group.transition(event)
        assert group.state is expected
    with pytest.raises(InvalidTransition):
        group.transition(GroupEvent.REBALANCE)  # a dead group never comes back


def member(member_id: str, *protocols: str) -> Member:
    return Member(member_id, None, "c", "/h", 6000, 6000, "consumer", [(p, b"") for p in protocols])


def test_protocol_choice_is_supported_by_all_and_voted_by_most() -> None:
    group = Group("g", protocol_type="consumer")
    for m in (
        member("a", "range", "roundrobin"),
        member("b", "roundrobin", "range"),
        member("c", "roundrobin", "sticky", "range"),
    ):
        group.members[m.member_id] = m
    assert group.select_protocol() == "roundrobin"
    assert group.supports_protocols("consumer", [("range", b"")])
    assert not group.supports_protocols("consumer", [("sticky", b"")])  # a and b lack it
    assert not group.supports_protocols("connect", [("range", b"")])
    assert Group("empty").supports_protocols("anything", [("x", b"")])
    assert not Group("empty").supports_protocols("", [("x", b"")])
