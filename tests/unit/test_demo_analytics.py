"""The demo's analytics: windows, click-through, and spikes found only where they are."""

from __future__ import annotations

from kafkito.demo.analytics import Analytics
from kafkito.demo.events import Click, PageView, Simulator


def view(n: int, page: str, ts: int) -> PageView:
    return PageView(
        event_id=n,
        type="page_view",
        user_id="u",
        session_id="s",
        page=page,
        device="desktop",
        ts=ts,
    )


def test_steady_traffic_raises_no_anomaly_and_a_spike_does() -> None:
    analytics = Analytics(bucket_s=5)
    n = 0
    t0 = 1_700_000_000_000
    for bucket in range(12):
        per_page = {"/": 40, "/docs": 10}
        if bucket == 8:
            per_page["/docs"] = 90  # the spike
        for page, count in per_page.items():
            for i in range(count):
                n += 1
                analytics.handle_view(view(n, page, t0 + bucket * 5000 + i * 10))
    flagged = [(a.page, a.views) for a in analytics.anomalies]
    assert flagged == [("/docs", 90)]
    assert analytics.counted_ids == set(range(1, n + 1))


def test_top_pages_and_click_through() -> None:
    analytics = Analytics()
    for i in range(10):
        analytics.handle_view(view(i, "/pricing", 1))
    for i in range(3):
        analytics.handle_click(
            Click(
                event_id=100 + i,
                type="click",
                user_id="u",
                session_id="s",
                page="/pricing",
                element="buy-now",
                device="ios",
                ts=1,
            )
        )
    top = analytics.snapshot()["top_pages"]
    assert top == [{"page": "/pricing", "views": 10, "clicks": 3, "ctr": 0.3}]


def test_simulator_is_seeded_and_marks_malformed_events() -> None:
    first, second = Simulator(seed=3, malformed_share=0.1), Simulator(seed=3, malformed_share=0.1)
    a = [first.next_event(1000) for _ in range(200)]
    b = [second.next_event(1000) for _ in range(200)]
    assert [(e.key, e.value) for e in a] == [(e.key, e.value) for e in b]
    bad = [e for e in a if not e.valid]
    assert 5 < len(bad) < 40
    for e in a:
        if e.valid:
            (PageView if e.topic == "page_views" else Click).model_validate_json(e.value)


def test_streams_fed_buckets_find_the_same_spike_and_windows_make_the_top_pages() -> None:
    """The Kafka demo's path: kafkito.streams emits each page's bucket as it fills
    (page_window) and once more when it closes (bucket_closed)."""
    analytics = Analytics(bucket_s=5)
    t0 = 1_700_000_000_000
    for bucket in range(12):
        per_page = {"/": 40, "/docs": 90 if bucket == 8 else 10}
        for page, views in per_page.items():
            start = t0 + bucket * 5000
            analytics.page_window(page, start, views, views // 10)
            analytics.bucket_closed(page, start, views)
    assert [(a.page, a.views) for a in analytics.anomalies] == [("/docs", 90)]
    top = analytics.snapshot()["top_pages"]  # the last 60 s of event time: 12 buckets
    assert top[0] == {"page": "/", "views": 480, "clicks": 48, "ctr": 0.1}
    assert top[1]["views"] == 11 * 10 + 90
    analytics.page_window("/", t0 + 12 * 5000, 1, 0)  # a new bucket: the oldest leaves
    assert analytics.snapshot()["top_pages"][0]["views"] == 480 - 40 + 1


def test_pacer_counts_events_by_the_clock_not_by_ticks() -> None:
    """A write slower than a tick does not lower the rate: what is due is counted from the
    time passed, and a pacer behind its ticks does not wait."""
    import threading
    import time

    from kafkito.demo.events import Pacer

    began = time.monotonic()
    pacer = Pacer(rate=100, tick_s=1.0)
    due = 0
    for _ in range(3):
        time.sleep(0.35)  # a slow write
        due += pacer.due()
    elapsed = time.monotonic() - began
    assert 105 - 1 <= due <= 100 * elapsed + 1, (due, elapsed)
    stop = threading.Event()
    pacer.wait(stop)  # the first tick ends 1 s after the start: ~0 s left
    waited = time.monotonic()
    pacer.wait(stop)  # the next tick is 1 s away: waits for it
    assert time.monotonic() - waited >= 0.9
    time.sleep(1.2)  # behind the next tick: no wait at all
    behind = time.monotonic()
    pacer.wait(stop)
    assert time.monotonic() - behind < 0.5
