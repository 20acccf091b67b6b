"""Produce (key 0), v3-11.

v3: record batch v2 only, transactional_id. v2+: log_append_time in the answer (-1 unless the
topic's message.timestamp.type is LogAppendTime: then the broker stamps each batch and answers
the time it used). v5: log_start_offset in the answer. v8:
record_errors and error_message. v9: flexible. v10-11: no change we act on (KIP-951 leader hints
are tagged and left at their defaults).

The request is parsed by hand (protocol/hot/produce.py), registered raw: each partition's
records are a memoryview into the request frame, which the log appends: a batch from 64 KiB
up goes to the file from the frame, with only its first 16 bytes copied to patch the offset
and leader epoch; a smaller one is copied once and patched (storage/log.py SPLIT_WRITE_BYTES).
The answer is encoded by hand too.

Per partition, in Kafka's order (KAFKA-NOTES §4): the topic must exist; the records must be one
v2 batch that passes validate_produced_batch; the producer's sequence is checked (idempotence);
then offsets are assigned in place and the batch appended. All of that happens before the first
await, so pipelined requests on one connection append in request order. With acks=1/all and
durability=always the answer waits for the group-commit fsync. acks=0 gets no answer at all,
and an error under acks=0 closes the connection, as Kafka does.

Record counts: a compressed batch is decompressed (within a cap, RELIABILITY B27) and its
records counted, as Kafka's LogValidator does. An uncompressed batch is not walked record by
record: that walk costs ~0.4 µs per record in Python (5 ms per MiB of 100-byte records, about
80 times the CRC check; docs/benchmarks.md), and a wrong count in an uncompressed batch only
misnumbers the sender's own records.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kafkito.broker.auth.checks import WRITE, produce_txn_denied, topic_denied
from kafkito.broker.dispatch import NO_RESPONSE, RawBody, RequestContext, handler
from kafkito.broker.quotas import throttle_produce
from kafkito.errors import BrokerError, CorruptBatch, ErrorCode, ProtocolError, StorageError
from kafkito.protocol.hot.produce import (
    PRODUCE_VERSIONS,
    ProducePartitionResult,
    encode_produce_response,
    parse_produce_request,
)
from kafkito.protocol.records import (
    stamp_log_append_time,
    timestamps_out_of_range,
    validate_produced_batch,
)
from kafkito.storage.cleaner import keyless_record_errors
from kafkito.storage.log import LogConfig, PartitionLog

log = logging.getLogger(__name__)

INTERNAL_TOPICS = frozenset({"__consumer_offsets", "__transaction_state"})
_VALIDATION_ERRORS = frozenset({ErrorCode.invalid_record, ErrorCode.invalid_timestamp})
_PRODUCER_STATE_ERRORS = frozenset(
    {ErrorCode.out_of_order_sequence_number, ErrorCode.invalid_producer_epoch}
)

# acks=0 fsyncs in flight (asyncio keeps only weak references to tasks).
_BACKGROUND: set[asyncio.Future[None]] = set()


def _forget_background(task: asyncio.Future[None]) -> None:
    _BACKGROUND.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background fsync after an acks=0 produce failed: %s", task.exception())


_UNLIMITED_MS = (1 << 63) - 1
"""message.timestamp.before.max.ms's default (Long.MAX_VALUE): no bound, no check."""


def _check_timestamps(
    records: Any, header: Any, config: LogConfig
) -> ProducePartitionResult | None:
    """INVALID_TIMESTAMP, with one record error per record outside the topic's
    message.timestamp.before/after.max.ms window around now, as Kafka answers; None when the
    batch passes (or the window is unlimited: then nothing is walked)."""
    before_ms, after_ms = config.timestamp_before_max_ms, config.timestamp_after_max_ms
    if before_ms >= _UNLIMITED_MS and after_ms >= _UNLIMITED_MS:
        return None
    now = int(time.time() * 1000)
    lowest = now - before_ms if before_ms < _UNLIMITED_MS else -_UNLIMITED_MS
    highest = now + after_ms if after_ms < _UNLIMITED_MS else _UNLIMITED_MS
    if before_ms >= _UNLIMITED_MS and header.max_timestamp <= highest:
        # Kafka 4's default bounds only the future (after.max.ms one hour). The header's max
        # timestamp settles that without walking the records (a walk cost 10x the whole
        # produce path at 100 B); it is trusted as uncompressed record counts are (a client
        # that lies about it can store a future timestamp, nothing else). A lower bound, or a
        # header above the bound, walks the records for Kafka's per-record answer.
        return None
    bad = timestamps_out_of_range(records, header, lowest, highest)
    if not bad:
        return None
    return ProducePartitionResult(
        -1,
        ErrorCode.invalid_timestamp,
        error_message="one or more records have been rejected due to invalid timestamp",
        record_errors=[
            (
                i,
                f"Timestamp {ts} of message with offset {i} is out of range. "
                f"The timestamp should be within [{lowest}, {highest}]",
            )
            for i, ts in bad
        ],
    )


@handler(0, versions=PRODUCE_VERSIONS, raw=True)
async def produce(_: None, ctx: RequestContext) -> object:
    assert ctx.frame is not None
    request = parse_produce_request(ctx.frame)
    ctx.client_id = request.client_id
    broker = ctx.broker
    acks = request.acks
    results: list[tuple[str, list[ProducePartitionResult]]] = []
    # (plog, last offset, the answer to fail if its fsync fails)
    to_sync: list[tuple[PartitionLog, int, ProducePartitionResult]] = []
    first_error: str | None = None
    txn_denied = produce_txn_denied(ctx, request)  # transactional batches: WRITE on the id
    for topic_data in request.topics:
        name = topic_data.name
        topic = broker.topics.get(name)
        answers: list[ProducePartitionResult] = []
        results.append((name, answers))
        denied = txn_denied or topic_denied(ctx, WRITE, name)
        for pdata in topic_data.partitions:
            index = pdata.partition
            if denied is not None:
                answers.append(ProducePartitionResult(index, denied))
                first_error = first_error or f"{denied.name} on {name}"
                continue
            if acks not in (-1, 0, 1):
                answers.append(ProducePartitionResult(index, ErrorCode.invalid_required_acks))
                first_error = first_error or f"invalid acks {acks}"
                continue
            if name in INTERNAL_TOPICS:
                answers.append(
                    ProducePartitionResult(
                        index,
                        ErrorCode.invalid_topic_exception,
                        error_message=f"cannot produce to internal topic {name}",
                    )
                )
                first_error = first_error or "internal topic"
                continue
            plog = broker.topics.partition(name, index) if topic else None
            if plog is None:
                answers.append(ProducePartitionResult(index, ErrorCode.unknown_topic_or_partition))
                first_error = first_error or f"unknown partition {name}-{index}"
                continue
            records = pdata.records
            try:
                if records is None:
                    raise CorruptBatch("partition data has no records")
                header = validate_produced_batch(
                    records,
                    max_message_bytes=plog.config.max_message_bytes,
                    check_uncompressed_records=False,
                )
                if plog.config.cleanup_compact and (
                    keyless := keyless_record_errors(records, header, f"{name}-{index}")
                ):  # Kafka's LogValidator: a compacted topic needs a key on every record
                    message = f"{len(keyless)} record(s) without a key: {keyless[0][1]}"
                    answers.append(
                        ProducePartitionResult(
                            index,
                            ErrorCode.invalid_record,
                            error_message=message,
                            record_errors=keyless,
                            log_start_offset=plog.log_start_offset,
                        )
                    )
                    first_error = first_error or message
                    continue
                stamped = plog.config.log_append_time
                if not stamped:
                    refused = _check_timestamps(records, header, plog.config)
                    if refused is not None:
                        refused.index = index
                        refused.log_start_offset = plog.log_start_offset
                        answers.append(refused)
                        first_error = first_error or str(refused.error_message)
                        continue
                if broker.committer.failure(plog) is not None:
                    raise StorageError("the log is read-only after an fsync failure")
                duplicate = broker.append_guard.check(plog, header)
                if duplicate is not None:
                    # Apache Kafka answers a duplicate with the batch's max timestamp as its
                    # log_append_time (ProducerStateManager's BatchMetadata), even under
                    # CreateTime; a retry carries the original's timestamps, so ours is it.
                    answer = ProducePartitionResult(
                        index,
                        ErrorCode.none,
                        duplicate,
                        log_append_time_ms=header.max_timestamp,
                        log_start_offset=plog.log_start_offset,
                    )
                    answers.append(answer)
                    # the original's fsync may still be in flight: answer once it is durable
                    to_sync.append((plog, duplicate, answer))
                    continue
                append_time = -1
                batch: bytearray | memoryview = memoryview(records)
                if stamped:  # a new timestamp and CRC: the log gets a patched copy
                    batch = bytearray(records)
                    append_time = int(time.time() * 1000)
                    header = stamp_log_append_time(batch, header, append_time)
                # a view: the log copies at most its first bytes to patch the offset in
                base_offset = plog.append(batch, header)
                broker.append_guard.record(plog, header, base_offset)
            except CorruptBatch as exc:
                log.warning("produce to %s-%d from %s refused: %s", name, index, ctx.peer, exc)
                # Kafka's RecordValidationException (invalid record or timestamp) answers with
                # the log start offset; every other refusal with -1 (ReplicaManager).
                start = plog.log_start_offset if exc.code in _VALIDATION_ERRORS else -1
                answers.append(
                    ProducePartitionResult(
                        index, exc.code, error_message=str(exc), log_start_offset=start
                    )
                )
                first_error = first_error or str(exc)
                continue
            except BrokerError as exc:
                # sequence and epoch refusals carry the log start offset in Kafka's answer
                start = plog.log_start_offset if exc.code in _PRODUCER_STATE_ERRORS else -1
                answers.append(
                    ProducePartitionResult(
                        index, exc.code, error_message=str(exc), log_start_offset=start
                    )
                )
                first_error = first_error or str(exc)
                continue
            except (StorageError, OSError) as exc:
                log.error("append to %s-%d failed: %s", name, index, exc)
                answers.append(
                    ProducePartitionResult(
                        index, ErrorCode.kafka_storage_error, error_message=f"storage error: {exc}"
                    )
                )
                first_error = first_error or str(exc)
                continue
            answer = ProducePartitionResult(
                index,
                ErrorCode.none,
                base_offset,
                log_append_time_ms=append_time,
                log_start_offset=plog.log_start_offset,
            )
            answers.append(answer)
            to_sync.append((plog, header.last_offset_delta + base_offset, answer))
    throttle = await throttle_produce(ctx, len(ctx.frame), acks=acks)  # client quotas
    if acks == 0:
        if first_error is not None:
            raise ProtocolError(f"acks=0 produce failed: {first_error}")
        # Nobody awaits an acks=0 write, yet it must still be fsynced to rise below the high
        # watermark and become visible to consumers: start the group commit in the background.
        for plog, last, _answer in to_sync:
            task = asyncio.ensure_future(broker.committer.wait_durable(plog, last))
            _BACKGROUND.add(task)
            task.add_done_callback(_forget_background)
        return NO_RESPONSE
    if len(to_sync) == 1:  # the usual request: one partition, no task for a gather
        plog, last, _answer = to_sync[0]
        outcome: BaseException | None = None
        try:
            await broker.committer.wait_durable(plog, last)
        except (StorageError, OSError) as exc:
            outcome = exc
        outcomes: list[BaseException | None] = [outcome]
    elif to_sync:  # wait_durable returns at once for logs that do not sync on ack
        outcomes = await asyncio.gather(
            *(broker.committer.wait_durable(plog, last) for plog, last, _ in to_sync),
            return_exceptions=True,
        )
    if to_sync:
        for (_plog, _last, answer), failed in zip(to_sync, outcomes, strict=True):
            if isinstance(failed, BaseException):
                answer.error_code = ErrorCode.kafka_storage_error
                answer.base_offset = -1
                answer.error_message = "fsync failed; the write is not durable"
    return RawBody(
        [encode_produce_response(request.api_version, results, throttle_time_ms=throttle)]
    )
