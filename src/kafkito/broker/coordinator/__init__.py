"""The group coordinator: consumer groups and committed offsets for the embedded broker.

* states.py       the classic group state machine, as a transition table
* group.py        a group's members and the pure rules on them (protocol choice)
* journal.py      group commit of coordinator records into the metadata log (fsync, then ack)
* coordinator.py  the Coordinator: lifecycle, the offsets' ticker, group admin, DescribeGroups;
                  assembled from the parts below (base.py: the state they share)
* membership.py   classic groups: JoinGroup/SyncGroup/Heartbeat/LeaveGroup, rebalances
* offsets.py      OffsetCommit/OffsetFetch/OffsetDelete, offset expiry
* persistence.py  replay from and records for the metadata log, compaction
* consumer_group.py  KIP-848 groups (ConsumerGroupHeartbeat): epochs, reconciliation, sessions
* consumer_model.py  their data and member state table; consumer_rules.py the request checks;
                  consumer_records.py the `cgroup` record and the wire's assignment shape
* assignors.py    the server-side assignors of KIP-848 groups: uniform and range

kafkito.broker.assembly attaches the coordinator to a new BrokerCore with `install`.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from kafkito.broker.coordinator.coordinator import Coordinator
from kafkito.broker.coordinator.states import GroupEvent, GroupState
from kafkito.errors import BrokerError, ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

__all__ = ["Coordinator", "GroupEvent", "GroupState", "coordinator_of", "install"]

_COORDINATORS: weakref.WeakKeyDictionary[BrokerCore, Coordinator] = weakref.WeakKeyDictionary()


def install(broker: BrokerCore) -> None:
    """Attach a coordinator to a fresh BrokerCore (called by kafkito.broker.assembly)."""
    coordinator = Coordinator(broker)
    _COORDINATORS[broker] = coordinator
    broker.participants.append(coordinator)


def coordinator_of(broker: BrokerCore) -> Coordinator:
    """The broker's coordinator; BrokerError(COORDINATOR_NOT_AVAILABLE) if none was installed."""
    coordinator = _COORDINATORS.get(broker)
    if coordinator is None:
        raise BrokerError(ErrorCode.coordinator_not_available, "no group coordinator installed")
    return coordinator
