"""As-of joins: the latest right record at or before each left record, within a tolerance,
the same whatever order the two topics are consumed in (asof.py), compared with an exact
reference computed from each topic's own order (join_reference.asof_join)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from join_reference import Event, asof_join
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.streams import StreamsApp


def _ids(a: dict[str, Any], b: dict[str, Any] | None) -> list[str | None]:
    return [a["id"], None if b is None else b["id"]]


def _events(rng: random.Random, prefix: str) -> dict[int, list[Event]]:
    """Per partition, in produce order: keys k0..k5 (partition k % 2), out-of-order times."""
    out: dict[int, list[Event]] = {0: [], 1: []}
    for i in range(300):
        k = rng.randrange(6)
        out[k % 2].append((f"k{k}", f"{prefix}{i}", i * 30 + rng.randrange(1_500)))
    return out


def test_asof_join_matches_the_reference_whatever_the_consumption_order(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """All trades are consumed before any quote (a backlog read one topic first: a join
    that looked quotes up at once would find none); the results are still the reference's,
    which knows nothing of the interleaving."""
    trades, quotes = f"{kafkito_topic}-trades", f"{kafkito_topic}-quotes"
    create_topic(kafkito_bootstrap, trades, 2)
    create_topic(kafkito_bootstrap, quotes, 2)
    rng = random.Random(3)
    lefts, rights = _events(rng, "t"), _events(rng, "q")
    grace = 800
    want = {}
    for name, tolerance, left_join in (("tol", 200, False), ("any", None, True)):
        results = [
            r
            for p in (0, 1)
            for r in asof_join(
                lefts[p], rights[p], tolerance=tolerance, grace=grace, left_join=left_join
            )
        ]
        want[name] = sorted(results, key=str)
    # the data exercises the rules: late and held records, misses within the tolerance
    assert 100 < len(want["tol"]) < len(want["any"]) - 50
    assert any(b is None for _, (_, b) in want["any"])

    def rows(events: dict[int, list[Event]]) -> list[tuple[Any, Any, int | None, int | None]]:
        return [(k, {"id": i, "ts": ts}, p, None) for p in (0, 1) for k, i, ts in events[p]]

    produce(kafkito_bootstrap, trades, rows(lefts))
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    mine = app.stream(trades, timestamp=lambda x: x["ts"])
    theirs = app.stream(quotes, timestamp=lambda x: x["ts"])
    mine.join_asof(theirs, _ids, tolerance_ms=200, grace_ms=grace).to(f"{kafkito_topic}-tol")
    mine.join_asof(theirs, _ids, grace_ms=grace, left=True).to(f"{kafkito_topic}-any")
    start_app(app)
    wait_for(lambda: app.processed >= 300, what="every trade consumed")
    produce(kafkito_bootstrap, quotes, rows(rights))
    for name in ("tol", "any"):
        read_all(kafkito_bootstrap, f"{kafkito_topic}-{name}", expect=len(want[name]))
    time.sleep(1.5)  # nothing more comes
    for name in ("tol", "any"):
        got = read_all(kafkito_bootstrap, f"{kafkito_topic}-{name}")
        assert sorted(got, key=str) == want[name], name


def test_held_records_go_out_on_the_wall_clock(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """A trade newer than every quote waits for the quotes' stream time; with
    close_after_idle_ms the wall clock moves it once the quotes are quiet."""
    trades, quotes = f"{kafkito_topic}-trades", f"{kafkito_topic}-quotes"
    create_topic(kafkito_bootstrap, trades, 1)
    create_topic(kafkito_bootstrap, quotes, 1)
    produce(
        kafkito_bootstrap,
        quotes,
        [("k", {"id": "q1", "ts": 1_000}, 0, None), ("k", {"id": "q2", "ts": 2_000}, 0, None)],
    )
    produce(
        kafkito_bootstrap,
        trades,
        [("k", {"id": "t1", "ts": 1_500}, 0, None), ("k", {"id": "t2", "ts": 9_000}, 0, None)],
    )
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    mine = app.stream(trades, timestamp=lambda x: x["ts"])
    theirs = app.stream(quotes, timestamp=lambda x: x["ts"])
    mine.join_asof(theirs, _ids, grace_ms=100, close_after_idle_ms=500).to(f"{kafkito_topic}-o")
    start_app(app)
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-o", expect=2)
    assert sorted(got) == [("k", ["t1", "q1"]), ("k", ["t2", "q2"])]


def test_asof_join_after_async_steps(
    kafkito_bootstrap: str, kafkito_topic: str, tmp_path: Path
) -> None:
    """run_async: an async step before each side (records of different keys finish in any
    order); no record is late (times span less than the grace), and the wall clock releases
    every held record, so the result is the reference's with stream time run out."""
    import asyncio

    trades, quotes = f"{kafkito_topic}-trades", f"{kafkito_topic}-quotes"
    create_topic(kafkito_bootstrap, trades, 2)
    create_topic(kafkito_bootstrap, quotes, 2)
    rng = random.Random(9)
    lefts: dict[int, list[Event]] = {0: [], 1: []}
    rights: dict[int, list[Event]] = {0: [], 1: []}
    for side, prefix in ((lefts, "t"), (rights, "q")):
        for i in range(120):
            k = rng.randrange(6)
            side[k % 2].append((f"k{k}", f"{prefix}{i}", rng.randrange(3_000)))
    want = sorted(
        (
            r
            for p in (0, 1)
            for r in asof_join(
                lefts[p],
                rights[p],
                tolerance=400,
                grace=4_000,
                left_join=True,
                final_right_time=float("inf"),
            )
        ),
        key=str,
    )
    for topic, side in ((trades, lefts), (quotes, rights)):
        produce(
            kafkito_bootstrap,
            topic,
            [(k, {"id": i, "ts": ts}, p, None) for p in (0, 1) for k, i, ts in side[p]],
        )

    async def pause(value: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(random.random() / 500)
        return value

    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    mine = app.stream(trades, timestamp=lambda x: x["ts"]).map(pause)
    theirs = app.stream(quotes, timestamp=lambda x: x["ts"]).map(pause)
    mine.join_asof(
        theirs, _ids, tolerance_ms=400, grace_ms=4_000, left=True, close_after_idle_ms=300
    ).to(f"{kafkito_topic}-out")

    async def main() -> list[tuple[Any, Any]]:
        task = asyncio.create_task(app.run_async())
        try:
            return await asyncio.to_thread(
                read_all, kafkito_bootstrap, f"{kafkito_topic}-out", expect=len(want)
            )
        finally:
            app.stop()
            await task

    got = asyncio.run(main())
    assert sorted(got, key=str) == want
    assert any(b is None for _, (_, b) in want) and any(b for _, (_, b) in want)
