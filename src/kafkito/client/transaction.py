"""`writer.transaction()`: the Writer's records of one block, all visible or none.

How the Writer's promise changes inside a transaction
-----------------------------------------------------
Outside a transaction every write returns once the broker confirmed that record. Inside one,
a confirmation per record would promise nothing a reader can use (read_committed readers see
the records only at the commit) and would cost a round trip each. So inside `with
writer.transaction():` the write calls return as soon as librdkafka has the record queued,
and the *commit* is the confirmation: leaving the block flushes every record, commits, and
returns only when the broker has made them all visible; if any record failed, the block
raises and nothing of it is visible. What a write returns inside the block is a `Delivery`
whose partition and offset are -1 (not known yet, as Kafka's Java client reports for acks=0);
where each record went is in `transaction.deliveries` once the block has committed.

Errors (librdkafka's transactional API, typed in client/errors.py):

* an exception inside the block aborts the transaction and is re-raised as it was (unless the
  abort finds the producer fenced or fatally broken: then that error is raised, from the
  block's);
* a record the broker refused, or an *abortable* commit error: the transaction is aborted and
  the error raised (`TransactionError.abortable` is true: the block may simply run again);
* a *retriable* commit error: the commit is retried until `client.timeout` runs out;
* fencing (a newer writer called init with the same transactional_id, or the broker aborted
  the transaction after `transaction_timeout`): `ProducerFencedError`; the writer is unusable
  and must be closed.

`init_transactions` runs once, when the writer connects: it fences any older producer with
the same id and completes or aborts what that one left open, so a restarted application
never leaves its predecessor's transaction hanging.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

import confluent_kafka

from kafkito.client.delivered import offset_of
from kafkito.client.errors import (
    ClientError,
    ConfigError,
    DeliveryError,
    TransactionError,
    from_kafka_error,
    from_transaction_error,
)

if TYPE_CHECKING:
    from kafkito.client.writer import ProducerCore

__all__ = ["AsyncTransaction", "Transaction", "TransactionDelivery", "call_transactional"]

log = logging.getLogger(__name__)


class TransactionDelivery(NamedTuple):
    """Where a record of a committed transaction went."""

    topic: str
    partition: int
    offset: int


class TransactionState:
    """One transaction's bookkeeping: delivery reports collected from librdkafka's thread."""

    __slots__ = ("_lock", "deliveries", "failures", "report")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.deliveries: list[TransactionDelivery] = []
        self.failures: list[tuple[Any, str, int]] = []
        self.report = self._report

    def _report(self, error: Any, message: Any) -> None:
        with self._lock:
            if error is None:
                self.deliveries.append(
                    TransactionDelivery(message.topic(), message.partition(), offset_of(message))
                )
            else:
                self.failures.append((error, message.topic(), len(message.value() or b"")))


TXN_ATTEMPTS = 5
"""How often a resumable transactional call is made while librdkafka answers retriable."""


def call_transactional(action: str, fn: Any, *args: Any, resumable: bool = False) -> Any:
    """`fn(*args)`, a librdkafka transactional call, with its errors typed.

    A `resumable` call (init, send offsets, commit, abort) is made again while librdkafka
    answers retriable (a timeout under load): the call is then still in progress, librdkafka's
    contract is that the same call resumes it, and every other transactional call fails with
    _CONFLICT until it does, so giving up early wedges the producer (seen: a flow whose commit
    timed out met only conflicts after)."""
    for attempt in range(1, TXN_ATTEMPTS + 1):
        try:
            return fn(*args)
        except confluent_kafka.KafkaException as exc:
            error = from_transaction_error(exc.args[0], action=action)
            if not (resumable and error.retriable) or error.abortable or error.fatal:
                raise error from None
            if attempt == TXN_ATTEMPTS:
                raise error from None
            log.warning("%s; calling it again to resume it (%d)", error, attempt)
    raise AssertionError("unreachable")


def init_transactions(core: ProducerCore) -> None:
    """Once per writer, at connect: register the transactional id (fencing older producers)."""
    if core.config.transactional_id is None or core.txn_ready:
        return
    call_transactional(
        "init transactions",
        core.producer.init_transactions,
        core.config.client.timeout,
        resumable=True,
    )
    core.txn_ready = True


def begin(core: ProducerCore) -> TransactionState:
    """Start a transaction on the writer's producer; its writes go into it until it ends."""
    if core.config.transactional_id is None:
        raise ConfigError(
            "writer.transaction() needs a transactional_id (constructor argument or config "
            "key transactional_id)",
            key="transactional_id",
        )
    if core.closed:
        raise ClientError("the writer is closed")
    if core.txn is not None:
        raise ClientError("a transaction is already open on this writer (they do not nest)")
    init_transactions(core)
    call_transactional("begin transaction", core.producer.begin_transaction)
    state = core.txn = TransactionState()
    return state


def commit(core: ProducerCore, state: TransactionState) -> None:
    """Flush and commit; abort and raise if a record failed or the commit is abortable."""
    deadline = time.monotonic() + core.config.client.timeout
    try:
        while True:
            remaining = max(0.1, deadline - time.monotonic())
            # flush first: a refused record is then known and reported with its own reason
            core.producer.flush(remaining)
            if state.failures:
                error, topic, size = state.failures[0]
                failure = from_kafka_error(error, topic=topic, size_bytes=size)
                _abort_quietly(core)
                raise _as_abortable(failure, len(state.failures)) from None
            try:
                call_transactional(
                    "commit transaction", core.producer.commit_transaction, remaining
                )
                return
            except TransactionError as exc:
                if exc.retriable and not exc.abortable and time.monotonic() < deadline:
                    continue
                if exc.abortable:
                    _abort_quietly(core)
                raise
    finally:
        core.txn = None


def abort(core: ProducerCore, block_error: BaseException) -> None:
    """The block raised: abort. A fenced or fatal producer's error wins over the block's."""
    try:
        call_transactional(
            "abort transaction",
            core.producer.abort_transaction,
            core.config.client.timeout,
            resumable=True,
        )
    except TransactionError as exc:
        if isinstance(block_error, TransactionError) and block_error.fatal:
            return  # the block already says the producer is gone
        if exc.fatal:
            raise exc from block_error
        block_error.add_note(f"aborting the transaction failed too: {exc}")
    finally:
        core.txn = None


def _abort_quietly(core: ProducerCore) -> None:
    # the caller raises the reason the transaction failed, not the abort's
    with contextlib.suppress(TransactionError):
        call_transactional(
            "abort transaction",
            core.producer.abort_transaction,
            core.config.client.timeout,
            resumable=True,
        )


def _as_abortable(failure: ClientError, count: int) -> TransactionError:
    reason = failure.reason if isinstance(failure, DeliveryError) else ""
    exc = TransactionError(
        f"{count} record(s) of the transaction failed, so it was aborted; first: {failure}",
        reason=reason,
        abortable=True,
    )
    exc.__cause__ = failure
    return exc


class Transaction:
    """`with writer.transaction() as txn:`: commit on exit, abort on an exception.

    `deliveries` holds where each record went, after the block committed.
    """

    def __init__(self, core: ProducerCore) -> None:
        self._core = core
        self._state: TransactionState | None = None

    @property
    def deliveries(self) -> list[TransactionDelivery]:
        return [] if self._state is None else list(self._state.deliveries)

    def __enter__(self) -> Transaction:
        self._state = begin(self._core)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._state is not None
        if exc is None:
            commit(self._core, self._state)
        else:
            abort(self._core, exc)


class AsyncTransaction:
    """`async with writer.transaction() as txn:`; the blocking calls run on a worker thread."""

    def __init__(self, core: ProducerCore) -> None:
        self._core = core
        self._state: TransactionState | None = None

    @property
    def deliveries(self) -> list[TransactionDelivery]:
        return [] if self._state is None else list(self._state.deliveries)

    async def __aenter__(self) -> AsyncTransaction:
        import asyncio

        self._state = await asyncio.to_thread(begin, self._core)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        import asyncio

        assert self._state is not None
        if exc is None:
            await asyncio.to_thread(commit, self._core, self._state)
        else:
            await asyncio.to_thread(abort, self._core, exc)
