"""InitProducerId (key 22), v0-4.

v0: transactional_id, transaction_timeout_ms; the answer is (producer_id, producer_epoch).
v1: no change. v2: flexible. v3: producer_id and producer_epoch in the request (KIP-360: a
transactional producer that names its current pid and epoch gets the epoch bumped).
v4: no change we act on (the error PRODUCER_FENCED may be returned to it; we never fence).

Clients: aiokafka sends v0, librdkafka and kafka-python v4 (KAFKA-NOTES §1). kafka-python's
*default* producer is idempotent and fails without this API.

Idempotent producers (transactional_id null) get a fresh pid from the persisted allocator in
kafkito.broker.producers, epoch 0, whatever producer_id and producer_epoch they send: Apache
Kafka's TransactionCoordinator "blindly accepts" a request without a transactional id and hands
out a new pid (a differential test found that kafkito bumped the epoch instead). An idempotent
producer that wants a new epoch bumps it itself, on its next batch with sequence 0 (librdkafka
does), which the partition's producer state accepts.

Transactions are not implemented: a non-null transactional_id is answered with
TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53), the one code that each client treats as fatal at
once instead of retrying: librdkafka's `rd_kafka_idemp_check_error` raises a fatal error
("Failed to acquire transactional PID ... Transactional Id authorization failed"), kafka-python's
InitProducerIdHandler calls `fatal_error`, and aiokafka raises TransactionalIdAuthorizationFailed.
Codes outside librdkafka's fatal list (e.g. UNSUPPORTED_VERSION, INVALID_REQUEST) make it retry
for ever, and the coordinator codes make every client retry. The broker also logs why.
"""

from __future__ import annotations

import logging
from typing import Any

# Importing the module registers its installer (embedded.INSTALLERS) before any broker is built.
from kafkito.broker import producers as _producers
from kafkito.broker.dispatch import RequestContext, handler
from kafkito.errors import BrokerError, ErrorCode

log = logging.getLogger(__name__)


def _answer(code: ErrorCode, producer_id: int = -1, epoch: int = -1) -> dict[str, Any]:
    return {
        "throttle_time": 0,
        "error_code": code,
        "producer_id": producer_id,
        "producer_epoch": epoch,
    }


@handler(22, versions=range(0, 5))
async def init_producer_id(request: Any, ctx: RequestContext) -> dict[str, Any]:
    manager = ctx.broker.producers
    if request.transactional_id is not None:
        log.warning(
            "client %r from %s asked for transactional id %r: transactions are not supported "
            "by this broker; answering TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
            ctx.client_id,
            ctx.peer,
            request.transactional_id,
        )
        return _answer(ErrorCode.transactional_id_authorization_failed)
    if not isinstance(manager, _producers.ProducerStateManager):
        return _answer(ErrorCode.unknown_server_error)
    # Without a transactional id the pid and epoch sent (v3+) are ignored, as Kafka does.
    try:
        pid, new_epoch = manager.init_producer_id(-1, -1)
    except BrokerError as exc:
        log.info("InitProducerId from %s refused: %s", ctx.peer, exc)
        return _answer(exc.code)
    log.debug("InitProducerId from %s: pid %d epoch %d", ctx.peer, pid, new_epoch)
    return _answer(ErrorCode.none, pid, new_epoch)
