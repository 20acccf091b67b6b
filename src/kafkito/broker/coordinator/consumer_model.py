"""KIP-848 consumer groups, the model: a group and its members as data, the member state table,
and the error a refused heartbeat carries.

Pure data and the one table (a state machine is a table, STYLE.md 3): the coordinator's logic
is in consumer_group.py, the request checks in consumer_rules.py, the record and wire shapes in
consumer_records.py.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from kafkito.broker.coordinator.assignors import ASSIGNORS, Assignment, TopicPartition
from kafkito.clock import Timer
from kafkito.errors import ErrorCode, InvalidTransition, KafkitoError

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2


class GroupState(enum.Enum):
    """Kafka's names for a consumer group's (derived) state."""

    EMPTY = "Empty"
    ASSIGNING = "Assigning"
    RECONCILING = "Reconciling"
    STABLE = "Stable"
    DEAD = "Dead"


class MemberState(enum.Enum):
    STABLE = "the member owns its whole target at the target epoch"
    UNREVOKED_PARTITIONS = "the member must give up partitions before its epoch advances"
    UNRELEASED_PARTITIONS = "at the target epoch; some target partitions are still owned by others"


class MemberEvent(enum.Enum):
    REVOKE = "the target drops partitions the member owns"
    CATCH_UP = "the member takes the target epoch and all of its target"
    WAIT_RELEASE = "the member takes the target epoch; some partitions are still held elsewhere"


M, V = MemberState, MemberEvent
TRANSITIONS: dict[tuple[MemberState, MemberEvent], MemberState] = {
    (M.STABLE, V.REVOKE): M.UNREVOKED_PARTITIONS,
    (M.STABLE, V.CATCH_UP): M.STABLE,
    (M.STABLE, V.WAIT_RELEASE): M.UNRELEASED_PARTITIONS,
    # revocation is only left once the member reported the revoked partitions gone
    (M.UNREVOKED_PARTITIONS, V.CATCH_UP): M.STABLE,
    (M.UNREVOKED_PARTITIONS, V.WAIT_RELEASE): M.UNRELEASED_PARTITIONS,
    (M.UNREVOKED_PARTITIONS, V.REVOKE): M.UNREVOKED_PARTITIONS,
    (M.UNRELEASED_PARTITIONS, V.CATCH_UP): M.STABLE,
    (M.UNRELEASED_PARTITIONS, V.WAIT_RELEASE): M.UNRELEASED_PARTITIONS,
    (M.UNRELEASED_PARTITIONS, V.REVOKE): M.UNREVOKED_PARTITIONS,
}
del M, V


def next_member_state(state: MemberState, event: MemberEvent) -> MemberState:
    """The member's state after `event`; raises InvalidTransition if the table has no entry."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"no transition from {state.name} on {event.name}") from None


class Refused(KafkitoError):
    """A heartbeat (or commit) answered with an error code and Kafka's message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True, eq=False)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed: tuple[str, ...] = ()
    regex: str | None = None
    server_assignor: str | None = None
    rebalance_timeout_ms: int = 300_000
    epoch: int = 0
    previous_epoch: int = -1
    epoch_before_leave: int = 0
    """A static member's epoch when it left with -2; the instance's next member resumes it."""
    state: MemberState = MemberState.STABLE
    assigned: Assignment = frozenset()
    revoking: Assignment = frozenset()
    session_deadline: float | None = None
    """Clock time when the session ends (None until the coordinator starts, after a restart)."""
    revoke_deadline: float | None = None
    timer: Timer | None = None
    """The member's expiry timer (ConsumerGroups._arm): due at or before its nearer deadline."""
    timer_due: float = 0.0

    def transition(self, event: MemberEvent) -> None:
        self.state = next_member_state(self.state, event)


@dataclass(slots=True, eq=False)
class ConsumerGroup:
    group_id: str
    epoch: int = 0
    assignment_epoch: int = 0
    assignor: str = ASSIGNORS[0]
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    topics: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Subscribed topic name -> (topic id, partitions) when the target was last computed."""
    empty_since_ms: int = 0
    """Wall-clock ms when the last member went (offset retention counts from here)."""

    def state(self) -> GroupState:
        if not self.members:
            return GroupState.EMPTY
        if self.epoch != self.assignment_epoch:
            return GroupState.ASSIGNING
        if any(
            m.epoch != self.assignment_epoch or m.state is not MemberState.STABLE
            for m in self.members.values()
        ):
            return GroupState.RECONCILING
        return GroupState.STABLE

    def owned_by_others(self, member_id: str) -> set[TopicPartition]:
        held: set[TopicPartition] = set()
        for other in self.members.values():
            if other.member_id != member_id:
                held |= other.assigned
                held |= other.revoking
        return held
