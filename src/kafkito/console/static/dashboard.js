// The demo dashboard: polls /api/dashboard every second and redraws. No build step.
"use strict";
const $ = (id) => document.getElementById(id);
const fmt = (n) => Number(n).toLocaleString();
let ratesPlot = null, lagPlot = null;
let spikes = [];   // flagged anomalies (seconds since the epoch), marked on the rate chart

function markSpikes(u) {   // a dashed amber line at each flagged spike inside the chart
  const ctx = u.ctx, top = u.bbox.top, height = u.bbox.height;
  ctx.save();
  ctx.strokeStyle = "#ffb347"; ctx.lineWidth = 2 * devicePixelRatio; ctx.setLineDash([6, 4]);
  for (const at of spikes) {
    if (at < u.scales.x.min || at > u.scales.x.max) continue;
    const x = u.valToPos(at, "x", true);
    ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, top + height); ctx.stroke();
  }
  ctx.restore();
}
const lagHistory = { t: [], groups: {} };

function axisOpts() {
  const grid = { stroke: "#232c40", width: 1 };
  return [{ stroke: "#8b96ad", grid }, { stroke: "#8b96ad", grid, size: 50 }];
}

function makePlot(el, series, hooks = {}) {
  return new uPlot({
    hooks,
    width: el.clientWidth || 600, height: 240, axes: axisOpts(), legend: { live: false },
    scales: { x: { time: true } },
    series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, fill: stroke + "22" }))],
  }, [[], ...series.map(() => [])], el);
}

function bars(el, rows, value, label, cls) {
  const most = Math.max(1e-9, ...rows.map(value));
  el.innerHTML = rows.map((r) =>
    `<div class="row"><span class="label" title="${r.page}">${r.page}</span>` +
    `<span class="track"><span class="fill ${cls}" style="display:block;width:${(100 * value(r) / most).toFixed(1)}%"></span></span>` +
    `<span class="n">${label(r)}</span></div>`).join("") || '<span class="muted">waiting for events…</span>';
}

function draw(d) {
  const xs = d.seconds;
  spikes = d.anomalies.map((a) => a.at_ms / 1000);
  if (!ratesPlot) ratesPlot = makePlot($("rates-chart"), [["page_views", "#4fb3ff"], ["clicks", "#c38bff"]], { draw: [markSpikes] });
  ratesPlot.setData([xs, d.rates.page_views, d.rates.clicks]);
  const last = (a) => a.length ? a[a.length - 1] : 0;   // the server sends complete seconds only
  $("total-views").textContent = fmt(d.totals.page_views);
  $("total-clicks").textContent = fmt(d.totals.clicks);
  $("rate-views").textContent = `${fmt(last(d.rates.page_views))} / s`;
  $("rate-clicks").textContent = `${fmt(last(d.rates.clicks))} / s`;
  $("dlq").textContent = fmt(d.dead_lettered);
  $("anomaly-count").textContent = fmt(d.anomaly_total ?? d.anomalies.length);
  $("window").textContent = `(last ${d.window_s} s)`;
  bars($("top-pages"), d.top_pages, (r) => r.views, (r) => fmt(r.views), "");
  bars($("ctr"), d.top_pages, (r) => r.ctr, (r) => (100 * r.ctr).toFixed(1) + "%", "ctr");
  $("anomalies").innerHTML = d.anomalies.map((a) =>
    `<li><b>${a.page}</b>: ${fmt(a.views)} views in 5 s vs a baseline of ${a.baseline} ` +
    `<span class="muted">at ${new Date(a.at_ms).toLocaleTimeString()}</span></li>`).join("")
    || '<li class="muted">nothing unusual yet</li>';
  // lag: keep our own history of the sampled values
  lagHistory.t.push(d.now);
  for (const [g, lag] of Object.entries(d.lag)) {
    (lagHistory.groups[g] ??= new Array(lagHistory.t.length - 1).fill(null)).push(lag);
  }
  for (const g of Object.keys(lagHistory.groups)) {
    if (lagHistory.groups[g].length < lagHistory.t.length) lagHistory.groups[g].push(null);
  }
  if (lagHistory.t.length > 120) { lagHistory.t.shift(); for (const g in lagHistory.groups) lagHistory.groups[g].shift(); }
  const groups = Object.keys(lagHistory.groups).sort();
  if (!lagPlot && groups.length) {
    const colors = ["#5ee0a0", "#ffb347", "#4fb3ff", "#ff6b6b"];
    lagPlot = makePlot($("lag-chart"), groups.map((g, i) => [g, colors[i % colors.length]]));
    lagPlot.groups = groups;
  }
  if (lagPlot) lagPlot.setData([lagHistory.t, ...lagPlot.groups.map((g) => lagHistory.groups[g])]);
  $("status").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
}

async function tick() {
  try {
    const r = await fetch("/api/dashboard", { cache: "no-store" });
    if (r.ok) draw(await r.json());
    else $("status").textContent = `error ${r.status}`;
  } catch (e) {
    $("status").textContent = "disconnected";
  }
}

window.addEventListener("resize", () => {
  for (const p of [ratesPlot, lagPlot]) if (p) p.setSize({ width: p.root.parentElement.clientWidth, height: 240 });
});
tick();
setInterval(tick, 1000);
