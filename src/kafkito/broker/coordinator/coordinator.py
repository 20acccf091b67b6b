"""The group coordinator: classic groups (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) and offsets.

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

Offsets: OffsetCommit is validated as ClassicGroup.validateOffsetCommit does (assign()-mode
commits, generation -1 with no member id, are accepted while the group has no members), then
written through the Journal: acknowledged and visible only after fsync. Offsets of an Empty group
expire `offsets_retention_ms` after the later of the commit and the moment the group emptied.

Persistence, as records of the metadata log: `group` (generation and protocol type, so that
generations never repeat after a restart; members are not persisted: after a restart they get
UNKNOWN_MEMBER_ID and rejoin on their own), `offset` (one committed offset), `offset_expired`
and `group_deleted` (tombstones). Timers run on the broker's loop and stop in stop().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kafkito.broker.coordinator.consumer_group import ConsumerGroups
from kafkito.broker.coordinator.group import Group, Member, Protocols
from kafkito.broker.coordinator.journal import Journal, Record
from kafkito.broker.coordinator.states import GroupEvent, GroupState
from kafkito.broker.coordinator.subscriptions import CONSUMER_PROTOCOL_TYPE, subscribed_topics
from kafkito.errors import ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

log = logging.getLogger(__name__)

OFFSET_METADATA_MAX_BYTES = 4096
"""offset.metadata.max.bytes: longer metadata gets OFFSET_METADATA_TOO_LARGE."""
MIN_SESSION_TIMEOUT_MS = 1000
"""group.min.session.timeout.ms. Kafka uses 6000; an embedded broker for development and tests
accepts shorter sessions so that a dead consumer's partitions move quickly. Override with the
broker setting extra["group.min.session.timeout.ms"]."""
MAX_SESSION_TIMEOUT_MS = 1_800_000
"""group.max.session.timeout.ms, as in Kafka."""
SESSION_CHECK_INTERVAL_S = 0.1
"""How often member sessions are checked; expiry is at most this late."""
COMPACT_AFTER_RECORDS = 50_000
"""Compact the metadata log after this many coordinator records (and at least 4x the live
offsets) were appended since the last compaction."""
GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
"""READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS and ALTER_CONFIGS: what a group allows when there
is no authorizer (Apache Kafka 4's AclEntry.supportedOperations for GROUP, which gained the two
config operations with KIP-848's group configs)."""


@dataclass(slots=True)
class Committed:
    """One committed offset, exactly as the client sent it."""

    offset: int
    leader_epoch: int
    metadata: str | None
    commit_ms: int


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


class Coordinator:
    """Owner of every group and committed offset; lives on the broker's event loop."""

    def __init__(
        self,
        broker: BrokerCore,
        *,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.broker = broker
        self.settings = broker.settings
        self.wall_ms = wall_ms
        self.groups: dict[str, Group] = {}
        self.offsets: dict[str, dict[tuple[str, int], Committed]] = {}
        self.journal = Journal(broker.metalog, self._maybe_compact)
        self.min_session_timeout_ms = int(
            self.settings.extra.get("group.min.session.timeout.ms", MIN_SESSION_TIMEOUT_MS)
        )
        self.unstable_offsets: Callable[[str, str, int], bool] | None = None
        """Transactions hook: True while a transaction holds pending offsets (require_stable)."""
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False
        self.consumer = ConsumerGroups(self)
        """KIP-848 groups (consumer_group.py); a group id is in `groups` or here, never both."""

    # -- metadata-log participant -------------------------------------------------------

    def begin_replay(self) -> None:
        self.groups.clear()
        self.offsets.clear()
        self.consumer.begin_replay()

    def replay(self, record: dict[str, Any]) -> bool:
        kind = record.get("type")
        if kind == "group":
            group = self.groups.setdefault(record["g"], Group(record["g"]))
            group.generation = int(record["gen"])
            group.protocol_type = record.get("pt")
            group.empty_since_ms = int(record.get("since", 0))
        elif kind == "offset":
            self.offsets.setdefault(record["g"], {})[(record["t"], int(record["p"]))] = Committed(
                int(record["o"]), int(record["e"]), record["m"], int(record["ts"])
            )
        elif kind == "offset_expired":
            self.offsets.get(record["g"], {}).pop((record["t"], int(record["p"])), None)
        elif kind == "group_deleted":
            self.groups.pop(record["g"], None)
            self.offsets.pop(record["g"], None)
        else:
            return self.consumer.replay(record)
        return True

    def finish_replay(self) -> None:
        now = self.wall_ms()
        for group_id, offsets in self.offsets.items():
            if offsets:
                self.groups.setdefault(group_id, Group(group_id))
        for group_id in self.consumer.groups:
            self.groups.pop(group_id, None)  # its offsets belong to the consumer group
        for group in self.groups.values():
            # members are not persisted: everyone rejoins, so the group is empty from now on
            if not group.empty_since_ms:
                group.empty_since_ms = now

    def live_records(self) -> Iterator[Record]:
        for group in self.groups.values():
            if group.state is not GroupState.DEAD:
                yield self._group_record(group)
        for group_id, offsets in self.offsets.items():
            for (topic, partition), c in offsets.items():
                yield self._offset_record(group_id, topic, partition, c)
        yield from self.consumer.live_records()
        yield from self.journal.pending_records()

    def _group_record(self, group: Group) -> Record:
        since = group.empty_since_ms if group.state is GroupState.EMPTY else 0
        return {
            "type": "group",
            "g": group.group_id,
            "gen": group.generation,
            "pt": group.protocol_type,
            "since": since,
        }

    @staticmethod
    def _offset_record(group_id: str, topic: str, partition: int, c: Committed) -> Record:
        return {
            "type": "offset",
            "g": group_id,
            "t": topic,
            "p": partition,
            "o": c.offset,
            "e": c.leader_epoch,
            "m": c.metadata,
            "ts": c.commit_ms,
        }

    def _persist_group(self, group: Group) -> None:
        """Generation changes need no acknowledgement: the next group commit syncs them."""
        self.broker.metalog.append([self._group_record(group)], sync=False)
        self.journal.records_since_compaction += 1

    def _maybe_compact(self) -> None:
        live = sum(len(o) for o in self.offsets.values())
        if self.journal.records_since_compaction >= max(COMPACT_AFTER_RECORDS, 4 * live):
            log.info(
                "compacting the metadata log after %d group records (%d live offsets)",
                self.journal.records_since_compaction,
                live,
            )
            self.broker.compact_metadata()
            self.journal.records_since_compaction = 0

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.journal.start()
        self._ticker = asyncio.create_task(self._tick(), name="kafkito-group-timers")

    async def stop(self) -> None:
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(BaseException):
                await self._ticker
            self._ticker = None
        for group in self.groups.values():
            self._cancel_timers(group)
            for member in group.members.values():
                self._answer_join(member, _empty_join(member.member_id, ErrorCode.not_coordinator))
                self._answer_sync(member, _sync_answer(ErrorCode.not_coordinator))
        await self.journal.stop()

    def _cancel_timers(self, group: Group) -> None:
        for handle in (group.join_timer, group.sync_timer, *group.pending_members.values()):
            if handle is not None:
                handle.cancel()
        group.join_timer = group.sync_timer = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        retention_check_s = min(60.0, max(0.1, self.settings.offsets_retention_ms / 4000))
        next_retention = loop.time() + retention_check_s
        while True:
            await asyncio.sleep(SESSION_CHECK_INTERVAL_S)
            now = loop.time()
            for group in list(self.groups.values()):
                for member in list(group.members.values()):
                    if member.awaiting_join() or member.awaiting_sync():
                        continue
                    if now > member.heartbeat_deadline and member.member_id in group.members:
                        log.info(
                            "group %s: member %s missed its %d ms session, removing it",
                            group.group_id,
                            member.member_id,
                            member.session_timeout_ms,
                        )
                        self._remove_member(group, member)
            self.consumer.check_sessions(now)
            if now >= next_retention:
                next_retention = now + retention_check_s
                self.expire_offsets()

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _loop() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def _touch(self, member: Member) -> None:
        member.heartbeat_deadline = self._loop().time() + member.session_timeout_ms / 1000

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
                group.pending_members[pending_id] = self._loop().call_later(
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
        self._touch(member)
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
        return await self._await_join(group, member)

    async def _rejoin(self, group: Group, current: Member, update: Member) -> dict[str, Any]:
        """A known member joins again: answer at once if nothing changes, else rebalance."""
        unchanged = current.protocols == update.protocols
        current.protocols = update.protocols
        current.session_timeout_ms = update.session_timeout_ms
        current.rebalance_timeout_ms = update.rebalance_timeout_ms
        current.client_id, current.client_host = update.client_id, update.client_host
        self._touch(current)
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
        loop = self._loop()
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
            group.join_timer = loop.call_later(first / 1000, self._initial_delay_done, group)
        else:
            group.in_initial_delay = False
            group.join_timer = loop.call_later(rebalance_ms / 1000, self._complete_join, group)
        log.debug("group %s: preparing rebalance (generation %d)", group.group_id, group.generation)

    def _initial_delay_done(self, group: Group) -> None:
        delay_ms = self.settings.group_initial_rebalance_delay_ms
        if group.new_member_added and group.initial_delay_left_ms > 0:
            group.new_member_added = False
            step = min(delay_ms, group.initial_delay_left_ms)
            group.initial_delay_left_ms -= step
            group.join_timer = self._loop().call_later(step / 1000, self._initial_delay_done, group)
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
            self._touch(member)
            self._answer_join(member, self._join_answer(group, member))
        group.sync_timer = self._loop().call_later(
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
        self._touch(member)
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
                self._touch(m)
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
            self._touch(member)
            return ErrorCode.rebalance_in_progress
        if generation_id != group.generation:
            return ErrorCode.illegal_generation
        self._touch(member)
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

    # -- offsets ----------------------------------------------------------------------------

    def _validate_commit(
        self,
        group_id: str,
        generation_id: int,
        member_id: str,
        instance_id: str | None,
        api_version: int,
    ) -> ErrorCode | None:
        group = self.groups.get(group_id)
        if group is None:
            if generation_id < 0:
                return None  # a "simple" group: created by the commit
            return (
                ErrorCode.group_id_not_found if api_version >= 9 else ErrorCode.illegal_generation
            )
        if group.state is GroupState.DEAD:
            return ErrorCode.coordinator_not_available
        if generation_id < 0 and group.state is GroupState.EMPTY:
            return None  # assign()-mode consumer or admin, while nobody is a member
        if generation_id >= 0 or member_id or instance_id is not None:
            error = self._validate_member(group, member_id, instance_id)
            if error is not None:
                return error
            if generation_id != group.generation:
                return ErrorCode.illegal_generation
        elif group.state is not GroupState.EMPTY:
            return ErrorCode.unknown_member_id
        if group.state is GroupState.COMPLETING_REBALANCE:
            return ErrorCode.rebalance_in_progress
        return None

    async def commit(
        self,
        *,
        group_id: str,
        generation_id: int,
        member_id: str,
        group_instance_id: str | None,
        api_version: int,
        offsets: list[tuple[str, int, int, int, str | None]],
    ) -> dict[tuple[str, int], ErrorCode]:
        """Commit (topic, partition, offset, leader epoch, metadata) rows; an error per row.

        Returns once the accepted rows are durable. Raises BrokerError if the write failed.
        """
        result: dict[tuple[str, int], ErrorCode] = {}
        if not group_id:
            return {(t, p): ErrorCode.invalid_group_id for t, p, *_ in offsets}
        consumer_group = self.consumer.groups.get(group_id)
        if consumer_group is not None:
            error = self.consumer.validate_commit(
                consumer_group, member_id, generation_id, api_version
            )
        else:
            error = self._validate_commit(
                group_id, generation_id, member_id, group_instance_id, api_version
            )
        if error is not None:
            return {(t, p): error for t, p, *_ in offsets}
        group = self.groups.get(group_id)
        if group is None and consumer_group is None:
            group = self.groups[group_id] = Group(group_id, empty_since_ms=self.wall_ms())
            self._persist_group(group)
        if group is not None and member_id in group.members:
            self._touch(group.members[member_id])
        now = self.wall_ms()
        accepted: list[tuple[tuple[str, int], Committed]] = []
        for topic, partition, offset, epoch, metadata in offsets:
            key = (topic, partition)
            found = self.broker.topics.get(topic)
            if found is None or not 0 <= partition < len(found.partitions):
                result[key] = ErrorCode.unknown_topic_or_partition
            elif metadata is not None and len(metadata.encode()) > OFFSET_METADATA_MAX_BYTES:
                result[key] = ErrorCode.offset_metadata_too_large
            else:
                result[key] = ErrorCode.none
                accepted.append((key, Committed(offset, epoch, metadata, now)))
        if not accepted:
            return result
        records = [self._offset_record(group_id, t, p, c) for (t, p), c in accepted]

        def apply() -> None:
            table = self.offsets.setdefault(group_id, {})
            for key, committed in accepted:
                table[key] = committed

        await self.journal.write(records, apply, group_id)
        return result

    async def fetch(
        self, group_id: str, wanted: list[tuple[str, list[int]]] | None, require_stable: bool
    ) -> list[tuple[str, list[tuple[int, Committed | None, ErrorCode]]]]:
        """Committed offsets of `wanted` (None: every committed partition), per topic."""
        await self.journal.settle(group_id)  # earlier commits of this group are answered first
        table = self.offsets.get(group_id, {})
        if wanted is None:
            by_topic: dict[str, list[int]] = {}
            for topic, partition in sorted(table):
                by_topic.setdefault(topic, []).append(partition)
            wanted = list(by_topic.items())
        answer = []
        for topic, partitions in wanted:
            rows = []
            for partition in partitions:
                code = ErrorCode.none
                unstable = self.unstable_offsets
                if require_stable and unstable is not None and unstable(group_id, topic, partition):
                    code = ErrorCode.unstable_offset_commit
                rows.append((partition, table.get((topic, partition)), code))
            answer.append((topic, rows))
        return answer

    def expire_offsets(self) -> int:
        """Drop offsets of Empty groups past retention, and groups left with nothing."""
        now = self.wall_ms()
        retention = self.settings.offsets_retention_ms
        expired = 0
        for group_id, group in list(self.groups.items()):
            if group.state is not GroupState.EMPTY or self.journal.has_unsynced(group_id):
                continue
            table = self.offsets.get(group_id, {})
            gone = [
                key
                for key, c in table.items()
                if now >= max(c.commit_ms, group.empty_since_ms) + retention
            ]
            records: list[Record] = []
            for topic, partition in gone:
                del table[(topic, partition)]
                records.append(
                    {"type": "offset_expired", "g": group_id, "t": topic, "p": partition}
                )
            expired += len(gone)
            if not table and now >= group.empty_since_ms + retention:
                group.transition(GroupEvent.DELETE)
                del self.groups[group_id]
                self.offsets.pop(group_id, None)
                records = [{"type": "group_deleted", "g": group_id}]
            if records:
                log.info("group %s: %d offsets expired", group_id, len(gone))
                self.broker.metalog.append(records, sync=False)
                self.journal.records_since_compaction += len(records)
        consumer_records = self.consumer.expire_offsets(now, retention)
        if consumer_records:
            expired += sum(r["type"] == "offset_expired" for r in consumer_records)
            self.broker.metalog.append(consumer_records, sync=False)
            self.journal.records_since_compaction += len(consumer_records)
        return expired

    # -- admin -------------------------------------------------------------------------------

    def drop_classic(self, group_id: str) -> None:
        """Forget an empty classic group that becomes a consumer group (offsets stay)."""
        group = self.groups.pop(group_id, None)
        assert group is None or not group.members, "only an empty classic group is converted"
        if group is not None:
            self._cancel_timers(group)

    async def delete_offsets(
        self, group_id: str, topics: list[tuple[str, list[int]]]
    ) -> tuple[ErrorCode, list[tuple[str, list[tuple[int, ErrorCode]]]]]:
        """OffsetDelete (OffsetMetadataManager.deleteOffsets): a group-level error, or an error
        per partition; partitions without a committed offset answer no error. A non-empty
        group may only lose offsets of topics it does not subscribe to, and only if it is a
        `consumer` group (ClassicGroup.validateOffsetDelete). Returns once deletions are durable.
        """
        if not group_id:
            return ErrorCode.invalid_group_id, []
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found, []
        if group.state is not GroupState.EMPTY and group.protocol_type != CONSUMER_PROTOCOL_TYPE:
            return ErrorCode.non_empty_group, []
        subscribed = subscribed_topics(group)
        await self.journal.settle(group_id)  # deletes what every earlier commit wrote
        table = self.offsets.get(group_id, {})
        answer: list[tuple[str, list[tuple[int, ErrorCode]]]] = []
        gone: list[tuple[str, int]] = []
        for topic, partitions in topics:
            rows = []
            for partition in partitions:
                if topic in subscribed:
                    rows.append((partition, ErrorCode.group_subscribed_to_topic))
                    continue
                if (topic, partition) in table:
                    gone.append((topic, partition))
                rows.append((partition, ErrorCode.none))
            answer.append((topic, rows))
        if gone:
            # the tombstone of an expired offset removes it on replay; a deleted one is the same
            records: list[Record] = [
                {"type": "offset_expired", "g": group_id, "t": t, "p": p} for t, p in gone
            ]

            def apply() -> None:
                for key in gone:
                    self.offsets.get(group_id, {}).pop(key, None)

            await self.journal.write(records, apply, group_id)
            log.info("group %s: %d offsets deleted", group_id, len(gone))
        return ErrorCode.none, answer

    def list_groups(self) -> Iterable[Group]:
        return [g for g in self.groups.values() if g.state is not GroupState.DEAD]

    async def delete_group(self, group_id: str) -> ErrorCode:
        if not group_id:
            return ErrorCode.invalid_group_id
        if group_id in self.consumer.groups:
            return await self.consumer.delete(group_id)
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return ErrorCode.group_id_not_found
        if group.state is not GroupState.EMPTY:
            return ErrorCode.non_empty_group
        await self.journal.settle(group_id)
        if self.groups.get(group_id) is not group or group.state is not GroupState.EMPTY:
            return (
                ErrorCode.non_empty_group
                if group_id in self.groups
                else ErrorCode.group_id_not_found
            )
        group.transition(GroupEvent.DELETE)
        self._cancel_timers(group)
        del self.groups[group_id]
        self.offsets.pop(group_id, None)
        await self.journal.write([{"type": "group_deleted", "g": group_id}], lambda: None, group_id)
        log.info("group %s deleted", group_id)
        return ErrorCode.none


def describe(
    group: Group | None, group_id: str, include_authorized_operations: bool
) -> dict[str, Any]:
    """DescribeGroups' view of one group (Kafka's GroupSummary): outside Stable, members are
    shown without metadata but with the assignment they hold (ClassicGroupMember's
    describeNoMetadata), so a group in a rebalance still shows who owns what."""
    operations = GROUP_AUTHORIZED_OPERATIONS if include_authorized_operations else -(2**31)
    if group is None:
        return {
            "error_code": ErrorCode.none,
            "group_id": group_id,
            "group_state": GroupState.DEAD.value,
            "protocol_type": "",
            "protocol_data": "",
            "members": [],
            "authorized_operations": operations,
        }
    stable = group.state is GroupState.STABLE
    return {
        "error_code": ErrorCode.none,
        "group_id": group_id,
        "group_state": group.state.value,
        "protocol_type": group.protocol_type or "",
        "protocol_data": (group.protocol_name or "") if stable else "",
        "members": [
            {
                "member_id": m.member_id,
                "group_instance_id": m.group_instance_id,
                "client_id": m.client_id,
                "client_host": m.client_host,
                "member_metadata": m.metadata_for(group.protocol_name) if stable else b"",
                "member_assignment": m.assignment,
            }
            for m in group.members.values()
        ],
        "authorized_operations": operations,
    }
