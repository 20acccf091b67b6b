"""One consumer group's members and generation: plain data plus the pure rules on it.

The coordinator (coordinator.py) owns every Group and drives the state machine (states.py);
this module holds what a group is and the decisions that need no clock or I/O: which protocol
the members agree on, whether a joining member's protocols fit the group, and what the leader
is told.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kafkito.broker.coordinator.states import GroupEvent, GroupState, next_state
from kafkito.clock import Timer

Protocols = list[tuple[str, bytes]]


@dataclass(slots=True, eq=False)
class Member:
    """A group member as its last JoinGroup described it."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    assignment: bytes = b""
    join_waiter: asyncio.Future[dict[str, Any]] | None = None
    sync_waiter: asyncio.Future[dict[str, Any]] | None = None
    heartbeat_deadline: float = 0.0
    """Clock time after which the member is expired, unless it awaits a join or sync answer."""
    session_timer: Timer | None = None
    """The member's own expiry timer (Membership._touch); fires at or before the deadline."""
    session_timer_due: float = 0.0

    def metadata_for(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""

    def supports(self, protocol: str) -> bool:
        return any(name == protocol for name, _ in self.protocols)

    def awaiting_join(self) -> bool:
        return self.join_waiter is not None and not self.join_waiter.done()

    def awaiting_sync(self) -> bool:
        return self.sync_waiter is not None and not self.sync_waiter.done()


@dataclass(slots=True, eq=False)
class Group:
    """A classic group: state, generation, members (in join order) and static instances."""

    group_id: str
    state: GroupState = GroupState.EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    static_members: dict[str, str] = field(default_factory=dict)
    """group.instance.id -> member id (KIP-345)."""
    pending_members: dict[str, Timer] = field(default_factory=dict)
    """KIP-394 member ids handed out with MEMBER_ID_REQUIRED, expiring after a session."""
    join_timer: Timer | None = None
    sync_timer: Timer | None = None
    initial_delay_left_ms: int = 0
    in_initial_delay: bool = False
    new_member_added: bool = False
    empty_since_ms: int = 0
    """Wall-clock ms when the group last became Empty (offset retention counts from here)."""

    def transition(self, event: GroupEvent) -> None:
        self.state = next_state(self.state, event)

    def supports_protocols(self, protocol_type: str, protocols: Protocols) -> bool:
        """Kafka's rule: an empty group takes any non-empty offer; otherwise the type must
        match and at least one offered protocol must be supported by every member."""
        if not self.members:
            return bool(protocol_type) and bool(protocols)
        if protocol_type != self.protocol_type:
            return False
        return any(all(m.supports(name) for m in self.members.values()) for name, _ in protocols)

    def select_protocol(self) -> str:
        """The protocol every member supports that most members list first among those."""
        members = list(self.members.values())
        assert members, "select_protocol on an empty group"
        candidates = [
            name for name, _ in members[0].protocols if all(m.supports(name) for m in members)
        ]
        assert candidates, "members share no protocol; supports_protocols should have refused"
        votes: Counter[str] = Counter()
        for m in members:
            votes[next(name for name, _ in m.protocols if name in candidates)] += 1
        return max(candidates, key=lambda name: (votes[name], -candidates.index(name)))

    def max_rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def all_members_joined(self) -> bool:
        return not self.pending_members and all(m.awaiting_join() for m in self.members.values())

    def member_list(self) -> list[dict[str, Any]]:
        """What the leader gets in its JoinGroup answer: every member's metadata."""
        return [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "metadata": m.metadata_for(self.protocol_name),
            }
            for m in self.members.values()
        ]
