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
