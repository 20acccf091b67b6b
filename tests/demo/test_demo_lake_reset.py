"""Issue #17 item 8: a demo on a new (empty) broker starts with an empty lake, so DuckDB's
counts match the run's report; files that are not the demo's stay."""

from __future__ import annotations

from pathlib import Path

from kafkito.demo.lake import query, write_batch
from kafkito.demo.runner import clear_lake


def test_files_of_an_earlier_run_are_removed_and_nothing_else(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    row = {"event_id": 1, "type": "page_view", "ts": 1_796_000_000_000, "kafka_partition": 0}
    write_batch(lake, "page_views", [{**row, "kafka_offset": 0}])
    write_batch(lake, "clicks", [{**row, "event_id": 2, "kafka_offset": 0}])
    (lake / "topic=clicks" / "notes.txt").write_text("mine")
    (lake / "README").write_text("mine too")
    assert query(lake, "").aggregate("count(*)").fetchall() == [(2,)]
    assert clear_lake(lake) == 2
    assert not list(lake.glob("**/*.parquet"))
    assert (lake / "topic=clicks" / "notes.txt").read_text() == "mine"
    assert (lake / "README").exists() and not (lake / "topic=page_views").exists()
    write_batch(lake, "page_views", [{**row, "event_id": 3, "kafka_offset": 0}])
    assert query(lake, "").aggregate("count(*)").fetchall() == [(1,)]
