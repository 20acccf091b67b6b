"""A streams app seen from outside (for the console and the CLI): its group, lag, stores.

`describe_streams_app("clicks-app", brokers=...)` needs only the app's name: its consumer
group is the name, its internal topics are named `<app>-<store>-changelog` and
`<app>-<name>-repartition` (app.py). For each store it reports the changelog's records per
partition (end minus start offset: an upper bound of the keys a restore reads, compaction
makes it smaller) and for the group the committed offsets and lag of every partition.
Restore progress lives in the running process: `StreamsApp.health()["stores"]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafkito.client import Admin
from kafkito.client.errors import UnknownGroupError

__all__ = ["describe_streams_app"]

CHANGELOG = "-changelog"
REPARTITION = "-repartition"


def describe_streams_app(
    name: str, *, brokers: Sequence[str] | str | None = None, config: Any = None
) -> dict[str, Any]:
    """The app's group (state, members), lag per input partition, stores with their
    changelog sizes, and repartition topics."""
    admin = Admin(config, brokers=brokers)
    try:
        prefix = f"{name}-"
        topics = {t.name: t for t in admin.list_topics() if t.name.startswith(prefix)}
        changelogs = sorted(t for t in topics if t.endswith(CHANGELOG))
        wanted = [(t, p.partition) for t in changelogs for p in topics[t].partitions]
        marks = admin.watermarks(wanted) if wanted else {}
        stores = [
            {
                "store": topic[len(prefix) : -len(CHANGELOG)],
                "changelog": topic,
                "partitions": [
                    {"partition": p, "records": marks[(topic, p)][1] - marks[(topic, p)][0]}
                    for t, p in wanted
                    if t == topic
                ],
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
            "total_lag": sum(row["lag"] or 0 for row in lag),
            "stores": stores,
            "repartition_topics": sorted(t for t in topics if t.endswith(REPARTITION)),
        }
    finally:
        admin.close()
