"""Real-time analytics over the activity stream: rates, top pages, click-through, anomalies.

On Kafka the numbers come from a kafkito.streams app (`analytics_app` below, group
`analytics`): windowed counts per page in 5-second tumbling windows of event time, emitted on
every update (top pages, click-through) and once more when a window closes (anomalies). On
Pub/Sub, which kafkito.streams does not run on, the consume flow feeds every event to
`handle_view`/`handle_click`, and the same buckets are kept here. Either way the dashboard
reads one object behind a lock:

* events per second per topic over the last `history_s` seconds (the rate chart), counted
  as events are handled;
* per page, page views and clicks in `bucket_s` buckets of event time: the top pages and each
  page's click-through rate (clicks / page views) over the last `window_s` seconds of event
  time (up to the newest bucket seen);
* anomalies: a page's closed bucket is judged against an exponentially weighted baseline of
  its earlier buckets; far above it (`factor` times, and at least `min_excess` views more) is
  an anomaly. A page needs `warmup` judged buckets before it can be flagged, so the ramp-up
  at start, or a consumer catching up on a backlog, is not mistaken for a spike. With
  streams a bucket closes when stream time passes its end plus a grace; with the flow, once
  events two buckets newer arrive (one bucket of lateness, as a page's events come from
  several partitions).
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from kafkito.demo.events import CLICKS, PAGE_VIEWS, Click, PageView


@dataclass
class Anomaly:
    page: str
    at_ms: int
    views: int
    baseline: float


@dataclass
class Analytics:
    window_s: int = 60
    history_s: int = 120
    bucket_s: int = 5
    factor: float = 3.0
    min_excess: int = 15
    alpha: float = 0.3
    warmup: int = 3
    counted_ids: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _per_second: dict[str, dict[int, int]] = field(
        default_factory=lambda: {PAGE_VIEWS: defaultdict(int), CLICKS: defaultdict(int)}
    )
    _pages: dict[int, dict[str, list[int]]] = field(default_factory=dict)
    """bucket -> page -> [views, clicks]: the top pages' and click-through's windows."""
    _open: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    """The flow's own bucketing for anomalies: page -> bucket -> views, until judged."""
    _baseline: dict[str, float] = field(default_factory=dict)
    _seen_buckets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _newest_bucket: int = 0
    anomalies: deque[Anomaly] = field(default_factory=lambda: deque(maxlen=50))
    totals: dict[str, int] = field(default_factory=lambda: {PAGE_VIEWS: 0, CLICKS: 0})
    anomaly_total: int = 0

    # -- fed by the streams app (Kafka) ----------------------------------------------------

    def count(self, topic: str, event_id: int) -> None:
        """One valid event handled: the rate chart, the totals, the ids a test checks."""
        second = int(time.time())
        with self._lock:
            self._count(topic, event_id, second)

    def page_window(self, page: str, start_ms: int, views: int, clicks: int) -> None:
        """A page's views and clicks in the bucket starting at `start_ms`, so far."""
        with self._lock:
            self._set_page(page, start_ms // self._bucket_ms, views, clicks)

    def bucket_closed(self, page: str, start_ms: int, views: int) -> None:
        """A page's bucket is complete: judge it, then learn the page's baseline from it."""
        with self._lock:
            self._judge(page, start_ms // self._bucket_ms, views)

    # -- fed by a consume flow, one event at a time (Pub/Sub) ------------------------------

    def handle_view(self, view: PageView) -> None:
        self._handle(PAGE_VIEWS, view.event_id, view.page, view.ts)

    def handle_click(self, click: Click) -> None:
        self._handle(CLICKS, click.event_id, click.page, click.ts)

    def _handle(self, topic: str, event_id: int, page: str, ts_ms: int) -> None:
        second = int(time.time())
        bucket = ts_ms // self._bucket_ms
        with self._lock:
            self._count(topic, event_id, second)
            views, clicks = self._pages.get(bucket, {}).get(page, (0, 0))
            if topic == CLICKS:
                self._set_page(page, bucket, views, clicks + 1)
                return
            self._set_page(page, bucket, views + 1, clicks)
            if bucket > self._newest_bucket - 2:  # older than that: too late to count
                self._open[page][bucket] += 1
            if bucket > self._newest_bucket:
                self._newest_bucket = bucket
                for open_page, buckets in self._open.items():
                    for closed in sorted(b for b in buckets if b <= bucket - 2):
                        self._judge(open_page, closed, buckets.pop(closed))

    # -- shared, under the lock ------------------------------------------------------------

    @property
    def _bucket_ms(self) -> int:
        return self.bucket_s * 1000

    def _count(self, topic: str, event_id: int, second: int) -> None:
        self.counted_ids.add(event_id)
        self.totals[topic] += 1
        series = self._per_second[topic]
        series[second] += 1
        for old in [s for s in series if s < second - self.history_s]:
            del series[old]

    def _set_page(self, page: str, bucket: int, views: int, clicks: int) -> None:
        self._pages.setdefault(bucket, {})[page] = [views, clicks]
        oldest = max(self._pages) - self.window_s // self.bucket_s
        for old in [b for b in self._pages if b <= oldest]:
            del self._pages[old]

    def _judge(self, page: str, bucket: int, views: int) -> None:
        baseline = self._baseline.get(page)
        warm = self._seen_buckets[page] >= self.warmup
        self._seen_buckets[page] += 1
        if (
            warm
            and baseline is not None
            and views > max(baseline * self.factor, baseline + self.min_excess)
        ):
            at_ms = (bucket + 1) * self._bucket_ms
            self.anomalies.appendleft(Anomaly(page, at_ms, views, round(baseline, 1)))
            self.anomaly_total += 1
            return  # an anomaly does not become the new normal
        self._baseline[page] = (
            views if baseline is None else self.alpha * views + (1 - self.alpha) * baseline
        )

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """What the dashboard shows, as JSON-ready data."""
        now = time.time() if now is None else now
        second = int(now)
        with self._lock:
            # Complete seconds only: the current one is still filling, and drawn it would end
            # the chart in a false drop. Nor seconds before the first event (a run starts at
            # its first event, not after `history_s` seconds of zeros).
            seen = [s for series in self._per_second.values() for s in series]
            first = max(second - self.history_s, min(seen, default=second))
            seconds = list(range(first, second))
            rates = {
                topic: [series.get(s, 0) for s in seconds]
                for topic, series in self._per_second.items()
            }
            views: dict[str, int] = defaultdict(int)
            clicks: dict[str, int] = defaultdict(int)
            for pages in self._pages.values():  # trimmed to the last window_s of event time
                for page, (page_views, page_clicks) in pages.items():
                    views[page] += page_views
                    clicks[page] += page_clicks
            top = sorted(views.items(), key=lambda kv: -kv[1])[:8]
            anomalies = [a.__dict__ for a in list(self.anomalies)[:10]]
            totals = dict(self.totals)
        return {
            "seconds": seconds,
            "rates": rates,
            "top_pages": [
                {
                    "page": p,
                    "views": n,
                    "clicks": clicks.get(p, 0),
                    "ctr": round(clicks.get(p, 0) / n, 3) if n else 0.0,
                }
                for p, n in top
            ],
            "anomalies": anomalies,
            "totals": totals,
            "anomaly_total": self.anomaly_total,
            "window_s": self.window_s,
        }


def analytics_app(
    analytics: Analytics,
    *,
    brokers: str,
    state_dir: str,
    settings: dict[str, Any] | None = None,
    name: str = "analytics",
) -> Any:
    """The Kafka demo's analytics as a kafkito.streams app (group `name`), feeding `analytics`.

        page_views ─┬─ {page, click, id} ─ by page ─┬─ 5 s windows, on update ─► top pages, CTR
        clicks ─────┘                                ├─ 5 s windows, on close ──► anomalies
                                                     └─ each event ───────────► rates, totals
    Events that are not valid PageViews or Clicks go to `<name>-dead-letters` (the decoder is
    the model). Side effects (the dashboard's state) are at-least-once; counts may repeat an
    event after a crash, the ids in `counted_ids` do not.
    """
    from kafkito.streams import StreamsApp, Tumbling

    bucket_ms = analytics.bucket_s * 1000
    app = StreamsApp(
        name,
        brokers=brokers,
        state_dir=state_dir,
        commit_interval_ms=500,
        consumer_settings=settings,
        producer_settings=settings,
    )
    views = app.stream(PAGE_VIEWS, value=PageView, timestamp=lambda view: view.ts)
    clicks = app.stream(CLICKS, value=Click, timestamp=lambda click: click.ts)
    events = views.map(lambda view: {"page": view.page, "click": 0, "id": view.event_id}).merge(
        clicks.map(lambda click: {"page": click.page, "click": 1, "id": click.event_id})
    )
    by_page = events.group_by(lambda event: event["page"], name="by-page")

    def tally(counts: list[int], event: dict[str, Any]) -> list[int]:
        return [counts[0] + 1 - event["click"], counts[1] + event["click"]]

    # The dashboard shows the last `window_s` of event time: an event late by less than
    # that still counts in its bucket (without a grace, a partition read a moment behind the
    # others, on a loaded machine, lost its events to the late side stream).
    by_page.window(
        Tumbling(bucket_ms), emit="update", grace_ms=analytics.window_s * 1000 - bucket_ms
    ).aggregate(lambda: [0, 0], tally, name="pages").foreach(
        lambda w: analytics.page_window(w.key, w.start_ms, w.value[0], w.value[1])
    )
    # One bucket of grace (a page's events come from several partitions), and idle pages'
    # buckets close on the wall clock, so the last buckets of a run are judged too.
    by_page.window(
        Tumbling(bucket_ms), grace_ms=bucket_ms, close_after_idle_ms=2 * bucket_ms
    ).aggregate(lambda: [0, 0], tally, name="buckets").filter(
        lambda w: w.value[0] > 0  # a bucket of clicks only has no views to judge
    ).foreach(lambda w: analytics.bucket_closed(w.key, w.start_ms, w.value[0]))
    # Counted last, after the repartition and the windows' updates of the same record: an
    # event counted is an event in its window (the demo drains until every event is counted).
    by_page.stream.foreach(
        lambda event: analytics.count(CLICKS if event["click"] else PAGE_VIEWS, event["id"])
    )
    return app
