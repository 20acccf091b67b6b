"""A streams app seen from outside (for the console and the CLI): its group, lag, stores.

`describe_streams_app("clicks-app", brokers=...)` needs only the app's name: its consumer
group is the name, its internal topics are named `<app>-<store>-changelog`,
`<app>-<name>-repartition` and `<app>-dead-letters` (app.py). For each store it reports the
changelog's records per partition (end minus start offset: an upper bound of the keys a
restore reads, compaction makes it smaller) and for the group the committed offsets and lag
of every partition.

`list_streams_apps` finds the apps of a cluster the same way: a consumer group is a streams
app when internal topics are named after it (each internal topic belongs to the longest
group name it starts with, so the group `a` is not taken for an app because an app `a-b`
exists). An app without state and without dead letters leaves no such topic and looks like
any consumer group: it is not listed.

Restore progress and liveness live in the running process: `StreamsApp.health()`. Apps
running in this process register here while they run (`running_health`), so a console
started in the same process (the demo's) shows them too.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kafkito.client import Admin
from kafkito.client.errors import UnknownGroupError

if TYPE_CHECKING:
    from kafkito.streams.app import StreamsApp

__all__ = [
    "describe_streams_app",
    "list_streams_apps",
    "register_running",
    "running_health",
    "unregister_running",
]

CHANGELOG = "-changelog"
REPARTITION = "-repartition"
DEAD_LETTERS = "-dead-letters"

_running: dict[str, StreamsApp] = {}
_running_lock = threading.Lock()


def register_running(app: StreamsApp) -> None:
    """The app started in this process (StreamsApp calls it)."""
    with _running_lock:
        _running[app.name] = app


def unregister_running(app: StreamsApp) -> None:
    """The app stopped (StreamsApp calls it)."""
    with _running_lock:
        if _running.get(app.name) is app:
            del _running[app.name]


def running_health(name: str) -> dict[str, Any] | None:
    """`health()` of the app `name` if it runs in this process, else None."""
    with _running_lock:
        app = _running.get(name)
    return None if app is None else app.health()


def _is_internal(topic: str) -> bool:
    return topic.endswith((CHANGELOG, REPARTITION, DEAD_LETTERS))


def list_streams_apps(
    *,
    brokers: Sequence[str] | str | None = None,
    config: Any = None,
    admin: Admin | None = None,
) -> list[str]:
    """The names of the streams apps of the cluster (see the module docstring), sorted."""
    own = admin is None
    admin = admin or Admin(config, brokers=brokers)
    try:
        groups = {g.group_id for g in admin.list_groups()}
        internal = [t.name for t in admin.list_topics() if _is_internal(t.name)]
    finally:
        if own:
            admin.close()
    apps = set()
    for topic in internal:
        owners = [g for g in groups if topic.startswith(f"{g}-")]
        if owners:
            apps.add(max(owners, key=len))
    return sorted(apps)


def describe_streams_app(
    name: str,
    *,
    brokers: Sequence[str] | str | None = None,
    config: Any = None,
    admin: Admin | None = None,
) -> dict[str, Any]:
    """The app's group (state, members), lag per input partition, stores with their
    changelog sizes, repartition topics and dead letters; `admin` reuses a client.
    `total_lag` counts a partition without a committed offset as its end offset."""
    own = admin is None
    admin = admin or Admin(config, brokers=brokers)
    try:
        return _describe(admin, name)
    finally:
        if own:
            admin.close()


def _describe(admin: Admin, name: str) -> dict[str, Any]:
    prefix = f"{name}-"
    topics = {t.name: t for t in admin.list_topics() if t.name.startswith(prefix)}
    changelogs = sorted(t for t in topics if t.endswith(CHANGELOG))
    dead = f"{name}{DEAD_LETTERS}"
    counted = [*changelogs, dead] if dead in topics else changelogs
    wanted = [(t, p.partition) for t in counted for p in topics[t].partitions]
    marks = admin.watermarks(wanted) if wanted else {}

    def records(topic: str) -> list[dict[str, int]]:
        return [
            {"partition": p, "records": marks[(topic, p)][1] - marks[(topic, p)][0]}
            for t, p in wanted
            if t == topic
        ]

    stores = [
        {
            "store": topic[len(prefix) : -len(CHANGELOG)],
            "changelog": topic,
            "partitions": records(topic),
        }
        for topic in changelogs
    ]
    group = admin.describe_group(name)
    try:
        lag = [
            {
                "topic": row.topic,
                "partition": row.partition,
                "committed": row.committed,
                "end_offset": row.end_offset,
                "lag": row.lag,
                "member": row.member,
            }
            for row in admin.group_lag(name)
        ]
    except UnknownGroupError:
        lag = []
    return {
        "app": name,
        "group_state": group.state,
        "members": [
            {"client_id": m.client_id, "host": m.host, "partitions": list(m.assignment)}
            for m in group.members
        ],
        "lag": lag,
        # A partition with nothing committed yet counts as all its records behind (the app
        # starts from the earliest offset): an app that has not committed has no lag of 0.
        "total_lag": sum(
            row["lag"] if row["lag"] is not None else row["end_offset"] or 0 for row in lag
        ),
        "stores": stores,
        "repartition_topics": sorted(t for t in topics if t.endswith(REPARTITION)),
        "dead_letters": (
            {"topic": dead, "records": sum(r["records"] for r in records(dead))}
            if dead in topics
            else None
        ),
    }
