"""Exactly-once under kill -9: windowed sums stay exact across crashes, restarts and a
rebalance that moves state through the changelog; restore from the changelog into an empty
state dir; TTL of keys."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import window_reference as ref
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.client.raw_consumer import RawConsumer, TopicPartition
from kafkito.streams import RestoreProgress, StreamsApp
from kafkito.streams.records import pack

CHILD = Path(__file__).with_name("streams_child.py")
PARTITIONS = 3


def dataset(seed: int, count: int) -> list[tuple[int, str, int, int]]:
    """(partition, key, ts, amount), out of order by up to 400 ms (grace 200: some late),
    then one record per partition far ahead so that every real window closes."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        p = rng.randrange(PARTITIONS)
        out.append(
            (
                p,
                f"k{p}-{rng.randrange(20)}",
                max(0, i * 5 - rng.randrange(400)),
                rng.randrange(1, 50),
            )
        )
    end = count * 5 + 10_000
    out += [(p, f"end{p}", end, 0) for p in range(PARTITIONS)]
    return out


def expected(data: list[tuple[int, str, int, int]]) -> Counter[tuple[str, int, int, int]]:
    closed: set[tuple[str, int, int, int]] = set()
    for p in range(PARTITIONS):
        c, _ = ref.fixed([(k, ts, a) for q, k, ts, a in data if q == p], 1_000, 1_000, 200)
        closed |= c
    return Counter(closed)


def difference(want: Counter[Any], got: Counter[Any]) -> str:
    missing = sorted((want - got).elements())[:5]
    extra = sorted((got - want).elements())[:5]
    return f"missing {missing}, extra {extra}"


class Child:
    def __init__(self, bootstrap: str, topic: str, name: str, state: Path, log: Path, slow: float):
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, str(CHILD), bootstrap, topic, name, str(state), str(slow)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        self.proc.terminate()
        assert self.proc.wait(60) == 0, self.log.read_text()[-3000:]


@pytest.fixture
def children() -> Iterator[list[Child]]:
    started: list[Child] = []
    yield started
    for child in started:
        if child.proc.poll() is None:
            child.kill()


def committed_total(bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS) -> int:
    consumer = RawConsumer(brokers=bootstrap, settings={"group.id": group})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(partitions)])
        return sum(max(tp.offset, 0) for tp in parts)
    finally:
        consumer.close()


def results(bootstrap: str, topic: str, expect: int) -> Counter[tuple[str, int, int, int]]:
    out = read_all(bootstrap, f"{topic}-out", expect=expect, timeout_s=120)
    time.sleep(2)  # anything beyond the expected count would be a duplicate: look for it
    out = read_all(bootstrap, f"{topic}-out", timeout_s=60)
    return Counter((k, v["start_ms"], v["end_ms"], v["value"]) for k, v in out)


def test_kill_9_cycles_exactly_once(
    kafkito_bootstrap: str, kafkito_topic: str, tmp_path: Path, children: list[Child]
) -> None:
    data = dataset(seed=7, count=12_000)
    want = expected(data)
    create_topic(kafkito_bootstrap, kafkito_topic, PARTITIONS)
    produce(
        kafkito_bootstrap, kafkito_topic, ((k, {"ts": ts, "n": a}, p, None) for p, k, ts, a in data)
    )
    name, state, log = f"app-{kafkito_topic}", tmp_path / "state", tmp_path / "child.log"
    rng = random.Random(3)
    mid_run_kills = 0
    for _cycle in range(4):
        child = Child(kafkito_bootstrap, kafkito_topic, name, state, log, slow=0.0005)
        children.append(child)
        before = committed_total(kafkito_bootstrap, name, kafkito_topic)
        # Kill once this instance has committed something, at a random moment after: a fixed
        # sleep landed before the first commit when a loaded machine slowed the start.
        deadline = time.monotonic() + 90
        while (
            committed_total(kafkito_bootstrap, name, kafkito_topic) <= before
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 1.5))
        child.kill()
        after = committed_total(kafkito_bootstrap, name, kafkito_topic)
        if before < after < len(data):
            mid_run_kills += 1
    assert mid_run_kills >= 2, f"the kills should land mid-run: {log.read_text()[-3000:]}"
    child = Child(kafkito_bootstrap, kafkito_topic, name, state, log, slow=0.0)
    children.append(child)
    got = results(kafkito_bootstrap, kafkito_topic, sum(want.values()))
    child.stop()
    assert got == want, difference(want, got)


def test_two_instances_move_state_through_the_changelog(
    kafkito_bootstrap: str, kafkito_topic: str, tmp_path: Path, children: list[Child]
) -> None:
    data = dataset(seed=8, count=16_000)
    want = expected(data)
    create_topic(kafkito_bootstrap, kafkito_topic, PARTITIONS)
    produce(
        kafkito_bootstrap, kafkito_topic, ((k, {"ts": ts, "n": a}, p, None) for p, k, ts, a in data)
    )
    name, log = f"app-{kafkito_topic}", tmp_path / "child.log"
    a = Child(kafkito_bootstrap, kafkito_topic, name, tmp_path / "a", log, slow=0.001)
    children.append(a)
    time.sleep(5)
    b = Child(kafkito_bootstrap, kafkito_topic, name, tmp_path / "b", log, slow=0.001)
    children.append(b)
    time.sleep(5)
    a.kill()  # b takes every partition, restoring a's state from the changelogs
    assert committed_total(kafkito_bootstrap, name, kafkito_topic) < len(data), "killed too late"
    assert b.proc.poll() is None, log.read_text()[-3000:]
    got = results(kafkito_bootstrap, kafkito_topic, sum(want.values()))
    b.stop()
    assert got == want, difference(want, got)
    text = log.read_text()
    assert "restored" in text, "b should have restored partitions from the changelog"


def test_restore_into_an_empty_state_dir(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    create_topic(kafkito_bootstrap, kafkito_topic, 2)
    keys = [f"u{i}" for i in range(500)]
    produce(
        kafkito_bootstrap,
        kafkito_topic,
        ((k, {"n": 1}, i % 2, None) for i, k in enumerate(keys * 3)),
    )

    def build(state: Path, progress: list[RestoreProgress]) -> StreamsApp:
        app = StreamsApp(
            f"app-{kafkito_topic}",
            brokers=kafkito_bootstrap,
            state_dir=state,
            exactly_once=True,
            on_restore=progress.append,
        )
        app.stream(kafkito_topic).group_by().count(name="counts").to(f"{kafkito_topic}-out")
        return app

    first: list[RestoreProgress] = []
    app = build(tmp_path / "one", first)
    running = start_app(app)
    read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=1_500)
    wait_for(lambda: committed_total(kafkito_bootstrap, app.name, kafkito_topic, 2) == 1_500)
    running.stop()

    # A new instance with an empty state dir: the counts come back from the changelog.
    produce(
        kafkito_bootstrap, kafkito_topic, ((k, {"n": 1}, i % 2, None) for i, k in enumerate(keys))
    )
    second: list[RestoreProgress] = []
    app = build(tmp_path / "two", second)
    running = start_app(app)
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=2_000)
    running.stop()
    assert sorted(v for _, v in out[1_500:]) == [4] * 500
    final = {p.partition: p for p in second}  # one object per partition, reported often
    assert sorted(final) == [0, 1] and all(p.done for p in final.values())
    # Each key's count reached the changelog once per commit that changed it.
    assert 500 <= sum(p.restored for p in final.values()) <= 1_500
    assert all(p.store == "counts" for p in second)


def test_ttl_forgets_idle_keys_with_a_tombstone(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """A key not written for ttl_ms reads as new again, and its changelog gets a tombstone
    (so a restore does not bring it back)."""
    create_topic(kafkito_bootstrap, kafkito_topic, 1)
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    app.stream(kafkito_topic).group_by().count(name="seen", ttl_ms=1_500).to(f"{kafkito_topic}-out")
    running = start_app(app)
    produce(kafkito_bootstrap, kafkito_topic, [("a", {}, None, None), ("a", {}, None, None)])
    read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=2)
    time.sleep(3)  # the TTL runs out; the next commit's sweep deletes "a"
    produce(kafkito_bootstrap, kafkito_topic, [("a", {}, None, None)])
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=3)
    running.stop()
    assert [v for _, v in out] == [1, 2, 1]
    changelog = read_all(kafkito_bootstrap, f"{app.name}-seen-changelog", timeout_s=10, raw=True)
    assert (pack("a"), None) in changelog, changelog
