"""Stream-table joins: a table from a compacted topic, co-partitioned streams, a re-keyed
stream repartitioned to the table's partitions, inner and left joins, table updates."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from streams_kit import Running, create_topic, produce, read_all

from kafkito.client import Admin
from kafkito.streams import StreamsApp, StreamsError


def test_stream_table_join(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    users, orders = f"{kafkito_topic}-users", f"{kafkito_topic}-orders"
    admin = Admin(brokers=kafkito_bootstrap)
    admin.create_topic(users, 3, configs={"cleanup.policy": "compact"})
    admin.close()
    create_topic(kafkito_bootstrap, orders, 3)
    # Rows, one later replaced and one deleted; partitions chosen by the producer's key hash.
    produce(
        kafkito_bootstrap,
        users,
        [(f"u{i}", {"name": f"user {i}"}, None, None) for i in range(10)]
        + [("u3", {"name": "renamed"}, None, None), ("u4", None, None, None)],
    )
    # Orders keyed by order id: re-keyed by user, so repartitioned like the users topic.
    produce(
        kafkito_bootstrap,
        orders,
        [(f"o{i}", {"user": f"u{i % 12}", "amount": i}, None, None) for i in range(36)],
    )
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    table = app.table(users)
    by_user = app.stream(orders).rekey(lambda o: o["user"])
    by_user.join(table, lambda o, u: {"amount": o["amount"], "name": u["name"]}).to(
        f"{kafkito_topic}-inner"
    )
    start_app(app)

    def name(user: str) -> str | None:
        n = int(user[1:])
        return None if n >= 10 or n == 4 else "renamed" if n == 3 else f"user {n}"

    want = [
        (f"u{i % 12}", {"amount": i, "name": name(f"u{i % 12}")})
        for i in range(36)
        if name(f"u{i % 12}") is not None
    ]
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-inner", expect=len(want))
    assert sorted(got, key=str) == sorted(want, key=str)


def test_left_join_and_a_table_update_while_running(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    users, clicks = f"{kafkito_topic}-users", f"{kafkito_topic}-clicks"
    create_topic(kafkito_bootstrap, users, 2)
    create_topic(kafkito_bootstrap, clicks, 2)
    produce(kafkito_bootstrap, users, [("a", {"tier": "gold"}, None, None)])
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    table = app.table(users)
    app.stream(clicks).join(
        table, lambda c, u: [c["n"], None if u is None else u["tier"]], left=True
    ).to(f"{kafkito_topic}-out")
    start_app(app)
    produce(kafkito_bootstrap, clicks, [("a", {"n": 1}, None, None), ("b", {"n": 2}, None, None)])
    first = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=2)
    assert sorted(first) == [("a", [1, "gold"]), ("b", [2, None])]
    produce(kafkito_bootstrap, users, [("b", {"tier": "silver"}, None, None)])
    time.sleep(2)  # the table update is consumed before the next click
    produce(kafkito_bootstrap, clicks, [("b", {"n": 3}, None, None)])
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=3)
    assert ("b", [3, "silver"]) in out


def test_joining_topics_of_different_partition_counts_is_refused(
    kafkito_bootstrap: str, kafkito_topic: str, tmp_path: Path
) -> None:
    create_topic(kafkito_bootstrap, f"{kafkito_topic}-t", 2)
    create_topic(kafkito_bootstrap, f"{kafkito_topic}-s", 3)
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    table = app.table(f"{kafkito_topic}-t")
    app.stream(f"{kafkito_topic}-s").join(table, lambda v, r: v).to(f"{kafkito_topic}-o")
    with pytest.raises(StreamsError, match="co-partitioned"):
        app.run()


def test_stream_stream_join_within_a_window(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """Every (view, click) pair of a key at most 500 ms apart, once, out-of-order input;
    the grace is wide, so no record is late and the reference is every such pair."""
    import random

    views, clicks = f"{kafkito_topic}-views", f"{kafkito_topic}-clicks"
    create_topic(kafkito_bootstrap, views, 2)
    create_topic(kafkito_bootstrap, clicks, 2)
    rng = random.Random(5)
    v = [(f"k{rng.randrange(8)}", f"v{i}", rng.randrange(20_000)) for i in range(400)]
    c = [(f"k{rng.randrange(8)}", f"c{i}", rng.randrange(20_000)) for i in range(400)]
    produce(kafkito_bootstrap, views, ((k, {"id": i, "ts": ts}, None, None) for k, i, ts in v))
    produce(kafkito_bootstrap, clicks, ((k, {"id": i, "ts": ts}, None, None) for k, i, ts in c))
    want = sorted(
        (kv, [iv, ic]) for kv, iv, tv in v for kc, ic, tc in c if kv == kc and abs(tv - tc) <= 500
    )
    assert len(want) > 100
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    left = app.stream(views, timestamp=lambda x: x["ts"])
    right = app.stream(clicks, timestamp=lambda x: x["ts"])
    left.join_window(right, lambda a, b: [a["id"], b["id"]], within_ms=500, grace_ms=100_000).to(
        f"{kafkito_topic}-pairs"
    )
    start_app(app)
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-pairs", expect=len(want))
    time.sleep(1)
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-pairs")
    assert sorted(got) == want


def _ids(a: dict[str, str] | None, b: dict[str, str] | None) -> list[str | None]:
    return [None if a is None else a["id"], None if b is None else b["id"]]


def test_inner_left_and_outer_window_joins_match_the_reference(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """Both sides branch off one topic, so the order they arrive in is the partition's
    offset order, known to the test: lateness, expiry and unmatched records are exactly
    the reference's (join_reference.py), records out of order and some late."""
    import random

    from join_reference import Arrival, window_join

    topic = f"{kafkito_topic}-events"
    create_topic(kafkito_bootstrap, topic, 2)
    rng = random.Random(7)
    per_partition: dict[int, list[Arrival]] = {0: [], 1: []}
    rows = []
    for i in range(600):
        k = rng.randrange(6)
        is_left = rng.random() < 0.5
        ts = i * 20 + rng.randrange(2_500)
        per_partition[k % 2].append((is_left, f"k{k}", f"{'LR'[not is_left]}{i}", ts))
        rows.append((f"k{k}", {"id": f"{'LR'[not is_left]}{i}", "ts": ts}, k % 2, None))
    produce(kafkito_bootstrap, topic, rows)
    within, grace = 300, 1_000
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    events = app.stream(topic, timestamp=lambda x: x["ts"])
    lefts = events.filter(lambda x: x["id"][0] == "L")
    rights = events.filter(lambda x: x["id"][0] == "R")
    want: dict[str, list[tuple[str, list[str | None]]]] = {}
    for how in ("inner", "left", "outer"):
        lefts.join_window(rights, _ids, within_ms=within, grace_ms=grace, how=how).to(
            f"{kafkito_topic}-{how}"
        )
        results = [
            result
            for arrivals in per_partition.values()
            for result in window_join(arrivals, within=within, grace=grace, how=how)
        ]
        want[how] = sorted(results, key=str)
    # The data exercises every rule: late records, pairs, unmatched of both sides.
    assert len(want["left"]) > len(want["inner"]) + 20
    assert len(want["outer"]) > len(want["left"]) + 20
    start_app(app)
    for how in ("inner", "left", "outer"):
        read_all(kafkito_bootstrap, f"{kafkito_topic}-{how}", expect=len(want[how]))
    time.sleep(1.5)  # nothing more comes
    for how in ("inner", "left", "outer"):
        got = sorted(read_all(kafkito_bootstrap, f"{kafkito_topic}-{how}"), key=str)
        assert got == want[how], how


def test_outer_window_join_closes_on_the_wall_clock(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    """Two topics; no record ever takes stream time past the windows, so only the wall
    clock (close_after_idle_ms) expires them: then every unmatched record of either side
    comes out. Event times span less than the grace, so no record is late whatever order
    the topics are consumed in, and the result does not depend on it."""
    import random

    from join_reference import Arrival, window_join

    views, clicks = f"{kafkito_topic}-views", f"{kafkito_topic}-clicks"
    create_topic(kafkito_bootstrap, views, 2)
    create_topic(kafkito_bootstrap, clicks, 2)
    rng = random.Random(11)
    arrivals: dict[int, list[Arrival]] = {0: [], 1: []}
    for name, is_left in ((views, True), (clicks, False)):
        rows = []
        for i in range(150):
            k, ts = rng.randrange(10), rng.randrange(2_000)
            arrivals[k % 2].append((is_left, f"k{k}", f"{name[-1]}{i}", ts))
            rows.append((f"k{k}", {"id": f"{name[-1]}{i}", "ts": ts}, k % 2, None))
        produce(kafkito_bootstrap, name, rows)
    within, grace = 100, 3_000
    results = [
        r
        for a in arrivals.values()
        for r in window_join(
            a, within=within, grace=grace, how="outer", final_stream_time=float("inf")
        )
    ]
    want = sorted(results, key=str)
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    left = app.stream(views, timestamp=lambda x: x["ts"])
    right = app.stream(clicks, timestamp=lambda x: x["ts"])
    left.join_window(
        right, _ids, within_ms=within, grace_ms=grace, how="outer", close_after_idle_ms=1_000
    ).to(f"{kafkito_topic}-out")
    start_app(app)
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=len(want), timeout_s=90)
    time.sleep(1.5)
    got = read_all(kafkito_bootstrap, f"{kafkito_topic}-out")
    assert sorted(got, key=str) == want
    assert sum(1 for _, (a, b) in want if a is None or b is None) > 50


def test_a_bad_how_is_refused(tmp_path: Path) -> None:
    app = StreamsApp("bad-how", brokers="localhost:1", state_dir=tmp_path)
    a, b = app.stream("a"), app.stream("b")
    with pytest.raises(ValueError, match="'inner', 'left' or 'outer'"):
        a.join_window(b, _ids, within_ms=1, how="right")
