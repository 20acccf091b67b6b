"""What the group coordinator's parts share: its state, and the few methods one part calls
on another.

The coordinator is one object on the broker's event loop, written as parts that each own one
job (membership.py, offsets.py, persistence.py) and are combined in coordinator.py. This base
declares the state they all read and write, so that each part type-checks on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kafkito.broker.coordinator.journal import Record

if TYPE_CHECKING:
    from kafkito.broker.coordinator.consumer_group import ConsumerGroups
    from kafkito.broker.coordinator.group import Group, Member
    from kafkito.broker.coordinator.journal import Journal
    from kafkito.broker.core import BrokerCore
    from kafkito.broker.settings import BrokerSettings
    from kafkito.clock import Clock
    from kafkito.errors import ErrorCode


@dataclass(slots=True)
class Committed:
    """One committed offset, exactly as the client sent it."""

    offset: int
    leader_epoch: int
    metadata: str | None
    commit_ms: int


class CoordinatorBase:
    """The state every part of the coordinator shares (set in Coordinator.__init__)."""

    broker: BrokerCore
    settings: BrokerSettings
    clock: Clock
    wall_ms: Callable[[], int]
    groups: dict[str, Group]
    offsets: dict[str, dict[tuple[str, int], Committed]]
    group_configs: dict[str, dict[str, str]]
    journal: Journal
    consumer: ConsumerGroups
    min_session_timeout_ms: int
    unstable_offsets: Callable[[str, str, int], bool] | None
    _stopping: bool

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

    if TYPE_CHECKING:
        # Implemented by one part, called by another.
        def _touch(self, group: Group, member: Member) -> None: ...

        def _validate_member(
            self, group: Group, member_id: str, instance_id: str | None
        ) -> ErrorCode | None: ...

        def _persist_group(self, group: Group) -> None: ...
