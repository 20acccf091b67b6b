"""Sinks outside Kafka: Parquet files (queryable with DuckDB).

`stream.to_parquet(directory)` collects each record as a row, the value's fields (a dict, a
pydantic model, a msgspec Struct or dataclass; any other value becomes a `value` column) plus
`_key` and `_timestamp_ms`, and writes the rows of each commit interval as one Parquet file,
**before** the app commits the offsets (and the transaction) that cover them:

* a file is written whole or not at all (written under a temporary name, then renamed);
* a crash after the file and before the commit processes those records again, so a later
  file repeats them: at-least-once, also in exactly-once mode (a file system takes no part
  in a Kafka transaction). `_key` and `_timestamp_ms` (or your own id field) tell repeats
  apart;
* file names sort by time: `part-<app>-<instance>-<ns since the epoch>.parquet`.

    duckdb.sql("select page, sum(value) from 'lake/counts/*.parquet' group by page")
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import msgspec

from kafkito.streams.records import Record
from kafkito.streams.topology import Node

__all__ = ["ParquetSink"]


def _row(rec: Record) -> dict[str, Any]:
    value = rec.value
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        fields = dump(mode="json")
    elif isinstance(value, msgspec.Struct):
        fields = msgspec.to_builtins(value)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.asdict(value)
    elif isinstance(value, dict):
        fields = dict(value)
    else:
        fields = {"value": value}
    fields["_key"] = rec.key
    fields["_timestamp_ms"] = rec.timestamp_ms
    return dict(fields)


class ParquetSink(Node):
    """Rows collected between commits, written as one Parquet file before each commit."""

    __slots__ = ("directory", "prefix", "rows")

    def __init__(self, directory: str | Path) -> None:
        super().__init__()
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:  # pragma: no cover - pyarrow is in the demo extra
            raise ImportError("to_parquet needs pyarrow: pip install 'kafkito[demo]'") from exc
        self.directory = Path(directory)
        self.rows: list[dict[str, Any]] = []
        self.prefix = "part"

    def push(self, rec: Record) -> None:
        self.rows.append(_row(rec))

    async def apush(self, rec: Record) -> None:
        self.rows.append(_row(rec))

    def before_commit(self) -> None:
        """Write the collected rows as one file (called by the app before each commit)."""
        if not self.rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.directory.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist(self.rows)
        name = f"{self.prefix}-{time.time_ns()}.parquet"
        temporary = self.directory / f".{name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, self.directory / name)
        self.rows = []

    def discard(self) -> None:
        """Forget rows whose records will be processed again (an aborted transaction)."""
        self.rows = []
