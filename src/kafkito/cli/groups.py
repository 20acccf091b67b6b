"""`kafkito groups`: consumer groups, their members, committed offsets and lag."""

from __future__ import annotations

import datetime
from typing import Any

import click

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE, CliContext, CliError, handle_errors
from kafkito.console import cluster


def group_info(obj: CliContext, group: str) -> cluster.GroupInfo:
    """The group's members and per-partition offsets (the console's numbers too)."""
    try:
        return cluster.describe_group(obj.librdkafka(), group)
    except cluster.NotFound as exc:
        raise CliError(str(exc), EXIT_NOT_FOUND) from exc


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
    """List consumer groups, their states and protocols (CLASSIC, or CONSUMER: KIP-848).

    \b
    Example:
      kafkito groups list
    """
    with handle_errors(obj):
        rows = [
            {"group": g.group_id, "state": g.state, "type": g.type}
            for g in obj.admin().list_groups()
        ]
        obj.emit(rows, ["group", "state", "type"])


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
                    "type": info.type,
                    "protocol": info.assignor,
                    "members": members,
                    "partitions": rows,
                }
            )
            return
        obj.console.print(
            f"[bold]{group}[/bold] state={info.state} type={info.type or '-'} "
            f"assignor={info.assignor or '-'}"
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
@click.option(
    "--to-offset", type=click.IntRange(min=0), default=None, help="This offset in every partition."
)
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
    chosen = [x for x in (target, to_offset, to_datetime) if x is not None]
    if len(chosen) != 1:
        raise CliError(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime", EXIT_USAGE
        )
    with handle_errors(obj):
        client = obj.admin()
        partitions = client.partitions(topic)
        wanted = [(topic, p) for p in partitions]
        marks = client.watermarks(wanted)
        found: dict[tuple[str, int], int | None] = {}
        if to_datetime is not None:
            when = datetime.datetime.fromisoformat(to_datetime)
            stamp = int((when if when.tzinfo else when.astimezone()).timestamp() * 1000)
            found = client.list_offsets_many(wanted, stamp)
        plan: list[dict[str, Any]] = []
        for tp in wanted:
            low, high = marks[tp]
            if target == "earliest":
                new = low
            elif target == "latest":
                new = high
            elif to_offset is not None:
                new = min(max(to_offset, low), high)
            else:
                at = found.get(tp)
                new = at if at is not None else high
            plan.append({"topic": topic, "partition": tp[1], "new_offset": new})
        if execute:
            client.alter_group_offsets(
                group, {(topic, r["partition"]): r["new_offset"] for r in plan}
            )
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
        client = obj.admin()
        for name in names:
            client.delete_groups(name)
            click.echo(f"deleted group {name}", err=obj.json_output)
