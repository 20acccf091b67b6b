"""`kafkito demo`: real-time user activity tracking, the seed's example, running end to end.

    simulated web + mobile users ──► page_views, clicks (keyed by user, JSON, with headers)
         │ TopicWriter.write_many, every delivery confirmed
         ├──► group `analytics` (a kafkito.streams app, demo/analytics.py): windowed counts
         │        per page, top pages, click-through, spike detection
         ├──► group `lake` (consume flow, batches): Parquet files by topic and hour, committed
         │        only once the file is durable; DuckDB reads them; malformed events to
         │        page_views.dlq / clicks.dlq
         └──► web dashboard + console on http://127.0.0.1:8080 (live charts, topics, messages,
                  groups and lag)

Runs on the embedded broker unless `brokers` are given. Stops on Ctrl-C / SIGTERM or after
`duration_s`; before stopping, the producers stop and both groups are given time to catch up,
so a scripted run ends with every valid event counted and stored (see tests/demo/).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafkito.demo.analytics import Analytics, analytics_app
from kafkito.demo.events import PAGE_VIEWS, TOPICS, Click, Pacer, PageView, Simulator
from kafkito.demo.lake import write_batch

log = logging.getLogger(__name__)

ANALYTICS_GROUP = "analytics"
LAKE_GROUP = "lake"
PRODUCERS_THREAD = "kafkito-demo-producers"


@dataclass
class DemoOptions:
    brokers: str | None = None
    duration_s: float | None = None
    rate: float = 200.0
    """Events per second, all topics together."""
    users: int = 300
    malformed_share: float = 0.02
    seed: int = 7
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: str | None = None
    lake_dir: str = "./.kafkito/lake"
    partitions: int = 3
    drain_timeout_s: float = 60.0
    client_settings: dict[str, Any] = field(default_factory=dict)
    """librdkafka settings for every client of the demo (security for a real cluster)."""
    pubsub: bool = False
    """Run over Google Pub/Sub instead of Kafka (demo/pubsub.py)."""
    pubsub_project: str | None = None
    """The Pub/Sub project; None: PUBSUB_EMULATOR_HOST's emulator, else one started here."""


@dataclass
class DemoReport:
    """What a run did: the ground truth a test compares the consumers with."""

    bootstrap: str
    url: str
    lake_dir: Path
    produced: dict[int, str] = field(default_factory=dict)
    """event id -> topic, for every valid event whose write was confirmed."""
    malformed: list[tuple[str, bytes]] = field(default_factory=list)
    counted_ids: set[int] = field(default_factory=set)
    lake_ids: set[int] = field(default_factory=set)
    cleared_files: int = 0
    """Parquet files of an earlier run removed from the lake at start."""
    drained: bool = False


def parse_event(topic: str, value: Any) -> PageView | Click:
    """A decoded JSON event as its model; raises Reject if it is not a valid one."""
    import pydantic

    from kafkito.flow import Reject

    model = PageView if topic == PAGE_VIEWS else Click
    try:
        return model.model_validate(value)
    except pydantic.ValidationError as exc:
        raise Reject(
            f"not a valid {model.__name__}: {exc.error_count()} error(s): "
            f"{exc.errors()[0]['loc']} {exc.errors()[0]['msg']}"
        ) from exc


class Demo:
    """The demo's moving parts, started and stopped together."""

    def __init__(self, options: DemoOptions) -> None:
        self.options = options
        self.analytics = Analytics()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._broker: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._flows: list[Any] = []
        self._streams: Any = None
        self._state_tmp: tempfile.TemporaryDirectory[str] | None = None
        self._server: Any = None
        self._lag: dict[str, int] = {}
        self._dead_lettered = 0
        self._lake_lock = threading.Lock()
        self.report: DemoReport | None = None

    # -- start -----------------------------------------------------------------------------

    def start(self) -> DemoReport:
        from kafkito.flow import Flow, RetryPolicy

        options = self.options
        if options.brokers:
            bootstrap = options.brokers
        else:
            from kafkito import Broker

            if options.data_dir is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="kafkito-demo-")
            data_dir = options.data_dir or self._tmp.name  # type: ignore[union-attr]
            self._broker = Broker(
                port=0,
                data_dir=data_dir,
                num_partitions=options.partitions,
                group_initial_rebalance_delay_ms=0,
            )
            bootstrap = self._broker.start()
        lake = Path(options.lake_dir).resolve()
        lake.mkdir(parents=True, exist_ok=True)
        # A broker on a fresh temporary directory starts empty: files of an earlier run would
        # make the lake disagree with this run's report (and DuckDB's counts with it).
        cleared = clear_lake(lake) if not options.brokers and options.data_dir is None else 0
        settings = {**options.client_settings, "bootstrap.servers": bootstrap}
        self._create_topics(settings)
        self.report = DemoReport(bootstrap, "", lake)
        self.report.cleared_files = cleared

        if options.data_dir is not None:
            state_dir = str(Path(options.data_dir) / "streams")
        else:
            self._state_tmp = tempfile.TemporaryDirectory(prefix="kafkito-demo-streams-")
            state_dir = self._state_tmp.name
        self._streams = analytics_app(
            self.analytics,
            brokers=bootstrap,
            state_dir=state_dir,
            settings=options.client_settings,
            name=ANALYTICS_GROUP,
        )
        lake_flow = Flow(
            list(TOPICS),
            self._store,
            group_id=LAKE_GROUP,
            brokers=bootstrap,
            settings=options.client_settings,
            # Larger, fewer files: a batch waits up to 5 s for 5,000 events (at the default
            # 200 events/s that is one file per topic, hour and partition every 5 s, not a
            # file of a few dozen rows each second).
            batch_size=5_000,
            batch_timeout_s=5.0,
            retry=RetryPolicy.delays([0.5, 2]),
            commit_interval_s=0.5,
            name="lake",
        )
        self._flows = [lake_flow]
        self._spawn(self._streams.run, "kafkito-demo-analytics")
        self._spawn(lake_flow.run, "kafkito-demo-lake")
        self._spawn(lambda: self._produce(bootstrap), PRODUCERS_THREAD)
        self._spawn(lambda: self._sample(settings), "kafkito-demo-sampler")
        self.report.url = self._serve(settings)
        return self.report

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _create_topics(self, settings: dict[str, Any]) -> None:
        from kafkito.client.admin import Admin

        with Admin(settings=settings, timeout_s=15) as admin:
            for topic in admin.create_topics(
                TOPICS, partitions=self.options.partitions, if_not_exists=True
            ):
                log.info("created topic %s", topic)

    # -- the parts -------------------------------------------------------------------------

    def _produce(self, bootstrap: str) -> None:
        """Simulated users, in ticks of 100 ms; records only confirmed writes."""
        from kafkito.client import TopicWriter
        from kafkito.client.writer import Record

        assert self.report is not None
        options = self.options
        simulator = Simulator(
            users=options.users, malformed_share=options.malformed_share, seed=options.seed
        )
        settings = {**self.options.client_settings, "linger.ms": 5}
        with TopicWriter(brokers=bootstrap, settings=settings) as writer:
            pacer = Pacer(options.rate)
            while not self._stop.is_set():
                now_ms = int(time.time() * 1000)
                events = [simulator.next_event(now_ms) for _ in range(pacer.due())]
                for topic in TOPICS:
                    batch = [e for e in events if e.topic == topic]
                    if not batch:
                        continue
                    try:
                        writer.write_many(
                            topic, [Record(e.value, key=e.key, headers=e.headers) for e in batch]
                        )
                    except Exception as exc:
                        log.warning(
                            "demo producers: a batch of %d %s failed: %s", len(batch), topic, exc
                        )
                        continue
                    for e in batch:
                        if e.valid:
                            self.report.produced[e.event_id] = topic
                        else:
                            self.report.malformed.append((topic, e.value))
                pacer.wait(self._stop)

    def _count(self, record: Any) -> None:
        """Analytics handler of the Pub/Sub demo: one valid event (Record of a decoded JSON
        dict); on Kafka the streams app feeds `self.analytics` instead."""
        event = parse_event(record.topic, record.value)
        if isinstance(event, PageView):
            self.analytics.handle_view(event)
        else:
            self.analytics.handle_click(event)

    def _store(self, records: list[Any]) -> None:
        """Lake handler: a batch of one partition; invalid events fail alone (dead letters)."""
        from kafkito.flow import BatchFailed, Reject

        rows: dict[str, list[dict[str, Any]]] = {}
        failed: dict[int, BaseException] = {}
        for index, record in enumerate(records):
            try:
                event = parse_event(record.topic, record.value)
            except Reject as exc:
                failed[index] = exc
                continue
            row = event.model_dump()
            row.update(kafka_partition=record.partition, kafka_offset=record.offset)
            rows.setdefault(record.topic, []).append(row)
        for topic, topic_rows in rows.items():
            write_batch(self.report.lake_dir if self.report else Path("."), topic, topic_rows)
            with self._lake_lock:
                if self.report is not None:
                    self.report.lake_ids.update(r["event_id"] for r in topic_rows)
        if failed:
            raise BatchFailed(failed)

    def _sample(self, settings: dict[str, Any]) -> None:
        """Once a second: each group's lag, and how many events were dead-lettered."""
        from kafkito.client.admin import Admin
        from kafkito.console import cluster

        admin: Admin | None = None
        while not self._stop.wait(1.0):
            try:
                if admin is None:  # one client for every sample, not three a second
                    admin = Admin(settings=settings, timeout_s=cluster.TIMEOUT_S)
                self._lag = {
                    g: cluster.describe_group(admin, g).lag for g in (ANALYTICS_GROUP, LAKE_GROUP)
                }
                topics = {t.name: t for t in cluster.list_topics(admin)}
                self._dead_lettered = sum(
                    topics[f"{t}.dlq"].records for t in TOPICS if f"{t}.dlq" in topics
                )
            except Exception as exc:  # a broker restart, a group not formed yet
                log.debug("demo sampler: %s", exc)
        if admin is not None:
            admin.close()

    def dashboard(self) -> dict[str, Any]:
        snapshot = self.analytics.snapshot()
        snapshot.update(
            lag=dict(self._lag),
            dead_lettered=self._dead_lettered,
            now=time.time(),
        )
        return snapshot

    def _serve(self, settings: dict[str, Any]) -> str:
        from kafkito.console.app import create_app

        app = create_app(settings, dashboard=self.dashboard)
        return self._start_web(app)

    def _start_web(self, app: Any) -> str:
        """Serve `app` on the options' host and port in a thread; its URL once it listens."""
        import uvicorn

        config = uvicorn.Config(
            app, host=self.options.host, port=self.options.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None
        self._spawn(self._server.run, "kafkito-demo-web")
        deadline = time.monotonic() + 15
        while not self._server.started:
            if time.monotonic() > deadline or not self._threads[-1].is_alive():
                raise RuntimeError(
                    f"the web server did not start on {self.options.host}:{self.options.port}"
                )
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://{self.options.host}:{port}/"

    # -- stop --------------------------------------------------------------------------------

    def stop(self) -> DemoReport:
        """Stop producing, let both groups catch up (bounded), then stop everything."""
        assert self.report is not None
        self._stop.set()
        deadline = time.monotonic() + self.options.drain_timeout_s
        # The producers finish the tick they are in (its writes may be confirmed after the
        # stop): what they record then must be waited for too, so wait for them first.
        for thread in self._threads:
            if thread.name == PRODUCERS_THREAD:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        expected = set(self.report.produced)
        while time.monotonic() < deadline:
            counted = self.analytics.counted_ids >= expected
            with self._lake_lock:
                stored = self.report.lake_ids >= expected
            # ...and every record is resolved (dead letters acknowledged too), so that the
            # flows' last commit reaches the end of every partition.
            settled = all(flow.health()["in_flight"] == 0 for flow in self._flows)
            if counted and stored and settled:
                self.report.drained = True
                break
            time.sleep(0.1)
        self._halt()
        self.report.counted_ids = set(self.analytics.counted_ids)
        return self.report

    def _halt(self) -> None:
        """Stop whatever was started, in reverse order (also after a failed start)."""
        self._stop.set()
        if self._streams is not None:
            self._streams.stop()
        for flow in self._flows:
            flow.stop()
        if self._server is not None:
            self._server.should_exit = True
        for thread in self._threads:
            thread.join(timeout=30)
        if self._broker is not None:
            self._broker.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
        if self._state_tmp is not None:
            self._state_tmp.cleanup()


def clear_lake(lake: Path) -> int:
    """Remove the demo's Parquet files (topic=*/hour=*/part-*.parquet[.tmp]) from `lake`;
    anything else there is left alone. Returns how many files went."""
    removed = 0
    for topic_dir in lake.glob("topic=*"):
        for path in topic_dir.glob("hour=*/part-*.parquet*"):
            path.unlink()
            removed += 1
        for hour_dir in topic_dir.glob("hour=*"):
            with contextlib.suppress(OSError):
                hour_dir.rmdir()  # only when empty
        with contextlib.suppress(OSError):
            topic_dir.rmdir()
    return removed


def run_demo(options: DemoOptions, *, say: Callable[[str], None] = print) -> DemoReport:
    """Run until Ctrl-C / SIGTERM or `options.duration_s`; returns what happened."""
    demo: Demo
    if options.pubsub:
        from kafkito.demo.pubsub import PubSubDemo

        demo = PubSubDemo(options)
    else:
        demo = Demo(options)
    try:
        report = demo.start()
    except BaseException:
        demo._halt()  # e.g. the dashboard port is taken: stop the broker and consumers again
        raise
    where = "embedded kafkito broker" if not options.brokers else "Kafka"
    if options.pubsub:
        from kafkito.demo.pubsub import PubSubDemo, pubsub_where

        assert isinstance(demo, PubSubDemo)
        where = pubsub_where(demo)
    say(
        f"kafkito demo: {options.rate:.0f} events/s from {options.users} simulated users into "
        f"{', '.join(TOPICS)} on the {where} at {report.bootstrap}"
    )
    say(f"dashboard and console: {report.url}")
    say(f"data lake: {report.lake_dir} (Parquet, by topic and hour; query it with DuckDB)")
    if report.cleared_files:
        say(f"data lake: removed {report.cleared_files} file(s) of an earlier run (new broker)")
    stop = threading.Event()
    restore: list[tuple[signal.Signals, Any]] = []
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            restore.append((sig, signal.signal(sig, lambda *_: stop.set())))
    try:
        stop.wait(options.duration_s)
    finally:
        for sig, handler in restore:
            signal.signal(sig, handler)
        say("stopping: letting the consumers catch up...")
        report = demo.stop()
    say(
        f"produced {len(report.produced):,} valid and {len(report.malformed):,} malformed events; "
        f"analytics counted {len(report.counted_ids):,}, the lake stored "
        f"{len(report.lake_ids):,}; malformed ones are in the *.dlq topics"
    )
    return report
