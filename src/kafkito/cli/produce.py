"""`kafkito produce`: lines from stdin or a file become records; offsets are reported."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

import click

from kafkito.cli.context import EXIT_USAGE, CliContext, CliError, handle_errors


def parse_headers(values: tuple[str, ...]) -> list[tuple[str, bytes]]:
    headers = []
    for item in values:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"header {item!r} is not NAME=VALUE", EXIT_USAGE)
        headers.append((name, value.encode()))
    return headers


def split_line(line: str, key_separator: str | None) -> tuple[bytes | None, bytes]:
    """(key, value) of one input line; without a separator the key is None."""
    if key_separator is None:
        return None, line.encode()
    key, sep, value = line.partition(key_separator)
    if not sep:
        return None, line.encode()
    return key.encode(), value.encode()


@click.command()
@click.argument("topic")
@click.option(
    "--file",
    "-f",
    "source",
    type=click.File("r"),
    default="-",
    show_default=True,
    help="Read lines from this file ('-' for stdin).",
)
@click.option(
    "--key-separator",
    "-K",
    default=None,
    help="Split each line at the first SEPARATOR into key and value.",
)
@click.option("--header", "-H", "headers", multiple=True, help="Header NAME=VALUE (repeatable).")
@click.option(
    "--json-values",
    is_flag=True,
    help="Check that every value is JSON (lines that are not fail the command).",
)
@click.option("--partition", "-p", type=int, default=None, help="Write to this partition.")
@click.option("--rate", type=float, default=None, help="At most this many records per second.")
@click.option("--acks", type=click.Choice(["0", "1", "all"]), default="all", show_default=True)
@click.option(
    "--compression",
    type=click.Choice(["none", "gzip", "snappy", "lz4", "zstd"]),
    default="none",
    show_default=True,
)
@click.option("--verbose", "-v", is_flag=True, help="Print partition and offset of every record.")
@click.pass_obj
def produce(
    obj: CliContext,
    topic: str,
    source: IO[str],
    key_separator: str | None,
    headers: tuple[str, ...],
    json_values: bool,
    partition: int | None,
    rate: float | None,
    acks: str,
    compression: str,
    verbose: bool,
) -> None:
    """Write one record per input line to TOPIC and report where they landed.

    \b
    Examples:
      echo 'hello' | kafkito produce greetings
      kafkito produce clicks -K : -H source=cli < events.txt     # "user-1:{...}" lines
    """
    with handle_errors(obj):
        from kafkito.client.raw_producer import delivery_error

        header_list = parse_headers(headers)
        producer = obj.producer(
            **{
                "acks": acks,
                "compression.type": compression,
                "linger.ms": 5,
                "enable.idempotence": acks == "all",
                "allow.auto.create.topics": True,
            }
        )
        results: list[dict[str, Any]] = []
        errors: list[str] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(delivery_error(err, topic=msg.topic())))
                return
            results.append({"partition": msg.partition(), "offset": msg.offset()})
            if verbose and not obj.json_output:
                click.echo(f"{msg.topic()}[{msg.partition()}]@{msg.offset()}", err=True)

        interval = 1.0 / rate if rate else 0.0
        next_at = time.monotonic()
        count = 0
        progress = _progress_for(source, quiet=obj.json_output)
        for raw in source:
            if progress is not None:
                progress.advance(len(raw))
            line = raw.rstrip("\n")
            if line == "" and raw == "":
                continue
            key, value = split_line(line, key_separator)
            if json_values:
                try:
                    json.loads(value)
                except ValueError as exc:
                    raise CliError(f"line {count + 1} is not JSON: {exc}", EXIT_USAGE) from exc
            producer.produce(
                topic,
                value,
                key,
                partition=partition,
                headers=header_list,
                on_delivery=on_delivery,
            )  # waits for room when the local queue is full
            count += 1
            producer.poll(0)
            if interval:
                next_at += interval
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        if progress is not None:
            progress.close()
        remaining = producer.flush(30)
        if errors:
            raise CliError(f"{len(errors)} of {count} records failed: {errors[0]}")
        if remaining:
            raise CliError(f"{remaining} of {count} records not confirmed after 30s")
        summary = _summarize(topic, results)
        if obj.json_output:
            click.echo(json.dumps(summary))
        else:
            parts = ", ".join(
                f"[{p}] {r['first']}..{r['last']}" for p, r in sorted(summary["partitions"].items())
            )
            click.echo(
                f"produced {len(results)} records to {topic}" + (f": {parts}" if parts else ""),
                err=sys.stdout.isatty(),
            )


def _summarize(topic: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    partitions: dict[int, dict[str, int]] = {}
    for r in results:
        entry = partitions.setdefault(
            r["partition"], {"first": r["offset"], "last": r["offset"], "count": 0}
        )
        entry["first"] = min(entry["first"], r["offset"])
        entry["last"] = max(entry["last"], r["offset"])
        entry["count"] += 1
    return {"topic": topic, "records": len(results), "partitions": partitions}


class _FileProgress:
    """A progress bar on stderr (a terminal only) over the bytes of an input file."""

    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import Progress

        self._progress = Progress(transient=True, console=Console(stderr=True))
        self._task = self._progress.add_task("producing", total=total)
        self._progress.start()

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()


def _progress_for(source: IO[str], *, quiet: bool) -> _FileProgress | None:
    """A progress bar when reading a regular file (not stdin) with a terminal on stderr."""
    import os

    if quiet or not sys.stderr.isatty():
        return None
    try:
        stat = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    import stat as stat_mod

    if not stat_mod.S_ISREG(stat.st_mode) or stat.st_size < 1 << 20:
        return None  # small inputs finish before a bar would help
    return _FileProgress(stat.st_size)
