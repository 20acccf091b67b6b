"""Simulated users: web and mobile page views and clicks, as JSON events with keys and headers.

A few hundred users browse a small site: each event is keyed by user id (so one user's events
stay in order on one partition), carries `source` / `content-type` / `user-agent` headers, and a
small share is malformed on purpose (truncated JSON, or JSON missing required fields) so the
dead-letter path has something to show. Every few dozen seconds one page gets a burst of traffic,
which the analytics' anomaly detector should flag.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field

import pydantic

PAGE_VIEWS = "page_views"
CLICKS = "clicks"
TOPICS = (PAGE_VIEWS, CLICKS)

PAGES = {
    "/": 30,
    "/products": 16,
    "/products/kafkito-pro": 8,
    "/pricing": 10,
    "/docs": 12,
    "/docs/quickstart": 7,
    "/blog": 5,
    "/blog/kafka-in-python": 4,
    "/signup": 4,
    "/cart": 3,
    "/checkout": 2,
    "/about": 2,
}
ELEMENTS = [
    "nav-link",
    "cta-button",
    "signup-button",
    "add-to-cart",
    "buy-now",
    "search",
    "footer-link",
]
DEVICES = {
    "web": ("desktop", "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0"),
    "mobile": ("ios", "kafkito-shop/3.2 (iPhone; iOS 19.1)"),
}


class PageView(pydantic.BaseModel):
    """A page view as the analytics and the data lake read it."""

    model_config = pydantic.ConfigDict(extra="ignore")

    event_id: int
    type: str
    user_id: str
    session_id: str
    page: str
    referrer: str | None = None
    device: str
    ts: int


class Click(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore")

    event_id: int
    type: str
    user_id: str
    session_id: str
    page: str
    element: str
    device: str
    ts: int


@dataclass
class Event:
    """One event ready to produce; `valid` is False for the deliberately malformed ones."""

    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    event_id: int
    valid: bool


class Pacer:
    """How many events are due, at `rate` per second by the clock, in ticks of `tick_s`.

    Counted from the time passed, not from the ticks taken: a write that takes longer than a
    tick (a loaded machine, a cluster that moves a leader) is caught up on the next tick,
    instead of lowering the rate the demo was asked for.
    """

    def __init__(self, rate: float, tick_s: float = 0.1) -> None:
        self.rate = rate
        self.tick_s = tick_s
        self._last = self._next = time.monotonic()
        self._carry = 0.0

    def due(self) -> int:
        now = time.monotonic()
        self._carry += self.rate * (now - self._last)
        self._last = now
        count = int(self._carry)
        self._carry -= count
        return count

    def wait(self, stop: threading.Event) -> None:
        """Until the next tick (at once when behind), or until `stop` is set."""
        self._next = max(self._next + self.tick_s, time.monotonic())
        stop.wait(max(0.0, self._next - time.monotonic()))


@dataclass
class Simulator:
    """Generates events for `users` users; seeded, so a run can be replayed."""

    users: int = 300
    malformed_share: float = 0.02
    seed: int = 7
    spike_every_s: float = 40.0
    spike_length_s: float = 4.0
    spike_factor: float = 8.0
    _rng: random.Random = field(init=False)
    _next_id: int = field(init=False, default=0)
    _sessions: dict[str, str] = field(init=False, default_factory=dict)
    _last_page: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._pages = list(PAGES)
        self._weights = [PAGES[p] for p in self._pages]

    def spike_page(self, now_s: float) -> str | None:
        """The page under a traffic spike at `now_s`, if any."""
        cycle = int(now_s // self.spike_every_s)
        if now_s - cycle * self.spike_every_s >= self.spike_length_s or cycle == 0:
            return None
        return self._pages[random.Random(cycle * 7919 + self.seed).randrange(3, len(self._pages))]

    def next_event(self, now_ms: int) -> Event:
        rng = self._rng
        self._next_id += 1
        event_id = self._next_id
        user = f"user-{rng.randrange(self.users):04d}"
        if user not in self._sessions or rng.random() < 0.02:
            self._sessions[user] = f"s-{rng.getrandbits(48):012x}"
        source = "mobile" if rng.random() < 0.35 else "web"
        device, agent = DEVICES[source]
        spike = self.spike_page(now_ms / 1000)
        if spike is not None and rng.random() < 1 - 1 / self.spike_factor:
            page = spike
        else:
            page = rng.choices(self._pages, self._weights)[0]
        is_click = rng.random() < 0.25
        body: dict[str, object] = {
            "event_id": event_id,
            "user_id": user,
            "session_id": self._sessions[user],
            "page": page,
            "device": device,
            "ts": now_ms,
        }
        if is_click:
            body.update(type="click", element=rng.choice(ELEMENTS))
        else:
            body.update(type="page_view", referrer=self._last_page.get(user))
            self._last_page[user] = page
        headers = [
            ("source", source.encode()),
            ("content-type", b"application/json"),
            ("user-agent", agent.encode()),
        ]
        value = json.dumps(body).encode()
        valid = True
        if rng.random() < self.malformed_share:
            valid = False
            if rng.random() < 0.5:
                value = value[: len(value) // 2]  # truncated in transit
            else:
                body.pop("user_id")
                body["ts"] = "yesterday"  # a buggy client release
                value = json.dumps(body).encode()
        return Event(
            CLICKS if is_click else PAGE_VIEWS, user.encode(), value, headers, event_id, valid
        )
