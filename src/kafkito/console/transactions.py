"""The console's transactions view: open transactions first, and the producers of a topic.

An open transaction holds every read_committed reader of its partitions back at its first
offset until it ends or times out, so the page shows, per transactional id, its state, the
partitions it holds, its age and the time left before the coordinator aborts it; and, for a
topic, the producers each partition's leader keeps state for, with the offset where an open
transaction starts (where readers of that partition wait). The data comes from the Admin's
transaction calls (kafkito.client.txn_admin), so the page works on any Kafka as on the embedded
broker; the CLI's `kafkito transactions` shows the same.
"""

from __future__ import annotations

import html
import time
from typing import Any

from kafkito.console import cluster

__all__ = ["MAX_DESCRIBED", "producers_view", "render", "transactions_view"]

MAX_DESCRIBED = 500
"""Transactional ids described per page load (open ones first): the rest are listed only."""
OPEN_FIRST = {"Ongoing": 0, "PrepareCommit": 1, "PrepareAbort": 1, "PrepareEpochFence": 1}


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def transactions_view(settings: cluster.Cluster) -> dict[str, Any]:
    """Every transactional id with its state; open ones and the first MAX_DESCRIBED also with
    partitions, timeout, age and time left (ms). Open transactions first, oldest first."""
    with cluster._admin(settings) as admin:
        listed = admin.list_transactions()
        ranked = sorted(listed, key=lambda t: (OPEN_FIRST.get(t.state, 2), t.transactional_id))
        wanted = [t.transactional_id for t in ranked[:MAX_DESCRIBED]]
        described = {d.transactional_id: d for d in admin.describe_transactions(*wanted)}
    now_ms = int(time.time() * 1000)
    rows: list[dict[str, Any]] = []
    for t in ranked:
        d = described.get(t.transactional_id)
        rows.append(
            {
                "transactional_id": t.transactional_id,
                "state": t.state,
                "producer_id": t.producer_id,
                "coordinator": t.coordinator,
                "open": d.is_open if d is not None else t.state in OPEN_FIRST,
                "producer_epoch": d.producer_epoch if d else None,
                "timeout_ms": d.timeout_ms if d else None,
                "age_ms": d.age_ms(now_ms) if d else None,
                "expires_in_ms": d.expires_in_ms(now_ms) if d else None,
                "partitions": [f"{topic}[{p}]" for topic, p in d.partitions] if d else [],
            }
        )
    rows.sort(key=lambda r: (not r["open"], -(r["age_ms"] or 0), r["transactional_id"]))
    return {
        "open": sum(1 for r in rows if r["open"]),
        "total": len(rows),
        "transactions": rows,
    }


def producers_view(settings: cluster.Cluster, topic: str) -> list[dict[str, Any]]:
    """The producers of each partition of `topic` (UnknownTopicError if it is missing)."""
    with cluster._admin(settings) as admin:
        found = admin.describe_producers(topic)
    return [
        {
            "partition": p.partition,
            "producer_id": p.producer_id,
            "producer_epoch": p.producer_epoch,
            "last_sequence": p.last_sequence,
            "last_timestamp_ms": p.last_timestamp_ms,
            "coordinator_epoch": p.coordinator_epoch,
            "txn_start_offset": p.txn_start_offset,
        }
        for p in found
    ]


def _seconds(ms: int | None) -> str:
    return "" if ms is None else f"{ms / 1000:,.1f} s"


def _utc(ms: int | None) -> str:
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))


def render(
    view: dict[str, Any],
    topic: str | None,
    producers: list[dict[str, Any]] | None,
    error: str | None,
) -> str:
    """The page body: the transactions table, then the producers form (and table)."""
    rows = []
    for r in view["transactions"]:
        left = r["expires_in_ms"]
        warn = " class='err'" if left is not None and left < 0.1 * (r["timeout_ms"] or 0) else ""
        rows.append(
            f"<tr data-open='{'1' if r['open'] else '0'}'>"
            f"<td>{_esc(r['transactional_id'])}</td>"
            f"<td><span class='badge'>{_esc(r['state'])}</span></td>"
            f"<td class='num'>{_esc(r['producer_id'])}</td>"
            f"<td class='num'>{_esc(r['producer_epoch'])}</td>"
            f"<td>{_esc(', '.join(r['partitions']))}</td>"
            f"<td class='num'>{_seconds(r['age_ms'])}</td>"
            f"<td class='num'>{_seconds(r['timeout_ms'])}</td>"
            f"<td class='num'{warn}>{_seconds(left)}</td></tr>"
        )
    body = [
        f"<h2>Transactions <span class='muted'><span id='open-count'>{view['open']}</span> "
        f"open of {view['total']}</span></h2>",
        "<p class='muted'>An open transaction holds read_committed readers of its partitions "
        "back at its first offset until it ends or its timeout runs out (the coordinator then "
        "aborts it).</p>",
        "<table id='transactions'><tr><th>transactional id</th><th>state</th><th>producer</th>"
        "<th>epoch</th><th>partitions</th><th>age</th><th>timeout</th><th>expires in</th></tr>"
        + "".join(rows)
        + "</table>",
        "<section><h3>Producers of a topic</h3><form class='inline' method='get' "
        "action='/console/transactions'><label class='f'>topic<input name='topic' "
        f"value='{_esc(topic or '')}' placeholder='e.g. orders'></label>"
        "<button class='primary'>Show producers</button></form>",
    ]
    if error:
        body.append(f"<p class='err'>{_esc(error)}</p>")
    elif producers is not None:
        prows = "".join(
            f"<tr><td class='num'>{p['partition']}</td><td class='num'>{p['producer_id']}</td>"
            f"<td class='num'>{p['producer_epoch']}</td><td class='num'>{p['last_sequence']}</td>"
            f"<td>{_utc(p['last_timestamp_ms'])}</td>"
            f"<td class='num'>{_esc(p['txn_start_offset'])}</td></tr>"
            for p in producers
        )
        body.append(
            f"<table id='producers' data-topic='{_esc(topic)}'><tr><th>partition</th>"
            "<th>producer</th><th>epoch</th><th>last sequence</th><th>last write (UTC)</th>"
            f"<th>open transaction from offset</th></tr>{prows}</table>"
            + ("" if producers else "<p class='muted'>no producer state in this topic</p>")
        )
    body.append("</section>")
    return "".join(body)
