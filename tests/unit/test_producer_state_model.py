"""B12: the producer-state machine against a model (hypothesis).

The model keeps each producer's *whole* history as a plain list and states Kafka's rules
(ProducerAppendInfo.checkSequence, ProducerStateEntry.findDuplicateBatch) directly over it; the
broker's `PartitionProducers` keeps only five batches in a deque. Random runs mix in-order
batches, resends of any recent batch, gaps, stale epochs, epoch bumps with and without sequence
0, unknown producer ids, sequences near INT32_MAX, and retention moving the log start past a
producer's batches. After every step the answers must agree, and the state must survive a
snapshot round trip and a rebuild by replaying the log, as at a restart (B13).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kafkito.broker.producers import (
    PRODUCER_ID_EXPIRATION_MS,
    PartitionProducers,
    batch_last_seq,
    decode_snapshot,
    encode_snapshot,
    in_sequence,
)
from kafkito.errors import BrokerError, ErrorCode

SEQ_SPACE = 2**31


@dataclass
class Appended:
    pid: int
    epoch: int
    first_seq: int
    count: int
    base_offset: int

    @property
    def last_seq(self) -> int:
        return (self.first_seq + self.count - 1) % SEQ_SPACE

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.count - 1


@dataclass
class Model:
    log: list[Appended] = field(default_factory=list)
    log_start: int = 0

    @property
    def log_end(self) -> int:
        return self.log[-1].last_offset + 1 if self.log else 0

    def current(self, pid: int) -> tuple[int, list[Appended]] | None:
        """(epoch, batches of that epoch) of a producer, from its batches still in the log."""
        mine = [b for b in self.log if b.pid == pid and b.last_offset >= self.log_start]
        if not mine:
            return None
        epoch = mine[-1].epoch
        return epoch, [b for b in mine if b.epoch == epoch]

    def produce(self, pid: int, epoch: int, seq: int, count: int) -> tuple[str, int]:
        """("append", base) / ("duplicate", base) / ("error", code)."""
        state = self.current(pid)
        if state is not None:
            cur_epoch, batches = state
            last_seq = (seq + count - 1) % SEQ_SPACE
            if epoch == cur_epoch:
                for b in batches[-5:]:
                    if (b.first_seq, b.last_seq) == (seq, last_seq):
                        return "duplicate", b.base_offset
            if epoch < cur_epoch:
                return "error", ErrorCode.invalid_producer_epoch
            if epoch > cur_epoch and seq != 0:
                return "error", ErrorCode.out_of_order_sequence_number
            if epoch == cur_epoch and seq != (batches[-1].last_seq + 1) % SEQ_SPACE:
                return "error", ErrorCode.out_of_order_sequence_number
        base = self.log_end
        self.log.append(Appended(pid, epoch, seq, count, base))
        return "append", base


def broker_produce(
    state: PartitionProducers, model: Model, pid: int, epoch: int, seq: int, count: int
) -> tuple[str, int]:
    """What the broker does for one batch: check, then append and record."""
    try:
        found = state.check(pid, epoch, seq, count - 1, model.log_start)
    except BrokerError as exc:
        return "error", exc.code
    if found is not None:
        return "duplicate", found.base_offset
    base = model.log_end  # the model appends in the same order
    state.update(pid, epoch, seq, count - 1, base)
    return "append", base


def live_view(state: PartitionProducers, log_start: int) -> dict[int, tuple[int, list[tuple]]]:
    return {
        pid: (e.epoch, [(b.first_seq, b.last_seq, b.base_offset, b.last_offset) for b in e.batches])
        for pid, e in state.entries.items()
        if e.last_offset >= log_start
    }


PIDS = [0, 1, 2]


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.data())
def test_producer_state_agrees_with_the_model(data: st.DataObject) -> None:
    model = Model()
    state = PartitionProducers()
    epochs = dict.fromkeys(PIDS, 0)
    next_seq = {pid: data.draw(st.sampled_from([0, 5, SEQ_SPACE - 3])) for pid in PIDS}
    steps = data.draw(st.integers(5, 60))
    for _ in range(steps):
        pid = data.draw(st.sampled_from(PIDS))
        kind = data.draw(
            st.sampled_from(
                ["next", "next", "next", "resend", "gap", "stale", "bump", "bump_bad", "expire"]
            )
        )
        count = data.draw(st.integers(1, 4))
        epoch, seq = epochs[pid], next_seq[pid]
        if kind == "resend":
            mine = [b for b in model.log if b.pid == pid]
            if not mine:
                continue
            back = data.draw(st.integers(1, min(7, len(mine))))
            old = mine[-back]
            epoch, seq, count = old.epoch, old.first_seq, old.count
        elif kind == "gap":
            seq = (seq + data.draw(st.integers(1, 3))) % SEQ_SPACE
        elif kind == "stale":
            epoch = epoch - 1
        elif kind == "bump":
            epoch, seq = epoch + 1, 0
        elif kind == "bump_bad":
            epoch, seq = epoch + 1, data.draw(st.integers(1, 5))
        elif kind == "expire":
            model.log_start = model.log_end  # retention dropped every batch so far
            continue
        got = broker_produce(state, model, pid, epoch, seq, count)  # before the model appends
        expected = model.produce(pid, epoch, seq, count)
        assert got == expected, (kind, pid, epoch, seq, count)
        if got[0] == "append":
            epochs[pid] = epoch
            next_seq[pid] = (seq + count) % SEQ_SPACE

        # the state a restart would rebuild: snapshot round trip, and a replay of the log
        restored, offset = decode_snapshot(encode_snapshot(state, model.log_end))
        assert offset == model.log_end
        assert live_view(restored, model.log_start) == live_view(state, model.log_start)
        replayed = PartitionProducers()
        for b in model.log:
            replayed.update(b.pid, b.epoch, b.first_seq, b.count - 1, b.base_offset)
        replayed.expire_before(model.log_start)
        assert live_view(replayed, model.log_start) == live_view(state, model.log_start)


def test_in_sequence_wraps_at_int32_max() -> None:
    assert in_sequence(4, 5)
    assert not in_sequence(4, 6)
    assert not in_sequence(4, 4)
    assert in_sequence(2**31 - 1, 0)
    assert not in_sequence(2**31 - 2, 0)


@pytest.mark.parametrize(
    ("base", "delta", "last"),
    [(0, 0, 0), (5, 3, 8), (2**31 - 1, 0, 2**31 - 1), (2**31 - 2, 3, 1), (2**31 - 1, 1, 0)],
)
def test_batch_last_seq_wraps(base: int, delta: int, last: int) -> None:
    assert batch_last_seq(base, delta) == last


@pytest.mark.parametrize(
    "damage",
    [b"", b"KPS1", b"XXXX\x00\x00\x00\x00{}", b"KPS1\x00\x00\x00\x00{}"],
    ids=["empty", "header only", "bad magic", "bad crc"],
)
def test_damaged_snapshots_are_refused(damage: bytes) -> None:
    with pytest.raises(ValueError):
        decode_snapshot(damage)


def test_idle_producers_expire_after_producer_id_expiration_ms() -> None:
    day = PRODUCER_ID_EXPIRATION_MS
    state = PartitionProducers()
    state.update(1, 0, 0, 0, 0, max_timestamp=1_000)
    state.update(2, 0, 0, 0, 1, max_timestamp=1_000 + day)
    state.update(3, 0, 0, 0, 2)  # no timestamp known: never expires by time
    state.dirty = False
    state.expire_idle(now_ms=1_000 + day)
    assert sorted(state.entries) == [1, 2, 3] and not state.dirty  # exactly at the limit: kept
    state.expire_idle(now_ms=1_001 + day)
    assert sorted(state.entries) == [2, 3] and state.dirty
    # an expired producer is unknown again: any sequence is accepted
    assert state.check(1, 0, 77, 0) is None
    restored, _ = decode_snapshot(encode_snapshot(state, 3))
    assert restored.entries[2].last_timestamp == 1_000 + day


@pytest.mark.parametrize(
    "payload",
    [b'{"offset": 3}', b'{"offset": 3, "producers": [[1, 0, [], -1]]}', b'{"offset": "x"}'],
    ids=["no producers", "producer without batches", "offset not a number"],
)
def test_snapshot_with_valid_crc_but_wrong_shape_is_refused(payload: bytes) -> None:
    import crc32c

    data = b"KPS1" + crc32c.crc32c(payload).to_bytes(4, "big") + payload
    with pytest.raises(ValueError):
        decode_snapshot(data)
