"""The transaction coordinator of the embedded broker (exactly-once producers).

* states.py       the transaction state machine, as a transition table
* coordinator.py  InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn,
                  TxnOffsetCommit, EndTxn, timeouts, markers, the journal and recovery

Storage side: storage/txnindex.py (open and aborted transactions per partition, the LSO, the
`.txnindex` files); protocol/control.py (the marker batches).

kafkito.broker.assembly attaches it with `install`, after the group coordinator and the
producer state, whose state a transaction's recovery uses: pending offsets go to the group
coordinator, producer ids come from the producer-state allocator.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from kafkito.broker.txn.coordinator import TxnCoordinator, TxnMetadata
from kafkito.broker.txn.states import TxnEvent, TxnState
from kafkito.errors import BrokerError, ErrorCode

if TYPE_CHECKING:
    from kafkito.broker.core import BrokerCore

__all__ = ["TxnCoordinator", "TxnEvent", "TxnMetadata", "TxnState", "install", "transactions_of"]

_COORDINATORS: weakref.WeakKeyDictionary[BrokerCore, TxnCoordinator] = weakref.WeakKeyDictionary()


def install(broker: BrokerCore) -> None:
    """Attach a transaction coordinator to a fresh BrokerCore (kafkito.broker.assembly)."""
    coordinator = TxnCoordinator(broker)
    _COORDINATORS[broker] = coordinator
    broker.transactions = coordinator
    broker.participants.append(coordinator)


def transactions_of(broker: BrokerCore) -> TxnCoordinator:
    """The broker's transaction coordinator; BrokerError(COORDINATOR_NOT_AVAILABLE) if none."""
    coordinator = _COORDINATORS.get(broker)
    if coordinator is None:
        raise BrokerError(ErrorCode.coordinator_not_available, "no transaction coordinator")
    return coordinator


def maybe_transactions_of(broker: BrokerCore) -> TxnCoordinator | None:
    """The broker's transaction coordinator, or None (a core built without assembly)."""
    return _COORDINATORS.get(broker)
