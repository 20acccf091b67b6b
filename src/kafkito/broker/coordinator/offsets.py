"""Committed offsets: OffsetCommit validation and writes, OffsetFetch, expiry, OffsetDelete.

Offsets: OffsetCommit is validated as ClassicGroup.validateOffsetCommit does (assign()-mode
commits, generation -1 with no member id, are accepted while the group has no members), then
written through the Journal: acknowledged and visible only after fsync. Offsets of an Empty group
expire `offsets_retention_ms` after the later of the commit and the moment the group emptied.
"""

from __future__ import annotations

import logging

from kafkito.broker.coordinator.base import Committed, CoordinatorBase
from kafkito.broker.coordinator.group import Group
from kafkito.broker.coordinator.journal import Record
from kafkito.broker.coordinator.states import GroupEvent, GroupState
from kafkito.broker.coordinator.subscriptions import CONSUMER_PROTOCOL_TYPE, subscribed_topics
from kafkito.errors import ErrorCode

log = logging.getLogger(__name__)

OFFSET_METADATA_MAX_BYTES = 4096
"""offset.metadata.max.bytes: longer metadata gets OFFSET_METADATA_TOO_LARGE."""


class OffsetStore(CoordinatorBase):
    """Offsets of classic and KIP-848 groups, in `self.offsets`, written through the journal."""

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
            self._touch(group, group.members[member_id])
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
