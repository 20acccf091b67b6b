"""The classic consumer-group state machine, as a table (STYLE principle 3).

A group moves through Kafka's five states:

    Empty ──REBALANCE──► PreparingRebalance ──JOIN_COMPLETE──► CompletingRebalance
      ▲                    │   ▲      ▲                            │        │
      └──────JOIN_EMPTY────┘   │      └──────────REBALANCE─────────┘        │ SYNC_COMPLETE
                               └──────────────REBALANCE─────────── Stable ◄─┘
    Empty ──DELETE──► Dead

* Empty: no members (offsets may still be committed, by assign()-mode consumers or admins).
* PreparingRebalance: members are (re)sending JoinGroup; the join completes when every known
  member has joined, when the initial delay ends (a group leaving Empty), or when the rebalance
  timeout fires (members that did not rejoin are dropped).
* CompletingRebalance: the generation is bumped, join answers are out, the leader computes the
  assignment and sends it in SyncGroup.
* Stable: everyone has its assignment; heartbeats keep members alive.
* Dead: the group was deleted (DeleteGroups, or its last offsets expired) and is being removed.

`next_state` is the only way a group changes state; a pair missing from the table is a bug in
the coordinator and raises InvalidTransition.
"""

from __future__ import annotations

import enum

from kafkito.errors import InvalidTransition


class GroupState(enum.Enum):
    """Kafka's names, as ListGroups and DescribeGroups report them."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class GroupEvent(enum.Enum):
    REBALANCE = "a member joined, left, expired or changed its protocols"
    JOIN_COMPLETE = "the join phase ended with members"
    JOIN_EMPTY = "the join phase ended with nobody left"
    SYNC_COMPLETE = "the leader's assignment arrived"
    DELETE = "the group was deleted or expired"


S, E = GroupState, GroupEvent

TRANSITIONS: dict[tuple[GroupState, GroupEvent], GroupState] = {
    (S.EMPTY, E.REBALANCE): S.PREPARING_REBALANCE,
    (S.PREPARING_REBALANCE, E.REBALANCE): S.PREPARING_REBALANCE,
    (S.COMPLETING_REBALANCE, E.REBALANCE): S.PREPARING_REBALANCE,
    (S.STABLE, E.REBALANCE): S.PREPARING_REBALANCE,
    (S.PREPARING_REBALANCE, E.JOIN_COMPLETE): S.COMPLETING_REBALANCE,
    (S.PREPARING_REBALANCE, E.JOIN_EMPTY): S.EMPTY,
    (S.COMPLETING_REBALANCE, E.SYNC_COMPLETE): S.STABLE,
    (S.EMPTY, E.DELETE): S.DEAD,
    (S.DEAD, E.DELETE): S.DEAD,
}

del S, E


def next_state(state: GroupState, event: GroupEvent) -> GroupState:
    """The state after `event` in `state`; raises InvalidTransition if the table has no entry."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"no transition from {state.value} on {event.name}") from None
