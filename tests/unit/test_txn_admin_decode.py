"""decode_describe_transactions: DescribeTransactions v0 answers decoded by hand (kio cannot
decode the -1 start time), on hand-made bytes."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kafkito.client.txn_admin import DescribedTransaction, decode_describe_transactions


def compact(text: str) -> bytes:
    raw = text.encode()
    return bytes([len(raw) + 1]) + raw


def entry(code: int, tid: str, state: str, start_ms: int, topics: dict[str, list[int]]) -> bytes:
    out = struct.pack(">h", code) + compact(tid) + compact(state)
    out += struct.pack(">iqqh", 60000, start_ms, 42, 3)
    out += bytes([len(topics) + 1])
    for topic, partitions in topics.items():
        out += compact(topic) + bytes([len(partitions) + 1])
        out += b"".join(struct.pack(">i", p) for p in partitions) + b"\0"
    return out + b"\0"


def answer(*entries: bytes) -> bytes:
    return struct.pack(">i", 0) + bytes([len(entries) + 1]) + b"".join(entries) + b"\0"


def test_open_and_finished_transactions() -> None:
    data = answer(
        entry(0, "open", "Ongoing", 1_700_000_000_000, {"b": [1, 0], "a": [2]}),
        entry(0, "done", "CompleteCommit", -1, {}),
        entry(105, "nope", "", -1, {}),
    )
    assert decode_describe_transactions(data) == [
        DescribedTransaction(
            0, "open", "Ongoing", 60000, 1_700_000_000_000, 42, 3, (("a", 2), ("b", 0), ("b", 1))
        ),
        DescribedTransaction(0, "done", "CompleteCommit", 60000, -1, 42, 3, ()),
        DescribedTransaction(105, "nope", "", 60000, -1, 42, 3, ()),
    ]


def test_tagged_fields_are_skipped() -> None:
    body = entry(0, "t", "Empty", -1, {})
    tagged = body[:-1] + b"\x01\x07\x02zz"  # one unknown tag of 2 bytes on the entry
    assert decode_describe_transactions(answer(tagged))[0].transactional_id == "t"


def test_short_or_long_answers_raise_value_error() -> None:
    data = answer(entry(0, "open", "Ongoing", 5, {"a": [0]}))
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            decode_describe_transactions(data[:cut])
    with pytest.raises(ValueError, match="bytes left"):
        decode_describe_transactions(data + b"\0")


@given(st.binary(max_size=200))
def test_garbage_raises_value_error_or_nothing(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        decode_describe_transactions(data)
