"""The console's ACL view: the cluster's ACLs as a table and a JSON API to add and remove them.

Kept out of app.py (already long): `acl_rows` lists, `create_acl` and `delete_acl` change,
`acls_body` renders the page. The JSON API goes through app.py's mutation wrapper, so it is
refused in read-only mode and from other origins like every other change. The console's own
principal (its --config credentials) needs DESCRIBE on the cluster to list and ALTER to change
ACLs; without them the page says so (CLUSTER_AUTHORIZATION_FAILED) instead of an empty table.
"""

from __future__ import annotations

import html
from typing import Any

from kafkito.client.admin import Acl, AclFilter
from kafkito.console import cluster

FIELDS = ("permission", "principal", "host", "operation", "resource_type", "pattern_type", "name")
RESOURCE_TYPES = ("TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID")


def _as_row(acl: Acl) -> dict[str, str]:
    return {field: str(getattr(acl, field)) for field in FIELDS}


def acl_rows(settings: dict[str, Any]) -> list[dict[str, str]]:
    """Every ACL, sorted by resource, then principal."""
    with cluster._admin(settings) as admin:
        found = admin.describe_acls()
    rows = [_as_row(acl) for acl in found]
    return sorted(
        rows, key=lambda r: (r["resource_type"], r["name"], r["principal"], r["operation"])
    )


def _acl_of(data: dict[str, Any]) -> Acl:
    """An Acl from a JSON body; ValueError (answered 400) names what is missing or wrong."""
    rtype = str(data.get("resource_type") or "").upper()
    if rtype not in RESOURCE_TYPES:
        raise ValueError(f"resource_type must be one of {', '.join(RESOURCE_TYPES)}")
    name = "kafka-cluster" if rtype == "CLUSTER" else str(data.get("name") or "")
    principal = str(data.get("principal") or "")
    if not name or ":" not in principal:
        raise ValueError("an ACL needs a name and a principal such as User:alice")
    return Acl(
        rtype,
        name,
        str(data.get("pattern_type") or "LITERAL").upper(),
        principal,
        str(data.get("host") or "*"),
        str(data.get("operation") or "").upper() or "ALL",
        str(data.get("permission") or "ALLOW").upper(),
    )


def create_acl(settings: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    acl = _acl_of(data)
    with cluster._admin(settings) as admin:
        admin.create_acls(acl)
    return {"created": _as_row(acl)}


def delete_acl(settings: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Delete exactly one ACL (every field given): the console never deletes by wildcard."""
    acl = _acl_of(data)
    exact = AclFilter(
        acl.resource_type,
        acl.name,
        acl.pattern_type,
        acl.principal,
        acl.host,
        acl.operation,
        acl.permission,
    )
    with cluster._admin(settings) as admin:
        deleted = admin.delete_acls(exact)
    return {"deleted": [_as_row(a) for a in deleted]}


def acls_body(rows: list[dict[str, str]]) -> str:
    """The ACL page: one table row per ACL, DENY rows marked."""
    cells = "".join(
        "<tr>"
        + "".join(
            f"<td class='{'err' if field == 'permission' and row[field] == 'DENY' else ''}'>"
            f"{html.escape(row[field])}</td>"
            for field in FIELDS
        )
        + "</tr>"
        for row in rows
    )
    head = "".join(f"<th>{field.replace('_', ' ')}</th>" for field in FIELDS)
    empty = "<p class='muted'>no ACLs</p>" if not rows else ""
    return (
        f"<h2>ACLs</h2><table id='acls'><tr>{head}</tr>{cells}</table>{empty}"
        "<p class='muted'>DENY wins over ALLOW; READ, WRITE, DELETE and ALTER imply DESCRIBE. "
        "Change them with <code>kafkito acls add/remove</code> or POST/DELETE "
        "<code>/api/acls</code>.</p>"
    )
