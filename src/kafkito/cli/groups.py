"""`kafkito groups`: consumer groups, their members, committed offsets and lag."""

from __future__ import annotations

import datetime
from typing import Any

import click

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE, CliContext, CliError, handle_errors
from kafkito.cli.topics import TIMEOUT_S, admin
from kafkito.console import cluster


def _fail(exc: Exception, group: str) -> CliError:
    kafka_error = exc.args[0] if exc.args else None
    fallback = str(exc)
    name = getattr(kafka_error, "name", lambda: "")()
    text = getattr(kafka_error, "str", lambda: fallback)()
    if name in ("GROUP_ID_NOT_FOUND", "COORDINATOR_NOT_AVAILABLE"):
        return CliError(f"unknown group {group!r}", EXIT_NOT_FOUND)
    if name == "NON_EMPTY_GROUP":
        return CliError(f"group {group!r} has active members; stop them first", EXIT_USAGE)
    return CliError(f"{name or 'error'}: {text}")


def group_info(obj: CliContext, group: str) -> cluster.GroupInfo:
    """The group's members and per-partition offsets (the console's numbers too)."""
    try:
        return cluster.describe_group(obj.librdkafka(), group)
    except cluster.NotFound as exc:
        raise CliError(str(exc), EXIT_NOT_FOUND) from exc
    except Exception as exc:
        raise _fail(exc, group) from exc


def offset_rows(info: cluster.GroupInfo) -> list[dict[str, Any]]:
    return [
        {
            "topic": p.topic,
            "partition": p.partition,
            "committed": p.committed,
            "end": p.end_offset,
            "lag": p.lag,
            "member": p.member,
        }
        for p in info.partitions
    ]


@click.group()
def groups() -> None:
    """Consumer groups: list, describe, lag, reset offsets, delete.

    \b
    Examples:
      kafkito groups lag analytics
      kafkito groups reset-offsets analytics --topic clicks --to-earliest --execute
    """


@groups.command("list")
@click.pass_obj
def list_groups(obj: CliContext) -> None:
    """List consumer groups and their states.

    \b
    Example:
      kafkito groups list
    """
    with handle_errors(obj):
        rows = [{"group": g, "state": state} for g, state in cluster.list_groups(obj.librdkafka())]
        obj.emit(rows, ["group", "state"])


@groups.command("describe")
@click.argument("group")
@click.pass_obj
def describe_group(obj: CliContext, group: str) -> None:
    """State, members and per-partition lag of GROUP.

    \b
    Example:
      kafkito groups describe analytics --json
    """
    with handle_errors(obj):
        info = group_info(obj, group)
        rows = offset_rows(info)
        members = [
            {
                "member": m["member_id"],
                "client_id": m["client_id"],
                "host": m["host"],
                "partitions": m["partitions"],
            }
            for m in info.members
        ]
        if obj.json_output:
            obj.emit_object(
                {
                    "group": group,
                    "state": info.state,
                    "protocol": info.assignor,
                    "members": members,
                    "partitions": rows,
                }
            )
            return
        obj.console.print(
            f"[bold]{group}[/bold] state={info.state} assignor={info.assignor or '-'}"
        )
        obj.emit(members, ["member", "client_id", "host", "partitions"], title="members")
        obj.emit(rows, ["topic", "partition", "committed", "end", "lag", "member"], title="offsets")


@groups.command("lag")
@click.argument("group")
@click.pass_obj
def lag(obj: CliContext, group: str) -> None:
    """Committed offset, end offset and lag per partition of GROUP.

    \b
    Example:
      kafkito groups lag analytics
    """
    with handle_errors(obj):
        rows = offset_rows(group_info(obj, group))
        obj.emit(rows, ["topic", "partition", "committed", "end", "lag", "member"])
        if not obj.json_output:
            total = sum(r["lag"] or 0 for r in rows)
            click.echo(f"total lag: {total}")


@groups.command("reset-offsets")
@click.argument("group")
@click.option("--topic", "-t", required=True, help="Topic whose offsets to reset.")
@click.option("--to-earliest", "target", flag_value="earliest")
@click.option("--to-latest", "target", flag_value="latest")
@click.option("--to-offset", type=int, default=None, help="This offset in every partition.")
@click.option("--to-datetime", default=None, help="The first offset at this ISO date-time.")
@click.option("--execute", is_flag=True, help="Apply; without it only show the plan (dry run).")
@click.pass_obj
def reset_offsets(
    obj: CliContext,
    group: str,
    topic: str,
    target: str | None,
    to_offset: int | None,
    to_datetime: str | None,
    execute: bool,
) -> None:
    """Move GROUP's committed offsets on TOPIC (the group must have no active members).

    \b
    Example:
      kafkito groups reset-offsets analytics -t clicks --to-datetime 2026-11-27T00:00 --execute
    """
    from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, TopicPartition

    chosen = [x for x in (target, to_offset, to_datetime) if x is not None]
    if len(chosen) != 1:
        raise CliError(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime", EXIT_USAGE
        )
    with handle_errors(obj):
        client = admin(obj)
        metadata = client.list_topics(topic, timeout=TIMEOUT_S)
        tmeta = metadata.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            raise CliError(f"unknown topic {topic!r}", EXIT_NOT_FOUND)
        consumer = Consumer(obj.librdkafka(**{"group.id": "kafkito-cli-reset"}))
        plan = []
        try:
            stamp = None
            if to_datetime is not None:
                when = datetime.datetime.fromisoformat(to_datetime)
                stamp = int((when if when.tzinfo else when.astimezone()).timestamp() * 1000)
            for p in sorted(tmeta.partitions):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=TIMEOUT_S
                )
                if target == "earliest":
                    new = low
                elif target == "latest":
                    new = high
                elif to_offset is not None:
                    new = min(max(to_offset, low), high)
                else:
                    assert stamp is not None
                    found = consumer.offsets_for_times(
                        [TopicPartition(topic, p, stamp)], timeout=TIMEOUT_S
                    )[0]
                    new = found.offset if found.offset >= 0 else high
                plan.append({"topic": topic, "partition": p, "new_offset": new})
        finally:
            consumer.close()
        if execute:
            request = ConsumerGroupTopicPartitions(
                group, [TopicPartition(topic, r["partition"], r["new_offset"]) for r in plan]
            )
            try:
                client.alter_consumer_group_offsets([request])[group].result(TIMEOUT_S)
            except Exception as exc:
                raise _fail(exc, group) from exc
        obj.emit(
            plan,
            ["topic", "partition", "new_offset"],
            title=None if execute else "dry run (add --execute to apply)",
        )


@groups.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def delete_groups(obj: CliContext, names: tuple[str, ...]) -> None:
    """Delete consumer groups and their committed offsets.

    \b
    Example:
      kafkito groups delete old-analytics
    """
    with handle_errors(obj):
        client = admin(obj)  # keep a reference: its futures die with it
        futures = client.delete_consumer_groups(list(names), request_timeout=TIMEOUT_S)
        for name in names:
            try:
                futures[name].result(TIMEOUT_S)
            except Exception as exc:
                raise _fail(exc, name) from exc
            click.echo(f"deleted group {name}", err=obj.json_output)
