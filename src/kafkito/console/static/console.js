// The console's actions: each form posts JSON to /api/ and shows the answer beside it.
// Pages are rendered on the server; this script only adds what needs a click. No build step.
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function api(method, url, body) {
  const r = await fetch(url, {
    method, headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}),
  });
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }));
  if (!r.ok) throw new Error(data.error || `HTTP ${r.status}`);
  return data;
}

function show(el, ok, text) {
  el.className = "result " + (ok ? "ok" : "err");
  el.textContent = text;
}

function pairs(text) {   // "A=1\nB=2" -> {A: "1", B: "2"}
  const out = {};
  for (const line of (text || "").split("\n")) {
    const i = line.indexOf("=");
    if (line.trim() && i > 0) out[line.slice(0, i).trim()] = line.slice(i + 1);
  }
  return out;
}

function onSubmit(id, handler) {
  const form = document.getElementById(id);
  if (!form) return;
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const result = form.parentElement.querySelector(".result");
    try { await handler(form, result); } catch (e) { show(result, false, e.message); }
  });
}

// -- messages: compact rows expand on click ----------------------------------------------------
for (const row of $$("tr.msg")) {
  row.addEventListener("click", () => { row.nextElementSibling.hidden = !row.nextElementSibling.hidden; });
}

// -- topics ------------------------------------------------------------------------------------
onSubmit("create-topic", async (form, result) => {
  const f = new FormData(form);
  const body = { name: f.get("name"), partitions: Number(f.get("partitions") || 1), configs: pairs(f.get("configs")) };
  if (f.get("replication_factor")) body.replication_factor = Number(f.get("replication_factor"));
  const done = await api("POST", "/api/topics", body);
  show(result, true, `created ${done.created} with ${done.partitions} partition(s)`);
  setTimeout(() => location.reload(), 600);
});

onSubmit("produce", async (form, result) => {
  const f = new FormData(form);
  const done = await api("POST", `/api/topics/${encodeURIComponent(form.dataset.topic)}/produce`, {
    key: f.get("key") || null, value: f.get("value"), encoding: f.get("encoding"),
    partition: f.get("partition") === "" ? null : Number(f.get("partition")),
    headers: pairs(f.get("headers")),
  });
  show(result, true, `written to partition ${done.partition} at offset ${done.offset}`);
});

const del = document.getElementById("delete-topic");
if (del) {
  const button = $("button", del), input = $("input", del);
  input.addEventListener("input", () => { button.disabled = input.value !== del.dataset.topic; });
}
onSubmit("delete-topic", async (form, result) => {
  await api("DELETE", `/api/topics/${encodeURIComponent(form.dataset.topic)}`, { confirm: $("input", form).value });
  show(result, true, `deleted ${form.dataset.topic}`);
  setTimeout(() => { location.href = "/console"; }, 800);
});

if (location.hash === "#configs" && $("#configs-details")) $("#configs-details").open = true;
for (const button of $$("button.edit-config")) {
  button.addEventListener("click", () => {
    const cell = button.closest("tr").querySelector(".cfg-value");
    const name = button.dataset.name;
    cell.innerHTML = `<form class="inline cfg-edit"><input name="value" value="${esc(button.dataset.value)}">` +
      `<button class="primary">Save</button><button type="button" class="cancel">Cancel</button></form><div class="result"></div>`;
    const form = $("form", cell);
    $(".cancel", form).addEventListener("click", () => location.reload());
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = $("input", form).value;
      const result = $(".result", cell);
      if (!confirm(`Set ${name} = ${value} on ${$("#topic-name").dataset.topic}?`)) return;
      try {
        await api("POST", `/api/topics/${encodeURIComponent($("#topic-name").dataset.topic)}/configs`, { set: { [name]: value } });
        show(result, true, "saved");
        setTimeout(() => { location.hash = "configs"; location.reload(); }, 500);
      } catch (e) { show(result, false, e.message); }
    });
  });
}

// live records per second on the topics page
if ($("#topics")) {
  const tick = async () => {
    try {
      const r = await fetch("/api/throughput", { cache: "no-store" });
      if (r.ok) {
        const rates = await r.json();
        for (const row of $$("#topics tr[data-topic]")) {
          const rate = rates[row.dataset.topic];
          if (rate && rate.per_s !== null) $(".rate", row).textContent = rate.per_s.toFixed(1);
        }
        document.body.dataset.rateUpdates = String(Number(document.body.dataset.rateUpdates || 0) + 1);
      }
    } catch (e) { /* the next tick tries again */ }
  };
  tick(); setInterval(tick, 2000);
}

// -- groups: lag over time, offset reset with a dry run first --------------------------------
const lagChart = document.getElementById("lag-chart");
if (lagChart && window.uPlot) {
  let plot = null, series = [];
  const group = encodeURIComponent(lagChart.dataset.group);
  const draw = async () => {
    try {
      await fetch(`/api/groups/${group}`, { cache: "no-store" });   // takes a sample
      const history = await (await fetch(`/api/groups/${group}/lag-history`, { cache: "no-store" })).json();
      const names = [...new Set(history.flatMap((s) => Object.keys(s.lag)))].sort();
      const data = [history.map((s) => s.at_ms / 1000), ...names.map((n) => history.map((s) => s.lag[n] ?? null))];
      if (!plot || names.join() !== series.join()) {
        if (plot) plot.destroy();
        series = names;
        const colors = ["#ffb347", "#4fb3ff", "#5ee0a0", "#ff6b6b", "#c38bff", "#e6ebf5"];
        const grid = { stroke: "#232c40", width: 1 };
        plot = new uPlot({
          width: lagChart.clientWidth || 800, height: 200, scales: { x: { time: true } }, legend: { live: false },
          axes: [{ stroke: "#8b96ad", grid }, { stroke: "#8b96ad", grid, size: 50 }],
          series: [{}, ...names.map((n, i) => ({ label: n, stroke: colors[i % colors.length], width: 2 }))],
        }, data, lagChart);
      } else plot.setData(data);
      lagChart.dataset.samples = String(history.length);
    } catch (e) { /* the next tick tries again */ }
  };
  draw(); setInterval(draw, 2000);
}

onSubmit("reset-offsets", async (form, result) => {
  const f = new FormData(form);
  const url = `/api/groups/${encodeURIComponent(form.dataset.group)}/reset-offsets`;
  const body = { topic: f.get("topic"), to: f.get("to"), value: f.get("value") };
  const plan = await api("POST", url, { ...body, execute: false });
  result.className = "result";
  result.innerHTML = `<p class="muted">Dry run: nothing changed yet.</p><table id="plan"><tr><th>partition</th>` +
    `<th>new offset</th><th>range</th></tr>` + plan.plan.map((r) =>
      `<tr><td>${r.partition}</td><td class="num">${r.new_offset}</td><td class="muted">${r.low}..${r.high}</td></tr>`).join("") +
    `</table><p><button class="danger" id="apply-reset">Apply this plan</button></p><div class="result" id="apply-result"></div>`;
  $("#apply-reset").addEventListener("click", async () => {
    try {
      await api("POST", url, { ...body, execute: true });
      show($("#apply-result"), true, "offsets reset");
    } catch (e) { show($("#apply-result"), false, e.message); }
  });
});

// -- dead letters: re-publish the chosen ones ---------------------------------------------------
const republish = document.getElementById("republish");
if (republish) {
  const picks = $$("#dead-letters input.pick");
  for (const box of picks) box.addEventListener("change", () => { republish.disabled = !picks.some((b) => b.checked); });
  republish.addEventListener("click", async () => {
    const result = document.getElementById("republish-result");
    const byTopic = {};
    for (const box of picks.filter((b) => b.checked)) {
      const row = box.closest("tr");
      (byTopic[row.dataset.topic] ??= []).push([Number(row.dataset.partition), Number(row.dataset.offset)]);
    }
    try {
      const lines = [];
      for (const [topic, records] of Object.entries(byTopic)) {
        const done = await api("POST", `/api/dead-letters/${encodeURIComponent(topic)}/republish`, { records });
        for (const r of done.republished) lines.push(`${r.dead_letter} → ${r.topic}[${r.partition}]@${r.offset}`);
      }
      show(result, true, `re-published ${lines.length}: ${lines.join(", ")}`);
    } catch (e) { show(result, false, e.message); }
  });
}
