"""`kafkito quotas`: client quotas (byte rates, request percentage) of users and client ids.

An entity is named by --user and/or --client-id; `--user default` (or `--client-id default`)
means the default entity of that type, as `<default>` in Kafka's tools. Values are numbers:
bytes per second for producer_byte_rate and consumer_byte_rate, percent of one request thread
for request_percentage.
"""

from __future__ import annotations

from typing import Any

import click

from kafkito.cli.context import EXIT_USAGE, CliContext, CliError, handle_errors

QUOTA_KEYS = (
    "producer_byte_rate",
    "consumer_byte_rate",
    "request_percentage",
    "controller_mutation_rate",
    "connection_creation_rate",
)
DEFAULT_NAME = "default"


def _entity(user: str | None, client_id: str | None, ip: str | None) -> dict[str, str | None]:
    entity: dict[str, str | None] = {}
    for entity_type, name in (("user", user), ("client-id", client_id), ("ip", ip)):
        if name is not None:
            entity[entity_type] = None if name == DEFAULT_NAME else name
    return entity


def _show(entity: dict[str, str | None]) -> str:
    return ", ".join(f"{t}={'<default>' if n is None else n}" for t, n in sorted(entity.items()))


_ENTITY_OPTIONS = [
    click.option("--user", help="A user name, or 'default' for the default user."),
    click.option("--client-id", "client_id", help="A client id, or 'default'."),
    click.option("--ip", help="An IP address, or 'default' (connection_creation_rate only)."),
]


def _entity_options(fn: Any) -> Any:
    for option in reversed(_ENTITY_OPTIONS):
        fn = option(fn)
    return fn


@click.group()
def quotas() -> None:
    """Client quotas: list, set, remove.

    \b
    Examples:
      kafkito quotas set --client-id batch-loader producer_byte_rate=1048576
      kafkito quotas list
      kafkito quotas remove --client-id batch-loader producer_byte_rate
    """


@quotas.command("list")
@_entity_options
@click.pass_obj
def list_quotas(obj: CliContext, user: str | None, client_id: str | None, ip: str | None) -> None:
    """List quotas; with --user/--client-id/--ip only that entity's.

    \b
    Example:
      kafkito quotas list --user default
    """
    from kafkito.client.quotas import describe_quotas

    with handle_errors(obj):
        entries = describe_quotas(obj.librdkafka(), _entity(user, client_id, ip) or None)
        rows = [
            {"entity": _show(e.entity), "key": key, "value": value}
            for e in entries
            for key, value in sorted(e.values.items())
        ]
        obj.emit(rows, ["entity", "key", "value"])


def _parse_values(pairs: tuple[str, ...]) -> dict[str, float | None]:
    values: dict[str, float | None] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise CliError(f"expected KEY=VALUE, got {pair!r}", EXIT_USAGE)
        if key not in QUOTA_KEYS:
            raise CliError(f"unknown quota {key!r} (one of {', '.join(QUOTA_KEYS)})", EXIT_USAGE)
        try:
            values[key] = float(raw)
        except ValueError:
            raise CliError(f"{key} must be a number, not {raw!r}", EXIT_USAGE) from None
    return values


@quotas.command("set")
@_entity_options
@click.argument("values", nargs=-1, required=True)
@click.option("--dry-run", is_flag=True, help="Let the broker check, change nothing.")
@click.pass_obj
def set_quotas(
    obj: CliContext,
    user: str | None,
    client_id: str | None,
    ip: str | None,
    values: tuple[str, ...],
    dry_run: bool,
) -> None:
    """Set quotas of one entity: KEY=VALUE pairs.

    \b
    Example:
      kafkito quotas set --user alice --client-id loader producer_byte_rate=1048576
    """
    from kafkito.client.quotas import alter_quotas

    entity = _entity(user, client_id, ip)
    if not entity:
        raise CliError("name an entity: --user, --client-id or --ip", EXIT_USAGE)
    parsed = _parse_values(values)
    with handle_errors(obj):
        alter_quotas(obj.librdkafka(), entity, parsed, validate_only=dry_run)
        verb = "would set" if dry_run else "set"
        obj.emit_object({"entity": _show(entity), verb: parsed})


@quotas.command("remove")
@_entity_options
@click.argument("keys", nargs=-1, required=True)
@click.pass_obj
def remove_quotas(
    obj: CliContext, user: str | None, client_id: str | None, ip: str | None, keys: tuple[str, ...]
) -> None:
    """Remove quotas of one entity by key.

    \b
    Example:
      kafkito quotas remove --client-id loader producer_byte_rate
    """
    from kafkito.client.quotas import alter_quotas

    entity = _entity(user, client_id, ip)
    if not entity:
        raise CliError("name an entity: --user, --client-id or --ip", EXIT_USAGE)
    unknown = [k for k in keys if k not in QUOTA_KEYS]
    if unknown:
        raise CliError(f"unknown quota {unknown[0]!r} (one of {', '.join(QUOTA_KEYS)})", EXIT_USAGE)
    with handle_errors(obj):
        alter_quotas(obj.librdkafka(), entity, dict.fromkeys(keys))
        obj.emit_object({"entity": _show(entity), "removed": list(keys)})
