"""The storage consumer: events into a local data lake of Parquet files, queryable with DuckDB.

Layout (Hive-style partitions, so DuckDB's `hive_partitioning` reads the columns back):

    <lake>/topic=page_views/hour=2026-11-27T09/part-<first offset>-<unique>.parquet

A batch handler of the consume flow (group `lake`) writes each batch as one file per
(topic, hour): to a temporary name, fsynced, renamed, and the directory fsynced. Only then does
the handler return, so the flow commits offsets only for events that are durable in the lake;
a crash in between leaves a `.tmp` file (ignored by readers) and the events are written again.

    import duckdb
    duckdb.sql("SELECT page, count(*) FROM read_parquet('lake/**/*.parquet', "
               "hive_partitioning = true) GROUP BY page ORDER BY 2 DESC")
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("event_id", pa.int64()),
        ("type", pa.string()),
        ("user_id", pa.string()),
        ("session_id", pa.string()),
        ("page", pa.string()),
        ("element", pa.string()),
        ("referrer", pa.string()),
        ("device", pa.string()),
        ("ts", pa.int64()),
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
    ]
)


def hour_of(ts_ms: int) -> str:
    return datetime.datetime.fromtimestamp(ts_ms / 1000, datetime.UTC).strftime("%Y-%m-%dT%H")


def write_batch(lake: Path, topic: str, rows: list[dict[str, Any]]) -> list[Path]:
    """Write rows (event fields + kafka_partition/kafka_offset) durably; returns the files."""
    by_hour: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_hour[hour_of(int(row["ts"]))].append(row)
    written = []
    for hour, group in sorted(by_hour.items()):
        directory = lake / f"topic={topic}" / f"hour={hour}"
        directory.mkdir(parents=True, exist_ok=True)
        first = min(r["kafka_offset"] for r in group)
        final = directory / f"part-{first:012d}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        table = pa.Table.from_pylist(
            [{f: r.get(f) for f in SCHEMA.names} for r in group], schema=SCHEMA
        )
        with open(tmp, "wb") as sink:
            pq.write_table(table, sink, compression="zstd")
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        written.append(final)
    return written


def query(lake: Path, sql_tail: str = "") -> Any:
    """A DuckDB relation over every Parquet file of the lake (for tests and the curious)."""
    import duckdb

    pattern = str(lake / "**" / "*.parquet")
    return duckdb.sql(
        f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true) {sql_tail}"
    )
