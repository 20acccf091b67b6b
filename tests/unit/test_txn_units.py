"""Pure parts of transactions: the state table, marker batches, the .txnindex format and the
open/aborted bookkeeping that gives the last stable offset."""

from __future__ import annotations

import pytest

from kafkito.broker.txn.states import TRANSITIONS, InvalidTransition, TxnEvent, TxnState, next_state
from kafkito.errors import CorruptBatch
from kafkito.protocol.control import encode_marker, read_marker
from kafkito.protocol.records import (
    ATTR_TRANSACTIONAL,
    build_batch,
    patch_batch,
    read_batch_header,
)
from kafkito.storage.txnindex import (
    ENTRY_BYTES,
    AbortedTxn,
    PartitionTxns,
    decode_entries,
    encode_entries,
    entries_by_segment,
    scan,
)


def test_every_state_reaches_complete_through_the_table_only() -> None:
    s = next_state(TxnState.EMPTY, TxnEvent.ADD)
    assert s is TxnState.ONGOING
    assert next_state(s, TxnEvent.COMMIT) is TxnState.PREPARE_COMMIT
    assert next_state(TxnState.PREPARE_COMMIT, TxnEvent.COMPLETE) is TxnState.COMPLETE_COMMIT
    fence = next_state(TxnState.ONGOING, TxnEvent.FENCE)
    assert next_state(fence, TxnEvent.ABORT) is TxnState.PREPARE_ABORT
    for idle in (TxnState.EMPTY, TxnState.COMPLETE_ABORT, TxnState.COMPLETE_COMMIT):
        assert next_state(idle, TxnEvent.INIT) is TxnState.EMPTY
        assert idle.is_idle
    # never from a Prepare state on anything but COMPLETE (and ABORT after a fence)
    for (state, event), _ in TRANSITIONS.items():
        if state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            assert event is TxnEvent.COMPLETE
    with pytest.raises(InvalidTransition):
        next_state(TxnState.EMPTY, TxnEvent.COMMIT)
    with pytest.raises(InvalidTransition):
        next_state(TxnState.PREPARE_COMMIT, TxnEvent.ADD)


@pytest.mark.parametrize("commit", [True, False])
def test_marker_round_trip(commit: bool) -> None:
    data = encode_marker(
        producer_id=7, producer_epoch=3, commit=commit, coordinator_epoch=5, timestamp_ms=1
    )
    header = read_batch_header(data)
    assert header.is_control and header.is_transactional
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 3, -1)
    assert header.record_count == 1
    assert read_marker(data, header) is commit


def test_a_data_batch_is_not_a_marker() -> None:
    data = build_batch([(b"k", b"v")], attributes=ATTR_TRANSACTIONAL, producer_id=1)
    with pytest.raises(CorruptBatch):
        read_marker(data, read_batch_header(data))


def test_index_format_is_kafkas_and_cuts_a_torn_tail() -> None:
    entries = [AbortedTxn(10, 1, 3, 3), AbortedTxn(20, 2, 12, 12)]
    data = encode_entries(entries)
    assert len(data) == 2 * ENTRY_BYTES == 68
    # version 0, pid 1, first 3, last 10, lso 3 (Kafka's AbortedTxn field order)
    assert data[:ENTRY_BYTES].hex() == (
        "0000" + "0000000000000001" + "0000000000000003" + "000000000000000a" + "0000000000000003"
    )
    assert decode_entries(data) == (entries, 68)
    assert decode_entries(data + data[:20]) == (entries, 68)
    bad = bytearray(data)
    bad[ENTRY_BYTES] = 9  # version 0x0900 of the second entry
    assert decode_entries(bytes(bad)) == (entries[:1], ENTRY_BYTES)


def test_lso_is_the_oldest_open_first_offset_else_the_high_watermark() -> None:
    t = PartitionTxns()
    assert t.last_stable_offset(100) == 100
    t.begin(1, 10, 0)
    t.begin(2, 20, 0)
    t.begin(1, 30, 0)  # same transaction: its first offset stays 10
    assert t.last_stable_offset(100) == 10
    assert t.end(1, 40, commit=True, hw=100) is None
    assert t.last_stable_offset(100) == 20
    entry = t.end(2, 41, commit=False, hw=100)
    assert entry == AbortedTxn(41, 2, 20, 100)
    assert t.last_stable_offset(100) == 100
    assert t.end(3, 42, commit=False, hw=100) is None  # nothing open: no entry
    assert t.aborted_in(0, 20) == []  # first offset 20 is not below 20
    assert t.aborted_in(0, 21) == [entry]
    assert t.aborted_in(42, 50) == []  # ends before the fetch starts
    assert t.trim(41) == []
    assert t.trim(42) == [entry]


def _stored(batch: bytes, offset: int) -> bytes:
    b = bytearray(batch)
    patch_batch(b, 0, base_offset=offset, leader_epoch=0)
    return bytes(b)


def test_scan_rebuilds_open_and_aborted_from_the_log_bytes() -> None:
    log = b"".join(
        [
            _stored(build_batch([(None, b"a")], attributes=ATTR_TRANSACTIONAL, producer_id=5), 0),
            _stored(build_batch([(None, b"x")]), 1),
            _stored(
                build_batch(
                    [(None, b"b")], attributes=ATTR_TRANSACTIONAL, producer_id=6, producer_epoch=2
                ),
                2,
            ),
            _stored(
                encode_marker(
                    producer_id=5,
                    producer_epoch=0,
                    commit=False,
                    coordinator_epoch=0,
                    timestamp_ms=0,
                ),
                3,
            ),
        ]
    )
    state = PartitionTxns()
    assert scan([log], state, hw=4) == 1
    assert state.open == {6: 2}
    assert state.epochs == {6: 2}
    assert [(e.producer_id, e.first_offset, e.last_offset) for e in state.aborted] == [(5, 0, 3)]
    assert state.last_stable_offset(4) == 2


def test_entries_land_in_the_segment_holding_their_marker() -> None:
    entries = [AbortedTxn(5, 1, 0, 0), AbortedTxn(15, 1, 12, 12), AbortedTxn(25, 1, 20, 20)]
    grouped = dict(entries_by_segment(entries, [0, 10, 20]))
    assert grouped == {0: entries[:1], 10: entries[1:2], 20: entries[2:]}


def test_snapshot_round_trip_and_damage() -> None:
    from kafkito.storage.txnindex import decode_snapshot, encode_snapshot

    t = PartitionTxns()
    t.begin(3, 7, 2)
    t.begin(4, 9, 0)
    t.end(4, 12, commit=False, hw=20)
    data = encode_snapshot(t, 13)
    back, offset = decode_snapshot(data)
    assert offset == 13
    assert (back.open, back.epochs, back.aborted, back.marked) == (
        t.open,
        t.epochs,
        t.aborted,
        t.marked,
    )
    for bad in (data[:5], data[:-1], b"XXXX" + data[4:], data[:9] + b"{" + data[10:]):
        with pytest.raises(ValueError):
            decode_snapshot(bad)
