"""Windowed aggregations over generated out-of-order data, compared with an exact reference
(window_reference.py); late records in the side output; windows closed by the wall clock."""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import window_reference as ref
from streams_kit import Running, create_topic, produce, read_all

from kafkito.streams import Hopping, Session, Sliding, StreamsApp, Tumbling, WindowSpec
from kafkito.testing.apache_kafka import ApacheKafka

PARTITIONS = 2


def generate(seed: int, count: int, keys: int, disorder_ms: int) -> list[tuple[int, str, int, int]]:
    """(partition, key, event time, amount): time moves ~10 ms a record, each record up to
    `disorder_ms` earlier than that (out of order; some beyond the grace: late)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        key = f"k{rng.randrange(keys)}"
        ts = max(0, 10_000 + i * 10 - rng.randrange(disorder_ms))
        out.append((zlib.crc32(key.encode()) % PARTITIONS, key, ts, rng.randrange(1, 100)))
    return out


def reference(
    spec: WindowSpec, grace: int, data: list[tuple[int, str, int, int]]
) -> tuple[set[tuple[str, int, int, int]], list[tuple[str, int, int]]]:
    closed: set[tuple[str, int, int, int]] = set()
    late: list[tuple[str, int, int]] = []
    for p in range(PARTITIONS):
        events = [(k, ts, a) for q, k, ts, a in data if q == p]
        match spec:
            case Tumbling(size):
                c, lt = ref.fixed(events, size, size, grace)
            case Hopping(size, advance):
                c, lt = ref.fixed(events, size, advance, grace)
            case Session(gap):
                c, lt = ref.session(events, gap, grace)
            case Sliding(size):
                c, lt = ref.sliding(events, size, grace)
        closed |= c
        late += lt
    return closed, late


def run_windows(
    bootstrap: str,
    topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
    spec: WindowSpec,
    grace: int,
    data: list[tuple[int, str, int, int]],
    **app_kw: Any,
) -> tuple[list[tuple[str, int, int, int]], list[tuple[str, int, int]]]:
    closed, late = reference(spec, grace, data)
    assert late, "the data should have late records"
    create_topic(bootstrap, topic, PARTITIONS)
    for sink in ("out", "late"):  # no auto-creation inside a transaction (Apache Kafka)
        create_topic(bootstrap, f"{topic}-{sink}", 1)
    produce(bootstrap, topic, ((k, {"ts": ts, "n": a}, p, None) for p, k, ts, a in data))
    app = StreamsApp(f"app-{topic}", brokers=bootstrap, state_dir=tmp_path, **app_kw)
    windowed = (
        app.stream(topic, timestamp=lambda v: v["ts"]).group_by().window(spec, grace_ms=grace)
    )
    if isinstance(spec, Session):
        agg = windowed.aggregate(lambda: 0, lambda s, v: s + v["n"], lambda a, b: a + b)
    else:
        agg = windowed.sum(lambda v: v["n"])
    agg.to(f"{topic}-out")
    windowed.late.to(f"{topic}-late")
    running = start_app(app)
    out = read_all(bootstrap, f"{topic}-out", expect=len(closed), timeout_s=90)
    got_late = read_all(bootstrap, f"{topic}-late", expect=len(late), timeout_s=30)
    running.stop()
    results = [(k, v["start_ms"], v["end_ms"], v["value"]) for k, v in out]
    assert all(k == v["key"] for k, v in out)
    return results, [(k, v["ts"], v["n"]) for k, v in got_late]


@pytest.mark.parametrize(
    ("spec", "grace"),
    [
        (Tumbling(1_000), 300),
        (Hopping(500, 250), 100),
        (Session(120), 300),
        (Sliding(500), 250),
    ],
    ids=["tumbling", "hopping", "session", "sliding"],
)
def test_windows_equal_the_reference(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
    spec: WindowSpec,
    grace: int,
) -> None:
    data = generate(seed=15, count=3_000, keys=12, disorder_ms=700)
    closed, late = reference(spec, grace, data)
    results, got_late = run_windows(
        kafkito_bootstrap, kafkito_topic, tmp_path, start_app, spec, grace, data
    )
    assert len(results) == len(set(results)), "a window was emitted twice"
    assert set(results) == closed
    assert sorted(got_late) == sorted(late)


def test_windows_close_on_the_wall_clock_when_input_stops(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """The last window of each key is emitted although no later record ever arrives."""
    create_topic(kafkito_bootstrap, kafkito_topic, 1)
    now = int(time.time() * 1000)
    produce(
        kafkito_bootstrap,
        kafkito_topic,
        [("a", {"n": 1}, None, now), ("b", {"n": 2}, None, now), ("a", {"n": 3}, None, now + 1)],
    )
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    app.stream(kafkito_topic).group_by().window(
        Tumbling(5_000), grace_ms=0, close_after_idle_ms=1_000
    ).sum(lambda v: v["n"]).to(f"{kafkito_topic}-out")
    start = time.monotonic()
    running = start_app(app)
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=2, timeout_s=30)
    running.stop()
    assert sorted((k, v["value"]) for k, v in out) == [("a", 4), ("b", 2)]
    # Closed by the wall clock, within a window (5 s) of the data plus the idle time.
    assert time.monotonic() - start < 15


def test_emit_on_every_update(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """Every record emits its window's new count; 300 still counts (window [0, 1000) closes
    at stream time 1,500), 900 after 2,500 is late."""
    create_topic(kafkito_bootstrap, kafkito_topic, 1)
    times = (100, 200, 1_100, 300, 2_500, 900)
    produce(kafkito_bootstrap, kafkito_topic, [("a", {"ts": ts}, None, None) for ts in times])
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    windowed = (
        app.stream(kafkito_topic, timestamp=lambda v: v["ts"])
        .group_by()
        .window(Tumbling(1_000), grace_ms=500, emit="update")
    )
    windowed.count().to(f"{kafkito_topic}-out")
    windowed.late.to(f"{kafkito_topic}-late")
    running = start_app(app)
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=5)
    late = read_all(kafkito_bootstrap, f"{kafkito_topic}-late", expect=1)
    running.stop()
    assert [(v["start_ms"], v["value"]) for _, v in out] == [
        (0, 1),
        (0, 2),
        (1000, 1),
        (0, 3),
        (2000, 1),
    ]
    assert late == [("a", {"ts": 900})]


def test_exactly_once_windows_on_apache_kafka(
    kafka_reference: ApacheKafka,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """The main scenario on a real Apache Kafka node: exactly-once, changelogs, a
    repartition-free windowed sum and late records, equal to the reference."""
    data = generate(seed=16, count=2_000, keys=10, disorder_ms=700)
    spec, grace = Tumbling(1_000), 300
    closed, late = reference(spec, grace, data)
    results, got_late = run_windows(
        kafka_reference.bootstrap,
        kafkito_topic,
        tmp_path,
        start_app,
        spec,
        grace,
        data,
        exactly_once=True,
    )
    assert len(results) == len(set(results))
    assert set(results) == closed
    assert sorted(got_late) == sorted(late)
