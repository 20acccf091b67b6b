"""The group coordinator: one object per broker that owns every group and committed offset.

It is assembled from parts, each with one job:

* membership.py   classic groups: JoinGroup/SyncGroup/Heartbeat/LeaveGroup, rebalances, timers
* offsets.py      OffsetCommit/OffsetFetch/OffsetDelete and offset expiry
* persistence.py  replay from and records for the metadata log, compaction
* consumer_group.py  KIP-848 groups (`self.consumer`)

This module adds the lifecycle (start/stop, the ticker that expires offsets; each member's
session has its own timer, in membership.py and consumer_group.py), the
group admin operations (list, delete) and DescribeGroups' view of a group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kafkito.broker.coordinator.base import Committed
from kafkito.broker.coordinator.consumer_group import ConsumerGroups
from kafkito.broker.coordinator.group import Group
from kafkito.broker.coordinator.journal import Journal
from kafkito.broker.coordinator.membership import (
    MAX_SESSION_TIMEOUT_MS,
    MIN_SESSION_TIMEOUT_MS,
    Membership,
    _empty_join,
    _sync_answer,
)
from kafkito.broker.coordinator.offsets import OFFSET_METADATA_MAX_BYTES, OffsetStore
from kafkito.broker.coordinator.persistence import GroupPersistence
from kafkito.broker.coordinator.states import GroupEvent, GroupState
from kafkito.errors import ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

__all__ = [
    "GROUP_AUTHORIZED_OPERATIONS",
    "MAX_SESSION_TIMEOUT_MS",
    "MIN_SESSION_TIMEOUT_MS",
    "OFFSET_METADATA_MAX_BYTES",
    "Committed",
    "Coordinator",
    "describe",
]

log = logging.getLogger(__name__)

GROUP_AUTHORIZED_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
"""READ, DELETE, DESCRIBE, DESCRIBE_CONFIGS and ALTER_CONFIGS: what a group allows when there
is no authorizer (Apache Kafka 4's AclEntry.supportedOperations for GROUP, which gained the two
config operations with KIP-848's group configs)."""


class Coordinator(Membership, OffsetStore, GroupPersistence):
    """Owner of every group and committed offset; lives on the broker's event loop."""

    def __init__(
        self,
        broker: BrokerCore,
        *,
        wall_ms: Callable[[], int] | None = None,
    ) -> None:
        self.broker = broker
        self.settings = broker.settings
        self.clock = broker.clock
        """Deadlines, timers and the ticker's sleep (kafkito.clock; FakeClock in tests)."""
        self.wall_ms = wall_ms or self.clock.wall_ms
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
        self.group_configs: dict[str, dict[str, str]] = {}
        """Group id -> its group configs (GROUP config resource, group_configs.py): kept apart
        from the group, as Kafka does (set before the group exists, kept after DeleteGroups)."""
        self.consumer = ConsumerGroups(self)
        """KIP-848 groups (consumer_group.py); a group id is in `groups` or here, never both."""

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.journal.start()
        self.consumer.start_sessions()
        self._ticker = asyncio.create_task(self._tick(), name="kafkito-group-timers")

    async def stop(self) -> None:
        self._stopping = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(BaseException):
                await self._ticker
            self._ticker = None
        self.consumer.stop_sessions()
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
        for member in group.members.values():
            if member.session_timer is not None:
                member.session_timer.cancel()
                member.session_timer = None

    async def _tick(self) -> None:
        clock = self.clock
        retention_check_s = min(60.0, max(0.1, self.settings.offsets_retention_ms / 4000))
        while True:
            await clock.sleep(retention_check_s)
            self.expire_offsets()

    # -- admin -------------------------------------------------------------------------------

    async def set_group_configs_locked(self, group_id: str, configs: dict[str, str]) -> None:
        """Make `configs` the group's configs once their record is durable; the caller holds
        `topics.admin_lock` (admin changes one at a time, read-modify-write under it). A KIP-848
        member gets the new session timeout and heartbeat interval at its next heartbeat."""
        assert self.broker.topics.admin_lock.locked()
        await self.broker.metalog.append_durable([_group_configs_record(group_id, configs)])
        if configs:
            self.group_configs[group_id] = dict(configs)
        else:
            self.group_configs.pop(group_id, None)
        log.info("group %s: group configs now %s", group_id, sorted(configs.items()))

    def drop_classic(self, group_id: str) -> None:
        """Forget an empty classic group that becomes a consumer group (offsets stay)."""
        group = self.groups.pop(group_id, None)
        assert group is None or not group.members, "only an empty classic group is converted"
        if group is not None:
            self._cancel_timers(group)

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


def _group_configs_record(group_id: str, configs: dict[str, str]) -> dict[str, Any]:
    return {"type": "group_configs", "g": group_id, "configs": dict(configs)}


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
