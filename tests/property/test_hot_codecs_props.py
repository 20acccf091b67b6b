"""Hypothesis round trips: the hand-written hot-path codecs agree with kio on any input."""

from __future__ import annotations

import io
import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema
from kio.serial import entity_reader, entity_writer

from kafkito.errors import ErrorCode
from kafkito.protocol import codec
from kafkito.protocol.hot.fetch import (
    FETCH_VERSIONS,
    FetchPartition,
    FetchTopic,
    encode_fetch_response,
)
from kafkito.protocol.hot.produce import (
    PRODUCE_VERSIONS,
    ProducePartitionResult,
    encode_produce_response,
    parse_produce_request,
)
from kafkito.testing.wire import produce_response_data

i16 = st.integers(-(2**15), 2**15 - 1)
i32 = st.integers(-(2**31), 2**31 - 1)
i64 = st.integers(-(2**63), 2**63 - 1)
names = st.text(max_size=30)
nullable_text = st.none() | st.text(max_size=40)
blobs = st.none() | st.binary(max_size=300)
codes = st.sampled_from(list(ErrorCode)).map(int)


@st.composite
def produce_requests(draw: st.DrawFn) -> tuple[int, str | None, dict[str, Any]]:
    version = draw(st.sampled_from(list(PRODUCE_VERSIONS)))
    body = {
        "transactional_id": draw(nullable_text),
        "acks": draw(i16),
        "timeout": draw(st.integers(0, 2**31 - 1)),
        "topic_data": draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "name": names,
                        "partition_data": st.lists(
                            st.fixed_dictionaries({"index": i32, "records": blobs}), max_size=4
                        ),
                    }
                ),
                max_size=4,
            )
        ),
    }
    return version, draw(nullable_text), body


@settings(max_examples=200, deadline=None)
@given(produce_requests(), st.binary(max_size=8))
def test_produce_request_parses_like_kio(
    case: tuple[int, str | None, dict[str, Any]], trailing: bytes
) -> None:
    version, client_id, body = case
    schema = load_request_schema(0, version)
    buf = io.BytesIO()
    header = {
        "request_api_key": 0,
        "request_api_version": version,
        "correlation_id": 5,
        "client_id": client_id,
    }
    entity_writer(schema.__header_schema__)(buf, codec.build(schema.__header_schema__, header))
    entity_writer(schema)(buf, codec.build(schema, body))
    frame = buf.getvalue()
    kio_header, used = entity_reader(schema.__header_schema__)(frame, 0)
    expected, _ = entity_reader(schema)(frame, used)

    parsed = parse_produce_request(frame + trailing)

    assert (parsed.client_id, parsed.transactional_id, parsed.acks, parsed.timeout_ms) == (
        kio_header.client_id,
        expected.transactional_id,
        expected.acks,
        codec.ms(expected.timeout),
    )
    assert [
        (
            t.name,
            [(p.partition, None if p.records is None else bytes(p.records)) for p in t.partitions],
        )
        for t in parsed.topics
    ] == [(t.name, [(p.index, p.records) for p in t.partition_data]) for t in expected.topic_data]


partition_results = st.builds(
    ProducePartitionResult,
    index=i32,
    error_code=codes,
    base_offset=i64,
    log_append_time_ms=st.just(-1) | st.integers(0, 2**42),
    log_start_offset=i64,
    error_message=nullable_text,
    record_errors=st.lists(st.tuples(i32, nullable_text), max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(PRODUCE_VERSIONS)),
    st.lists(st.tuples(names, st.lists(partition_results, max_size=4)), max_size=4),
    st.integers(0, 2**31 - 1),
)
def test_produce_response_is_byte_identical_to_kio(
    version: int, topics: list[tuple[str, list[ProducePartitionResult]]], throttle_ms: int
) -> None:
    plain = produce_response_data(topics, throttle_ms)
    expected = codec.encode_response(0, version, 1, plain)
    ours = encode_produce_response(version, topics, throttle_time_ms=throttle_ms)
    assert codec.response_header(0, version, 1) + ours == expected


fetch_partitions = st.builds(
    FetchPartition,
    partition_index=i32,
    error_code=codes,
    high_watermark=i64,
    last_stable_offset=i64,
    log_start_offset=i64,
    records=blobs,
    aborted_transactions=st.none() | st.lists(st.tuples(i64, i64), max_size=3),
    preferred_read_replica=i32,
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(FETCH_VERSIONS)),
    st.lists(st.tuples(names, st.uuids(), st.lists(fetch_partitions, max_size=4)), max_size=4),
    st.integers(0, 2**31 - 1),
    codes,
    i32,
)
def test_fetch_response_is_byte_identical_to_kio(
    version: int,
    topics: list[tuple[str, uuid.UUID, list[FetchPartition]]],
    throttle_ms: int,
    error_code: int,
    session_id: int,
) -> None:
    by_id = version >= 13
    plain = {
        "throttle_time": throttle_ms,
        "error_code": ErrorCode(error_code),
        "session_id": session_id,
        "responses": [
            {
                ("topic_id" if by_id else "topic"): topic_id if by_id else name,
                "partitions": [
                    {
                        "partition_index": p.partition_index,
                        "error_code": ErrorCode(p.error_code),
                        "high_watermark": p.high_watermark,
                        "last_stable_offset": p.last_stable_offset,
                        "log_start_offset": p.log_start_offset,
                        "aborted_transactions": None
                        if p.aborted_transactions is None
                        else [
                            {"producer_id": a, "first_offset": b} for a, b in p.aborted_transactions
                        ],
                        "preferred_read_replica": p.preferred_read_replica,
                        "records": p.records,
                    }
                    for p in parts
                ],
            }
            for name, topic_id, parts in topics
        ],
    }
    expected = codec.encode_response(1, version, 1, plain)
    chunks = encode_fetch_response(
        version,
        [FetchTopic(topic_id if by_id else name, parts) for name, topic_id, parts in topics],
        throttle_time_ms=throttle_ms,
        error_code=error_code,
        session_id=session_id,
    )
    assert codec.response_header(1, version, 1) + b"".join(chunks) == expected
