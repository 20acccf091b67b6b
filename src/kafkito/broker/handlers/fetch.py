"""Fetch (key 1), v4-16.

v4: isolation_level, last_stable_offset, aborted_transactions. v5: log_start_offset. v7: fetch
sessions (we answer session_id 0: no session, clients then send full fetches, KAFKA-NOTES P7).
v9: current_leader_epoch. v11: rack_id, preferred_read_replica (-1). v12: flexible. v13: topics
by id (UNKNOWN_TOPIC_ID when not found). v15: replica_state.

Semantics (P7): whole batches starting with the one holding fetch_offset; at least one batch
even above the size limits (KIP-74), for the first partition that has data; only data below the
high watermark (with durability=always that is fsynced data); long-poll until min_bytes have
arrived or max_wait has passed, waiting on the logs' append futures, never in a sleeping loop.

The request is small and decoded by kio; the answer is encoded by hand
(protocol/hot/fetch.py) as [head, records, ..., tail] chunks, so the bytes read from the
segments go to the socket without being joined or re-encoded.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from kafkito.broker.auth.checks import READ, topic_denied
from kafkito.broker.dispatch import RawBody, RequestContext, handler
from kafkito.broker.quotas import fetch_max_bytes, throttle_fetch
from kafkito.broker.state import LEADER_EPOCH
from kafkito.errors import ErrorCode, StorageError
from kafkito.protocol.codec import ms
from kafkito.protocol.hot.fetch import (
    FETCH_VERSIONS,
    FetchPartition,
    FetchTopic,
    encode_fetch_response,
)
from kafkito.storage.log import PartitionLog

_UNKNOWN = (
    ErrorCode.unknown_topic_or_partition,
    ErrorCode.unknown_topic_id,
    ErrorCode.topic_authorization_failed,
)


@dataclass(slots=True)
class _Wanted:
    topic_key: Any  # name (v4-12) or topic id (v13+)
    partition: int
    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int
    plog: PartitionLog | None
    error: ErrorCode


def _resolve(request: Any, ctx: RequestContext) -> list[_Wanted]:
    registry = ctx.broker.topics
    by_id = ctx.api_version >= 13
    wanted: list[_Wanted] = []
    for topic in request.topics:
        if by_id:
            key: Any = topic.topic_id
            found = registry.by_id.get(key) if isinstance(key, uuid.UUID) else None
            name = found.name if found else None
            missing = ErrorCode.unknown_topic_id
        else:
            key = topic.topic
            name = key
            missing = ErrorCode.unknown_topic_or_partition
        denied = topic_denied(ctx, READ, name) if name is not None else None  # before existence
        for p in topic.partitions:
            plog = registry.partition(name, int(p.partition)) if name and not denied else None
            epoch = int(getattr(p, "current_leader_epoch", -1))
            if denied is not None:
                error = denied
            elif plog is None:
                error = missing if name is None else ErrorCode.unknown_topic_or_partition
            elif epoch > LEADER_EPOCH:
                error = ErrorCode.unknown_leader_epoch
            elif 0 <= epoch < LEADER_EPOCH:
                error = ErrorCode.fenced_leader_epoch
            else:
                error = ErrorCode.none
            wanted.append(
                _Wanted(
                    key,
                    int(p.partition),
                    int(p.fetch_offset),
                    int(p.partition_max_bytes),
                    epoch,
                    plog,
                    error,
                )
            )
    return wanted


def _collect(
    wanted: list[_Wanted], max_bytes: int, txns: Any = None, read_committed: bool = False
) -> tuple[list[tuple[_Wanted, ErrorCode, bytes | memoryview]], int]:
    """Read every partition once; returns the answers and the total record bytes.

    read_committed reads stop at the last stable offset (kafkito.broker.txn).
    """
    out: list[tuple[_Wanted, ErrorCode, bytes | memoryview]] = []
    total = 0
    for w in wanted:
        plog = w.plog
        if plog is None or w.error != ErrorCode.none:
            out.append((w, w.error, b""))
            continue
        if w.fetch_offset < plog.log_start_offset or w.fetch_offset > plog.log_end_offset:
            out.append((w, ErrorCode.offset_out_of_range, b""))
            continue
        hw = plog.high_watermark if txns is None else txns.visible_end(plog, read_committed)
        if w.fetch_offset >= hw:
            out.append((w, ErrorCode.none, b""))
            continue
        limit = min(w.partition_max_bytes, max_bytes - total)
        if limit <= 0 and total > 0:
            out.append((w, ErrorCode.none, b""))
            continue
        try:
            data = plog.read_view(w.fetch_offset, max(limit, 1), max_offset=hw)
        except StorageError:  # a batch failed its CRC on disk: never served (B4)
            out.append((w, ErrorCode.kafka_storage_error, b""))
            continue
        total += len(data)
        out.append((w, ErrorCode.none, data))
    return out, total


@handler(1, versions=FETCH_VERSIONS)
async def fetch(request: Any, ctx: RequestContext) -> RawBody:
    wanted = _resolve(request, ctx)
    max_bytes = fetch_max_bytes(ctx, int(request.max_bytes))  # within the client's quota
    min_bytes = min(int(request.min_bytes), max_bytes)
    clock = ctx.broker.clock  # kafkito.clock: a FakeClock test drives max_wait
    deadline = clock.monotonic() + ms(request.max_wait) / 1000
    txns = ctx.broker.transactions
    read_committed = int(request.isolation_level) == 1
    answers, total = _collect(wanted, max_bytes, txns, read_committed)
    while total < max(min_bytes, 1) and not any(code != ErrorCode.none for _, code, _ in answers):
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            break
        logs = {id(w.plog): w.plog for w in wanted if w.plog is not None}
        if not logs:
            break
        # One future for every log and the timer: the first append (or max_wait) wakes it.
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for plog in logs.values():
            plog.wait_for_append(woken)
        timer = clock.call_later(remaining, _wake, woken)
        try:
            await woken
        finally:
            timer.cancel()
            if not woken.done():
                woken.cancel()
        answers, total = _collect(wanted, max_bytes, txns, read_committed)
    throttle = await throttle_fetch(ctx, total)  # over the quota: answered without data
    if throttle:
        return RawBody(encode_fetch_response(ctx.api_version, [], throttle_time_ms=throttle))
    return _response(answers, ctx.api_version, read_committed=read_committed, txns=txns)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _response(
    answers: list[tuple[_Wanted, ErrorCode, bytes | memoryview]],
    version: int,
    *,
    read_committed: bool,
    txns: Any = None,
) -> RawBody:
    """Encode the answers as Kafka does: a partition in error carries -1 for the high
    watermark, last stable offset and log start offset. aborted_transactions follows Kafka's
    two paths: a partition refused before any log is read (unknown topic, partition or topic
    id; `FetchResponse.partitionResponse`) carries the schema default, an empty list; one
    answered by the log (data, or an offset or epoch error; ReplicaManager) carries null,
    except a read_committed read that succeeded, which carries the aborted transactions that
    overlap the fetched batches (kafkito.broker.txn; empty when there are none). The last
    stable offset is reported whatever the isolation level, as Kafka does."""
    topics: list[FetchTopic] = []
    index: dict[Any, list[FetchPartition]] = {}
    for w, code, data in answers:
        parts = index.get(w.topic_key)
        if parts is None:
            parts = index[w.topic_key] = []
            topics.append(FetchTopic(w.topic_key, parts))
        plog = w.plog
        ok = plog is not None and code == ErrorCode.none
        hw = plog.high_watermark if ok and plog is not None else -1
        lso = hw
        aborted: list[tuple[int, int]] | None = (
            [] if (ok and read_committed) or code in _UNKNOWN else None
        )
        if ok and plog is not None and txns is not None:
            lso = txns.last_stable_offset(plog)
            if read_committed and data:
                aborted = txns.aborted_for_fetch(plog, w.fetch_offset, data)
        parts.append(
            FetchPartition(
                partition_index=w.partition,
                error_code=code,
                high_watermark=hw,
                last_stable_offset=lso,
                log_start_offset=plog.log_start_offset if ok and plog is not None else -1,
                records=data,
                aborted_transactions=aborted,
                preferred_read_replica=-1,
            )
        )
    return RawBody(encode_fetch_response(version, topics))
