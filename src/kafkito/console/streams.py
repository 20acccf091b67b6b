"""The console's streams view: the kafkito.streams apps of the cluster and their state.

An app is found by its consumer group and the internal topics named after it
(kafkito.streams.inspect: `<app>-<store>-changelog`, `<app>-<name>-repartition`,
`<app>-dead-letters`); the page shows, per app, the group's state and members, the lag of
each input and repartition partition, each store with its changelog's records, the
repartition topics and the dead letters. All of it comes from the cluster (Admin calls), so
the page works for apps running anywhere. Liveness, readiness and restore progress are known
only inside the app's process: they show for apps running in the console's own process (the
demo's), from `StreamsApp.health()`.
"""

from __future__ import annotations

import html
from typing import Any

from kafkito.console import cluster

__all__ = ["NotAnApp", "app_view", "render", "streams_view"]


class NotAnApp(cluster.NotFound):
    """No streams app of that name on the cluster (no group with internal topics)."""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _one(admin: Any, name: str) -> dict[str, Any]:
    from kafkito.streams.inspect import describe_streams_app, running_health

    try:
        found = describe_streams_app(name, admin=admin)
    except Exception as exc:  # one app that cannot be described does not hide the others
        found = {"app": name, "error": str(exc)}
    found["health"] = running_health(name)
    return found


def streams_view(settings: cluster.Cluster) -> dict[str, Any]:
    """Every streams app of the cluster, described (inspect.describe_streams_app), with its
    health when it runs in this process."""
    from kafkito.streams.inspect import list_streams_apps

    with cluster._admin(settings) as admin:
        names = list_streams_apps(admin=admin)
        return {"apps": [_one(admin, name) for name in names]}


def app_view(settings: cluster.Cluster, name: str) -> dict[str, Any]:
    """One app (NotAnApp if the cluster has no streams app of that name)."""
    from kafkito.streams.inspect import list_streams_apps

    with cluster._admin(settings) as admin:
        if name not in list_streams_apps(admin=admin):
            raise NotAnApp(f"no streams app {name!r} (a consumer group with internal topics)")
        return _one(admin, name)


def _health(health: dict[str, Any] | None) -> str:
    if health is None:
        return (
            "<p class='muted'>health: not running in this process (liveness and restore "
            "progress are known to the app itself: <code>app.health()</code>)</p>"
        )
    state = "live" if health["live"] else "not live"
    ready = "ready" if health["ready"] else "not ready"
    restoring = ", ".join(health["restoring"]) or "nothing"
    return (
        f"<p class='health'><span class='badge'>{state}</span> <span class='badge'>{ready}"
        f"</span> processed {health['processed']:,} · restoring {_esc(restoring)}"
        + (f" · <span class='err'>{_esc(health['error'])}</span>" if health["error"] else "")
        + "</p>"
    )


def _app(a: dict[str, Any]) -> str:
    name = a["app"]
    if "error" in a:
        return (
            f"<section class='app' data-app='{_esc(name)}'><h3>{_esc(name)}</h3>"
            f"<p class='err'>cannot describe it: {_esc(a['error'])}</p></section>"
        )
    members = "".join(
        f"<li>{_esc(m['client_id'])} ({_esc(m['host'])}): {len(m['partitions'])} partitions</li>"
        for m in a["members"]
    )
    lag_rows = "".join(
        f"<tr><td>{_esc(r['topic'])}</td><td class='num'>{r['partition']}</td>"
        f"<td class='num'>{_esc(r['committed'])}</td><td class='num'>{_esc(r['end_offset'])}"
        f"</td><td class='num'>{_esc(r['lag'])}</td></tr>"
        for r in a["lag"]
    )
    store_rows = "".join(
        f"<tr><td>{_esc(s['store'])}</td><td><a href='/console/topics/{_esc(s['changelog'])}'>"
        f"{_esc(s['changelog'])}</a></td><td class='num'>{len(s['partitions'])}</td>"
        f"<td class='num'>{sum(p['records'] for p in s['partitions']):,}</td></tr>"
        for s in a["stores"]
    )
    repartitions = ", ".join(
        f"<a href='/console/topics/{_esc(t)}'>{_esc(t)}</a>" for t in a["repartition_topics"]
    )
    dead = a["dead_letters"]
    dead_text = (
        "none"
        if dead is None
        else f"<a href='/console/topics/{_esc(dead['topic'])}'>{_esc(dead['topic'])}</a>: "
        f"{dead['records']:,} records"
    )
    return (
        f"<section class='app' data-app='{_esc(name)}'><h3>{_esc(name)} <span class='muted'>"
        f"group <a href='/console/groups/{_esc(name)}'>{_esc(a['group_state'])}</a> · "
        f"{len(a['members'])} members · lag <span class='total-lag'>{a['total_lag']:,}</span>"
        f"</span></h3>{_health(a.get('health'))}<ul>{members}</ul>"
        "<table class='stores'><tr><th>store</th><th>changelog</th><th>partitions</th>"
        f"<th>changelog records</th></tr>{store_rows or '<tr><td colspan=4 class=muted>'}"
        f"{'' if store_rows else 'no stores</td></tr>'}</table>"
        f"<p>repartition topics: {repartitions or 'none'} · dead letters: {dead_text}</p>"
        "<details><summary>lag per partition</summary><table class='lag'><tr><th>topic</th>"
        "<th>partition</th><th>committed</th><th>end</th><th>lag</th></tr>"
        f"{lag_rows}</table></details></section>"
    )


def render(view: dict[str, Any]) -> str:
    """The page body: one section per app."""
    apps = view["apps"]
    body = [
        f"<h2>Streams apps <span class='muted'>{len(apps)}</span></h2>",
        "<p class='muted'>kafkito.streams apps found by their consumer group and internal "
        "topics (changelogs, repartition topics, dead letters). An app without state or dead "
        "letters looks like any consumer group: see Groups.</p>",
    ]
    body += [_app(a) for a in apps]
    if not apps:
        body.append("<p class='muted' id='no-apps'>no streams apps on this cluster</p>")
    return "".join(body)
