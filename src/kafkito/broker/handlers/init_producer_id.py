"""InitProducerId (key 22), v0-4.

v0: transactional_id, transaction_timeout_ms; the answer is (producer_id, producer_epoch).
v1: no change. v2: flexible. v3: producer_id and producer_epoch in the request (KIP-360: a
transactional producer that names its current pid and epoch gets the epoch bumped).
v4: PRODUCER_FENCED replaces INVALID_PRODUCER_EPOCH for a stale KIP-360 pid and epoch.

Clients: aiokafka sends v0, librdkafka and kafka-python v4 (KAFKA-NOTES §1). kafka-python's
*default* producer is idempotent and fails without this API.

Idempotent producers (transactional_id null) get a fresh pid from the persisted allocator in
kafkito.broker.producers, epoch 0, whatever producer_id and producer_epoch they send: Apache
Kafka's TransactionCoordinator "blindly accepts" a request without a transactional id and hands
out a new pid (a differential test found that kafkito bumped the epoch instead). An idempotent
producer that wants a new epoch bumps it itself, on its next batch with sequence 0 (librdkafka
does), which the partition's producer state accepts.

Transactional producers (transactional_id set) are the transaction coordinator's
(kafkito.broker.txn): a new id gets a fresh pid at epoch 0, a known one its epoch bumped, which
fences the previous producer (its open transaction is aborted first and the answer is
CONCURRENT_TRANSACTIONS, so the client asks again, as with Kafka); a timeout above
`transaction.max.timeout.ms` is INVALID_TRANSACTION_TIMEOUT.
"""

from __future__ import annotations

import logging
from typing import Any

from kafkito.broker import producers as _producers
from kafkito.broker.auth.checks import WRITE, idempotent_denied, require_txn
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.broker.txn import transactions_of
from kafkito.errors import BrokerError, ErrorCode
from kafkito.protocol.codec import ms
from kafkito.protocol.responses import InitProducerIdResponse

log = logging.getLogger(__name__)


def _answer(code: ErrorCode, producer_id: int = -1, epoch: int = -1) -> InitProducerIdResponse:
    return {
        "throttle_time": 0,
        "error_code": code,
        "producer_id": producer_id,
        "producer_epoch": epoch,
    }


@handler(22, versions=range(0, 5))
async def init_producer_id(request: Any, ctx: RequestContext) -> InitProducerIdResponse:
    manager = ctx.broker.producers
    if request.transactional_id is not None:
        return await _transactional(request, ctx)
    if denied := idempotent_denied(ctx):  # IDEMPOTENT_WRITE on the cluster or WRITE on a topic
        return _answer(denied)
    if not isinstance(manager, _producers.ProducerStateManager):
        return _answer(ErrorCode.unknown_server_error)
    # Without a transactional id the pid and epoch sent (v3+) are ignored, as Kafka does.
    try:
        pid, new_epoch = await manager.init_idempotent()
    except BrokerError as exc:
        log.info("InitProducerId from %s refused: %s", ctx.peer, exc)
        return _answer(exc.code)
    log.debug("InitProducerId from %s: pid %d epoch %d", ctx.peer, pid, new_epoch)
    return _answer(ErrorCode.none, pid, new_epoch)


async def _transactional(request: Any, ctx: RequestContext) -> InitProducerIdResponse:
    """A transactional producer: the transaction coordinator gives (and fences) its id."""
    try:
        require_txn(ctx, WRITE, request.transactional_id)  # raises *_AUTHORIZATION_FAILED
        pid, epoch = await transactions_of(ctx.broker).init_producer_id(
            request.transactional_id,
            int(ms(request.transaction_timeout)),
            int(getattr(request, "producer_id", -1)),
            int(getattr(request, "producer_epoch", -1)),
            ctx.api_version,
        )
    except BrokerError as exc:
        log.info(
            "InitProducerId for transactional id %r from %s: %s",
            request.transactional_id,
            ctx.peer,
            exc,
        )
        return _answer(exc.code)
    log.debug(
        "InitProducerId for transactional id %r from %s: pid %d epoch %d",
        request.transactional_id,
        ctx.peer,
        pid,
        epoch,
    )
    return _answer(ErrorCode.none, pid, epoch)
