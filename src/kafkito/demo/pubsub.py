"""`kafkito demo --pubsub`: the activity-tracking demo over Google Pub/Sub.

The same simulated users, the same handlers (`Demo._count`, `Demo._store`: backend-neutral)
and the same dashboard; only the transport differs:

    simulated users ──► Pub/Sub topics page_views, clicks (ordering key = user, attributes)
        kafkito.pubsub.TopicWriter.write_many, every message confirmed
        ├──► subscriptions page_views-analytics, clicks-analytics: kafkito.pubsub.Flow,
        │        malformed events to page_views.dlq / clicks.dlq
        └──► subscriptions page_views-lake, clicks-lake: kafkito.pubsub.Flow with batches,
                 Parquet files acked only once durable (kafka_partition/offset are -1)

A Pub/Sub flow reads one subscription, so each Kafka consumer group becomes one flow per
topic. Where: `pubsub_project` and the usual Google credentials, or the emulator named by
PUBSUB_EMULATOR_HOST; with neither, the demo starts the Cloud SDK's emulator itself (one line
saying what to install if it is missing). The dashboard's "lag" is, per group, the messages
published and not yet handled (Pub/Sub's backlog needs Cloud Monitoring).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from kafkito.demo.events import TOPICS, Pacer, Simulator
from kafkito.demo.runner import ANALYTICS_GROUP, LAKE_GROUP, PRODUCERS_THREAD, Demo, DemoReport

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "kafkito-demo"
EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"


class PubSubDemo(Demo):
    """The demo's moving parts on Pub/Sub (see the module's docstring)."""

    def __init__(self, options: Any) -> None:
        super().__init__(options)
        self._emulator: Any = None
        self._env_before: str | None = None
        self._published: dict[str, int] = dict.fromkeys(TOPICS, 0)
        self.project = ""

    def start(self) -> DemoReport:
        from kafkito.flow import RetryPolicy
        from kafkito.pubsub import Flow

        options = self.options
        host = self._endpoint()
        self.project = options.pubsub_project or DEFAULT_PROJECT
        lake = Path(options.lake_dir).resolve()
        lake.mkdir(parents=True, exist_ok=True)
        from kafkito.demo.runner import clear_lake

        # a fresh emulator starts empty: files of an earlier run would disagree with it
        cleared = clear_lake(lake) if self._emulator is not None else 0
        self._create_subscriptions()
        self.report = DemoReport(f"pubsub:{self.project}@{host}", "", lake)
        self.report.cleared_files = cleared
        for topic in TOPICS:
            self._flows.append(
                Flow(
                    f"{topic}-{ANALYTICS_GROUP}",
                    self._count,
                    project_id=self.project,
                    concurrency=8,
                    retry=RetryPolicy.delays([0.2, 1.0]),
                    name=f"{ANALYTICS_GROUP}-{topic}",
                )
            )
            self._flows.append(
                Flow(
                    f"{topic}-{LAKE_GROUP}",
                    self._store,
                    project_id=self.project,
                    batch_size=2_000,
                    batch_timeout_s=2.0,
                    retry=RetryPolicy.delays([0.5, 2]),
                    dead_letter_topic=lambda t: f"{t}.lake-dlq",
                    name=f"{LAKE_GROUP}-{topic}",
                )
            )
        for flow in self._flows:
            self._spawn(flow.run, f"kafkito-demo-{flow.name}")
        deadline = time.monotonic() + 30
        while not all(flow.health()["live"] for flow in self._flows):
            if time.monotonic() > deadline:
                raise RuntimeError("the demo's Pub/Sub flows did not start within 30 s")
            time.sleep(0.05)
        self._spawn(self._produce_pubsub, PRODUCERS_THREAD)
        self._spawn(self._sample_pubsub, "kafkito-demo-sampler")
        self.report.url = self._serve_dashboard()
        return self.report

    def _endpoint(self) -> str:
        """The emulator or Google; starts the emulator when nothing else is named."""
        if self.options.pubsub_project or os.environ.get(EMULATOR_ENV):
            return os.environ.get(EMULATOR_ENV) or "pubsub.googleapis.com"
        from kafkito.testing.pubsub_emulator import PubSubEmulator, find_emulator

        find_emulator()  # raises PubSubEmulatorError with one line saying what to install
        self._emulator = PubSubEmulator(project_id=DEFAULT_PROJECT)
        self._emulator.start()
        self._env_before = os.environ.get(EMULATOR_ENV)
        os.environ[EMULATOR_ENV] = self._emulator.host
        return str(self._emulator.host)

    def _create_subscriptions(self) -> None:
        """Topics and subscriptions before anything is published (a subscription sees only
        what is published after it exists)."""
        from kafkito.pubsub import Reader

        for topic in TOPICS:
            for group in (ANALYTICS_GROUP, LAKE_GROUP):
                config = {
                    "topic_id": topic,
                    "create_if_missing": True,
                    "subscription": {"ack_deadline": "20s"},
                }
                Reader(f"{topic}-{group}", config, project_id=self.project).close()

    def _produce_pubsub(self) -> None:
        """Simulated users in ticks of 100 ms; records only confirmed messages."""
        from kafkito.pubsub import Record, TopicWriter

        assert self.report is not None
        options = self.options
        simulator = Simulator(
            users=options.users, malformed_share=options.malformed_share, seed=options.seed
        )
        config = {"client": {"project_id": self.project}, "topic": {"delay_threshold": "5ms"}}
        with TopicWriter(config) as writer:
            pacer = Pacer(options.rate)
            while not self._stop.is_set():
                now_ms = int(time.time() * 1000)
                events = [simulator.next_event(now_ms) for _ in range(pacer.due())]
                for topic in TOPICS:
                    batch = [e for e in events if e.topic == topic]
                    if not batch:
                        continue
                    records = [Record(e.value, key=e.key, headers=e.headers) for e in batch]
                    try:
                        writer.write_many(topic, records)
                    except Exception as exc:
                        log.warning("demo producers: %d %s failed: %s", len(batch), topic, exc)
                        continue
                    self._published[topic] += len(batch)
                    for e in batch:
                        if e.valid:
                            self.report.produced[e.event_id] = topic
                        else:
                            self.report.malformed.append((topic, e.value))
                pacer.wait(self._stop)

    def _sample_pubsub(self) -> None:
        """Once a second: per group, messages published and not yet handled; dead letters."""
        while not self._stop.wait(1.0):
            published = sum(self._published.values())
            lag: dict[str, int] = {}
            for group in (ANALYTICS_GROUP, LAKE_GROUP):
                flows = [f for f in self._flows if f.name.startswith(group)]
                done = sum(f.handled + f.dead_lettered for f in flows)
                lag[group] = max(0, published - done)
            self._lag = lag
            self._dead_lettered = sum(
                f.dead_lettered for f in self._flows if f.name.startswith(ANALYTICS_GROUP)
            )

    def _serve_dashboard(self) -> str:
        """The dashboard page and its JSON (the console's pages are Kafka's: not served)."""
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, JSONResponse, Response
        from starlette.routing import Mount, Route
        from starlette.staticfiles import StaticFiles

        from kafkito.console.app import STATIC

        def home(request: Request) -> Response:
            return HTMLResponse((STATIC / "dashboard.html").read_text())

        def api(request: Request) -> Response:
            return JSONResponse(self.dashboard())

        app = Starlette(
            routes=[
                Route("/", home),
                Route("/api/dashboard", api),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        )
        return self._start_web(app)

    def _halt(self) -> None:
        super()._halt()
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
            if self._env_before is None:
                os.environ.pop(EMULATOR_ENV, None)
            else:
                os.environ[EMULATOR_ENV] = self._env_before


def pubsub_where(demo: PubSubDemo) -> str:
    """How run_demo names the transport."""
    started = " (started by the demo)" if demo._emulator is not None else ""
    return f"Pub/Sub project {demo.project}{started}"
