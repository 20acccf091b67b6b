"""The web console (starlette): topics, a message browser, consumer groups; and the demo dashboard.

Pages are rendered on the server from the same functions as the CLI (`kafkito.console.cluster`),
so they work against the embedded broker or any Kafka cluster. JSON twins of every page live
under `/api/`, Prometheus metrics under `/metrics`. The dashboard (when a data source is given)
is a static page whose script polls `/api/dashboard` every second and draws with uPlot
(vendored, MIT: `static/vendor/uPlot.LICENSE`).

Endpoints are plain functions: starlette runs them in its thread pool, so the blocking admin
calls never stall the event loop.

Actions that change the cluster (create, alter and delete topics, produce, reset a group's
offsets, re-publish dead letters) are JSON POST/DELETE requests under `/api/`. With
`read_only=True` (`kafkito console --read-only`) the API refuses every one of them (403) and the
pages do not offer them. A mutating request must be JSON (a cross-site form cannot send that
without the browser's CORS preflight) and, when the browser names an Origin, come from this
console's own origin. The console binds to 127.0.0.1 unless told otherwise and connects with
the configured credentials (`--config`).
"""

from __future__ import annotations

import collections
import datetime
import html
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from kafkito.console import browse, cluster, transactions

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
.inline { display:flex; flex-wrap:wrap; gap:8px; align-items:end; margin:8px 0 14px; }
label.f { display:flex; flex-direction:column; gap:2px; color:var(--dim); font-size:12px; }
input, select, textarea { background:#0b101a; color:var(--ink); border:1px solid #2c3650;
       border-radius:6px; padding:5px 7px; font:13px ui-monospace, Menlo, monospace; }
button { background:#23304a; color:var(--ink); border:1px solid #34436a; border-radius:6px;
       padding:6px 12px; cursor:pointer; font-size:13px; }
button.primary { background:#1f5f99; border-color:#2d7cc4; } button.danger { background:#7a2630;
       border-color:#a33a46; } button:disabled { opacity:.45; cursor:not-allowed; }
tr.msg { cursor:pointer; } tr.msg:hover td { background:#1c2438; }
tr.detail td { background:#121826; } .preview { max-width:720px; overflow:hidden; }
.preview pre { white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.result { margin:6px 0; min-height:1em; } .ok { color:var(--good); }
.badge { display:inline-block; padding:1px 7px; border-radius:10px; background:#2a3350;
       color:var(--dim); font-size:12px; } section { margin:18px 0; }
details summary { cursor:pointer; color:var(--dim); margin:14px 0 8px; font-weight:600; }
.ro { background:#3a2f14; color:var(--warn); padding:6px 12px; border-radius:6px; }
"""

FAVICON = (
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'><rect width='32' height='32' "
    "rx='7' fill='#1f5f99'/><text x='16' y='23' font-size='20' text-anchor='middle' "
    "fill='#fff' font-family='sans-serif' font-weight='700'>k</text></svg>"
)
LAG_HISTORY_SAMPLES = 900
"""Lag samples kept per group (about half an hour at the page's 2-second refresh)."""


def _page(
    title: str,
    body: str,
    active: str = "",
    *,
    status_code: int = 200,
    read_only: bool = False,
    chart: bool = False,
) -> HTMLResponse:
    links = [
        ("/", "Dashboard"),
        ("/console", "Topics"),
        ("/console/groups", "Groups"),
        ("/console/transactions", "Transactions"),
        ("/console/streams", "Streams"),
        ("/console/dead-letters", "Dead letters"),
        ("/console/quotas", "Quotas"),
        ("/console/acls", "ACLs"),
    ]
    nav = " ".join(
        f'<a href="{href}" class="{"on" if name == active else ""}">{name}</a>'
        for href, name in links
    )
    badge = "<span class='ro'>read-only</span>" if read_only else ""
    head = (
        "<link rel='stylesheet' href='/static/vendor/uPlot.min.css'>"
        "<script src='/static/vendor/uPlot.iife.min.js'></script>"
        if chart
        else ""
    )
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)} · kafkito"
        f"</title><link rel='icon' href='/favicon.ico' type='image/svg+xml'>{head}"
        f"<style>{_STYLE}</style></head><body data-read-only='{int(read_only)}'><header>"
        f"<h1>kafkito</h1>{nav}{badge}</header><main>{body}</main>"
        "<script src='/static/console.js'></script></body></html>",
        status_code=status_code,
    )


def _when(timestamp_ms: int) -> str:
    if timestamp_ms <= 0:
        return ""
    moment = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


class _Samples:
    """What the console remembers between requests: lag per group over time, and the last
    end offsets per topic (for records per second). Bounded; shared by the server's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lag: dict[str, collections.deque[tuple[int, dict[str, int]]]] = {}
        self.ends: dict[str, tuple[float, int]] = {}
        self.rates: dict[str, float] = {}

    def record_lag(self, group: str, info: cluster.GroupInfo) -> None:
        sample = {f"{p.topic}[{p.partition}]": p.lag or 0 for p in info.partitions}
        with self.lock:
            history = self.lag.setdefault(group, collections.deque(maxlen=LAG_HISTORY_SAMPLES))
            history.append((int(time.time() * 1000), sample))

    def lag_history(self, group: str) -> list[tuple[int, dict[str, int]]]:
        with self.lock:
            return list(self.lag.get(group, ()))

    def throughput(self, topics: list[cluster.TopicInfo]) -> dict[str, dict[str, Any]]:
        """Records per second of each topic since the previous sample (at least 1 s ago)."""
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        with self.lock:
            for t in topics:
                end = sum(p.end_offset for p in t.partitions)
                before = self.ends.get(t.name)
                if before is None:
                    self.ends[t.name] = (now, end)
                elif now - before[0] >= 1.0:
                    self.rates[t.name] = max(0.0, (end - before[1]) / (now - before[0]))
                    self.ends[t.name] = (now, end)
                out[t.name] = {"records": t.records, "per_s": self.rates.get(t.name)}
        return out


def _json_error(message: str, status_code: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status_code)


def _error_status(exc: BaseException) -> int:
    """HTTP status of a failed action: 404 unknown, 400 refused input, 502 the cluster."""
    from kafkito.client.errors import (
        AuthenticationError,
        BrokerUnreachableError,
        ConfigError,
        GroupNotEmptyError,
        InvalidRequestError,
        MessageTooLargeError,
        TopicExistsError,
        UnknownGroupError,
        UnknownTopicError,
    )

    if isinstance(exc, cluster.NotFound | UnknownTopicError | UnknownGroupError):
        return 404
    if isinstance(exc, TopicExistsError | GroupNotEmptyError):
        return 409
    if isinstance(exc, ValueError | ConfigError | InvalidRequestError | MessageTooLargeError):
        return 400
    if isinstance(exc, AuthenticationError | BrokerUnreachableError):
        return 502
    if "AUTHORIZATION_FAILED" in getattr(exc, "reason", "") or "SECURITY_DISABLED" in str(exc):
        return 403  # the console's principal may not (ACLs), or the broker has no authorizer
    return 500


def _ms(text: str | None) -> int | None:
    """Milliseconds since the epoch from an ISO date-time (local if naive) or a number."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.astimezone()
    return int(when.timestamp() * 1000)


def _opt_int(text: str | None) -> int | None:
    return int(text) if text not in (None, "") else None


def filter_from_query(query: Any) -> browse.Filter:
    """The search filter of a request's query string; raises ValueError on bad input."""
    partition = _opt_int(query.get("partition"))
    return browse.Filter(
        partitions=() if partition is None else (partition,),
        offset_from=_opt_int(query.get("offset_from")),
        offset_to=_opt_int(query.get("offset_to")),
        time_from_ms=_ms(query.get("time_from")),
        time_to_ms=_ms(query.get("time_to")),
        key=query.get("key") or None,
        value=query.get("value") or None,
        regex=query.get("regex") in ("1", "on", "true"),
        header=query.get("header") or None,
    )


def _field_bytes(value: Any, encoding: str, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    if encoding == "base64":
        import base64
        import binascii

        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{what} is not base64: {exc}") from None
    return value.encode()


def create_app(
    settings: dict[str, Any],
    dashboard: Dashboard | None = None,
    metrics: Callable[[], bytes] | None = None,
    *,
    read_only: bool = False,
) -> Starlette:
    """The console for the cluster of `settings` (librdkafka keys), plus an optional dashboard.

    `read_only` refuses every action that changes the cluster (the API answers 403).
    """
    samples = _Samples()

    def page(title: str, body: str, active: str = "", **kw: Any) -> HTMLResponse:
        return _page(title, body, active, read_only=read_only, **kw)

    async def refuse(request: Request) -> JSONResponse | None:
        """None if this mutating request may go ahead, else the refusal."""
        if read_only:
            return _json_error("the console is read-only (--read-only): changes are disabled", 403)
        if not request.headers.get("content-type", "").startswith("application/json"):
            return _json_error("send JSON (content-type: application/json)", 415)
        origin = request.headers.get("origin")
        if origin and origin.split("://", 1)[-1] != request.headers.get("host"):
            return _json_error(f"cross-origin request from {origin} refused", 403)
        return None

    async def body_of(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise ValueError("the request body is not JSON") from None
        if not isinstance(data, dict):
            raise ValueError("the request body must be a JSON object")
        return data

    def mutation(
        action: Callable[[dict[str, Any], Request], Any],
    ) -> Callable[[Request], Any]:
        """A JSON endpoint that changes the cluster: refused when read-only, errors as JSON."""

        async def endpoint(request: Request) -> Response:
            refused = await refuse(request)
            if refused is not None:
                return refused
            try:
                data = await body_of(request)
                from starlette.concurrency import run_in_threadpool

                result = await run_in_threadpool(action, data, request)
            except Exception as exc:  # every failure is the answer's error, never a 500 page
                return _json_error(str(exc), _error_status(exc))
            return JSONResponse(result)

        return endpoint

    def home(request: Request) -> Response:
        if dashboard is None:
            return RedirectResponse("/console")
        return HTMLResponse((STATIC / "dashboard.html").read_text())

    def favicon(request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml")

    def api_dashboard(request: Request) -> Response:
        if dashboard is None:
            return JSONResponse({"error": "no dashboard in this console"}, status_code=404)
        return JSONResponse(dashboard())

    # -- topics -----------------------------------------------------------------------------

    def topics_page(request: Request) -> Response:
        try:
            topics = cluster.list_topics(settings)
        except Exception as exc:
            return page("Topics", f"<p class='err'>cannot list topics: {_esc(exc)}</p>", "Topics")
        rates = samples.throughput(topics)
        most = max((t.records for t in topics), default=0) or 1
        rows = "".join(
            f"<tr data-topic='{_esc(t.name)}'><td><a href='/console/topics/{_esc(t.name)}'>"
            f"{_esc(t.name)}</a>{_DLQ_BADGE if browse.is_dead_letter_topic(t.name) else ''}"
            f"</td><td class='num'>{len(t.partitions)}</td><td class='num'>{t.records:,}</td>"
            f"<td class='num rate'>{_rate(rates[t.name]['per_s'])}</td>"
            f"<td style='width:35%'><div class='bar' style='width:{100 * t.records / most:.1f}%'>"
            "</div></td></tr>"
            for t in topics
        )
        create = (
            ""
            if read_only
            else "<section><h3>Create a topic</h3><form class='inline' id='create-topic'>"
            "<label class='f'>name<input name='name' required></label>"
            "<label class='f'>partitions<input name='partitions' type='number' min='1' "
            "value='1'></label><label class='f'>replication factor<input "
            "name='replication_factor' type='number' min='1' placeholder='cluster default'>"
            "</label><label class='f'>configs (NAME=VALUE, one a line)<textarea "
            "name='configs' rows='1' cols='36'></textarea></label>"
            "<button class='primary'>Create</button></form><div class='result'></div></section>"
        )
        body = (
            "<h2>Topics</h2><table id='topics'><tr><th>topic</th><th>partitions</th>"
            f"<th>records</th><th>records/s</th><th></th></tr>{rows}</table>{create}"
        )
        return page("Topics", body, "Topics")

    def topic_page(request: Request) -> Response:
        name = request.path_params["name"]
        query = request.query_params
        limit = int(query.get("limit") or 50)
        try:
            info = cluster.describe_topic(settings, name)
        except cluster.NotFound as exc:
            return page(name, f"<p class='err'>{_esc(exc)}</p>", "Topics", status_code=404)
        error = ""
        result: browse.Page | None = None
        try:
            flt = filter_from_query(query)
            cursor = browse.decode_cursor(query["cursor"]) if query.get("cursor") else None
            result = browse.search(
                settings, name, flt, limit=limit, cursor=cursor, latest=_no_filter(query)
            )
        except (ValueError, cluster.NotFound) as exc:
            error = f"<p class='err'>{_esc(exc)}</p>"
        parts = "".join(
            f"<tr><td>{p.partition}</td><td class='num'>{p.start_offset:,}</td>"
            f"<td class='num'>{p.end_offset:,}</td><td class='num'>{p.records:,}</td>"
            f"<td class='num'>{p.leader}</td></tr>"
            for p in info.partitions
        )
        edit = (
            ""
            if read_only
            else "<td><button class='edit-config' data-name='{n}' data-value='{v}'>edit</button>"
            "</td>"
        )
        configs = "".join(
            f"<tr data-config='{_esc(k)}'><td>{_esc(k)}</td><td class='cfg-value'>{_esc(v)}</td>"
            + edit.format(n=_esc(k), v=_esc(v))
            + "</tr>"
            for k, v in info.configs.items()
        )
        body = [
            f"<h2 id='topic-name' data-topic='{_esc(name)}'>{_esc(name)}</h2>",
            "<table id='partitions'><tr><th>partition</th><th>start</th><th>end</th>"
            f"<th>records</th><th>leader</th></tr>{parts}</table>",
        ]
        if not read_only:
            body.append(_topic_actions(name, [p.partition for p in info.partitions]))
        body += [_search_form(name, query, [p.partition for p in info.partitions]), error]
        if result is not None:
            body.append(_results(name, query, result))
        body.append(
            f"<details id='configs-details'><summary>configs ({len(info.configs)})</summary>"
            "<table id='configs'><tr><th>config</th><th>value</th>"
            f"{'' if read_only else '<th></th>'}</tr>{configs}</table></details>"
        )
        return page(name, "".join(body), "Topics")

    def api_topics(request: Request) -> Response:
        return JSONResponse(
            [{**asdict(t), "records": t.records} for t in cluster.list_topics(settings)]
        )

    def api_throughput(request: Request) -> Response:
        return JSONResponse(samples.throughput(cluster.list_topics(settings)))

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

    def api_search(request: Request) -> Response:
        query = request.query_params
        try:
            cursor = browse.decode_cursor(query["cursor"]) if query.get("cursor") else None
            result = browse.search(
                settings,
                request.path_params["name"],
                filter_from_query(query),
                limit=int(query.get("limit") or 50),
                cursor=cursor,
                latest=_no_filter(query),
            )
        except Exception as exc:
            return _json_error(str(exc), _error_status(exc))
        return JSONResponse(
            {
                "messages": [asdict(m) for m in result.messages],
                "cursor": browse.encode_cursor(result.cursor) if result.cursor else None,
                "scanned": result.scanned,
                "stopped_at_scan_limit": result.stopped_at_scan_limit,
            }
        )

    def create_topic(data: dict[str, Any], request: Request) -> Any:
        name = str(data.get("name") or "").strip()
        if not name:
            raise ValueError("a topic needs a name")
        partitions = int(data.get("partitions") or 1)
        factor = data.get("replication_factor")
        configs = {str(k): str(v) for k, v in (data.get("configs") or {}).items()}
        with cluster._admin(settings) as admin:
            admin.create_topic(name, partitions, int(factor) if factor else None, configs)
        return {"created": name, "partitions": partitions}

    def alter_configs(data: dict[str, Any], request: Request) -> Any:
        name = request.path_params["name"]
        changes = {str(k): str(v) for k, v in (data.get("set") or {}).items()}
        deleted = [str(k) for k in (data.get("delete") or [])]
        if not changes and not deleted:
            raise ValueError("nothing to change: give set or delete")
        with cluster._admin(settings) as admin:
            admin.alter_configs(name, set=changes, delete=deleted)
        return {"topic": name, "set": changes, "deleted": deleted}

    def delete_topic(data: dict[str, Any], request: Request) -> Any:
        name = request.path_params["name"]
        if data.get("confirm") != name:
            raise ValueError(f"to delete, confirm with the topic's name ({name!r})")
        with cluster._admin(settings) as admin:
            admin.delete_topics(name)
        return {"deleted": name}

    def produce(data: dict[str, Any], request: Request) -> Any:
        name = request.path_params["name"]
        encoding = str(data.get("encoding") or "text")
        if encoding not in ("text", "base64"):
            raise ValueError("encoding is text or base64")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict):
            raise ValueError("headers must be an object of NAME: VALUE")
        partition = data.get("partition")
        written = browse.produce(
            settings,
            name,
            value=_field_bytes(data.get("value"), encoding, "value"),
            key=_field_bytes(data.get("key") or None, encoding, "key"),
            headers=[(str(k), str(v).encode()) for k, v in headers.items()],
            partition=int(partition) if partition not in (None, "") else None,
        )
        return {"topic": name, "partition": written[0], "offset": written[1]}

    # -- groups ------------------------------------------------------------------------------

    def groups_page(request: Request) -> Response:
        try:
            groups = cluster.list_groups(settings)
        except Exception as exc:
            return page("Groups", f"<p class='err'>cannot list groups: {_esc(exc)}</p>", "Groups")
        rows = "".join(
            f"<tr><td><a href='/console/groups/{_esc(g)}'>{_esc(g)}</a></td>"
            f"<td>{_esc(state)}</td></tr>"
            for g, state in groups
        )
        body = f"<h2>Consumer groups</h2><table><tr><th>group</th><th>state</th></tr>{rows}</table>"
        return page("Groups", body, "Groups")

    def group_page(request: Request) -> Response:
        group = request.path_params["group"]
        try:
            info = cluster.describe_group(settings, group)
        except cluster.NotFound as exc:
            return page(group, f"<p class='err'>{_esc(exc)}</p>", "Groups", status_code=404)
        samples.record_lag(group, info)
        members = (
            "".join(
                f"<tr><td>{_esc(m['client_id'])}</td><td>{_esc(m['host'])}</td>"
                f"<td class='num'>{m['partitions']}</td></tr>"
                for m in info.members
            )
            or "<tr><td colspan='3' class='muted'>no active members</td></tr>"
        )
        most = max((p.lag or 0 for p in info.partitions), default=0) or 1
        parts = "".join(
            f"<tr><td>{_esc(p.topic)}</td><td class='num'>{p.partition}</td>"
            f"<td class='num'>{_esc(p.committed)}</td><td class='num'>{p.end_offset}</td>"
            f"<td class='num lag'>{_esc(p.lag)}</td><td>{_esc(p.member)}</td>"
            f"<td style='width:25%'><div class='bar' style='width:{100 * (p.lag or 0) / most:.1f}%;"
            "background:var(--warn)'></div></td></tr>"
            for p in info.partitions
        )
        topics = sorted({p.topic for p in info.partitions})
        reset = ""
        if not read_only:
            options = "".join(f"<option>{_esc(t)}</option>" for t in topics)
            reset = (
                "<section><h3>Reset offsets</h3><p class='muted'>The group must have no active "
                "members. Preview first: nothing changes until you apply the plan.</p>"
                f"<form class='inline' id='reset-offsets' data-group='{_esc(group)}'>"
                f"<label class='f'>topic<select name='topic'>{options}</select></label>"
                "<label class='f'>to<select name='to'><option>earliest</option><option>latest"
                "</option><option>offset</option><option>datetime</option></select></label>"
                "<label class='f'>offset or date-time<input name='value' placeholder='e.g. 5 "
                "or 2026-12-01T09:00'></label><button class='primary'>Preview (dry run)"
                "</button></form><div class='result' id='reset-plan'></div></section>"
            )
        body = (
            f"<h2>{_esc(group)} <span class='muted'>{_esc(info.state)} · "
            f"{_esc(info.type or 'unknown')} protocol · "
            f"lag <span id='total-lag'>{info.lag:,}</span></span></h2>"
            f"<div class='card'><h2>lag per partition over time</h2><div id='lag-chart' "
            f"data-group='{_esc(group)}'></div></div>"
            "<div class='grid'><div><h3>Members</h3><table><tr>"
            f"<th>client</th><th>host</th><th>partitions</th></tr>{members}</table></div></div>"
            "<h3>Offsets</h3><table id='offsets'><tr><th>topic</th><th>partition</th>"
            f"<th>committed</th><th>end</th><th>lag</th><th>member</th><th></th></tr>{parts}"
            f"</table>{reset}"
        )
        return page(group, body, "Groups", chart=True)

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
            return page("Quotas", f"<p class='err'>cannot list quotas: {_esc(exc)}</p>", "Quotas")
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
        return page("Quotas", body, "Quotas")

    def api_quotas(request: Request) -> Response:
        return JSONResponse(_quota_rows())

    def transactions_page(request: Request) -> Response:
        topic = request.query_params.get("topic") or None
        try:
            view = transactions.transactions_view(settings)
        except Exception as exc:
            return page(
                "Transactions",
                f"<p class='err'>cannot list transactions: {_esc(exc)}</p>",
                "Transactions",
                status_code=_error_status(exc),
            )
        producers, error = None, None
        if topic:
            try:
                producers = transactions.producers_view(settings, topic)
            except Exception as exc:  # shown on the page: the transactions still are
                error = f"cannot describe the producers of {topic!r}: {exc}"
        return page(
            "Transactions", transactions.render(view, topic, producers, error), "Transactions"
        )

    def api_transactions(request: Request) -> Response:
        try:
            return JSONResponse(transactions.transactions_view(settings))
        except Exception as exc:
            return _json_error(str(exc), _error_status(exc))

    def api_producers(request: Request) -> Response:
        try:
            found = transactions.producers_view(settings, request.path_params["name"])
        except Exception as exc:
            return _json_error(str(exc), _error_status(exc))
        return JSONResponse(found)

    def streams_page(request: Request) -> Response:
        from kafkito.console import streams

        try:
            body = streams.render(streams.streams_view(settings))
        except Exception as exc:  # unreachable or refused: say so on the page
            body = f"<h2>Streams apps</h2><p class='err'>cannot list them: {_esc(exc)}</p>"
        return page("Streams", body, "Streams")

    def api_streams(request: Request) -> Response:
        from kafkito.console import streams

        try:
            if "app" in request.path_params:
                return JSONResponse(streams.app_view(settings, request.path_params["app"]))
            return JSONResponse(streams.streams_view(settings))
        except Exception as exc:
            return _json_error(str(exc), _error_status(exc))

    def acls_page(request: Request) -> Response:
        from kafkito.console import acls

        try:
            body = acls.acls_body(acls.acl_rows(settings))
        except Exception as exc:  # refused or unreachable: say so on the page
            body = f"<h2>ACLs</h2><p class='err'>cannot list ACLs: {_esc(exc)}</p>"
        return page("ACLs", body, "ACLs")

    def api_acls(request: Request) -> Response:
        from kafkito.console import acls

        try:
            return JSONResponse(acls.acl_rows(settings))
        except Exception as exc:
            return _json_error(str(exc), _error_status(exc))

    def create_acl(data: dict[str, Any], request: Request) -> Any:
        from kafkito.console import acls

        return acls.create_acl(settings, data)

    def delete_acl(data: dict[str, Any], request: Request) -> Any:
        from kafkito.console import acls

        return acls.delete_acl(settings, data)

    def api_groups(request: Request) -> Response:
        return JSONResponse([{"group": g, "state": s} for g, s in cluster.list_groups(settings)])

    def api_group(request: Request) -> Response:
        group = request.path_params["group"]
        try:
            info = cluster.describe_group(settings, group)
        except cluster.NotFound as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        samples.record_lag(group, info)
        body = asdict(info)
        body["lag"] = info.lag
        for row, part in zip(body["partitions"], info.partitions, strict=True):
            row["lag"] = part.lag
        return JSONResponse(body)

    def api_lag_history(request: Request) -> Response:
        history = samples.lag_history(request.path_params["group"])
        return JSONResponse([{"at_ms": at, "lag": lag} for at, lag in history])

    def reset_offsets(data: dict[str, Any], request: Request) -> Any:
        group = request.path_params["group"]
        topic = str(data.get("topic") or "")
        target = str(data.get("to") or "")
        if not topic or target not in ("earliest", "latest", "offset", "datetime"):
            raise ValueError("give a topic and to: earliest, latest, offset or datetime")
        with cluster._admin(settings) as admin:
            plan = cluster.reset_plan(admin, topic, target, data.get("value"))
            if data.get("execute"):
                admin.alter_group_offsets(
                    group, {(topic, row["partition"]): row["new_offset"] for row in plan}
                )
        return {"group": group, "executed": bool(data.get("execute")), "plan": plan}

    # -- dead letters ------------------------------------------------------------------------

    def dead_letters_page(request: Request) -> Response:
        try:
            topics = [t.name for t in cluster.list_topics(settings)]
            rows = [
                r
                for t in topics
                if browse.is_dead_letter_topic(t)
                for r in browse.dead_letters(settings, t)
            ]
        except Exception as exc:
            return page("Dead letters", f"<p class='err'>{_esc(exc)}</p>", "Dead letters")
        check = "" if read_only else "<td><input type='checkbox' class='pick'></td>"
        table = "".join(
            f"<tr class='dead' data-topic='{_esc(r.topic)}' data-partition='{r.partition}' "
            f"data-offset='{r.offset}'>{check}<td>{_esc(r.topic)}[{r.partition}]@{r.offset}"
            f"<div class='muted'>{_esc(_when(r.timestamp))}</div></td>"
            f"<td>{_esc(r.origin_topic)}[{_esc(r.origin_partition)}]@{_esc(r.origin_offset)}"
            f"<div class='muted'>group {_esc(r.group)} · attempts {_esc(r.attempts)}</div></td>"
            f"<td><b>{_esc(r.error_type)}</b><div class='muted'>{_esc(r.error_message)}</div></td>"
            f"<td><div class='preview'><pre>{_esc(r.value)}</pre></div></td></tr>"
            for r in rows
        )
        button = (
            ""
            if read_only
            else "<p><button class='primary' id='republish' disabled>Re-publish selected to "
            "their origin</button></p><div class='result' id='republish-result'></div>"
        )
        body = (
            f"<h2>Dead letters <span class='muted'>{len(rows)} shown</span></h2>"
            "<p class='muted'>Records the consume flow gave up on (<code>*.dlq</code> topics), "
            "with where they came from and why.</p>"
            f"{button}<table id='dead-letters'><tr>{'' if read_only else '<th></th>'}"
            "<th>dead letter</th><th>origin</th><th>error</th><th>value</th></tr>"
            f"{table or '<tr><td colspan=5 class=muted>no dead letters</td></tr>'}</table>"
        )
        return page("Dead letters", body, "Dead letters")

    def api_dead_letters(request: Request) -> Response:
        topics = [t.name for t in cluster.list_topics(settings)]
        rows = [
            asdict(r)
            for t in topics
            if browse.is_dead_letter_topic(t)
            for r in browse.dead_letters(settings, t)
        ]
        return JSONResponse(rows)

    def republish(data: dict[str, Any], request: Request) -> Any:
        chosen = data.get("records")
        if not isinstance(chosen, list) or not chosen:
            raise ValueError("records: a list of [partition, offset] to re-publish")
        pairs = [(int(p), int(o)) for p, o in chosen]
        return {"republished": browse.republish(settings, request.path_params["topic"], pairs)}

    def prometheus(request: Request) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        data = metrics() if metrics is not None else generate_latest()
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/", home),
        Route("/favicon.ico", favicon),
        Route("/console", topics_page),
        Route("/console/topics/{name:path}", topic_page),
        Route("/console/groups", groups_page),
        Route("/console/groups/{group:path}", group_page),
        Route("/console/quotas", quotas_page),
        Route("/console/transactions", transactions_page),
        Route("/console/dead-letters", dead_letters_page),
        Route("/console/streams", streams_page),
        Route("/api/streams", api_streams),
        Route("/api/streams/{app}", api_streams),
        Route("/api/dashboard", api_dashboard),
        Route("/api/topics", api_topics),
        Route("/api/topics", mutation(create_topic), methods=["POST"]),
        Route("/api/throughput", api_throughput),
        Route("/api/topics/{name}/messages", api_messages),
        Route("/api/topics/{name}/producers", api_producers),
        Route("/api/topics/{name}/search", api_search),
        Route("/api/topics/{name}/produce", mutation(produce), methods=["POST"]),
        Route("/api/topics/{name}/configs", mutation(alter_configs), methods=["POST"]),
        Route("/api/topics/{name}", api_topic),
        Route("/api/topics/{name}", mutation(delete_topic), methods=["DELETE"]),
        Route("/api/groups", api_groups),
        Route("/api/groups/{group}/lag-history", api_lag_history),
        Route("/api/groups/{group}/reset-offsets", mutation(reset_offsets), methods=["POST"]),
        Route("/api/groups/{group}", api_group),
        Route("/api/quotas", api_quotas),
        Route("/api/transactions", api_transactions),
        Route("/console/acls", acls_page),
        Route("/api/acls", api_acls),
        Route("/api/acls", mutation(create_acl), methods=["POST"]),
        Route("/api/acls", mutation(delete_acl), methods=["DELETE"]),
        Route("/api/dead-letters", api_dead_letters),
        Route("/api/dead-letters/{topic}/republish", mutation(republish), methods=["POST"]),
        Route("/metrics", prometheus),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes)


_DLQ_BADGE = " <span class='badge'>dead letters</span>"


def _rate(per_s: float | None) -> str:
    return "–" if per_s is None else f"{per_s:,.1f}"


def _no_filter(query: Any) -> bool:
    """No filter and no cursor: show the newest records (the page's first view)."""
    keys = ("partition", "offset_from", "offset_to", "time_from", "time_to", "key", "value")
    return not any(query.get(k) for k in (*keys, "header", "cursor"))


def _topic_actions(name: str, partitions: list[int]) -> str:
    """Produce a record; delete the topic after typing its name."""
    options = "<option value=''>any</option>" + "".join(f"<option>{p}</option>" for p in partitions)
    return (
        "<div class='grid' style='margin-top:16px'><section class='card'><h2>Produce a record</h2>"
        f"<form id='produce' data-topic='{_esc(name)}'>"
        "<div class='inline'><label class='f'>key<input name='key'></label>"
        f"<label class='f'>partition<select name='partition'>{options}</select></label>"
        "<label class='f'>encoding<select name='encoding'><option>text</option>"
        "<option>base64</option></select></label></div>"
        "<label class='f'>value<textarea name='value' rows='3' cols='60'></textarea></label>"
        "<label class='f'>headers (NAME=VALUE, one a line)<textarea name='headers' rows='2' "
        "cols='60'></textarea></label><p><button class='primary'>Produce</button></p></form>"
        "<div class='result' id='produce-result'></div></section>"
        "<section class='card'><h2>Delete this topic</h2><p class='muted'>Deletes every "
        "record. Type the topic's name to confirm.</p><form class='inline' id='delete-topic' "
        f"data-topic='{_esc(name)}'><input name='confirm' placeholder='{_esc(name)}'>"
        "<button class='danger' disabled>Delete topic</button></form>"
        "<div class='result'></div></section></div>"
    )


def _search_form(name: str, query: Any, partitions: list[int]) -> str:
    def val(key: str) -> str:
        return _esc(query.get(key, ""))

    chosen = query.get("partition", "")
    options = "<option value=''>all</option>" + "".join(
        f"<option{' selected' if str(p) == chosen else ''}>{p}</option>" for p in partitions
    )
    checked = " checked" if query.get("regex") in ("1", "on", "true") else ""
    return (
        "<section><h3>Messages</h3><form class='inline' id='search' method='get'>"
        f"<label class='f'>key contains<input name='key' value='{val('key')}'></label>"
        f"<label class='f'>value contains<input name='value' value='{val('value')}'></label>"
        f"<label class='f'>regex<input type='checkbox' name='regex' value='1'{checked}></label>"
        f"<label class='f'>header NAME[=VALUE]<input name='header' value='{val('header')}'>"
        f"</label><label class='f'>partition<select name='partition'>{options}</select></label>"
        f"<label class='f'>offset from<input name='offset_from' size='7' "
        f"value='{val('offset_from')}'></label><label class='f'>offset to<input "
        f"name='offset_to' size='7' value='{val('offset_to')}'></label>"
        f"<label class='f'>time from<input name='time_from' type='datetime-local' step='1' "
        f"value='{val('time_from')}'></label><label class='f'>time to<input name='time_to' "
        f"type='datetime-local' step='1' value='{val('time_to')}'></label>"
        f"<label class='f'>per page<input name='limit' size='4' value='{val('limit') or 50}'>"
        "</label><button class='primary'>Search</button>"
        f"<a href='/console/topics/{_esc(name)}'>clear</a></form></section>"
    )


def _results(name: str, query: Any, result: browse.Page) -> str:
    from urllib.parse import urlencode

    rows = []
    for m in result.messages:
        if m.binary:
            preview, full = f"(binary, {m.size} bytes, base64) {m.value}", m.value
        elif m.is_json:
            preview, full = json.dumps(m.value_json), json.dumps(m.value_json, indent=2)
        else:
            preview, full = m.value or "", m.value or ""
        headers = "\n".join(f"{k}: {v}" for k, v in m.headers.items())
        rows.append(
            f"<tr class='msg'><td class='num'>{m.partition}</td><td class='num'>{m.offset}</td>"
            f"<td class='muted'>{_esc(_when(m.timestamp))}</td><td>{_esc(m.key)}</td>"
            f"<td>{len(m.headers) or ''}</td><td><div class='preview'><pre class='value'>"
            f"{_esc(preview[:400])}</pre></div></td></tr>"
            f"<tr class='detail' hidden><td colspan='6'><pre class='muted'>{_esc(headers)}</pre>"
            f"<pre class='full'>{_esc(full)}</pre></td></tr>"
        )
    more = ""
    if result.cursor:
        params = {k: v for k, v in query.items() if k != "cursor"}
        params["cursor"] = browse.encode_cursor(result.cursor)
        more = f"<a id='next-page' href='?{_esc(urlencode(params))}'>next page →</a>"
    note = (
        f" · stopped after scanning {result.scanned:,} records"
        if result.stopped_at_scan_limit
        else ""
    )
    return (
        f"<p class='muted' id='found'>{len(result.messages)} shown · {result.scanned:,} "
        f"scanned{note}</p><table id='messages'><tr><th>partition</th><th>offset</th>"
        f"<th>time</th><th>key</th><th>headers</th><th>value (click a row for all)</th></tr>"
        f"{''.join(rows) or '<tr><td colspan=6 class=muted>no matching messages</td></tr>'}"
        f"</table><p>{more}</p>"
    )
