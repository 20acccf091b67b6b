"""Stateless steps end to end on the embedded broker: decode, filter, map, flat_map, branch,
merge, sinks (topic and callback), async steps, dead letters, repartition by a new key."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.client import Admin
from kafkito.streams import StreamsApp


class Click(msgspec.Struct):
    user: str
    page: str
    ms: int


def test_stateless_steps_and_sinks(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    src, other = f"{kafkito_topic}-in", f"{kafkito_topic}-other"
    create_topic(kafkito_bootstrap, src, 3)
    create_topic(kafkito_bootstrap, other, 1)
    clicks = [Click(f"u{i % 7}", f"/p{i % 5}", i * 10) for i in range(300)]
    produce(kafkito_bootstrap, src, ((c.user, msgspec.to_builtins(c), None, None) for c in clicks))
    produce(kafkito_bootstrap, other, [(None, {"user": "x", "page": "/o", "ms": 1}, None, None)])
    produce(kafkito_bootstrap, src, [(None, b"not json", 0, None)])

    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    seen: list[str] = []
    lock = threading.Lock()

    def note(user: str) -> None:
        with lock:
            seen.append(user)

    stream = app.stream(src, value=Click)
    kept = stream.filter(lambda c: c.page != "/p0")
    home, rest = kept.branch(lambda c: c.page == "/p1")
    home.map(lambda c: {"user": c.user, "home": True}).to(f"{kafkito_topic}-home")
    rest.flat_map(lambda c: [c.page, c.page]).to(f"{kafkito_topic}-pages")
    merged = app.stream(other, value=Click).merge(stream)
    merged.map(lambda c: c.user).foreach(note)
    start_app(app)

    expected_home = [(c.user, {"user": c.user, "home": True}) for c in clicks if c.page == "/p1"]
    home_out = read_all(kafkito_bootstrap, f"{kafkito_topic}-home", expect=len(expected_home))
    assert sorted(home_out, key=str) == sorted(expected_home, key=str)
    expected_pages = sorted(2 * [c.page for c in clicks if c.page not in ("/p0", "/p1")])
    pages = read_all(kafkito_bootstrap, f"{kafkito_topic}-pages", expect=len(expected_pages))
    assert sorted(v for _, v in pages) == expected_pages
    wait_for(lambda: len(seen) == 301, what="the callback sink")
    assert sorted(seen) == sorted([c.user for c in clicks] + ["x"])


def test_bad_records_go_to_the_dead_letter_topic(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    create_topic(kafkito_bootstrap, kafkito_topic, 1)
    produce(
        kafkito_bootstrap,
        kafkito_topic,
        [("a", {"n": 1}, None, None), ("b", b"{broken", None, None), ("c", {"n": 3}, None, None)],
    )
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    app.stream(kafkito_topic).map(lambda v: v["n"] * 10).to(f"{kafkito_topic}-out")
    start_app(app)
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=2)
    assert sorted(out) == [("a", 10), ("c", 30)]
    from kafkito.client.raw_consumer import RawConsumer, TopicPartition

    consumer = RawConsumer(brokers=kafkito_bootstrap, settings={"group.id": "dl-check"})
    consumer.assign([TopicPartition(app.dead_letter_topic, 0, -2)])
    msg = None
    for _ in range(100):
        msg = consumer.poll(0.2)
        if msg is not None and msg.error() is None:
            break
    consumer.close()
    assert msg is not None and msg.value() == b"{broken"
    headers = dict(msg.headers())
    assert b"not JSON" in headers["kafkito-error"]
    assert headers["kafkito-offset"] == b"1"


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_async_steps_keep_per_key_order(
    kafkito_bootstrap: str, kafkito_topic: str, tmp_path: Path, exactly_once: bool
) -> None:
    create_topic(kafkito_bootstrap, kafkito_topic, 2)
    records = [(f"k{i % 4}", {"k": f"k{i % 4}", "i": i}, None, None) for i in range(200)]
    produce(kafkito_bootstrap, kafkito_topic, records)
    app = StreamsApp(
        f"app-{kafkito_topic}",
        brokers=kafkito_bootstrap,
        state_dir=tmp_path,
        exactly_once=exactly_once,
    )
    got: list[tuple[str, int]] = []
    active = 0
    most = 0

    async def slow(value: dict[str, object]) -> dict[str, object]:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0.002)
        active -= 1
        return value

    mapped = app.stream(kafkito_topic).map(slow)
    mapped.foreach(lambda v: got.append((v["k"], v["i"])))
    mapped.group_by().count(name="per-key").to(f"{kafkito_topic}-counts")

    async def main() -> None:
        task = asyncio.create_task(app.run_async())
        for _ in range(600):
            if len(got) >= 200:
                break
            await asyncio.sleep(0.05)
        app.stop()
        await task

    asyncio.run(main())
    assert len(got) == 200
    for key in ("k0", "k1", "k2", "k3"):
        order = [i for k, i in got if k == key]
        assert order == sorted(order), f"{key} out of order"
    assert most > 1, "different keys never ran concurrently"
    counts = read_all(kafkito_bootstrap, f"{kafkito_topic}-counts", expect=200)
    assert len(counts) == 200
    assert {key: max(c for k, c in counts if k == key) for key, _ in counts} == {
        f"k{k}": 50 for k in range(4)
    }


def test_rekey_repartitions_and_counts(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("kafkito.streams.app.PURGE_INTERVAL_S", 0.0)
    create_topic(kafkito_bootstrap, kafkito_topic, 3)
    values = [{"page": f"/p{i % 6}", "user": f"u{i}"} for i in range(240)]
    produce(kafkito_bootstrap, kafkito_topic, ((v["user"], v, None, None) for v in values))
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    app.stream(kafkito_topic).group_by(lambda v: v["page"], name="by-page").count(name="views").to(
        f"{kafkito_topic}-counts"
    )
    start_app(app)
    out = read_all(kafkito_bootstrap, f"{kafkito_topic}-counts", expect=240)
    final: dict[str, int] = {}
    for key, count in out:
        assert key is not None
        assert count == final.get(key, 0) + 1, "counts of one key arrive in order"
        final[key] = count
    assert final == {f"/p{i}": 40 for i in range(6)}
    # Read and committed repartition records are purged (DeleteRecords below the commit).
    admin = Admin(brokers=kafkito_bootstrap)
    topic = f"{app.name}-by-page-repartition"
    parts = admin.partitions(topic)

    def purged() -> bool:
        marks = admin.watermarks([(topic, p) for p in parts])
        return sum(low for low, _ in marks.values()) == 240

    wait_for(purged, what="the repartition topic purged")
    admin.close()
