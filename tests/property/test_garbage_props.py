"""Garbage into any decoder raises ProtocolError or nothing; memory stays bounded by the input.

Two sources of garbage: random bytes, and valid Produce frames and record batches with bytes
flipped, inserted, or cut (which reach far deeper into the parsers than random bytes do).
"""

from __future__ import annotations

import contextlib
import io
import tracemalloc

import pytest
from fuzz_targets import DECOMPRESS_CAP_BYTES, decode_anything
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kio.index import load_request_schema
from kio.serial import entity_writer

from kafkito.errors import ProtocolError
from kafkito.protocol import codec
from kafkito.protocol.records import CODEC_GZIP, CODEC_LZ4, CODEC_NONE, CODEC_ZSTD, build_batch


def run(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_anything(data)


@given(st.binary(max_size=2000))
def test_random_bytes_raise_protocol_error_or_nothing(data: bytes) -> None:
    run(data)


def seeds() -> list[bytes]:
    """Valid inputs for every decoder, each with its selector byte in front."""
    out: list[bytes] = []
    batches = [
        build_batch([(b"k", b"v" * 40)] * 3, headers=[[("h", b"1")]] * 3, codec=c)
        for c in (CODEC_NONE, CODEC_GZIP, CODEC_LZ4, CODEC_ZSTD)
    ]
    for version in (3, 7, 9, 11):
        schema = load_request_schema(0, version)
        buf = io.BytesIO()
        entity_writer(schema.__header_schema__)(
            buf,
            codec.build(
                schema.__header_schema__,
                {
                    "request_api_key": 0,
                    "request_api_version": version,
                    "correlation_id": 1,
                    "client_id": "fuzz",
                },
            ),
        )
        body = {
            "transactional_id": None,
            "acks": -1,
            "timeout": 100,
            "topic_data": [
                {"name": "t", "partition_data": [{"index": 0, "records": batches[0]}]},
                {"name": "u", "partition_data": [{"index": 1, "records": batches[1]}]},
            ],
        }
        entity_writer(schema)(buf, codec.build(schema, body))
        out.append(bytes([3]) + buf.getvalue())  # parse_produce_request
    out.append(bytes([6, 3]) + batches[0][61:])  # iter_records, 3 records
    out.append(bytes([7]) + batches[0][61:])  # count_records
    for batch in batches:
        out.append(bytes([4]) + batch)  # validate_produced_batch
        out.append(bytes([8, batch[22] & 7]) + batch[61:])  # decompress
    return out


SEEDS = seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "cut", "truncate"]))
        pos = draw(st.integers(1, max(1, len(data) - 1)))
        if kind == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and pos < len(data):
            data[pos] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 16))]
        else:
            del data[pos:]
    return bytes(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_inputs_raise_protocol_error_or_nothing(data: bytes) -> None:
    run(data)


def test_seeds_are_valid() -> None:
    # The mutation test is only as deep as its seeds: every seed must decode cleanly.
    for seed in SEEDS:
        decode_anything(seed)


@pytest.mark.parametrize(
    "lie",
    [
        # produce v3: null client, null txn id, acks, timeout, topic count 2**31-1
        bytes([3]) + b"\x00\x00\x00\x03\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\x00\x00\x00\x01"
        b"\x7f\xff\xff\xff",
        # produce v9: a compact topic array claiming 2**28 entries
        bytes([3]) + b"\x00\x00\x00\x09\x00\x00\x00\x01\xff\xff\x00\x00\xff\xff\x00\x00\x00\x01"
        b"\x80\x80\x80\x80\x01",
        # produce v9: a tagged-field section claiming 2**28 tags
        bytes([3]) + b"\x00\x00\x00\x09\x00\x00\x00\x01\xff\xff\x80\x80\x80\x80\x01",
        # records: a record claiming 2**30 headers
        bytes([6, 1]) + b"\x14\x00\x00\x00\x01\x01\xfe\xff\xff\xff\x07",
        # a records blob declaring a 4 GiB snappy output
        bytes([8, 2]) + b"\xff\xff\xff\xff\x0f\x00",
    ],
)
def test_lying_counts_never_allocate_what_they_claim(lie: bytes) -> None:
    peak = peak_bytes(lie)
    assert peak < 64 << 10, f"{peak} bytes allocated for a {len(lie)}-byte input"


def peak_bytes(data: bytes) -> int:
    tracemalloc.start()
    try:
        run(data)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=600), mutated()))
def test_memory_is_bounded_by_the_input_not_by_its_claims(data: bytes) -> None:
    # Decompression may fill its capped buffer; nothing else may allocate much beyond the
    # input (the one records copy, lists of parsed entries, exception objects).
    bound = 2 * DECOMPRESS_CAP_BYTES + 50 * len(data) + (64 << 10)
    assert peak_bytes(data) < bound
