"""Sharing max_in_flight between partitions (flow/backpressure.py, `spread`), with few keys.

librdkafka hands out one partition's fetched records in a run, then the next partition's; a
flow that took whatever came first would fill its limit with one partition's few keys while
the other partitions' keys sat idle. These tests run a slow async handler over a key or a few
per partition, on a real broker, and check:

* every partition's keys run at the same time, while max_in_flight still bounds what is taken
  in;
* across share pauses, retries, and a second member joining and leaving mid-run (revokes):
  per-key order within each ownership of a partition, commit safety (nothing unhandled below
  a committed offset), and nothing lost.

Randomness (handler durations, key counts, which records fail, when the second member comes
and goes) comes from a seeded `random.Random`; a failure names the seed.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Producer
from harness import committed, create_topic, total_committed, wait_for

from kafkito.flow import Flow, Record, RetryLater, RetryPolicy, backpressure, intake
from kafkito.flow.backpressure import SHARE

StartFlow = Callable[[Flow], object]
PARTITIONS = 4


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes, int]]) -> None:
    """Each record to the partition it names (every partition gets its keys)."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for key, value, partition in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def count_share_pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Patch the poll loop's `spread` to count the partitions it left paused for their share."""
    paused = [0]
    real = backpressure.spread

    def spread(self: Flow, highs: dict[tuple[str, int], int], memo: backpressure.Spread) -> int:
        cap = real(self, highs, memo)
        paused[0] += sum(SHARE in state.pause_reasons for state in self._partitions.values())
        return cap

    monkeypatch.setattr(intake, "spread", spread)
    return paused


def test_every_partitions_keys_run_at_once_within_the_limit(
    broker: str, topic_name: str, start_flow: StartFlow, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One key per partition, 150 records each, 5 ms apiece, max_in_flight 40: a partition
    alone could fill the limit many times over. All four keys run side by side, and the
    records in flight never pass 40."""
    paused = count_share_pauses(monkeypatch)
    per_partition = 150
    create_topic(broker, topic_name, partitions=PARTITIONS)
    produce(
        broker,
        topic_name,
        [
            (f"k{p}".encode(), str(i).encode(), p)
            for p in range(PARTITIONS)
            for i in range(per_partition)
        ],
    )
    running: set[bytes] = set()
    peak = [0]
    handled: dict[bytes, list[int]] = defaultdict(list)

    async def handle(record: Record[bytes]) -> None:
        key = record.key or b""
        running.add(key)
        peak[0] = max(peak[0], len(running))
        await asyncio.sleep(0.005)
        running.discard(key)
        handled[key].append(record.offset)

    flow = Flow(
        topic_name,
        handle,
        group_id="spread",
        brokers=broker,
        decoder="raw",
        concurrency=16,
        max_in_flight=40,
        commit_interval_s=0.1,
    )
    total = PARTITIONS * per_partition
    start_flow(flow)
    most = 0
    deadline = time.monotonic() + 60
    while sum(map(len, handled.values())) < total and time.monotonic() < deadline:
        most = max(most, flow.health()["in_flight"])
        time.sleep(0.005)
    wait_for(lambda: sum(map(len, handled.values())) == total, what="every record")
    wait_for(
        lambda: total_committed(broker, "spread", topic_name, PARTITIONS) == total,
        what="the end committed",
    )
    assert most <= 40
    assert peak[0] == PARTITIONS, f"at most {peak[0]} keys ran at once"
    assert paused[0] > 0, "no partition was ever paused for its share"
    for key, offsets in handled.items():
        assert offsets == list(range(per_partition)), key


@pytest.mark.parametrize("seed", [1, 2])
def test_order_and_commits_hold_across_share_pauses_and_rebalances(
    broker: str, topic_name: str, start_flow: StartFlow, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Async handler, few keys per partition, random durations and failures (retried), a
    second member joining and leaving mid-run: per-key order within each ownership, commit
    safety sampled from outside, nothing lost, and share pauses did happen."""
    rng = random.Random(seed)
    paused = count_share_pauses(monkeypatch)
    total = 2400
    create_topic(broker, topic_name, partitions=PARTITIONS)
    keys = rng.choice([4, 6, 10])  # one to a few keys per partition: they contend
    drawn = [rng.randrange(keys) for _ in range(total)]
    records = [(f"k{k}".encode(), str(i).encode(), k % PARTITIONS) for i, k in enumerate(drawn)]
    durations = [rng.choice([0.0, 0.001, 0.003, 0.008]) for _ in range(total)]
    failing = {i for i in range(total) if rng.random() < 0.02}

    lock = threading.Lock()
    done: dict[tuple[int, int], int] = {}  # (partition, offset) -> times handled
    events: list[tuple[str, str, object]] = []  # (member, what, detail) in the order seen
    group = f"spread-{seed}"

    def make(member: str) -> Callable[[Record[bytes]], object]:
        async def handle(record: Record[bytes]) -> None:
            i = int(record.value)
            await asyncio.sleep(durations[i])
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
            concurrency=32,
            max_in_flight=rng.choice([40, 100]),
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

    def seen(member: str, what: str, count: int = 1) -> Callable[[], bool]:
        def check() -> bool:
            with lock:
                return sum(1 for m, w, _ in events if (m, w) == (member, what)) >= count

        return check

    sampler = threading.Thread(target=sample_commits, daemon=True)
    produce(broker, topic_name, records[:1600])
    start_flow(flow("a"))
    sampler.start()
    wait_for(seen("a", "handled", rng.randrange(100, 600)), what=f"a working (seed {seed})")
    second = start_flow(flow("b"))
    wait_for(seen("b", "assigned"), what=f"b assigned (seed {seed})")
    produce(broker, topic_name, records[1600:])
    wait_for(seen("b", "handled", rng.randrange(50, 200)), what=f"b working (seed {seed})")
    second.stop()  # type: ignore[attr-defined]  # its partitions go back to a mid-run
    wait_for(lambda: len(done) == total, timeout_s=90, what=f"every record (seed {seed})")
    wait_for(
        lambda: total_committed(broker, group, topic_name, PARTITIONS) == total,
        what=f"the end committed (seed {seed})",
    )
    sampling.set()
    sampler.join(10)

    assert not violations, f"seed {seed}: {violations[:5]}"
    assert paused[0] > 0, f"seed {seed}: no partition was ever paused for its share"
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
