"""The join stores across a restart into an empty state dir (exactly-once): an outer
windowed join's kept records and matched flags and an as-of join's held records come back
from their changelogs, and the results over both runs are the references' over all the
data."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from join_reference import Arrival, Event, asof_join, window_join
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.streams import StreamsApp


def _ids(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[str | None]:
    return [None if a is None else a["id"], None if b is None else b["id"]]


def test_joins_restore_from_their_changelogs(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    events, trades, quotes = (f"{kafkito_topic}-{t}" for t in ("events", "trades", "quotes"))
    for topic in (events, trades, quotes):
        create_topic(kafkito_bootstrap, topic, 2)
    rng = random.Random(21)
    # per partition, in produce order; the first half goes before the restart
    arrivals: dict[int, list[Arrival]] = {0: [], 1: []}
    lefts: dict[int, list[Event]] = {0: [], 1: []}
    rights: dict[int, list[Event]] = {0: [], 1: []}
    for i in range(400):
        k = rng.randrange(6)
        ts = i * 20 + rng.randrange(1_500)
        arrivals[k % 2].append((rng.random() < 0.5, f"k{k}", f"e{i}", ts))
        side = lefts if rng.random() < 0.5 else rights
        side[k % 2].append((f"k{k}", f"{'tq'[side is rights]}{i}", ts))
    within, grace, tolerance = 200, 700, 300
    want_window = sorted(
        (
            r
            for p in (0, 1)
            for r in window_join(arrivals[p], within=within, grace=grace, how="outer")
        ),
        key=str,
    )
    want_asof = sorted(
        (
            r
            for p in (0, 1)
            for r in asof_join(
                lefts[p], rights[p], tolerance=tolerance, grace=grace, left_join=True
            )
        ),
        key=str,
    )

    def rows(part: int) -> dict[str, list[tuple[Any, Any, int | None, int | None]]]:
        def half(items: list[Any]) -> list[Any]:
            return items[: len(items) // 2] if part == 0 else items[len(items) // 2 :]

        out: dict[str, list[tuple[Any, Any, int | None, int | None]]] = {}
        out[events] = [
            (k, {"id": i, "ts": ts, "left": is_left}, p, None)
            for p in (0, 1)
            for is_left, k, i, ts in half(arrivals[p])
        ]
        for topic, side in ((trades, lefts), (quotes, rights)):
            out[topic] = [
                (k, {"id": i, "ts": ts}, p, None) for p in (0, 1) for k, i, ts in half(side[p])
            ]
        return out

    def build(state: Path) -> StreamsApp:
        app = StreamsApp(
            f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=state, exactly_once=True
        )
        stream = app.stream(events, timestamp=lambda x: x["ts"])
        stream.filter(lambda x: x["left"]).join_window(
            stream.filter(lambda x: not x["left"]),
            _ids,
            within_ms=within,
            grace_ms=grace,
            how="outer",
            name="window",
        ).to(f"{kafkito_topic}-window")
        app.stream(trades, timestamp=lambda x: x["ts"]).join_asof(
            app.stream(quotes, timestamp=lambda x: x["ts"]),
            _ids,
            tolerance_ms=tolerance,
            grace_ms=grace,
            left=True,
            name="asof",
        ).to(f"{kafkito_topic}-asof")
        return app

    def run(state: Path, count: int) -> None:
        app = build(state)
        running = start_app(app)
        wait_for(lambda: app.processed >= count, what=f"{count} records consumed")
        running.stop()

    for part, state in ((0, tmp_path / "one"), (1, tmp_path / "two")):
        count = sum(produce(kafkito_bootstrap, t, batch) for t, batch in rows(part).items())
        run(state, count)  # the second run starts with an empty state dir: restores
    window = read_all(kafkito_bootstrap, f"{kafkito_topic}-window", expect=len(want_window))
    asof = read_all(kafkito_bootstrap, f"{kafkito_topic}-asof", expect=len(want_asof))
    assert sorted(window, key=str) == want_window
    assert sorted(asof, key=str) == want_asof
