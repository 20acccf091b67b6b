"""The switch between coarse chunks and per-key chunks (ordering="key", sync handlers).

A fast sync handler runs a partition's records of a poll as one coarse chunk, in offset order;
a record that fails, or a chunk that runs long and slow, splits the partition's unresolved
records by key (runner.Flow._split). These tests drive the switch both ways at random, on a
real broker, and check what must hold across it:

* per-key order: within one member's ownership of a partition, each key's records succeed in
  offset order, each once;
* commit safety: whenever the group's committed offset of a partition is read, every record
  below it has already been handled successfully (a handler logs before it returns);
* nothing lost: every record is handled in the end, and the group commits the end.

Randomness (handler durations, which records fail, the keys drawn, when a second member
joins and leaves) comes from a seeded `random.Random`; a failure names the seed.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from harness import committed, create_topic, total_committed, wait_for

from kafkito.flow import Flow, Record, RetryLater, RetryPolicy
from kafkito.flow.scheduler import KeyedQueues
from kafkito.flow.tracker import Chunk, PartitionTracker

StartFlow = Callable[[Flow], object]
PARTITIONS = 3


class _Msg:
    def __init__(self, offset: int, key: bytes | None = None) -> None:
        self._offset, self._key = offset, key

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    """Each key to a partition of its own choosing, so that every partition has keys."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2})
    for key, value, partition in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def test_tracker_split_keeps_pending_and_the_committable_offset() -> None:
    """Swapping a chunk's rest for parts by key moves neither the count nor the offset."""
    tracker = PartitionTracker()
    first = Chunk(("t", 0), 1, ("t", 0), "t", [_Msg(o, b"ab"[o % 2 :][:1]) for o in range(10)])
    second = Chunk(("t", 0), 1, ("t", 0), "t", [_Msg(o, b"a") for o in range(10, 14)])
    tracker.received(first)
    tracker.received(second)
    tracker.resolved(first, 3)
    assert (tracker.pending, tracker.committable()) == (11, 3)
    rest = first.messages[3:] + second.messages
    parts = [
        Chunk(("t", 0), 1, key, "t", [m for m in rest if m.key() == key]) for key in (b"a", b"b")
    ]
    tracker.split([first, second], parts)
    assert (tracker.pending, tracker.committable()) == (11, 3)
    tracker.resolved(parts[0], len(parts[0].messages))  # every "a": 4, 6, 8, 10..13
    assert (tracker.pending, tracker.committable()) == (4, 3)  # "b": 3, 5, 7, 9
    tracker.resolved(parts[1], 1)
    assert tracker.committable() == 5
    tracker.resolved(parts[1], 3)
    assert (tracker.pending, tracker.committable()) == (0, 14)


def test_a_held_key_is_not_handed_out_until_freed() -> None:
    queues: KeyedQueues[int] = KeyedQueues(max_chunk=8)
    queues.hold("k")
    queues.add("k", 1)
    queues.add("j", 2)
    assert queues.pop_ready() == "j"
    assert queues.pop_ready() is None
    queues.free("k")
    assert queues.pop_ready() == "k"
    assert queues.take("k") == [1]


@pytest.mark.parametrize("seed", [1, 2])
def test_order_and_commits_hold_across_splits_and_rebalances(
    broker: str, topic_name: str, start_flow: StartFlow, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    splits = {True: 0, False: 0}  # by failure (a key held), by a long slow chunk
    real_split = Flow._split

    def split(self: Flow, chunk: Chunk, *, hold: bool) -> Chunk:
        splits[hold] += 1
        return real_split(self, chunk, hold=hold)

    monkeypatch.setattr(Flow, "_split", split)
    total = 3000
    create_topic(broker, topic_name, partitions=PARTITIONS)
    keys = rng.choice([3, 12, 200])  # heavy, medium and light contention between keys
    drawn = [rng.randrange(keys) for _ in range(total)]
    records = [(f"k{k}".encode(), str(i).encode(), k % PARTITIONS) for i, k in enumerate(drawn)]
    # Per record, not per handling, in phases written one after another: 0-999 fast with
    # failures (which split coarse chunks and hold a key while it retries), 1000-1499 slow
    # (coarse chunks again once the partition drained, split for running long), then a mix
    # while a second member joins and leaves.
    slow = {i for i in range(1000, total) if (i < 1500 or i % 7 < 3) and rng.random() < 0.3}
    failing = {i for i in range(total) if not 1000 <= i < 1500 and rng.random() < 0.02}

    lock = threading.Lock()
    done: dict[tuple[int, int], int] = {}  # (partition, offset) -> times handled
    events: list[tuple[str, str, object]] = []  # (member, what, detail) in the order seen
    group = f"split-{seed}"

    def make(member: str) -> Callable[[Record[bytes]], None]:
        def handle(record: Record[bytes]) -> None:
            i = int(record.value)
            if i in slow:
                time.sleep(0.004)
            if i in failing and record.attempt == 1:
                raise RetryLater("first attempt fails", delay_s=0.01 + 0.03 * rng.random())
            with lock:
                where = (record.partition, record.offset)
                done[where] = done.get(where, 0) + 1
                events.append((member, "handled", (record.partition, record.key, record.offset)))

        return handle

    def rebalanced(member: str) -> Callable[[str, list[tuple[str, int]]], None]:
        def note(kind: str, tps: list[tuple[str, int]]) -> None:
            with lock:
                events.append((member, kind, [p for _, p in tps]))

        return note

    def flow(member: str) -> Flow:
        return Flow(
            topic_name,
            make(member),
            group_id=group,
            brokers=broker,
            decoder="raw",
            concurrency=4,
            max_in_flight=600,
            retry=RetryPolicy.delays([0.01, 0.01, 0.01]),
            commit_interval_s=0.05,
            on_rebalance=rebalanced(member),
            settings={"session.timeout.ms": 6000, "heartbeat.interval.ms": 200},
        )

    violations: list[str] = []
    sampling = threading.Event()

    def sample_commits() -> None:
        """Commit safety, from outside: nothing unhandled below a committed offset."""
        while not sampling.is_set():
            offsets = committed(broker, group, topic_name, PARTITIONS)
            with lock:
                for partition, offset in enumerate(offsets):
                    missing = [o for o in range(max(offset, 0)) if (partition, o) not in done]
                    if missing:
                        violations.append(f"p{partition} committed {offset}, {missing[:5]} not")
            time.sleep(0.05)

    sampler = threading.Thread(target=sample_commits, daemon=True)
    start_flow(flow("a"))
    sampler.start()
    for begin, end in ((0, 1000), (1000, 1500)):
        produce(broker, topic_name, records[begin:end])
        wait_for(lambda end=end: len(done) == end, what=f"records to {end} (seed {seed})")
    second = start_flow(flow("b"))

    def seen(member: str, what: str, count: int = 1) -> Callable[[], bool]:
        def check() -> bool:
            with lock:
                return sum(1 for m, w, _ in events if (m, w) == (member, what)) >= count

        return check

    wait_for(seen("b", "assigned"), what=f"b assigned (seed {seed})")
    produce(broker, topic_name, records[1500:])
    wait_for(seen("b", "handled", rng.randrange(50, 300)), what=f"b working (seed {seed})")
    second.stop()  # type: ignore[attr-defined]  # its partitions go back to a mid-run
    wait_for(lambda: len(done) == total, timeout_s=90, what=f"every record (seed {seed})")
    wait_for(
        lambda: total_committed(broker, group, topic_name, PARTITIONS) == total,
        what=f"the end committed (seed {seed})",
    )
    sampling.set()
    sampler.join(10)

    assert not violations, f"seed {seed}: {violations[:5]}"
    assert splits[True] and splits[False], f"seed {seed}: the switch was not driven: {splits}"
    assert {member for member, what, _ in events if what == "handled"} == {"a", "b"}
    # Per key order within each ownership of a partition: offsets of a key ascend, once each.
    last: dict[tuple[str, int, bytes | None], int] = {}
    owned: dict[str, set[int]] = defaultdict(set)
    for member, what, detail in events:
        if what == "assigned":
            assert isinstance(detail, list)
            owned[member] |= set(detail)
        elif what in ("revoked", "lost"):
            assert isinstance(detail, list)
            owned[member] -= set(detail)
            for key in [k for k in last if k[0] == member and k[1] in detail]:
                del last[key]
        else:
            assert isinstance(detail, tuple)
            partition, key, offset = detail
            assert partition in owned[member], f"seed {seed}: {member} handled p{partition}"
            previous = last.get((member, partition, key), -1)
            assert offset > previous, (
                f"seed {seed}: {member} handled {key!r}@{offset} after @{previous} on p{partition}"
            )
            last[(member, partition, key)] = offset
