"""Classic group membership: JoinGroup, SyncGroup, Heartbeat and LeaveGroup, and their timers.

Kafka's classic protocol, following GroupCoordinator/ClassicGroup in Apache Kafka:

* A new member joins with an empty member id. From JoinGroup v4 (KIP-394) it first gets
  MEMBER_ID_REQUIRED and an id, which stays *pending* for one session timeout; the join with that
  id adds it. Static members (group.instance.id, KIP-345) that come back replace their old
  member id (the old one is fenced: FENCED_INSTANCE_ID) and, in a Stable group whose protocol
  does not change, get their assignment back without a rebalance.
* A join, leave, expiry or protocol change moves the group to PreparingRebalance. The join
  completes when every member has rejoined, or when the rebalance timeout (the largest of the
  members') fires: members that did not rejoin are dropped. A group leaving Empty waits
  `group_initial_rebalance_delay_ms` first, extended by one delay per newcomer, up to the
  rebalance timeout, so that consumers starting together share one rebalance.
* Completing the join bumps the generation (the first is 1: aiokafka sends no LeaveGroup for
  generation 0, KAFKA-NOTES P10), picks the protocol, and answers every joiner; the leader also
  gets all members' metadata, so client-side assignors (range, roundrobin, cooperative-sticky)
  work. The leader's SyncGroup hands out the assignment and the group is Stable. A member that
  does not send SyncGroup within the rebalance timeout is dropped.
* Heartbeats keep members alive; a member silent for its session timeout is removed (aiokafka
  may never send LeaveGroup). While rebalancing, Heartbeat answers REBALANCE_IN_PROGRESS.
* Each member has its own session timer, as in Kafka (its heartbeat expiration operation), so
  it is removed exactly at its deadline; a sweep every 100 ms removed it up to 0.1 s late,
  which lost librdkafka's 0081 test a race (DeleteGroups exactly one session after a close). A
  heartbeat only moves the deadline; the one timer re-arms itself for the rest when it fires
  early, so heartbeats cost no timer churn. A member waiting for its join or sync answer is
  never expired (Kafka's hasSatisfiedHeartbeat); the answer restarts its session.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from kafkito.broker.coordinator.base import CoordinatorBase
from kafkito.broker.coordinator.group import Group, Member, Protocols
from kafkito.broker.coordinator.states import GroupEvent, GroupState
from kafkito.errors import ErrorCode

log = logging.getLogger(__name__)

MIN_SESSION_TIMEOUT_MS = 1000
"""group.min.session.timeout.ms. Kafka uses 6000; an embedded broker for development and tests
accepts shorter sessions so that a dead consumer's partitions move quickly. Override with the
broker setting extra["group.min.session.timeout.ms"]."""
MAX_SESSION_TIMEOUT_MS = 1_800_000
"""group.max.session.timeout.ms, as in Kafka."""


def _empty_join(member_id: str, code: ErrorCode) -> dict[str, Any]:
    return {
        "error_code": code,
        "generation_id": -1,
        "protocol_type": None,
        "protocol_name": None,
        "leader": "",
        "member_id": member_id,
        "members": [],
    }


def _sync_answer(
    code: ErrorCode, group: Group | None = None, assignment: bytes = b""
) -> dict[str, Any]:
    return {
        "error_code": code,
        "protocol_type": group.protocol_type if group else None,
        "protocol_name": group.protocol_name if group else None,
        "assignment": assignment,
    }


class Membership(CoordinatorBase):
    """Members of classic groups: the join and sync phases, sessions and rebalances."""

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()  # futures only; time and timers are self.clock's

    def _touch(self, group: Group, member: Member) -> None:
        """A sign of life: the member's session restarts now."""
        deadline = self.clock.monotonic() + member.session_timeout_ms / 1000
        member.heartbeat_deadline = deadline
        if member.session_timer is not None and member.session_timer_due <= deadline:
            return  # it fires first and re-arms for the rest
        self._arm_session(group, member, deadline)

    def _arm_session(self, group: Group, member: Member, due: float) -> None:
        if member.session_timer is not None:
            member.session_timer.cancel()
        member.session_timer_due = due
        member.session_timer = self.clock.call_later(
            max(0.0, due - self.clock.monotonic()), self._session_due, group, member
        )

    def _session_due(self, group: Group, member: Member) -> None:
        """The member's timer fired: expire it if its deadline has passed."""
        member.session_timer = None
        if self.groups.get(group.group_id) is not group:
            return
        if group.members.get(member.member_id) is not member:
            return  # left, expired or replaced meanwhile
        now = self.clock.monotonic()
        if member.awaiting_join() or member.awaiting_sync():
            # its session restarts with the answer (_touch); look again a session from now
            # in case the answer never comes (the request was dropped with its connection)
            self._arm_session(group, member, now + member.session_timeout_ms / 1000)
            return
        if now < member.heartbeat_deadline:
            self._arm_session(group, member, member.heartbeat_deadline)
            return
        log.info(
            "group %s: member %s missed its %d ms session, removing it",
            group.group_id,
            member.member_id,
            member.session_timeout_ms,
        )
        self._remove_member(group, member)

    @staticmethod
    def _answer_join(member: Member, answer: dict[str, Any]) -> None:
        if member.join_waiter is not None and not member.join_waiter.done():
            member.join_waiter.set_result(answer)
        member.join_waiter = None

    @staticmethod
    def _answer_sync(member: Member, answer: dict[str, Any]) -> None:
        if member.sync_waiter is not None and not member.sync_waiter.done():
            member.sync_waiter.set_result(answer)
        member.sync_waiter = None

    def _validate_member(
        self, group: Group, member_id: str, instance_id: str | None
    ) -> ErrorCode | None:
        if instance_id is not None:
            known = group.static_members.get(instance_id)
            if known is None:
                return ErrorCode.unknown_member_id
            if known != member_id:
                return ErrorCode.fenced_instance_id
            return None
        if member_id not in group.members:
            return ErrorCode.unknown_member_id
        return None

    # -- JoinGroup ------------------------------------------------------------------------

    async def join(
        self,
        *,
        group_id: str,
        member_id: str,
        group_instance_id: str | None,
        require_known_member_id: bool,
        client_id: str,
        client_host: str,
        session_timeout_ms: int,
        rebalance_timeout_ms: int,
        protocol_type: str,
        protocols: Protocols,
    ) -> dict[str, Any]:
        """Answer one JoinGroup (waits for the join phase to complete)."""
        if not group_id:
            return _empty_join(member_id, ErrorCode.invalid_group_id)
        if not self.min_session_timeout_ms <= session_timeout_ms <= MAX_SESSION_TIMEOUT_MS:
            return _empty_join(member_id, ErrorCode.invalid_session_timeout)
        if self._stopping:
            return _empty_join(member_id, ErrorCode.coordinator_not_available)
        if not self.consumer.drop_empty(group_id):
            return _empty_join(member_id, ErrorCode.inconsistent_group_protocol)
        group = self.groups.get(group_id)
        if group is None:
            if member_id:
                return _empty_join(member_id, ErrorCode.unknown_member_id)
            group = self.groups[group_id] = Group(group_id, empty_since_ms=self.wall_ms())
        if group.state is GroupState.DEAD:
            return _empty_join(member_id, ErrorCode.coordinator_not_available)
        if not group.supports_protocols(protocol_type, protocols):
            return _empty_join(member_id, ErrorCode.inconsistent_group_protocol)
        member = Member(
            member_id,
            group_instance_id,
            client_id,
            client_host,
            session_timeout_ms,
            rebalance_timeout_ms,
            protocol_type,
            protocols,
        )
        if not member_id:
            member.member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            if group_instance_id is not None:
                return await self._join_static(group, member)
            if require_known_member_id:
                # KIP-394: hand out the id, remember it for one session, wait for the real join
                pending_id = member.member_id
                group.pending_members[pending_id] = self.clock.call_later(
                    session_timeout_ms / 1000, self._expire_pending, group, pending_id
                )
                return _empty_join(pending_id, ErrorCode.member_id_required)
            return await self._add_and_rebalance(group, member)
        if member_id in group.pending_members:
            group.pending_members.pop(member_id).cancel()
            if group_instance_id is not None:
                return await self._join_static(group, member)
            return await self._add_and_rebalance(group, member)
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not None:
            return _empty_join(member_id, error)
        current = group.members[member_id]
        return await self._rejoin(group, current, member)

    async def _join_static(self, group: Group, member: Member) -> dict[str, Any]:
        assert member.group_instance_id is not None
        old_id = group.static_members.get(member.group_instance_id)
        old = group.members.get(old_id) if old_id is not None else None
        if old is None:
            return await self._add_and_rebalance(group, member)
        # The instance came back with a new member id: fence the old one (KIP-345).
        log.info(
            "group %s: static member %s replaces %s with %s",
            group.group_id,
            member.group_instance_id,
            old.member_id,
            member.member_id,
        )
        self._answer_join(old, _empty_join(old.member_id, ErrorCode.fenced_instance_id))
        self._answer_sync(old, _sync_answer(ErrorCode.fenced_instance_id))
        if old.session_timer is not None:
            old.session_timer.cancel()
            old.session_timer = None
        old_protocol = group.protocol_name
        old_leader = group.leader_id
        members = {}
        for mid, m in group.members.items():  # keep the join order
            members[member.member_id if mid == old.member_id else mid] = (
                member if mid == old.member_id else m
            )
        group.members = members
        group.static_members[member.group_instance_id] = member.member_id
        member.assignment = old.assignment
        if group.leader_id == old.member_id:
            group.leader_id = member.member_id
        self._touch(group, member)
        if group.state is GroupState.STABLE and group.select_protocol() == old_protocol:
            # No rebalance: the member gets the current generation and keeps its assignment.
            # Below JoinGroup v9 (all we serve; KIP-814's skip_assignment is v9+) Apache Kafka
            # answers with the leader id as it was before the replacement and no member list,
            # so a returning static leader acts as a follower: its empty SyncGroup gets the
            # stored assignment back, and the other members' assignments are left alone.
            return {
                "error_code": ErrorCode.none,
                "generation_id": group.generation,
                "protocol_type": group.protocol_type,
                "protocol_name": group.protocol_name,
                "leader": old_leader or "",
                "member_id": member.member_id,
                "members": [],
                "skip_assignment": False,
            }
        return await self._await_join(group, member)

    async def _add_and_rebalance(self, group: Group, member: Member) -> dict[str, Any]:
        if not group.members:
            group.protocol_type = member.protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static_members[member.group_instance_id] = member.member_id
        if group.leader_id is None:
            group.leader_id = member.member_id
        if group.state is GroupState.PREPARING_REBALANCE and group.in_initial_delay:
            group.new_member_added = True
        self._touch(group, member)  # arms its timer (not expired while it awaits the join)
        return await self._await_join(group, member)

    async def _rejoin(self, group: Group, current: Member, update: Member) -> dict[str, Any]:
        """A known member joins again: answer at once if nothing changes, else rebalance."""
        unchanged = current.protocols == update.protocols
        current.protocols = update.protocols
        current.session_timeout_ms = update.session_timeout_ms
        current.rebalance_timeout_ms = update.rebalance_timeout_ms
        current.client_id, current.client_host = update.client_id, update.client_host
        self._touch(group, current)
        is_leader = group.leader_id == current.member_id
        if group.state is GroupState.COMPLETING_REBALANCE and unchanged:
            return self._join_answer(group, current)
        if group.state is GroupState.STABLE and unchanged and not is_leader:
            return self._join_answer(group, current)
        return await self._await_join(group, current)

    def _join_answer(self, group: Group, member: Member) -> dict[str, Any]:
        is_leader = group.leader_id == member.member_id
        return {
            "error_code": ErrorCode.none,
            "generation_id": group.generation,
            "protocol_type": group.protocol_type,
            "protocol_name": group.protocol_name,
            "leader": group.leader_id or "",
            "member_id": member.member_id,
            "members": group.member_list() if is_leader else [],
        }

    async def _await_join(self, group: Group, member: Member) -> dict[str, Any]:
        if member.join_waiter is not None and not member.join_waiter.done():
            # the same member sent JoinGroup again while waiting: the newer request wins
            member.join_waiter.set_result(
                _empty_join(member.member_id, ErrorCode.rebalance_in_progress)
            )
        waiter: asyncio.Future[dict[str, Any]] = self._loop().create_future()
        member.join_waiter = waiter
        self._maybe_prepare_rebalance(group)
        self._try_complete_join(group)
        return await waiter

    def _maybe_prepare_rebalance(self, group: Group) -> None:
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE, GroupState.EMPTY):
            self._prepare_rebalance(group)

    def _prepare_rebalance(self, group: Group) -> None:
        clock = self.clock
        if group.state is GroupState.COMPLETING_REBALANCE:
            for m in group.members.values():
                m.assignment = b""
                self._answer_sync(m, _sync_answer(ErrorCode.rebalance_in_progress))
        if group.sync_timer is not None:
            group.sync_timer.cancel()
            group.sync_timer = None
        was_empty = group.state is GroupState.EMPTY
        group.transition(GroupEvent.REBALANCE)
        if group.join_timer is not None:
            group.join_timer.cancel()
        rebalance_ms = group.max_rebalance_timeout_ms()
        delay_ms = self.settings.group_initial_rebalance_delay_ms
        if was_empty and delay_ms > 0:
            first = min(delay_ms, rebalance_ms)
            group.in_initial_delay = True
            group.new_member_added = False
            group.initial_delay_left_ms = max(0, rebalance_ms - first)
            group.join_timer = clock.call_later(first / 1000, self._initial_delay_done, group)
        else:
            group.in_initial_delay = False
            group.join_timer = clock.call_later(rebalance_ms / 1000, self._complete_join, group)
        log.debug("group %s: preparing rebalance (generation %d)", group.group_id, group.generation)

    def _initial_delay_done(self, group: Group) -> None:
        delay_ms = self.settings.group_initial_rebalance_delay_ms
        if group.new_member_added and group.initial_delay_left_ms > 0:
            group.new_member_added = False
            step = min(delay_ms, group.initial_delay_left_ms)
            group.initial_delay_left_ms -= step
            group.join_timer = self.clock.call_later(step / 1000, self._initial_delay_done, group)
            return
        group.in_initial_delay = False
        self._complete_join(group)

    def _try_complete_join(self, group: Group) -> None:
        if (
            group.state is GroupState.PREPARING_REBALANCE
            and not group.in_initial_delay
            and group.all_members_joined()
        ):
            self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        group.in_initial_delay = False
        if group.state is not GroupState.PREPARING_REBALANCE:
            return
        for member in list(group.members.values()):
            if not member.awaiting_join() and member.group_instance_id is None:
                log.info(
                    "group %s: member %s did not rejoin in time, removing it",
                    group.group_id,
                    member.member_id,
                )
                self._drop(group, member)
        group.generation += 1
        joined = [m for m in group.members.values() if m.awaiting_join()]
        if not joined:
            for m in group.members.values():  # static members that did not come back
                self._drop_static(group, m)
            group.members.clear()
            group.protocol_name = None
            group.leader_id = None
            group.transition(GroupEvent.JOIN_EMPTY)
            group.empty_since_ms = self.wall_ms()
            self._persist_group(group)
            log.info("group %s: empty at generation %d", group.group_id, group.generation)
            return
        group.protocol_name = group.select_protocol()
        if (
            group.leader_id not in group.members
            or not group.members[group.leader_id].awaiting_join()
        ):
            group.leader_id = joined[0].member_id
        group.transition(GroupEvent.JOIN_COMPLETE)
        self._persist_group(group)
        log.info(
            "group %s: generation %d with %d members, protocol %s, leader %s",
            group.group_id,
            group.generation,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )
        for member in joined:
            self._touch(group, member)
            self._answer_join(member, self._join_answer(group, member))
        group.sync_timer = self.clock.call_later(
            group.max_rebalance_timeout_ms() / 1000, self._sync_expired, group, group.generation
        )

    def _drop_static(self, group: Group, member: Member) -> None:
        if member.group_instance_id is not None:
            group.static_members.pop(member.group_instance_id, None)

    def _drop(self, group: Group, member: Member) -> None:
        """Take `member` out of the group, failing whatever it waits for; no state change."""
        self._answer_join(member, _empty_join(member.member_id, ErrorCode.unknown_member_id))
        self._answer_sync(member, _sync_answer(ErrorCode.unknown_member_id))
        group.members.pop(member.member_id, None)
        self._drop_static(group, member)
        if member.session_timer is not None:
            member.session_timer.cancel()
            member.session_timer = None
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _remove_member(self, group: Group, member: Member) -> None:
        """A member left or expired: drop it and rebalance (or finish the join in progress)."""
        self._drop(group, member)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group)
        elif group.state is GroupState.PREPARING_REBALANCE:
            self._try_complete_join(group)

    def _expire_pending(self, group: Group, member_id: str) -> None:
        if group.pending_members.pop(member_id, None) is not None:
            log.info(
                "group %s: pending member %s never joined, forgetting it", group.group_id, member_id
            )
            self._try_complete_join(group)

    def _sync_expired(self, group: Group, generation: int) -> None:
        group.sync_timer = None
        if group.state is not GroupState.COMPLETING_REBALANCE or group.generation != generation:
            return
        late = [m for m in group.members.values() if not m.awaiting_sync()]
        log.info(
            "group %s: %d members sent no SyncGroup for generation %d, removing them",
            group.group_id,
            len(late),
            generation,
        )
        for member in late:
            self._drop(group, member)
        self._prepare_rebalance(group)
        self._try_complete_join(group)

    # -- SyncGroup -------------------------------------------------------------------------

    async def sync(
        self,
        *,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        protocol_type: str | None,
        protocol_name: str | None,
        assignments: dict[str, bytes],
    ) -> dict[str, Any]:
        group = self.groups.get(group_id)
        if group is None:
            return _sync_answer(ErrorCode.unknown_member_id)
        if group.state is GroupState.DEAD:
            return _sync_answer(ErrorCode.coordinator_not_available)
        if (protocol_type is not None and protocol_type != group.protocol_type) or (
            protocol_name is not None and protocol_name != group.protocol_name
        ):
            return _sync_answer(ErrorCode.inconsistent_group_protocol)
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not None:
            return _sync_answer(error)
        if generation_id != group.generation:
            return _sync_answer(ErrorCode.illegal_generation)
        member = group.members[member_id]
        if group.state is GroupState.EMPTY:
            return _sync_answer(ErrorCode.unknown_member_id)
        if group.state is GroupState.PREPARING_REBALANCE:
            return _sync_answer(ErrorCode.rebalance_in_progress)
        self._touch(group, member)
        if group.state is GroupState.STABLE:
            return _sync_answer(ErrorCode.none, group, member.assignment)
        assert group.state is GroupState.COMPLETING_REBALANCE
        self._answer_sync(member, _sync_answer(ErrorCode.rebalance_in_progress))
        waiter: asyncio.Future[dict[str, Any]] = self._loop().create_future()
        member.sync_waiter = waiter
        if member_id == group.leader_id:
            for m in group.members.values():
                m.assignment = assignments.get(m.member_id, b"")
            group.transition(GroupEvent.SYNC_COMPLETE)
            if group.sync_timer is not None:
                group.sync_timer.cancel()
                group.sync_timer = None
            for m in group.members.values():
                self._touch(group, m)
                self._answer_sync(m, _sync_answer(ErrorCode.none, group, m.assignment))
        return await waiter

    # -- Heartbeat and LeaveGroup ------------------------------------------------------------

    def heartbeat(
        self, *, group_id: str, generation_id: int, member_id: str, group_instance_id: str | None
    ) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.unknown_member_id
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        error = self._validate_member(group, member_id, group_instance_id)
        if error is not None:
            return error
        if group.state is GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        member = group.members[member_id]
        if group.state is GroupState.PREPARING_REBALANCE:
            self._touch(group, member)
            return ErrorCode.rebalance_in_progress
        if generation_id != group.generation:
            return ErrorCode.illegal_generation
        self._touch(group, member)
        return ErrorCode.none

    def leave(
        self, group_id: str, leaving: list[tuple[str, str | None]]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """Remove members; (group error, one error per member)."""
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.none, [ErrorCode.unknown_member_id] * len(leaving)
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available, [ErrorCode.coordinator_not_available] * len(
                leaving
            )
        errors = []
        for member_id, instance_id in leaving:
            if instance_id is not None:
                known = group.static_members.get(instance_id)
                if known is None:
                    errors.append(ErrorCode.unknown_member_id)
                    continue
                if member_id and known != member_id:
                    errors.append(ErrorCode.fenced_instance_id)
                    continue
                member_id = known
            elif member_id in group.pending_members:
                group.pending_members.pop(member_id).cancel()
                self._try_complete_join(group)
                errors.append(ErrorCode.none)
                continue
            member = group.members.get(member_id)
            if member is None:
                errors.append(ErrorCode.unknown_member_id)
                continue
            log.info("group %s: member %s leaves", group_id, member_id)
            self._remove_member(group, member)
            errors.append(ErrorCode.none)
        return ErrorCode.none, errors
