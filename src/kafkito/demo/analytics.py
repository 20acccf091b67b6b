"""Real-time analytics over the activity stream: rates, top pages, click-through, anomalies.

Fed by a consume flow (group `analytics`); every valid event is counted once per handling.
State lives in one object behind a lock: the flow's handler threads write, the web server
reads snapshots.

* events per second per topic, over the last `history_s` seconds (for the rate chart);
* per-page page views and clicks over a sliding window of `window_s` seconds: the top pages
  and each page's click-through rate (clicks / page views);
* anomalies: page views are bucketed by *event time* (`bucket_s` seconds). A bucket is judged
  once events two buckets newer arrive (one bucket of lateness allowed, since a page's events
  come from several partitions), against an exponentially weighted baseline of that page's
  earlier buckets; far above it (`factor` times, and at least `min_excess` views more) is an
  anomaly. A page needs `warmup` judged buckets before it can be flagged, so the ramp-up at
  start, or a consumer catching up on a backlog, is not mistaken for a spike.
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
    _views: dict[int, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    _clicks: dict[int, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    _buckets: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    _baseline: dict[str, float] = field(default_factory=dict)
    _seen_buckets: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _newest_bucket: int = 0
    anomalies: deque[Anomaly] = field(default_factory=lambda: deque(maxlen=50))
    totals: dict[str, int] = field(default_factory=lambda: {PAGE_VIEWS: 0, CLICKS: 0})
    anomaly_total: int = 0

    def handle_view(self, view: PageView) -> None:
        self._count(PAGE_VIEWS, view.event_id, view.page, view.ts)

    def handle_click(self, click: Click) -> None:
        self._count(CLICKS, click.event_id, click.page, click.ts)

    def _count(self, topic: str, event_id: int, page: str, ts_ms: int) -> None:
        second = int(time.time())
        with self._lock:
            self.counted_ids.add(event_id)
            self.totals[topic] += 1
            self._per_second[topic][second] += 1
            if topic == PAGE_VIEWS:
                self._views[second][page] += 1
                bucket = ts_ms // (self.bucket_s * 1000)
                if bucket > self._newest_bucket - 2:  # older than that: too late to count
                    self._buckets[page][bucket] += 1
                if bucket > self._newest_bucket:
                    self._newest_bucket = bucket
                    self._judge_closed(bucket - 2)
            else:
                self._clicks[second][page] += 1
            self._trim(second)

    def _judge_closed(self, up_to: int) -> None:
        """Judge every page's buckets up to `up_to`, then learn each page's baseline from them."""
        for page, buckets in self._buckets.items():
            for closed in sorted(b for b in buckets if b <= up_to):
                views = buckets.pop(closed)
                baseline = self._baseline.get(page)
                warm = self._seen_buckets[page] >= self.warmup
                self._seen_buckets[page] += 1
                if (
                    warm
                    and baseline is not None
                    and views > max(baseline * self.factor, baseline + self.min_excess)
                ):
                    at_ms = (closed + 1) * self.bucket_s * 1000
                    self.anomalies.appendleft(Anomaly(page, at_ms, views, round(baseline, 1)))
                    self.anomaly_total += 1
                    continue  # an anomaly does not become the new normal
                self._baseline[page] = (
                    views
                    if baseline is None
                    else (self.alpha * views + (1 - self.alpha) * baseline)
                )

    def _trim(self, second: int) -> None:
        oldest = second - self.history_s
        for series in self._per_second.values():
            for s in [s for s in series if s < oldest]:
                del series[s]
        for table in (self._views, self._clicks):
            for s in [s for s in table if s < second - self.window_s]:
                del table[s]

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
            for s, pages in self._views.items():
                if s > second - self.window_s:
                    for page, n in pages.items():
                        views[page] += n
            for s, pages in self._clicks.items():
                if s > second - self.window_s:
                    for page, n in pages.items():
                        clicks[page] += n
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
