"""`kafkito transactions`: the cluster's transactional ids, open transactions and producers.

`list` asks every broker's transaction coordinator, `describe` the coordinator of each id,
`producers` the leader of each partition (kafkito.client's Admin; the requests are in
client/txn_admin.py). An open transaction holds read_committed readers of its partitions back
at its first offset (the LSO) until it ends or times out: `describe` shows its age and the time
left, `producers` the offset it holds each partition at.
"""

from __future__ import annotations

import time
from typing import Any

import click

from kafkito.cli.context import EXIT_NOT_FOUND, CliContext, CliError, handle_errors

# kafkito.client is imported inside the commands: `kafkito --help` need not load librdkafka.


def _seconds(ms: int | None) -> str | None:
    return None if ms is None else f"{ms / 1000:.1f}s"


def _utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


@click.group()
def transactions() -> None:
    """Transactions: list, describe, and the producers of a topic.

    \b
    Examples:
      kafkito transactions list --state Ongoing
      kafkito transactions describe orders-writer-1
      kafkito transactions producers orders
    """


@transactions.command("list")
@click.option(
    "--state",
    "states",
    multiple=True,
    help="Only transactions in this state (repeatable): Ongoing, PrepareCommit, "
    "PrepareAbort, CompleteCommit, CompleteAbort, Empty, Dead, PrepareEpochFence.",
)
@click.option(
    "--producer-id", "producer_ids", multiple=True, type=int, help="Only this producer id."
)
@click.option(
    "--min-duration-ms",
    type=click.IntRange(min=0),
    help="Only transactions open at least this long (Kafka 3.8+).",
)
@click.pass_obj
def list_transactions(
    obj: CliContext,
    states: tuple[str, ...],
    producer_ids: tuple[int, ...],
    min_duration_ms: int | None,
) -> None:
    """List transactional ids, their producer ids, states and coordinators.

    \b
    Example:
      kafkito transactions list --state Ongoing --json
    """
    from kafkito.client.txn_admin import TRANSACTION_STATES

    canonical = {s.lower(): s for s in TRANSACTION_STATES}
    with handle_errors(obj):
        listed = obj.admin().list_transactions(
            states=[canonical.get(s.lower(), s) for s in states],
            producer_ids=producer_ids,
            min_duration_ms=min_duration_ms,
        )
        rows = [
            {
                "transactional_id": t.transactional_id,
                "producer_id": t.producer_id,
                "state": t.state,
                "coordinator": t.coordinator,
            }
            for t in listed
        ]
        obj.emit(rows, ["transactional_id", "producer_id", "state", "coordinator"])


@transactions.command("describe")
@click.argument("transactional_ids", metavar="ID...", nargs=-1, required=True)
@click.pass_obj
def describe_transactions(obj: CliContext, transactional_ids: tuple[str, ...]) -> None:
    """State, partitions, age and timeout of each transactional ID.

    \b
    Example:
      kafkito transactions describe orders-writer-1
    """
    from kafkito.client.txn_admin import UnknownTransactionError

    with handle_errors(obj):
        try:
            described = obj.admin().describe_transactions(*transactional_ids)
        except UnknownTransactionError as exc:
            raise CliError(
                f"transactional id {exc.transactional_id!r} not found (never used, or expired)",
                EXIT_NOT_FOUND,
            ) from exc
        now_ms = int(time.time() * 1000)
        rows: list[dict[str, Any]] = []
        for d in described:
            rows.append(
                {
                    "transactional_id": d.transactional_id,
                    "state": d.state,
                    "producer_id": d.producer_id,
                    "producer_epoch": d.producer_epoch,
                    "coordinator": d.coordinator,
                    "timeout_ms": d.timeout_ms,
                    "started": _utc(d.start_ms) if d.is_open else None,
                    "age_ms": d.age_ms(now_ms),
                    "expires_in_ms": d.expires_in_ms(now_ms),
                    "partitions": [f"{t}[{p}]" for t, p in d.partitions],
                }
            )
        if obj.json_output:
            obj.emit(rows, [])
            return
        for row in rows:
            row["timeout"] = _seconds(row["timeout_ms"])
            row["age"] = _seconds(row["age_ms"])
            row["expires in"] = _seconds(row["expires_in_ms"])
            row["partitions"] = ", ".join(row["partitions"]) or None
        obj.emit(
            rows,
            [
                "transactional_id",
                "state",
                "producer_id",
                "timeout",
                "age",
                "expires in",
                "partitions",
            ],
        )


@transactions.command("producers")
@click.argument("topic")
@click.option(
    "--partition", "partitions", multiple=True, type=int, help="Only this partition (repeatable)."
)
@click.pass_obj
def producers(obj: CliContext, topic: str, partitions: tuple[int, ...]) -> None:
    """Producers each partition of TOPIC keeps state for, and where open transactions start.

    `txn_start_offset` is the first offset of a producer's open transaction in the partition:
    read_committed readers stop there until it ends.

    \b
    Example:
      kafkito transactions producers orders --partition 0
    """
    with handle_errors(obj):
        found = obj.admin().describe_producers(topic, partitions or None)
        if obj.json_output:
            obj.emit(
                [
                    {
                        "partition": p.partition,
                        "producer_id": p.producer_id,
                        "producer_epoch": p.producer_epoch,
                        "last_sequence": p.last_sequence,
                        "last_timestamp": p.last_timestamp_ms,
                        "coordinator_epoch": p.coordinator_epoch,
                        "txn_start_offset": p.txn_start_offset,
                    }
                    for p in found
                ],
                [],
            )
            return
        # short headers: the table fits 80 columns
        rows = [
            {
                "partition": p.partition,
                "producer": p.producer_id,
                "epoch": p.producer_epoch,
                "last seq": p.last_sequence,
                "last write": _utc(p.last_timestamp_ms),
                "txn start": p.txn_start_offset,
            }
            for p in found
        ]
        obj.emit(rows, ["partition", "producer", "epoch", "last seq", "last write", "txn start"])
