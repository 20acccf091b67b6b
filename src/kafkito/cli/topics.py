"""`kafkito topics`: list, create, describe, alter and delete topics (kafkito.client.Admin).

Failures are the client library's typed errors; `handle_errors` gives them their exit codes
(4 for an unknown topic, 2 for a refused request such as an existing topic or a bad config).
"""

from __future__ import annotations

import click

from kafkito.cli.context import EXIT_NOT_FOUND, EXIT_USAGE, CliContext, CliError, handle_errors

TIMEOUT_S = 15


def parse_configs(items: tuple[str, ...]) -> dict[str, str]:
    configs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"config {item!r} is not NAME=VALUE", EXIT_USAGE)
        configs[name] = value
    return configs


@click.group()
def topics() -> None:
    """List, create, describe, alter and delete topics.

    \b
    Examples:
      kafkito topics create clicks --partitions 6 --config retention.ms=86400000
      kafkito topics describe clicks
    """


@topics.command("list")
@click.option("--internal", is_flag=True, help="Include internal topics.")
@click.pass_obj
def list_topics(obj: CliContext, internal: bool) -> None:
    """List topics with their partition counts.

    \b
    Example:
      kafkito topics list --json
    """
    with handle_errors(obj):
        rows = [
            {"topic": t.name, "partitions": len(t.partitions)}
            for t in obj.admin().list_topics(internal=internal)
        ]
        obj.emit(rows, ["topic", "partitions"])


@topics.command("create")
@click.argument("topic")
@click.option("--partitions", "-p", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--replication-factor",
    "-r",
    type=click.IntRange(min=-1),
    default=-1,
    help="Default: the cluster's (1 on the embedded broker).",
)
@click.option("--config", "-c", "configs", multiple=True, help="NAME=VALUE (repeatable).")
@click.option("--if-not-exists", is_flag=True, help="Succeed if the topic already exists.")
@click.pass_obj
def create_topic(
    obj: CliContext,
    topic: str,
    partitions: int,
    replication_factor: int,
    configs: tuple[str, ...],
    if_not_exists: bool,
) -> None:
    """Create TOPIC.

    \b
    Example:
      kafkito topics create orders --partitions 3 -c cleanup.policy=compact
    """
    with handle_errors(obj):
        created = obj.admin().create_topic(
            topic,
            partitions,
            None if replication_factor == -1 else replication_factor,
            parse_configs(configs),
            if_not_exists=if_not_exists,
        )
        if not created:
            return
        if obj.json_output:
            obj.emit_object({"topic": topic, "partitions": partitions, "created": True})
        else:
            click.echo(f"created topic {topic} with {partitions} partition(s)")


@topics.command("describe")
@click.argument("topic")
@click.option("--all-configs", is_flag=True, help="Show defaults too, not only overrides.")
@click.pass_obj
def describe_topic(obj: CliContext, topic: str, all_configs: bool) -> None:
    """Partitions with their offsets, and configs of TOPIC.

    \b
    Example:
      kafkito topics describe clicks --all-configs
    """
    from kafkito.console import cluster

    with handle_errors(obj):
        try:
            info = cluster.describe_topic(obj.librdkafka(), topic, all_configs=all_configs)
        except cluster.NotFound as exc:
            raise CliError(str(exc), EXIT_NOT_FOUND) from exc
        rows = [
            {
                "partition": p.partition,
                "leader": p.leader,
                "replicas": p.replicas,
                "start_offset": p.start_offset,
                "end_offset": p.end_offset,
                "records": p.records,
            }
            for p in info.partitions
        ]
        configs = info.configs
        if obj.json_output:
            obj.emit_object({"topic": topic, "partitions": rows, "configs": configs})
            return
        obj.emit(
            rows, ["partition", "leader", "start_offset", "end_offset", "records"], title=f"{topic}"
        )
        if configs:
            obj.emit([{"config": k, "value": v} for k, v in configs.items()], ["config", "value"])


@topics.command("alter")
@click.argument("topic")
@click.option("--config", "-c", "configs", multiple=True, help="NAME=VALUE to set (repeatable).")
@click.option("--delete-config", "-d", "deleted", multiple=True, help="NAME to reset to default.")
@click.option(
    "--partitions", type=click.IntRange(min=1), default=None, help="Grow to this many partitions."
)
@click.pass_obj
def alter_topic(
    obj: CliContext,
    topic: str,
    configs: tuple[str, ...],
    deleted: tuple[str, ...],
    partitions: int | None,
) -> None:
    """Change configs of TOPIC (incrementally) or add partitions.

    \b
    Example:
      kafkito topics alter clicks -c retention.ms=3600000 --partitions 12
    """
    if not configs and not deleted and partitions is None:
        raise CliError(
            "nothing to change: give --config, --delete-config or --partitions", EXIT_USAGE
        )
    with handle_errors(obj):
        client = obj.admin()
        if partitions is not None:
            client.create_partitions(topic, partitions)
        if configs or deleted:
            client.alter_configs(topic, set=parse_configs(configs), delete=deleted)
        click.echo(f"altered topic {topic}", err=obj.json_output)


@topics.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def delete_topics(obj: CliContext, names: tuple[str, ...], yes: bool) -> None:
    """Delete topics and all their records.

    \b
    Example:
      kafkito topics delete old-clicks --yes
    """
    if not yes and not click.confirm(f"delete {', '.join(names)} and all their records?"):
        raise click.Abort()
    with handle_errors(obj):
        client = obj.admin()
        for name in names:
            client.delete_topics(name)
            click.echo(f"deleted topic {name}", err=obj.json_output)
