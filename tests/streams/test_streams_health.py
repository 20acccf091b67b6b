"""Health and Prometheus metrics of a running streams app: readiness after restore, lag,
records processed, commits, restore progress per store partition."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry
from streams_kit import Running, create_topic, produce, read_all, wait_for

from kafkito.streams import StreamsApp
from kafkito.streams.inspect import describe_streams_app
from kafkito.streams.metrics import StreamsMetrics


def test_health_and_metrics(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    create_topic(kafkito_bootstrap, kafkito_topic, 2)
    produce(
        kafkito_bootstrap, kafkito_topic, ((f"k{i % 5}", {"i": i}, i % 2, None) for i in range(100))
    )
    produce(kafkito_bootstrap, kafkito_topic, [("bad", b"{", 0, None)])
    registry = CollectorRegistry()
    app = StreamsApp(
        f"app-{kafkito_topic}",
        brokers=kafkito_bootstrap,
        state_dir=tmp_path,
        exactly_once=True,
        metrics=StreamsMetrics.for_registry(registry),
    )
    assert app.health()["live"] is False  # not started
    app.stream(kafkito_topic).group_by().count(name="counts").to(f"{kafkito_topic}-out")
    start_app(app)
    read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=100)
    wait_for(lambda: app.health()["lag"] == 0 and app.lag != {}, what="lag 0")
    health = app.health()
    assert health["live"] and health["ready"], health
    assert health["restoring"] == []
    assert sorted((s["store"], s["partition"], s["done"]) for s in health["stores"]) == [
        ("counts", 0, True),
        ("counts", 1, True),
    ]
    labels = {"app": app.name, "topic": kafkito_topic}
    assert registry.get_sample_value("kafkito_streams_records_processed_total", labels) == 101
    assert (
        registry.get_sample_value("kafkito_streams_records_dead_lettered_total", {"app": app.name})
        == 1
    )
    assert registry.get_sample_value("kafkito_streams_commits_total", {"app": app.name}) >= 1
    done = {"app": app.name, "store": "counts", "partition": "1"}
    assert registry.get_sample_value("kafkito_streams_restore_done", done) == 1
    lag = {"app": app.name, "topic": kafkito_topic, "partition": "0"}
    assert registry.get_sample_value("kafkito_streams_lag", lag) == 0


def test_describe_a_streams_app_from_outside(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    create_topic(kafkito_bootstrap, kafkito_topic, 2)
    produce(
        kafkito_bootstrap, kafkito_topic, ((f"k{i % 7}", {"i": i}, None, None) for i in range(70))
    )
    app = StreamsApp(f"app-{kafkito_topic}", brokers=kafkito_bootstrap, state_dir=tmp_path)
    app.stream(kafkito_topic).group_by(lambda v: v["i"] % 3, name="mod").count(name="by-mod").to(
        f"{kafkito_topic}-out"
    )
    running = start_app(app)
    read_all(kafkito_bootstrap, f"{kafkito_topic}-out", expect=70)

    def settled() -> bool:
        return describe_streams_app(app.name, brokers=kafkito_bootstrap)["total_lag"] == 0

    wait_for(settled, what="no lag")
    seen = describe_streams_app(app.name, brokers=kafkito_bootstrap)
    running.stop()
    assert seen["repartition_topics"] == [f"{app.name}-mod-repartition"]
    (store,) = seen["stores"]
    assert store["store"] == "by-mod"
    assert [p["partition"] for p in store["partitions"]] == [0, 1]
    assert sum(p["records"] for p in store["partitions"]) >= 3  # 3 keys, each at least once
    assert {row["topic"] for row in seen["lag"]} == {kafkito_topic, f"{app.name}-mod-repartition"}
    assert seen["group_state"] is not None
