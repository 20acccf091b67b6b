"""The produce path's checks around an append, in Kafka's order (ProducerAppendInfo):

1. the transaction rules (INVALID_TXN_STATE, a fenced epoch) for a batch with a producer id or
   the transactional flag,
2. the idempotence window (a duplicate answers its original offset; OUT_OF_ORDER_SEQUENCE_NUMBER,
   INVALID_PRODUCER_EPOCH),

and after the append, the record of the batch in both. The Produce handler calls the guard
directly (it is built with its two collaborators by kafkito.broker.assembly), so the request
path goes down to the partition log and never back up into BrokerCore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kafkito.broker.producers.manager import ProducerStateManager
    from kafkito.broker.txn.coordinator import TxnCoordinator
    from kafkito.protocol.records import BatchHeader
    from kafkito.storage.log import PartitionLog

__all__ = ["AppendGuard"]


class AppendGuard:
    """Checks and records idempotent and transactional batches; either collaborator optional."""

    __slots__ = ("producers", "transactions")

    def __init__(
        self,
        producers: ProducerStateManager | None = None,
        transactions: TxnCoordinator | None = None,
    ) -> None:
        self.producers = producers
        self.transactions = transactions

    def check(self, plog: PartitionLog, header: BatchHeader) -> int | None:
        """Check a batch before its append.

        Returns the original base offset for a duplicate of a recent batch, None to append;
        raises BrokerError (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH,
        INVALID_TXN_STATE, ...).
        """
        if self.transactions is not None and (header.producer_id >= 0 or header.is_transactional):
            self.transactions.check_batch(plog, header)
        if self.producers is None or header.producer_id < 0:
            return None
        return self.producers.check(plog, header)

    def record(self, plog: PartitionLog, header: BatchHeader, base_offset: int) -> None:
        """Remember an appended batch (duplicate detection, restarts, open transactions)."""
        if self.transactions is not None and header.is_transactional:
            self.transactions.record_batch(plog, header, base_offset)
        if self.producers is not None and header.producer_id >= 0:
            self.producers.record(plog, header, base_offset)
