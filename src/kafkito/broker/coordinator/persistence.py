"""The coordinator's part in the metadata log: replay at start-up, live records for
compaction, and the records it appends.

Persistence, as records of the metadata log: `group` (generation and protocol type, so that
generations never repeat after a restart; members are not persisted: after a restart they get
UNKNOWN_MEMBER_ID and rejoin on their own), `offset` (one committed offset), `offset_expired`
and `group_deleted` (tombstones); `group_configs` (a group's GROUP-resource configs, the whole
set; kept apart from the group, so `group_deleted` leaves them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from kafkito.broker.coordinator.base import Committed, CoordinatorBase
from kafkito.broker.coordinator.group import Group
from kafkito.broker.coordinator.journal import Record
from kafkito.broker.coordinator.states import GroupState

log = logging.getLogger(__name__)

COMPACT_AFTER_RECORDS = 50_000
"""Compact the metadata log after this many coordinator records (and at least 4x the live
offsets) were appended since the last compaction."""


class GroupPersistence(CoordinatorBase):
    """Metadata-log participant: `begin_replay`/`replay`/`finish_replay`/`live_records`."""

    def begin_replay(self) -> None:
        self.groups.clear()
        self.offsets.clear()
        self.group_configs.clear()
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
        elif kind == "group_configs":
            configs = {str(k): str(v) for k, v in record["configs"].items()}
            if configs:
                self.group_configs[record["g"]] = configs
            else:
                self.group_configs.pop(record["g"], None)
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
        for group_id, configs in self.group_configs.items():
            yield {"type": "group_configs", "g": group_id, "configs": dict(configs)}
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
