// posdiag fleet page: polls the read API and draws incidents, the cause chart, terminals by site and
// one terminal's timeline. Everything that comes from a report reaches the page through textContent
// (never innerHTML): a report is text written by a terminal, not markup.
"use strict";

const POLL_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
let skewMs = 0;           // server clock minus this browser's clock
let openTerminalId = null;
let openReportId = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}});
  if (response.status === 401) { window.location.assign("/signin"); throw new Error("signed out"); }
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}

function parseTime(iso) { return iso ? Date.parse(iso) : NaN; }

function ago(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "never";
  const s = Math.max(0, Math.round((Date.now() + skewMs - t) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

function clock(iso) {
  const t = parseTime(iso);
  return Number.isNaN(t) ? "—" : new Date(t).toLocaleString([], {dateStyle: "short", timeStyle: "short"});
}

function verdictBadge(verdict, silent) {
  const nodes = [el("span", {class: "badge v-" + (verdict || "unknown")}, verdict || "no report")];
  if (silent) nodes.push(el("span", {class: "badge silent-badge", title: "not heard from recently"}, "silent"));
  return nodes;
}

function renderIncidents(incidents) {
  const box = document.getElementById("incidents");
  const open = incidents.filter((i) => i.open);
  const closed = incidents.filter((i) => !i.open);
  const cards = open.map((i) => el("article", {class: "incident scope-" + i.scope, "data-cause": i.cause},
    el("div", {class: "incident-head"},
      el("span", {class: "badge scope"}, i.scope === "fleet" ? "fleet" : "site"),
      el("strong", {class: "cause"}, i.cause)),
    el("p", {}, i.scope === "fleet" ? i.sites.length + " sites · " : "site " + i.site + " · ",
      i.terminal_count + (i.terminal_count === 1 ? " terminal" : " terminals"),
      " · since ", el("time", {datetime: i.first_seen_at, title: clock(i.first_seen_at)}, ago(i.first_seen_at))),
    el("p", {class: "muted small"}, i.terminals.join(", "))));
  const children = cards.length ? cards : [el("p", {class: "ok-note"}, "No open incidents.")];
  if (closed.length) {
    children.push(el("details", {class: "closed"}, el("summary", {}, closed.length + " closed in the last day"),
      el("ul", {}, closed.map((i) => el("li", {}, i.scope + " · " + i.cause + (i.site ? " · " + i.site : "") +
        " · " + i.terminal_count + " terminals · " + clock(i.first_seen_at) + " – " + clock(i.last_seen_at))))));
  }
  box.replaceChildren(...children);
}

function renderChart(terminals) {
  const counts = new Map();
  for (const t of terminals) {
    if (!t.top_cause || t.revoked) continue;
    const key = t.verdict === "healthy" ? "none" : t.top_cause;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const rows = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const box = document.getElementById("chart");
  if (!rows.length) { box.replaceChildren(el("p", {class: "muted"}, "No reports yet.")); return; }
  const max = Math.max(...rows.map((r) => r[1]));
  // Drawn at the box's own width (no scaling), so labels keep their size on a phone.
  const width = Math.min(640, Math.max(280, box.clientWidth || 480));
  const rowH = 26, labelW = Math.min(180, Math.round(width * 0.45)), barW = width - labelW - 40;
  const height = rows.length * rowH + 4;
  const chart = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-label": "terminals by top cause"});
  rows.forEach(([cause, n], idx) => {
    const y = idx * rowH + 2;
    const w = Math.max(2, Math.round(barW * n / max));
    const group = svg("g", {class: "bar " + (cause === "none" ? "bar-none" : "bar-fault")});
    group.append(svg("title", {}, `${cause}: ${n} terminal${n === 1 ? "" : "s"}`));
    group.append(svg("text", {x: labelW - 8, y: y + 17, "text-anchor": "end", class: "label"}, cause === "none" ? "none (healthy)" : cause));
    group.append(svg("rect", {x: labelW, y: y + 4, width: w, height: rowH - 8, rx: 3}));
    group.append(svg("text", {x: labelW + w + 6, y: y + 17, class: "count"}, String(n)));
    chart.append(group);
  });
  box.replaceChildren(chart);
}

function siteRank(list) {
  if (list.some((t) => t.verdict === "fault")) return 0;
  if (list.some((t) => t.silent || t.verdict === "degraded")) return 1;
  return 2;
}

function renderSites(terminals) {
  const sites = new Map();
  for (const t of terminals) {
    const site = t.site || "(no site)";
    if (!sites.has(site)) sites.set(site, []);
    sites.get(site).push(t);
  }
  // Sites with faults first (most faults first), then those with silent or degraded terminals.
  const faultsOf = (list) => list.filter((t) => t.verdict === "fault").length;
  const ordered = [...sites.entries()].sort((a, b) => siteRank(a[1]) - siteRank(b[1]) || faultsOf(b[1]) - faultsOf(a[1]) ||
    a[0].localeCompare(b[0]));
  const blocks = ordered.map(([site, list]) => {
    list.sort((a, b) => a.id.localeCompare(b.id));
    const faults = list.filter((t) => t.verdict === "fault").length;
    const silent = list.filter((t) => t.silent).length;
    return el("section", {class: "site", "data-site": site},
      el("h3", {}, site, el("span", {class: "muted small"},
        ` ${list.length} terminal${list.length === 1 ? "" : "s"}` + (faults ? ` · ${faults} fault` : "") + (silent ? ` · ${silent} silent` : ""))),
      el("ul", {class: "terminals"}, list.map((t) => el("li", {},
        el("button", {type: "button", class: "terminal" + (t.silent ? " silent" : "") + (t.id === openTerminalId ? " selected" : ""),
          "data-terminal": t.id, on: {click: () => openTerminal(t.id, true)}},
          el("span", {class: "tid"}, t.id),
          el("span", {class: "badges"}, verdictBadge(t.verdict, t.silent)),
          el("span", {class: "tcause"}, t.top_cause || "—"),
          el("span", {class: "seen"}, el("time", {datetime: t.last_seen_at || ""}, ago(t.last_seen_at))))))));
  });
  document.getElementById("sites").replaceChildren(...(blocks.length ? blocks : [el("p", {class: "muted"}, "No terminals registered.")]));
}

async function refresh() {
  try {
    const [inc, term] = await Promise.all([getJSON("/api/v1/incidents"), getJSON("/api/v1/terminals")]);
    skewMs = parseTime(term.now) - Date.now();
    renderIncidents(inc.incidents);
    renderChart(term.terminals);
    renderSites(term.terminals);
    if (openTerminalId) await loadTimeline(openTerminalId);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.getElementById("updated").classList.remove("stale");
  } catch (error) {
    const status = document.getElementById("updated");
    status.textContent = "cannot update: " + error.message;
    status.classList.add("stale");
  }
}

async function loadTimeline(id) {
  const data = await getJSON("/api/v1/reports?limit=50&terminal=" + encodeURIComponent(id));
  const items = data.reports.map((r) => el("li", {},
    el("button", {type: "button", class: "report-item" + (r.report_id === openReportId ? " selected" : ""),
      "data-report": r.report_id, on: {click: () => showReport(r.report_id)}},
      el("span", {class: "dot v-" + r.verdict}),
      el("time", {datetime: r.started_at}, clock(r.started_at)),
      el("span", {class: "badge v-" + r.verdict}, r.verdict),
      el("span", {class: "tcause"}, r.top_cause))));
  document.getElementById("timeline").replaceChildren(...(items.length ? items : [el("li", {class: "muted"}, "No reports yet.")]));
}

async function openTerminal(id, scroll) {
  openTerminalId = id;
  openReportId = null;
  history.replaceState(null, "", "#t=" + encodeURIComponent(id));
  const panel = document.getElementById("terminal");
  document.getElementById("terminal-name").textContent = id;
  document.getElementById("report").replaceChildren();
  panel.hidden = false;
  document.querySelectorAll("button.terminal").forEach((b) => b.classList.toggle("selected", b.dataset.terminal === id));
  await loadTimeline(id);
  // One column (a phone): bring the timeline into view; on a desk it sits beside the list already.
  if (scroll && window.matchMedia("(max-width: 999px)").matches) panel.scrollIntoView({block: "start"});
}

function closeTerminal() {
  openTerminalId = null;
  openReportId = null;
  history.replaceState(null, "", window.location.pathname);
  document.getElementById("terminal").hidden = true;
  document.querySelectorAll("button.terminal.selected").forEach((b) => b.classList.remove("selected"));
}

function causeBlock(cause) {
  return el("article", {class: "cause-card"},
    el("h4", {}, cause.title || cause.id, " ", el("code", {}, cause.id),
      el("span", {class: "confidence"}, Math.round(cause.confidence * 100) + " %")),
    el("h5", {}, "Evidence"),
    cause.evidence.length ? el("ul", {class: "evidence"}, cause.evidence.map((e) => el("li", {}, e))) : el("p", {class: "muted"}, "none given"),
    el("h5", {}, "Remediation"),
    el("ol", {class: "remediation"}, cause.remediation.map((step) => el("li", {}, step))));
}

async function showReport(reportId) {
  openReportId = reportId;
  document.querySelectorAll("button.report-item").forEach((b) => b.classList.toggle("selected", b.dataset.report === reportId));
  const r = await getJSON("/api/v1/reports/" + encodeURIComponent(reportId));
  const probes = el("table", {class: "probes"},
    el("thead", {}, el("tr", {}, el("th", {}, "probe"), el("th", {}, "status"), el("th", {}, "summary"))),
    el("tbody", {}, r.probes.map((p) => el("tr", {class: "p-" + p.status},
      el("td", {}, p.name), el("td", {}, p.status), el("td", {}, p.summary)))));
  document.getElementById("report").replaceChildren(el("div", {class: "report-detail"},
    el("h3", {}, "Report of ", clock(r.started_at), " ", verdictBadge(r.diagnosis.verdict, false)),
    el("p", {class: "muted small"}, `${r.trigger} · agent ${r.agent_version} · ${r.duration_s} s · ${r.report_id}`),
    r.diagnosis.causes.map(causeBlock),
    el("details", {}, el("summary", {}, r.probes.length + (r.probes.length === 1 ? " probe" : " probes")), probes)));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("close-terminal").addEventListener("click", closeTerminal);
  const match = window.location.hash.match(/^#t=(.+)$/);
  if (match) openTerminal(decodeURIComponent(match[1]), false).catch(() => closeTerminal());
  refresh();
  setInterval(refresh, POLL_MS);
});
