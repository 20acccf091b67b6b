"""The transaction state machine, as a table (STYLE principle 3; Kafka's TransactionState).

One transactional id moves through Kafka's states:

    Empty ──ADD──► Ongoing ──COMMIT──► PrepareCommit ──COMPLETE──► CompleteCommit ──┐
      ▲              │  ▲ ──ABORT───► PrepareAbort  ──COMPLETE──► CompleteAbort  ──┤
      │              │  └──────────────────────────ADD───────────────────────────────┤
      │              └─FENCE─► PrepareEpochFence ──ABORT──► PrepareAbort            │
      └───────────────────────────────INIT─────────────────────────────────────────┘

* Empty: the id has a producer id and epoch, and no transaction is open.
* Ongoing: partitions (AddPartitionsToTxn) or a group (AddOffsetsToTxn) were added; the
  producer writes transactional batches and TxnOffsetCommits, all pending.
* PrepareCommit / PrepareAbort: EndTxn was accepted and journaled; the markers are being
  written. This is the point of no return: a broker that crashes here completes the
  transaction the same way when it restarts.
* CompleteCommit / CompleteAbort: every marker is durable (and, on commit, the pending offsets
  are committed). A retried EndTxn of the same kind is answered with success.
* PrepareEpochFence: a new producer with the same transactional id (InitProducerId), or the
  transaction timeout, fences the current producer: its epoch is bumped and its open
  transaction aborted.
* Dead: the id expired (`transactional.id.expiration.ms`) and is being forgotten.

`next_state` is the only way a transaction changes state; a pair missing from the table is a
bug in the coordinator and raises InvalidTransition. Requests that are not allowed in a state
(EndTxn in Empty, AddPartitions during PrepareCommit) are refused by the coordinator with
Kafka's error codes *before* any transition is attempted.
"""

from __future__ import annotations

import enum

from kafkito.errors import InvalidTransition


class TxnState(enum.Enum):
    """Kafka's names, as DescribeTransactions and ListTransactions report them."""

    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    DEAD = "Dead"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"

    @property
    def is_preparing(self) -> bool:
        """Markers are being written: requests other than a retried EndTxn must wait."""
        return self in (
            TxnState.PREPARE_COMMIT,
            TxnState.PREPARE_ABORT,
            TxnState.PREPARE_EPOCH_FENCE,
        )

    @property
    def is_idle(self) -> bool:
        """No transaction open: a new one may start, the id may be re-initialised."""
        return self in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT)


class TxnEvent(enum.Enum):
    INIT = "InitProducerId gave the id a (new) producer id or epoch"
    ADD = "partitions or a consumer group were added to the transaction"
    COMMIT = "EndTxn(commit) was accepted"
    ABORT = "EndTxn(abort), a fence or a timeout aborts the transaction"
    FENCE = "a newer producer or the timeout fences the current one"
    COMPLETE = "every marker is durable"
    EXPIRE = "the transactional id expired"


S, E = TxnState, TxnEvent

TRANSITIONS: dict[tuple[TxnState, TxnEvent], TxnState] = {
    (S.EMPTY, E.INIT): S.EMPTY,
    (S.COMPLETE_COMMIT, E.INIT): S.EMPTY,
    (S.COMPLETE_ABORT, E.INIT): S.EMPTY,
    (S.EMPTY, E.ADD): S.ONGOING,
    (S.ONGOING, E.ADD): S.ONGOING,
    (S.COMPLETE_COMMIT, E.ADD): S.ONGOING,
    (S.COMPLETE_ABORT, E.ADD): S.ONGOING,
    (S.ONGOING, E.COMMIT): S.PREPARE_COMMIT,
    (S.ONGOING, E.ABORT): S.PREPARE_ABORT,
    (S.ONGOING, E.FENCE): S.PREPARE_EPOCH_FENCE,
    (S.PREPARE_EPOCH_FENCE, E.ABORT): S.PREPARE_ABORT,
    (S.PREPARE_COMMIT, E.COMPLETE): S.COMPLETE_COMMIT,
    (S.PREPARE_ABORT, E.COMPLETE): S.COMPLETE_ABORT,
    (S.EMPTY, E.EXPIRE): S.DEAD,
    (S.COMPLETE_COMMIT, E.EXPIRE): S.DEAD,
    (S.COMPLETE_ABORT, E.EXPIRE): S.DEAD,
}

del S, E


def next_state(state: TxnState, event: TxnEvent) -> TxnState:
    """The state after `event` in `state`; raises InvalidTransition if the table has no entry."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(f"no transition from {state.value} on {event.name}") from None
