"""KIP-848 consumer groups: ConsumerGroupHeartbeat, the server-side assignment, reconciliation.

Theory of operation (Apache Kafka's GroupMetadataManager, ConsumerGroup and
CurrentAssignmentBuilder, in the small):

* Three epochs. The *group epoch* goes up whenever what the assignment depends on changes: a
  member joins, leaves, expires or changes its subscription, or a subscribed topic gains
  partitions or is re-created. The *assignment epoch* is the group epoch the current *target
  assignment* was computed at (by the assignor, assignors.py, right in the heartbeat that saw
  the change). Each member has a *member epoch*: the target epoch it has caught up with.
* No stop-the-world. Members are never asked to rejoin together. Each heartbeat moves its
  member one step towards its target, by the member state table below: first the member gives
  up (revokes) what its target no longer holds, keeping its epoch; once it reports the revoked
  partitions gone, it takes the new epoch and whichever of its new partitions nobody else owns;
  the rest arrive on later heartbeats as their previous owners revoke them. So a partition is
  never owned by two members, and members whose assignment did not change keep consuming.
* Sessions. Each member has one timer (`_arm`), due at its session's end or, while it must
  revoke partitions, at its rebalance timeout if that comes first: it is removed exactly at
  its deadline, as Kafka's timers do (a 100 ms sweep did it up to 0.1 s late).
* Membership. A member joins with epoch 0 (and, from v1, its own member id), leaves with -1; a
  static member (instance id, KIP-345) leaves with -2 and keeps its partitions for one session
  timeout, so that its restart moves nothing: the new member id that comes back with the same
  instance id takes over assignment and epoch. Another live member with that instance id gets
  UNRELEASED_INSTANCE_ID. A member silent for `group.consumer.session.timeout.ms` is removed;
  one that keeps partitions it was told to revoke past its rebalance timeout is removed too.
* Errors, as Kafka: FENCED_MEMBER_EPOCH for an epoch the member cannot have (it rejoins with 0);
  UNKNOWN_MEMBER_ID, GROUP_ID_NOT_FOUND (also when the group is a classic group with members:
  a group speaks one protocol), UNSUPPORTED_ASSIGNOR, INVALID_REQUEST with Kafka's messages.
  OffsetCommit v9+ carries the member epoch: a different one is STALE_MEMBER_EPOCH.
* Group state is derived, as in Kafka: Empty (no members), Assigning (the group epoch is ahead
  of the target), Reconciling (some member is not yet at the target), Stable.
* Persistence: each change writes one `cgroup` record (the whole group: epochs, target,
  members with their epochs and assignments) through the journal, and the heartbeat is
  answered after its fsync; `cgroup_deleted` removes it. After a restart members come back
  with their epochs and carry on, their sessions counted from the restart.

The parts: consumer_model.py (the group and member data, the member state table, Refused),
consumer_rules.py (request, epoch and regex checks), consumer_records.py (the `cgroup` record
and the wire's assignment shape); this module is the coordinator's logic on them (the
heartbeat, reconciliation, sessions, admin and describe).
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kafkito.broker.coordinator.assignors import ASSIGNORS, Assignment, assign
from kafkito.broker.coordinator.consumer_model import (
    LEAVE_EPOCH,
    STATIC_LEAVE_EPOCH,
    ConsumerGroup,
    ConsumerMember,
    GroupState,
    MemberEvent,
    MemberState,
    Refused,
)
from kafkito.broker.coordinator.consumer_records import (
    group_from_record,
    group_record,
    named_assignment,
    wire_assignment,
)
from kafkito.broker.coordinator.consumer_rules import (
    REGEX_MATCHES_MAX,
    check_epoch,
    valid_regex,
    validate_heartbeat,
)
from kafkito.broker.coordinator.journal import Record
from kafkito.errors import ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.coordinator.coordinator import Coordinator

__all__ = ["ConsumerGroups", "GroupState", "Refused"]

log = logging.getLogger(__name__)

SESSION_TIMEOUT_MS = 45_000
"""group.consumer.session.timeout.ms, Kafka's default (broker setting extra[...] overrides)."""
HEARTBEAT_INTERVAL_MS = 5_000
"""group.consumer.heartbeat.interval.ms, Kafka's default (extra[...] overrides)."""
MAX_GROUP_SIZE = 2**31 - 1
"""group.consumer.max.size, as in Kafka."""
MEMBER_TYPE_CONSUMER = 1
"""ConsumerGroupDescribe v1 member_type: 1 for a member of the consumer protocol."""


class ConsumerGroups:
    """Every KIP-848 group of one broker; owned and driven by the Coordinator."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        extra = coordinator.settings.extra
        self.session_timeout_ms = int(
            extra.get("group.consumer.session.timeout.ms", SESSION_TIMEOUT_MS)
        )
        """The broker's value; a group's `consumer.session.timeout.ms` config overrides it."""
        self.heartbeat_interval_ms = int(
            extra.get("group.consumer.heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
        )
        self.groups: dict[str, ConsumerGroup] = {}
        self._regex_matches: dict[tuple[str, str], bool] = {}

    def session_timeout_ms_of(self, group_id: str) -> int:
        """The group's `consumer.session.timeout.ms` config, else the broker's."""
        value = self.coordinator.group_configs.get(group_id, {}).get("consumer.session.timeout.ms")
        return self.session_timeout_ms if value is None else int(value.strip())

    def heartbeat_interval_ms_of(self, group_id: str) -> int:
        """The group's `consumer.heartbeat.interval.ms` config, else the broker's."""
        configs = self.coordinator.group_configs.get(group_id, {})
        value = configs.get("consumer.heartbeat.interval.ms")
        return self.heartbeat_interval_ms if value is None else int(value.strip())

    # -- persistence ---------------------------------------------------------------------

    def begin_replay(self) -> None:
        self.groups.clear()

    def replay(self, record: Record) -> bool:
        kind = record.get("type")
        if kind == "cgroup":
            group = group_from_record(record)
            self.groups[group.group_id] = group
        elif kind == "cgroup_deleted":
            self.groups.pop(record["g"], None)
        else:
            return False
        return True

    def live_records(self) -> Iterator[Record]:
        for group in self.groups.values():
            yield group_record(group)

    async def _persist(self, group: ConsumerGroup) -> None:
        """Write the group and wait for its fsync: the answer never runs ahead of the disk."""
        await self.coordinator.journal.write([group_record(group)], lambda: None, group.group_id)

    def _persist_nowait(self, group: ConsumerGroup) -> None:
        self.coordinator.broker.metalog.append([group_record(group)], sync=False)
        self.coordinator.journal.records_since_compaction += 1

    # -- the heartbeat -------------------------------------------------------------------

    async def heartbeat(
        self,
        *,
        api_version: int,
        group_id: str,
        member_id: str,
        member_epoch: int,
        instance_id: str | None,
        rack_id: str | None,
        rebalance_timeout_ms: int,
        subscribed: tuple[str, ...] | None,
        regex: str | None,
        server_assignor: str | None,
        owned: Assignment | None,
        client_id: str,
        client_host: str,
    ) -> dict[str, Any]:
        """Answer one ConsumerGroupHeartbeat (a dict for the response, errors included)."""
        try:
            validate_heartbeat(
                api_version, group_id, member_id, member_epoch, instance_id, rack_id,
                rebalance_timeout_ms, subscribed, regex, server_assignor, owned,
            )  # fmt: skip
            if member_epoch in (LEAVE_EPOCH, STATIC_LEAVE_EPOCH):
                return await self._leave(group_id, member_id, member_epoch, instance_id)
            group = self._group_for(group_id, create=member_epoch == 0)
            before = group_record(group)
            if member_epoch == 0:
                if not member_id:  # v0: the coordinator names the member
                    member_id = str(uuid.uuid4())
                member = self._join(group, member_id, instance_id)
            else:
                member = self._known_member(group, member_id, instance_id)
                check_epoch(member, member_epoch, owned)
            loop_now = self.coordinator.clock.monotonic()
            member.session_deadline = loop_now + self.session_timeout_ms_of(group_id) / 1000
            self._arm(group, member)
            joined = member.member_id not in group.target and member_epoch == 0
            changed = self._update(member, rack_id, rebalance_timeout_ms, subscribed, regex)
            if self._refresh_topics(group) or changed or joined:
                group.epoch += 1  # once per heartbeat, whatever changed: Kafka's epochs
            member.client_id, member.client_host = client_id, client_host
            if server_assignor is not None:
                member.server_assignor = server_assignor
            self._maybe_assign(group)
            assigned_before = member.assigned
            self._reconcile(group, member, owned, loop_now)
            self._arm(group, member)  # a revocation's deadline may come first
            if group_record(group) != before:
                await self._persist(group)
        except Refused as exc:
            return {
                "throttle_time": 0,
                "error_code": exc.code,
                "error_message": exc.message,
                "member_id": None,
                "member_epoch": 0,
                "heartbeat_interval": 0,
                "assignment": None,
            }
        # Kafka sends the assignment to a joining member and whenever it changed, nothing else
        send_assignment = member_epoch == 0 or member.assigned != assigned_before
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "error_message": None,
            "member_id": member.member_id,
            "member_epoch": member.epoch,
            "heartbeat_interval": self.heartbeat_interval_ms_of(group_id),
            "assignment": wire_assignment(member.assigned) if send_assignment else None,
        }

    def _group_for(self, group_id: str, *, create: bool) -> ConsumerGroup:
        group = self.groups.get(group_id)
        if group is not None:
            return group
        classic = self.coordinator.groups.get(group_id)
        if classic is not None and classic.members:
            # A group speaks one protocol: Kafka's error when a consumer-protocol member meets
            # a classic group it cannot take over.
            raise Refused(
                ErrorCode.group_id_not_found, f"Group {group_id} is not a consumer group."
            )
        if not create:
            raise Refused(ErrorCode.group_id_not_found, f"Consumer group {group_id} not found.")
        if classic is not None:
            # An empty classic group (committed offsets only) becomes a consumer group; its
            # offsets stay, as in Kafka's offline upgrade.
            self.coordinator.drop_classic(group_id)
        group = self.groups[group_id] = ConsumerGroup(
            group_id, empty_since_ms=self.coordinator.wall_ms()
        )
        return group

    def _join(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None
    ) -> ConsumerMember:
        if instance_id is not None:
            old_id = group.static_members.get(instance_id)
            old = group.members.get(old_id) if old_id is not None else None
            if old is not None and old.member_id != member_id:
                if old.epoch != STATIC_LEAVE_EPOCH:
                    raise Refused(
                        ErrorCode.unreleased_instance_id,
                        f"Static member {member_id} with instance id {instance_id} cannot join "
                        f"the group because the instance id is owned by {old.member_id} member.",
                    )
                # The instance is back under a new member id: it takes over the old member's
                # place (assignment, epoch, target) without a rebalance.
                del group.members[old.member_id]
                old.member_id = member_id
                old.epoch = old.epoch_before_leave
                group.members[member_id] = old
                group.static_members[instance_id] = member_id
                if old_id in group.target:
                    group.target[member_id] = group.target.pop(old_id)
                log.info(
                    "group %s: static member %s is back as %s",
                    group.group_id,
                    instance_id,
                    member_id,
                )
                return old
        member = group.members.get(member_id)
        if member is None:
            if len(group.members) >= MAX_GROUP_SIZE:
                raise Refused(ErrorCode.group_max_size_reached, "The group is full.")
            member = group.members[member_id] = ConsumerMember(member_id, instance_id)
            if instance_id is not None:
                group.static_members[instance_id] = member_id
            log.info("group %s: member %s joins (epoch %d)", group.group_id, member_id, group.epoch)
            return member
        if member.epoch == STATIC_LEAVE_EPOCH:  # a static member back under the same id
            member.epoch = member.epoch_before_leave
            return member
        # A known member rejoins with epoch 0 (after a fence): it has given up everything.
        member.assigned = member.revoking = frozenset()
        member.previous_epoch, member.epoch = -1, 0
        member.state = MemberState.STABLE
        member.revoke_deadline = None
        return member

    def _known_member(
        self, group: ConsumerGroup, member_id: str, instance_id: str | None
    ) -> ConsumerMember:
        if instance_id is not None:
            known = group.static_members.get(instance_id)
            if known is None:
                raise Refused(
                    ErrorCode.unknown_member_id,
                    f"Instance id {instance_id} is unknown in group {group.group_id}.",
                )
            if known != member_id:
                raise Refused(
                    ErrorCode.fenced_instance_id,
                    f"Static member {member_id} with instance id {instance_id} was fenced by "
                    f"member {known}.",
                )
        member = group.members.get(member_id)
        if member is None:
            raise Refused(
                ErrorCode.unknown_member_id,
                f"Member {member_id} is not a member of group {group.group_id}.",
            )
        return member

    def _update(
        self,
        member: ConsumerMember,
        rack_id: str | None,
        rebalance_timeout_ms: int,
        subscribed: tuple[str, ...] | None,
        regex: str | None,
    ) -> bool:
        """Apply the fields the heartbeat changed (null or -1 means unchanged); True when the
        subscription changed (the group epoch must go up)."""
        if rack_id is not None:
            member.rack_id = rack_id
        if rebalance_timeout_ms >= 0:
            member.rebalance_timeout_ms = rebalance_timeout_ms
        changed = False
        if subscribed is not None and tuple(sorted(subscribed)) != member.subscribed:
            member.subscribed, changed = tuple(sorted(subscribed)), True
        if regex is not None and regex != (member.regex or ""):
            member.regex, changed = (regex or None), True
        return changed

    def _subscribed_ids(self, member: ConsumerMember) -> frozenset[uuid.UUID]:
        registry = self.coordinator.broker.topics
        ids = set()
        for name in member.subscribed:
            topic = registry.get(name)
            if topic is not None:
                ids.add(topic.topic_id)
        if member.regex:
            pattern = valid_regex(member.regex)
            matches = self._regex_matches
            if len(matches) > REGEX_MATCHES_MAX:
                matches.clear()
            for topic in list(registry.by_name.values()):
                key = (member.regex, topic.name)
                if key not in matches:  # each pattern meets each topic name once
                    matches[key] = pattern.fullmatch(topic.name) is not None
                if matches[key] and not topic.internal:
                    ids.add(topic.topic_id)
        return frozenset(ids)

    def _refresh_topics(self, group: ConsumerGroup) -> bool:
        """True when a subscribed topic appeared, grew, or was re-created since the target."""
        registry = self.coordinator.broker.topics
        seen: dict[str, tuple[str, int]] = {}
        for member in group.members.values():
            for topic_id in self._subscribed_ids(member):
                topic = registry.by_id[topic_id]
                seen[topic.name] = (str(topic.topic_id), len(topic.partitions))
        if seen != group.topics:
            group.topics = seen
            return True
        return False

    def _maybe_assign(self, group: ConsumerGroup) -> None:
        if group.epoch == group.assignment_epoch and set(group.target) == set(group.members):
            return
        votes = Counter(m.server_assignor for m in group.members.values() if m.server_assignor)
        group.assignor = votes.most_common(1)[0][0] if votes else ASSIGNORS[0]
        subscriptions = {m.member_id: self._subscribed_ids(m) for m in group.members.values()}
        partitions = {uuid.UUID(tid): count for tid, count in group.topics.values()}
        group.target = assign(group.assignor, subscriptions, partitions, group.target)
        group.assignment_epoch = group.epoch
        log.info(
            "group %s: target assignment at epoch %d by %s for %d members",
            group.group_id,
            group.epoch,
            group.assignor,
            len(group.members),
        )

    def _reconcile(
        self, group: ConsumerGroup, member: ConsumerMember, owned: Assignment | None, now: float
    ) -> None:
        """Move `member` one step towards its target (Kafka's CurrentAssignmentBuilder)."""
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            if owned is None or owned & member.revoking:
                return  # still revoking; the rebalance timeout watches it
            member.revoking = frozenset()
            member.revoke_deadline = None
        elif member.epoch == group.assignment_epoch and member.state is MemberState.STABLE:
            return
        target = group.target.get(member.member_id, frozenset())
        kept = member.assigned & target
        dropped = member.assigned - target
        if dropped:
            member.assigned, member.revoking = kept, dropped
            member.revoke_deadline = now + member.rebalance_timeout_ms / 1000
            member.transition(MemberEvent.REVOKE)
            return
        free = (target - kept) - group.owned_by_others(member.member_id)
        if member.epoch != group.assignment_epoch:
            member.previous_epoch, member.epoch = member.epoch, group.assignment_epoch
        member.assigned = kept | free
        member.transition(
            MemberEvent.CATCH_UP if member.assigned == target else MemberEvent.WAIT_RELEASE
        )

    async def _leave(
        self, group_id: str, member_id: str, epoch: int, instance_id: str | None
    ) -> dict[str, Any]:
        group = self._group_for(group_id, create=False)
        member = self._known_member(group, member_id, instance_id)
        if epoch == STATIC_LEAVE_EPOCH:
            # The static member will be back: it keeps its partitions for one session.
            if member.epoch != STATIC_LEAVE_EPOCH:
                member.epoch_before_leave = member.epoch
            member.epoch = STATIC_LEAVE_EPOCH
            log.info("group %s: static member %s leaves for now", group_id, member_id)
        else:
            log.info("group %s: member %s leaves", group_id, member_id)
            self._remove(group, member)
        await self._persist(group)
        return {
            "throttle_time": 0,
            "error_code": ErrorCode.none,
            "error_message": None,
            "member_id": member_id,
            "member_epoch": epoch,
            "heartbeat_interval": 0,
            "assignment": None,
        }

    def _remove(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        if member.timer is not None:
            member.timer.cancel()
            member.timer = None
        group.members.pop(member.member_id, None)
        group.target.pop(member.member_id, None)
        instance_id = member.instance_id
        if instance_id is not None and group.static_members.get(instance_id) == member.member_id:
            del group.static_members[instance_id]
        group.epoch += 1
        if not group.members:
            group.empty_since_ms = self.coordinator.wall_ms()

    # -- timers, offsets, admin ------------------------------------------------------------

    def start_sessions(self) -> None:
        """At start-up: every member (replayed from the metadata log) gets a full session from
        now, as Kafka does after a coordinator moves, and its timer."""
        now = self.coordinator.clock.monotonic()
        for group in self.groups.values():
            session_ms = self.session_timeout_ms_of(group.group_id)
            for member in group.members.values():
                if member.session_deadline is None:
                    member.session_deadline = now + session_ms / 1000
                self._arm(group, member)

    def stop_sessions(self) -> None:
        for group in self.groups.values():
            for member in group.members.values():
                if member.timer is not None:
                    member.timer.cancel()
                    member.timer = None

    def _arm(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        """Make sure the member's timer fires by its nearer deadline (session, or revocation's
        rebalance timeout). A heartbeat only moves the deadline: the one timer re-arms itself
        for the rest when it fires early, so heartbeats cost no timer churn."""
        deadlines = [d for d in (member.session_deadline, member.revoke_deadline) if d is not None]
        if not deadlines:
            return
        due = min(deadlines)
        if member.timer is not None:
            if member.timer_due <= due:
                return
            member.timer.cancel()
        clock = self.coordinator.clock
        member.timer_due = due
        member.timer = clock.call_later(max(0.0, due - clock.monotonic()), self._due, group, member)

    def _due(self, group: ConsumerGroup, member: ConsumerMember) -> None:
        """A member's timer fired: remove it if past its session, or past its rebalance timeout
        while revoking (Kafka's session and rebalance timers), else re-arm."""
        member.timer = None
        if self.groups.get(group.group_id) is not group:
            return
        if group.members.get(member.member_id) is not member:
            return  # left or removed meanwhile
        now = self.coordinator.clock.monotonic()
        session_ms = self.session_timeout_ms_of(group.group_id)
        if member.session_deadline is not None and now >= member.session_deadline:
            reason = f"missed its {session_ms} ms session"
        elif member.revoke_deadline is not None and now >= member.revoke_deadline:
            reason = f"did not revoke within {member.rebalance_timeout_ms} ms"
        else:
            self._arm(group, member)
            return
        log.info("group %s: member %s %s, removing it", group.group_id, member.member_id, reason)
        self._remove(group, member)
        self._persist_nowait(group)

    def validate_commit(
        self, group: ConsumerGroup, member_id: str, member_epoch: int, api_version: int
    ) -> ErrorCode | None:
        """ConsumerGroup.validateOffsetCommit: the member must exist at exactly its epoch."""
        if member_epoch < 0 and not group.members:
            return None  # an admin or assign()-mode commit while nobody is a member
        member = group.members.get(member_id)
        if member is None:
            return ErrorCode.unknown_member_id
        if api_version < 9:
            return ErrorCode.unsupported_version
        if member_epoch != member.epoch:
            return ErrorCode.stale_member_epoch
        return None

    def validate_fetch(
        self, group: ConsumerGroup, member_id: str | None, member_epoch: int
    ) -> ErrorCode | None:
        """ConsumerGroup.validateOffsetFetch: an admin (no member id, epoch -1) may always read."""
        if member_id is None and member_epoch < 0:
            return None
        member = group.members.get(member_id or "")
        if member is None:
            return ErrorCode.unknown_member_id
        if member_epoch != member.epoch:
            return ErrorCode.stale_member_epoch
        return None

    def expire_offsets(self, now_ms: int, retention_ms: int) -> list[Record]:
        """Offsets of empty groups past retention, then groups left with nothing, as Kafka
        does for consumer groups; returns the tombstones to append."""
        records: list[Record] = []
        for group_id, group in list(self.groups.items()):
            if group.members or self.coordinator.journal.has_unsynced(group_id):
                continue
            table = self.coordinator.offsets.get(group_id, {})
            gone = [
                key
                for key, c in table.items()
                if now_ms >= max(c.commit_ms, group.empty_since_ms) + retention_ms
            ]
            for topic, partition in gone:
                del table[(topic, partition)]
                records.append(
                    {"type": "offset_expired", "g": group_id, "t": topic, "p": partition}
                )
            if not table and now_ms >= group.empty_since_ms + retention_ms:
                del self.groups[group_id]
                self.coordinator.offsets.pop(group_id, None)
                records += [{"type": "cgroup_deleted", "g": group_id}]
                records += [{"type": "group_deleted", "g": group_id}]
                log.info("consumer group %s: empty past retention, deleted", group_id)
        return records

    async def delete(self, group_id: str) -> ErrorCode:
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.group_id_not_found
        if group.members:
            return ErrorCode.non_empty_group
        del self.groups[group_id]
        self.coordinator.offsets.pop(group_id, None)
        await self.coordinator.journal.write(
            [{"type": "cgroup_deleted", "g": group_id}, {"type": "group_deleted", "g": group_id}],
            lambda: None,
            group_id,
        )
        log.info("consumer group %s deleted", group_id)
        return ErrorCode.none

    def drop_empty(self, group_id: str) -> bool:
        """A classic JoinGroup for an empty consumer group turns it into a classic group (its
        offsets stay); False when the group has members (the join is refused)."""
        group = self.groups.get(group_id)
        if group is None:
            return True
        if group.members:
            return False
        del self.groups[group_id]
        self.coordinator.broker.metalog.append(
            [{"type": "cgroup_deleted", "g": group_id}], sync=False
        )
        return True

    def describe(self, group_id: str, include_operations: bool, operations: int) -> dict[str, Any]:
        """ConsumerGroupDescribe's view of one group."""
        group = self.groups.get(group_id)
        if group is None:
            message = (
                f"Group {group_id} is not a consumer group."
                if group_id in self.coordinator.groups
                else f"Group {group_id} not found."
            )
            return {
                "error_code": ErrorCode.group_id_not_found,
                "error_message": message,
                "group_id": group_id,
                "group_state": "",
                "group_epoch": 0,
                "assignment_epoch": 0,
                "assignor_name": "",
                "members": [],
                "authorized_operations": -(2**31),
            }
        names = {t.topic_id: t.name for t in self.coordinator.broker.topics.by_name.values()}
        return {
            "error_code": ErrorCode.none,
            "error_message": None,
            "group_id": group_id,
            "group_state": group.state().value,
            "group_epoch": group.epoch,
            "assignment_epoch": group.assignment_epoch,
            "assignor_name": group.assignor,
            "members": [
                {
                    "member_id": m.member_id,
                    "instance_id": m.instance_id,
                    "rack_id": m.rack_id,
                    "member_epoch": m.epoch,
                    "client_id": m.client_id,
                    "client_host": m.client_host,
                    "subscribed_topic_names": list(m.subscribed),
                    "subscribed_topic_regex": m.regex,
                    "assignment": {"topic_partitions": named_assignment(m.assigned, names)},
                    "target_assignment": {
                        "topic_partitions": named_assignment(
                            group.target.get(m.member_id, frozenset()), names
                        )
                    },
                    "member_type": MEMBER_TYPE_CONSUMER,
                }
                for m in group.members.values()
            ],
            "authorized_operations": operations if include_operations else -(2**31),
        }
