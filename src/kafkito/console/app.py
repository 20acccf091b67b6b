"""The web console (starlette): topics, a message browser, consumer groups; and the demo dashboard.

Pages are rendered on the server from the same functions as the CLI (`kafkito.console.cluster`),
so they work against the embedded broker or any Kafka cluster. JSON twins of every page live
under `/api/`, Prometheus metrics under `/metrics`. The dashboard (when a data source is given)
is a static page whose script polls `/api/dashboard` every second and draws with uPlot
(vendored, MIT: `static/vendor/uPlot.LICENSE`).

Endpoints are plain functions: starlette runs them in its thread pool, so the blocking admin
calls never stall the event loop.
"""

from __future__ import annotations

import datetime
import html
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kafkito.console import cluster

STATIC = Path(__file__).with_name("static")
Dashboard = Callable[[], dict[str, Any]]

_STYLE = """
:root { --bg:#0f1420; --panel:#171e2e; --ink:#e6ebf5; --dim:#8b96ad; --accent:#4fb3ff;
        --warn:#ffb347; --bad:#ff6b6b; --good:#5ee0a0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, Segoe UI, sans-serif;
       background:var(--bg); color:var(--ink); }
header { display:flex; gap:24px; align-items:center; padding:12px 24px;
         border-bottom:1px solid #232c40; }
header h1 { font-size:18px; margin:0; } header a { color:var(--dim); text-decoration:none; }
header a.on, header a:hover { color:var(--ink); }
main { padding:20px 24px; max-width:1400px; }
table { border-collapse:collapse; width:100%; background:var(--panel); border-radius:8px; }
th, td { text-align:left; padding:7px 10px; border-bottom:1px solid #232c40; vertical-align:top; }
th { color:var(--dim); font-weight:600; } td.num { font-variant-numeric:tabular-nums; }
a { color:var(--accent); } pre { margin:0; white-space:pre-wrap; word-break:break-all;
      font:12px/1.4 ui-monospace, Menlo, monospace; }
.bar { height:8px; background:var(--accent); border-radius:4px; }
.muted { color:var(--dim); } .err { color:var(--bad); }
.grid { display:grid; grid-template-columns:repeat(auto-fit, minmax(420px, 1fr)); gap:16px; }
.card { background:var(--panel); border-radius:10px; padding:14px 16px; }
.card h2 { font-size:14px; margin:0 0 10px; color:var(--dim); font-weight:600; }
.big { font-size:32px; font-weight:700; font-variant-numeric:tabular-nums; }
"""


def _page(title: str, body: str, active: str = "") -> HTMLResponse:
    links = [
        ("/", "Dashboard"),
        ("/console", "Topics"),
        ("/console/groups", "Groups"),
        ("/console/quotas", "Quotas"),
    ]
    nav = " ".join(
        f'<a href="{href}" class="{"on" if name == active else ""}">{name}</a>'
        for href, name in links
    )
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} · kafkito"
        f"</title><style>{_STYLE}</style></head><body><header><h1>kafkito</h1>{nav}</header>"
        f"<main>{body}</main></body></html>"
    )


def _when(timestamp_ms: int) -> str:
    if timestamp_ms <= 0:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def create_app(
    settings: dict[str, Any],
    dashboard: Dashboard | None = None,
    metrics: Callable[[], bytes] | None = None,
) -> Starlette:
    """The console for the cluster of `settings` (librdkafka keys), plus an optional dashboard."""

    def home(request: Request) -> Response:
        if dashboard is None:
            return RedirectResponse("/console")
        return HTMLResponse((STATIC / "dashboard.html").read_text())

    def api_dashboard(request: Request) -> Response:
        if dashboard is None:
            return JSONResponse({"error": "no dashboard in this console"}, status_code=404)
        return JSONResponse(dashboard())

    def topics_page(request: Request) -> Response:
        try:
            topics = cluster.list_topics(settings)
        except Exception as exc:
            return _page("Topics", f"<p class='err'>cannot list topics: {_esc(exc)}</p>", "Topics")
        most = max((t.records for t in topics), default=0) or 1
        rows = "".join(
            f"<tr><td><a href='/console/topics/{_esc(t.name)}'>{_esc(t.name)}</a></td>"
            f"<td class='num'>{len(t.partitions)}</td><td class='num'>{t.records:,}</td>"
            f"<td style='width:40%'><div class='bar' style='width:{100 * t.records / most:.1f}%'>"
            "</div></td></tr>"
            for t in topics
        )
        body = (
            "<h2>Topics</h2><table><tr><th>topic</th><th>partitions</th><th>records</th>"
            f"<th></th></tr>{rows}</table>"
        )
        return _page("Topics", body, "Topics")

    def topic_page(request: Request) -> Response:
        name = request.path_params["name"]
        partition = int(request.query_params.get("partition", "0"))
        limit = int(request.query_params.get("limit", "20"))
        try:
            info = cluster.describe_topic(settings, name)
            messages = cluster.latest_messages(settings, name, partition, limit)
        except cluster.NotFound as exc:
            return _page(name, f"<p class='err'>{_esc(exc)}</p>", "Topics")
        parts = "".join(
            f"<tr><td><a href='?partition={p.partition}&limit={limit}'>{p.partition}</a></td>"
            f"<td class='num'>{p.start_offset:,}</td><td class='num'>{p.end_offset:,}</td>"
            f"<td class='num'>{p.records:,}</td><td class='num'>{p.leader}</td></tr>"
            for p in info.partitions
        )
        configs = "".join(
            f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in info.configs.items()
        )
        shown = "".join(
            f"<tr><td class='num'>{m.offset}<div class='muted'>{_esc(_when(m.timestamp))}</div>"
            f"</td><td>{_esc(m.key)}</td><td><pre class='muted'>"
            f"{_esc(chr(10).join(f'{k}: {v}' for k, v in m.headers.items()))}</pre></td>"
            f"<td style='width:50%'><pre class='value'>"
            f"{_esc(json.dumps(m.value_json, indent=2) if m.is_json else m.value)}</pre></td>"
            "</tr>"
            for m in reversed(messages)
        )
        body = (
            f"<h2>{_esc(name)}</h2><div class='grid'><div><table><tr><th>partition</th>"
            f"<th>start</th><th>end</th><th>records</th><th>leader</th></tr>{parts}</table>"
            f"</div><div><table><tr><th>config</th><th>value</th></tr>{configs}</table></div>"
            f"</div><h3>Latest {len(messages)} messages of partition {partition}</h3>"
            "<table id='messages'><tr><th>offset</th><th>key</th><th>headers</th>"
            f"<th>value</th></tr>{shown}</table>"
        )
        return _page(name, body, "Topics")

    def groups_page(request: Request) -> Response:
        try:
            groups = cluster.list_groups(settings)
        except Exception as exc:
            return _page("Groups", f"<p class='err'>cannot list groups: {_esc(exc)}</p>", "Groups")
        rows = "".join(
            f"<tr><td><a href='/console/groups/{_esc(g)}'>{_esc(g)}</a></td>"
            f"<td>{_esc(state)}</td></tr>"
            for g, state in groups
        )
        body = f"<h2>Consumer groups</h2><table><tr><th>group</th><th>state</th></tr>{rows}</table>"
        return _page("Groups", body, "Groups")

    def group_page(request: Request) -> Response:
        group = request.path_params["group"]
        try:
            info = cluster.describe_group(settings, group)
        except cluster.NotFound as exc:
            return _page(group, f"<p class='err'>{_esc(exc)}</p>", "Groups")
        members = "".join(
            f"<tr><td>{_esc(m['client_id'])}</td><td>{_esc(m['host'])}</td>"
            f"<td class='num'>{m['partitions']}</td></tr>"
            for m in info.members
        )
        most = max((p.lag or 0 for p in info.partitions), default=0) or 1
        parts = "".join(
            f"<tr><td>{_esc(p.topic)}</td><td class='num'>{p.partition}</td>"
            f"<td class='num'>{_esc(p.committed)}</td><td class='num'>{p.end_offset}</td>"
            f"<td class='num'>{_esc(p.lag)}</td><td>{_esc(p.member)}</td>"
            f"<td style='width:25%'><div class='bar' style='width:{100 * (p.lag or 0) / most:.1f}%;"
            "background:var(--warn)'></div></td></tr>"
            for p in info.partitions
        )
        body = (
            f"<h2>{_esc(group)} <span class='muted'>{_esc(info.state)} · "
            f"lag {info.lag:,}</span></h2><div class='grid'><div><h3>Members</h3><table><tr>"
            f"<th>client</th><th>host</th><th>partitions</th></tr>{members}</table></div></div>"
            "<h3>Offsets</h3><table><tr><th>topic</th><th>partition</th><th>committed</th>"
            f"<th>end</th><th>lag</th><th>member</th><th></th></tr>{parts}</table>"
        )
        return _page(group, body, "Groups")

    def _quota_rows() -> list[dict[str, Any]]:
        from kafkito.client.quotas import describe_quotas

        return [
            {"entity": q.entity, "key": key, "value": value}
            for q in describe_quotas(settings)
            for key, value in sorted(q.values.items())
        ]

    def quotas_page(request: Request) -> Response:
        try:
            found = _quota_rows()
        except Exception as exc:
            return _page("Quotas", f"<p class='err'>cannot list quotas: {_esc(exc)}</p>", "Quotas")
        rows = "".join(
            "<tr><td>"
            + _esc(", ".join(f"{t}={n or '<default>'}" for t, n in sorted(q["entity"].items())))
            + f"</td><td>{_esc(q['key'])}</td><td class='num'>{q['value']:,.10g}</td></tr>"
            for q in found
        )
        body = (
            "<h2>Client quotas</h2><table id='quotas'><tr><th>entity</th><th>quota</th>"
            f"<th>value</th></tr>{rows}</table><p class='muted'>byte rates in bytes/s; set them "
            "with <code>kafkito quotas set</code></p>"
        )
        return _page("Quotas", body, "Quotas")

    def api_quotas(request: Request) -> Response:
        return JSONResponse(_quota_rows())

    def api_topics(request: Request) -> Response:
        return JSONResponse(
            [{**asdict(t), "records": t.records} for t in cluster.list_topics(settings)]
        )

    def api_topic(request: Request) -> Response:
        try:
            info = cluster.describe_topic(settings, request.path_params["name"])
        except cluster.NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse({**asdict(info), "records": info.records})

    def api_messages(request: Request) -> Response:
        try:
            messages = cluster.latest_messages(
                settings,
                request.path_params["name"],
                int(request.query_params.get("partition", "0")),
                int(request.query_params.get("limit", "20")),
            )
        except cluster.NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse([asdict(m) for m in messages])

    def api_groups(request: Request) -> Response:
        return JSONResponse([{"group": g, "state": s} for g, s in cluster.list_groups(settings)])

    def api_group(request: Request) -> Response:
        try:
            info = cluster.describe_group(settings, request.path_params["group"])
        except cluster.NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        body = asdict(info)
        body["lag"] = info.lag
        for row, part in zip(body["partitions"], info.partitions, strict=True):
            row["lag"] = part.lag
        return JSONResponse(body)

    def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        data = metrics() if metrics is not None else generate_latest()
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", home),
        Route("/console", topics_page),
        Route("/console/topics/{name:path}", topic_page),
        Route("/console/groups", groups_page),
        Route("/console/groups/{group:path}", group_page),
        Route("/console/quotas", quotas_page),
        Route("/api/dashboard", api_dashboard),
        Route("/api/topics", api_topics),
        Route("/api/topics/{name}/messages", api_messages),
        Route("/api/topics/{name}", api_topic),
        Route("/api/groups", api_groups),
        Route("/api/groups/{group}", api_group),
        Route("/api/quotas", api_quotas),
        Route("/metrics", prometheus),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)
