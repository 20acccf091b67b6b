"""`kafkito acls`: list, add and remove ACLs, as Kafka's kafka-acls.sh does.

A resource is named by one of --topic, --group, --transactional-id or --cluster; `--prefixed`
makes the name a prefix (PREFIXED pattern), `*` as a literal name means every resource of the
type. Principals are Kafka's: `User:alice`, or `User:*` for everyone. The broker must run with
`--authorizer acl`, and the CLI's own principal needs ALTER (add, remove) or DESCRIBE (list) on
the cluster, which super users have (`kafkito broker --super-user User:admin`).
"""

from __future__ import annotations

from typing import Any

import click

from kafkito.cli.context import EXIT_USAGE, CliContext, CliError, handle_errors

OPERATIONS = (
    "ALL",
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
)
COLUMNS = ["permission", "principal", "host", "operation", "resource", "pattern", "name"]


def _resource(
    topic: str | None, group: str | None, txn: str | None, cluster: bool
) -> tuple[str, str] | None:
    """(resource type, name) from the options, or None when none was given."""
    named = [
        (rtype, name)
        for rtype, name in (("TOPIC", topic), ("GROUP", group), ("TRANSACTIONAL_ID", txn))
        if name is not None
    ]
    if cluster:
        named.append(("CLUSTER", "kafka-cluster"))
    if len(named) > 1:
        raise CliError(
            "name one resource: --topic, --group, --transactional-id or --cluster", EXIT_USAGE
        )
    return named[0] if named else None


def _principal(value: str | None) -> str | None:
    if value is not None and ":" not in value:
        raise CliError(
            f"principal {value!r} needs its type, e.g. User:{value} (User:* for everyone)",
            EXIT_USAGE,
        )
    return value


_RESOURCE_OPTIONS = [
    click.option("--topic", help="A topic name (or prefix with --prefixed; * for every topic)."),
    click.option("--group", help="A consumer group id (or prefix)."),
    click.option("--transactional-id", "txn", help="A transactional id (or prefix)."),
    click.option("--cluster", is_flag=True, help="The cluster itself (kafka-cluster)."),
]


def _resource_options(fn: Any) -> Any:
    for option in reversed(_RESOURCE_OPTIONS):
        fn = option(fn)
    return fn


def _row(acl: Any) -> dict[str, str]:
    return {
        "permission": acl.permission,
        "principal": acl.principal,
        "host": acl.host,
        "operation": acl.operation,
        "resource": acl.resource_type,
        "pattern": acl.pattern_type,
        "name": acl.name,
    }


@click.group()
def acls() -> None:
    """ACLs: list, add, remove (needs a broker started with --authorizer acl).

    \b
    Examples:
      kafkito acls add --principal User:alice --operation READ --topic clicks
      kafkito acls add --principal User:alice --operation READ --group analytics --prefixed
      kafkito acls list --principal User:alice
      kafkito acls remove --principal User:alice --topic clicks
    """


@acls.command("list")
@_resource_options
@click.option("--principal", help="Only this principal's ACLs, e.g. User:alice.")
@click.option(
    "--match",
    is_flag=True,
    help="With a resource: every ACL that applies to it (literal, * and prefixes), "
    "not only those naming it exactly.",
)
@click.pass_obj
def list_acls(
    obj: CliContext,
    topic: str | None,
    group: str | None,
    txn: str | None,
    cluster: bool,
    principal: str | None,
    match: bool,
) -> None:
    """List ACLs, all or those of a resource or principal.

    \b
    Example:
      kafkito acls list --topic clicks --match
    """
    from kafkito.client.admin import AclFilter

    resource = _resource(topic, group, txn, cluster)
    wanted = AclFilter(principal=_principal(principal))
    if resource is not None:
        wanted = AclFilter(
            resource[0], resource[1], "MATCH" if match else "ANY", principal=wanted.principal
        )
    with handle_errors(obj):
        found = obj.admin().describe_acls(wanted)
        rows = sorted((_row(acl) for acl in found), key=lambda r: tuple(r.values()))
        obj.emit(rows, COLUMNS)


@acls.command("add")
@_resource_options
@click.option("--principal", required=True, help="Who: User:alice, or User:* for everyone.")
@click.option(
    "--operation",
    "operations",
    multiple=True,
    required=True,
    type=click.Choice(OPERATIONS, case_sensitive=False),
    help="What (repeatable). READ, WRITE, DELETE, ALTER imply DESCRIBE.",
)
@click.option("--host", default="*", show_default=True, help="From which IP address.")
@click.option("--deny", is_flag=True, help="A DENY ACL (DENY wins over any ALLOW).")
@click.option("--prefixed", is_flag=True, help="The name is a prefix (PREFIXED pattern).")
@click.pass_obj
def add_acls(
    obj: CliContext,
    topic: str | None,
    group: str | None,
    txn: str | None,
    cluster: bool,
    principal: str,
    operations: tuple[str, ...],
    host: str,
    deny: bool,
    prefixed: bool,
) -> None:
    """Add ACLs: one per --operation, for one principal on one resource.

    \b
    Example:
      kafkito acls add --principal User:bob --operation WRITE --topic orders- --prefixed
    """
    from kafkito.client.admin import Acl

    resource = _resource(topic, group, txn, cluster)
    if resource is None:
        raise CliError("name a resource: --topic, --group, --transactional-id or --cluster", 2)
    made = [
        Acl(
            resource[0],
            resource[1],
            "PREFIXED" if prefixed else "LITERAL",
            str(_principal(principal)),
            host,
            operation.upper(),
            "DENY" if deny else "ALLOW",
        )
        for operation in dict.fromkeys(operations)
    ]
    with handle_errors(obj):
        obj.admin().create_acls(*made)
        obj.emit([_row(acl) for acl in made], COLUMNS)


@acls.command("remove")
@_resource_options
@click.option("--principal", help="Only this principal's ACLs.")
@click.option(
    "--operation",
    type=click.Choice(OPERATIONS, case_sensitive=False),
    help="Only ACLs of this operation.",
)
@click.option("--prefixed", is_flag=True, help="The name is a prefix (PREFIXED pattern).")
@click.option("--all", "remove_all", is_flag=True, help="Remove every ACL (nothing else named).")
@click.pass_obj
def remove_acls(
    obj: CliContext,
    topic: str | None,
    group: str | None,
    txn: str | None,
    cluster: bool,
    principal: str | None,
    operation: str | None,
    prefixed: bool,
    remove_all: bool,
) -> None:
    """Remove the ACLs that match; prints what was removed.

    \b
    Example:
      kafkito acls remove --principal User:alice --topic clicks
    """
    from kafkito.client.admin import AclFilter

    resource = _resource(topic, group, txn, cluster)
    if resource is None and principal is None and not remove_all:
        raise CliError("name what to remove (a resource or --principal), or give --all", 2)
    wanted = AclFilter(
        resource[0] if resource else "ANY",
        resource[1] if resource else None,
        ("PREFIXED" if prefixed else "LITERAL") if resource else "ANY",
        _principal(principal),
        None,
        operation.upper() if operation else "ANY",
    )
    with handle_errors(obj):
        removed = obj.admin().delete_acls(wanted)
        rows = sorted((_row(acl) for acl in removed), key=lambda r: tuple(r.values()))
        obj.emit(rows, COLUMNS)
