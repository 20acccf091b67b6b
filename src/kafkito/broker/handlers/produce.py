"""Produce (key 0), v3-11.

v3: record batch v2 only, transactional_id. v5: log_start_offset in the answer. v8:
record_errors and error_message. v9: flexible. v10-11: no change we act on (KIP-951 leader hints
are tagged and left at their defaults).

Per partition, in Kafka's order (KAFKA-NOTES §4): the topic must exist; the records must be one
v2 batch that passes validate_produced_batch; the producer's sequence is checked (idempotence);
then offsets are assigned in place and the batch appended. All of that happens before the first
await, so pipelined requests on one connection append in request order. With acks=1/all and
durability=always the answer waits for the group-commit fsync. acks=0 gets no answer at all,
and an error under acks=0 closes the connection, as Kafka does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kafkito.broker.dispatch import NO_RESPONSE, RequestContext, handler
from kafkito.errors import BrokerError, CorruptBatch, ErrorCode, ProtocolError, StorageError
from kafkito.protocol.records import validate_produced_batch
from kafkito.storage.log import PartitionLog

log = logging.getLogger(__name__)

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})


def _partition_result(
    index: int,
    code: ErrorCode,
    base_offset: int = -1,
    log_start_offset: int = -1,
    message: str | None = None,
) -> dict[str, Any]:
    return {
        "index": index,
        "error_code": code,
        "base_offset": base_offset,
        "log_append_time": -1,
        "log_start_offset": log_start_offset,
        "record_errors": [],
        "error_message": message,
    }


@handler(0, versions=range(3, 12))
async def produce(request: Any, ctx: RequestContext) -> Any:
    broker = ctx.broker
    acks = int(request.acks)
    results: list[tuple[str, list[dict[str, Any]]]] = []
    to_sync: list[tuple[PartitionLog, int]] = []
    first_error: str | None = None
    for topic_data in request.topic_data:
        name = topic_data.name
        topic = broker.topics.get(name)
        answers: list[dict[str, Any]] = []
        results.append((name, answers))
        for pdata in topic_data.partition_data:
            index = int(pdata.index)
            if acks not in (-1, 0, 1):
                answers.append(_partition_result(index, ErrorCode.invalid_required_acks))
                first_error = first_error or f"invalid acks {acks}"
                continue
            if name in INTERNAL_TOPICS:
                answers.append(
                    _partition_result(
                        index,
                        ErrorCode.invalid_topic_exception,
                        message=f"cannot produce to internal topic {name}",
                    )
                )
                first_error = first_error or "internal topic"
                continue
            plog = broker.topics.partition(name, index) if topic else None
            if plog is None:
                answers.append(_partition_result(index, ErrorCode.unknown_topic_or_partition))
                first_error = first_error or f"unknown partition {name}-{index}"
                continue
            records = pdata.records
            try:
                if records is None:
                    raise CorruptBatch("partition data has no records")
                header = validate_produced_batch(
                    records, max_message_bytes=plog.config.max_message_bytes
                )
                if broker.committer.failure(plog) is not None:
                    raise StorageError("the log is read-only after an fsync failure")
                duplicate = broker.check_producer(plog, header)
                if duplicate is not None:
                    answers.append(
                        _partition_result(index, ErrorCode.none, duplicate, plog.log_start_offset)
                    )
                    continue
                batch = bytearray(records)
                base_offset = plog.append(batch, header)
                broker.record_producer(plog, header, base_offset)
            except CorruptBatch as exc:
                log.warning("produce to %s-%d from %s refused: %s", name, index, ctx.peer, exc)
                answers.append(_partition_result(index, exc.code, message=str(exc)))
                first_error = first_error or str(exc)
                continue
            except BrokerError as exc:
                answers.append(_partition_result(index, exc.code, message=str(exc)))
                first_error = first_error or str(exc)
                continue
            except (StorageError, OSError) as exc:
                log.error("append to %s-%d failed: %s", name, index, exc)
                answers.append(
                    _partition_result(
                        index, ErrorCode.kafka_storage_error, message=f"storage error: {exc}"
                    )
                )
                first_error = first_error or str(exc)
                continue
            answers.append(
                _partition_result(index, ErrorCode.none, base_offset, plog.log_start_offset)
            )
            to_sync.append((plog, header.last_offset_delta + base_offset))
    if acks == 0:
        if first_error is not None:
            raise ProtocolError(f"acks=0 produce failed: {first_error}")
        return NO_RESPONSE
    if to_sync and broker.settings.durability == "always":
        outcomes = await asyncio.gather(
            *(broker.committer.wait_durable(plog, last) for plog, last in to_sync),
            return_exceptions=True,
        )
        failed = {
            id(plog)
            for (plog, _), out in zip(to_sync, outcomes, strict=True)
            if isinstance(out, BaseException)
        }
        if failed:
            for name, answers in results:
                for answer in answers:
                    plog = broker.topics.partition(name, answer["index"])
                    if plog is not None and id(plog) in failed and answer["error_code"] == 0:
                        answer.update(
                            error_code=ErrorCode.kafka_storage_error,
                            base_offset=-1,
                            error_message="fsync failed; the write is not durable",
                        )
    return {
        "responses": [{"name": n, "partition_responses": a} for n, a in results],
        "throttle_time": 0,
    }
