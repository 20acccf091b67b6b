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
