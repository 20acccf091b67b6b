"""The Parquet sink: rows of each commit interval in one file, read back with DuckDB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
from streams_kit import Running, create_topic, produce, wait_for

from kafkito.streams import StreamsApp


def test_rows_reach_parquet_files_duckdb_can_query(
    kafkito_bootstrap: str,
    kafkito_topic: str,
    tmp_path: Path,
    start_app: Callable[[StreamsApp], Running],
) -> None:
    create_topic(kafkito_bootstrap, kafkito_topic, 2)
    values = [{"page": f"/p{i % 4}", "ms": i} for i in range(400)]
    produce(kafkito_bootstrap, kafkito_topic, ((v["page"], v, None, None) for v in values))
    lake = tmp_path / "lake"
    app = StreamsApp(
        f"app-{kafkito_topic}",
        brokers=kafkito_bootstrap,
        state_dir=tmp_path / "state",
        commit_interval_ms=200,
    )
    app.stream(kafkito_topic).filter(lambda v: v["page"] != "/p3").to_parquet(lake)
    running = start_app(app)

    def rows() -> int:
        if not list(lake.glob("*.parquet")):
            return 0
        return int(duckdb.sql(f"select count(*) from '{lake}/*.parquet'").fetchall()[0][0])

    wait_for(lambda: rows() == 300, what="300 rows in the lake")
    running.stop()
    got = duckdb.sql(
        f"select _key, count(*), sum(ms) from '{lake}/*.parquet' group by _key order by _key"
    ).fetchall()
    want = [
        (f"/p{p}", 100, sum(v["ms"] for v in values if v["page"] == f"/p{p}")) for p in range(3)
    ]
    assert got == want
    assert not list(lake.glob(".*.tmp")), "no half-written file is left"
    assert all(f.name.startswith(f"part-{app.name}-") for f in lake.glob("*.parquet"))
