// posdiag fleet page: polls the read API and draws incidents, the cause chart, terminals by site and
// one terminal's timeline. Everything that comes from a report reaches the page through textContent
// (never innerHTML): a report is text written by a terminal, not markup.
//
// The page's own words go through tr() and ntr() (singular, plural, count) with literal strings (the
// catalogue extractor finds them there); the server puts this page's translations in the
// <script type="application/json" id="messages"> data block. A report's own text (titles, evidence,
// remediation, summaries) stays in the language the terminal wrote it in.
"use strict";

const POLL_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const LOCALE = document.documentElement.lang || "en";
const MESSAGES = (() => {
  try { return JSON.parse(document.getElementById("messages")?.textContent || "{}"); } catch { return {}; }  // English then
})();
let skewMs = 0;           // server clock minus this browser's clock
let openTerminalId = null;
let openReportId = null;

// {name} in a message, filled from fields; text without fields is left as it is (as in posdiag.agent.i18n).
function fill(text, fields) {
  if (!fields) return text;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in fields ? String(fields[name]) : whole));
}

function tr(message, fields) {
  const text = typeof MESSAGES[message] === "string" && MESSAGES[message] ? MESSAGES[message] : message;
  return fill(text, fields);
}

// A counted message ({n} is the count). The server sends a translation's forms for one and for many.
function ntr(singular, plural, n, fields) {
  const forms = MESSAGES[singular];
  const text = Array.isArray(forms) && forms[n === 1 ? 0 : 1] ? forms[n === 1 ? 0 : 1] : (n === 1 ? singular : plural);
  return fill(text, {...fields, n});
}

// A message with elements in it ({time} an element, say) keeps each language's word order: the translated
// template is cut at its {fields} and the nodes put in their places.
function parts(text, nodes) {
  return text.split(/(\{\w+\})/).filter((piece) => piece !== "").map((piece) => {
    const name = piece.match(/^\{(\w+)\}$/);
    return name && name[1] in nodes ? nodes[name[1]] : piece;
  });
}

// Words the API sends as codes, shown in the page's language (the codes stay in classes and data-*).
const VERDICTS = {healthy: tr("healthy"), degraded: tr("degraded"), fault: tr("fault")};
const STATUSES = {ok: tr("ok"), warn: tr("warn"), fail: tr("fail"), error: tr("error"), skipped: tr("skipped")};

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
  if (Number.isNaN(t)) return tr("never");
  const s = Math.max(0, Math.round((Date.now() + skewMs - t) / 1000));
  if (s < 60) return tr("{n} s ago", {n: s});
  if (s < 3600) return tr("{n} min ago", {n: Math.round(s / 60)});
  if (s < 172800) return tr("{n} h ago", {n: Math.round(s / 3600)});
  return tr("{n} days ago", {n: Math.round(s / 86400)});
}

function clock(iso) {
  const t = parseTime(iso);
  return Number.isNaN(t) ? "—" : new Date(t).toLocaleString(LOCALE, {dateStyle: "short", timeStyle: "short"});
}

function verdictBadge(verdict, silent) {
  const nodes = [el("span", {class: "badge v-" + (verdict || "unknown")}, verdict ? VERDICTS[verdict] || verdict : tr("no report"))];
  if (silent) nodes.push(el("span", {class: "badge silent-badge", title: tr("not heard from recently")}, tr("silent")));
  return nodes;
}

function renderIncidents(incidents) {
  const box = document.getElementById("incidents");
  const open = incidents.filter((i) => i.open);
  const closed = incidents.filter((i) => !i.open);
  const cards = open.map((i) => el("article", {class: "incident scope-" + i.scope, "data-cause": i.cause},
    el("div", {class: "incident-head"},
      el("span", {class: "badge scope"}, i.scope === "fleet" ? tr("fleet-wide") : tr("site")),
      el("strong", {class: "cause"}, i.cause)),
    el("p", {}, i.scope === "fleet" ? ntr("{n} site", "{n} sites", i.sites.length) : tr("site {site}", {site: i.site}),
      " · ", ntr("{n} terminal", "{n} terminals", i.terminal_count), " · ",
      parts(tr("since {time}"), {time: el("time", {datetime: i.first_seen_at, title: clock(i.first_seen_at)}, ago(i.first_seen_at))})),
    el("p", {class: "muted small"}, i.terminals.join(", "))));
  const children = cards.length ? cards : [el("p", {class: "ok-note"}, tr("No open incidents."))];
  if (closed.length) {
    children.push(el("details", {class: "closed"}, el("summary", {}, tr("{n} closed in the last day", {n: closed.length})),
      el("ul", {}, closed.map((i) => el("li", {}, [i.scope === "fleet" ? tr("fleet-wide") : tr("site"), i.cause, ...(i.site ? [i.site] : []),
        ntr("{n} terminal", "{n} terminals", i.terminal_count), clock(i.first_seen_at) + " – " + clock(i.last_seen_at)].join(" · "))))));
  }
  box.replaceChildren(...children);
}

// When a risk is due, from now: "in 31 h", "in 3 days" (its time on hover).
function dueIn(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "—";
  const h = Math.max(0, (t - Date.now() - skewMs) / 3600000);
  return h < 48 ? tr("in {n} h", {n: Math.round(h)}) : tr("in {n} days", {n: Math.round(h / 24)});
}

// The fleet's risks ahead, soonest first: what to act on before it becomes a 2824.
function renderRisks(risks) {
  const items = risks.map((r) => el("li", {class: "risk", "data-code": r.code || ""},
    el("button", {type: "button", class: "terminal-link", "data-terminal": r.terminal, on: {click: () => openTerminal(r.terminal, true)}},
      r.terminal),
    " ", el("span", {class: "muted small"}, r.site || ""), " ",
    el("strong", {}, r.title || r.code), " ", el("code", {}, r.code), " ",
    el("span", {class: "muted small"}, r.subject || ""), " ",
    el("time", {datetime: r.due_at || "", title: clock(r.due_at)}, dueIn(r.due_at))));
  document.getElementById("risks").replaceChildren(items.length ? el("ol", {class: "risks"}, items)
    : el("p", {class: "ok-note"}, tr("No terminal at risk.")));
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
  if (!rows.length) { box.replaceChildren(el("p", {class: "muted"}, tr("No reports yet."))); return; }
  const max = Math.max(...rows.map((r) => r[1]));
  // Drawn at the box's own width (no scaling), so labels keep their size on a phone.
  const width = Math.min(640, Math.max(280, box.clientWidth || 480));
  const rowH = 26, labelW = Math.min(180, Math.round(width * 0.45)), barW = width - labelW - 40;
  const height = rows.length * rowH + 4;
  const chart = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart",
    "aria-label": tr("terminals by top cause")});
  rows.forEach(([cause, n], idx) => {
    const y = idx * rowH + 2;
    const w = Math.max(2, Math.round(barW * n / max));
    const group = svg("g", {class: "bar " + (cause === "none" ? "bar-none" : "bar-fault")});
    group.append(svg("title", {}, ntr("{cause}: {n} terminal", "{cause}: {n} terminals", n, {cause})));
    group.append(svg("text", {x: labelW - 8, y: y + 17, "text-anchor": "end", class: "label"}, cause === "none" ? tr("none (healthy)") : cause));
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
    const site = t.site || tr("(no site)");
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
      el("h3", {}, site, el("span", {class: "muted small"}, " " + [ntr("{n} terminal", "{n} terminals", list.length),
        ...(faults ? [ntr("{n} fault", "{n} faults", faults)] : []), ...(silent ? [tr("{n} silent", {n: silent})] : [])].join(" · "))),
      el("ul", {class: "terminals"}, list.map((t) => el("li", {},
        el("button", {type: "button", class: "terminal" + (t.silent ? " silent" : "") + (t.id === openTerminalId ? " selected" : ""),
          "data-terminal": t.id, on: {click: () => openTerminal(t.id, true)}},
          el("span", {class: "tid"}, t.id),
          el("span", {class: "badges"}, verdictBadge(t.verdict, t.silent)),
          el("span", {class: "tcause"}, t.top_cause || "—"),
          el("span", {class: "seen"}, el("time", {datetime: t.last_seen_at || ""}, ago(t.last_seen_at))))))));
  });
  document.getElementById("sites").replaceChildren(...(blocks.length ? blocks : [el("p", {class: "muted"}, tr("No terminals registered."))]));
}

async function refresh() {
  try {
    const [inc, term, risks] = await Promise.all([getJSON("/api/v1/incidents"), getJSON("/api/v1/terminals"),
      getJSON("/api/v1/risks")]);
    skewMs = parseTime(term.now) - Date.now();
    renderIncidents(inc.incidents);
    renderRisks(risks.risks);
    renderChart(term.terminals);
    renderSites(term.terminals);
    if (openTerminalId) await loadTimeline(openTerminalId);
    document.getElementById("updated").textContent = tr("updated {time}", {time: new Date().toLocaleTimeString(LOCALE)});
    document.getElementById("updated").classList.remove("stale");
  } catch (error) {
    const status = document.getElementById("updated");
    status.textContent = tr("cannot update: {error}", {error: error.message});
    status.classList.add("stale");
  }
}

async function loadTimeline(id) {
  const [data, risks] = await Promise.all([getJSON("/api/v1/reports?limit=50&terminal=" + encodeURIComponent(id)),
    getJSON("/api/v1/risks?terminal=" + encodeURIComponent(id))]);
  document.getElementById("terminal-risks").replaceChildren(...[riskBlock(risks.risks, "")].filter(Boolean));
  const items = data.reports.map((r) => el("li", {},
    el("button", {type: "button", class: "report-item" + (r.report_id === openReportId ? " selected" : ""),
      "data-report": r.report_id, on: {click: () => showReport(r.report_id)}},
      el("span", {class: "dot v-" + r.verdict}),
      el("time", {datetime: r.started_at}, clock(r.started_at)),
      el("span", {class: "badge v-" + r.verdict}, VERDICTS[r.verdict] || r.verdict),
      el("span", {class: "tcause"}, r.top_cause))));
  document.getElementById("timeline").replaceChildren(...(items.length ? items : [el("li", {class: "muted"}, tr("No reports yet."))]));
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

// A report's text in the language it was written in: marked so (lang) for screen readers and fonts.
function reportLang(report) {
  return report.lang === "zh_CN" ? "zh-CN" : "en";
}

// A report of an older agent has no certainty: its card shows the confidence alone.
function causeBlock(cause, lang) {
  const percent = (value) => new Intl.NumberFormat(LOCALE, {style: "percent"}).format(value);
  const certainty = typeof cause.certainty === "number"
    ? el("span", {class: "certainty", title: tr("certainty: how sure the fault is present, on its own evidence")},
      tr("certain {percent}", {percent: percent(cause.certainty)}))
    : null;
  return el("article", {class: "cause-card"},
    el("h4", {}, el("span", {class: "cause-title", lang}, cause.title || cause.id), " ", el("code", {}, cause.id),
      el("span", {class: "confidence", title: tr("confidence")}, percent(cause.confidence)), certainty),
    el("h5", {}, tr("Evidence")),
    cause.evidence.length ? el("ul", {class: "evidence", lang}, cause.evidence.map((e) => el("li", {}, e))) : el("p", {class: "muted"}, tr("none given")),
    el("h5", {}, tr("Remediation")),
    el("ol", {class: "remediation", lang}, cause.remediation.map((step) => el("li", {}, step))));
}

// A report's risks ahead, under their own heading (a report of an older agent has none).
function riskBlock(risks, lang) {
  if (!risks.length) return null;
  return el("section", {class: "risk-card"}, el("h4", {}, tr("Risks ahead")),
    risks.map((r) => el("article", {},
      el("h5", {}, el("span", {lang}, r.title || r.code), " ", el("code", {}, r.code), " ",
        el("time", {datetime: r.due_at || "", title: clock(r.due_at)}, dueIn(r.due_at))),
      el("p", {lang}, r.message),
      el("ol", {class: "remediation", lang}, (r.remediation || []).map((step) => el("li", {}, step))))));
}

async function showReport(reportId) {
  openReportId = reportId;
  document.querySelectorAll("button.report-item").forEach((b) => b.classList.toggle("selected", b.dataset.report === reportId));
  const r = await getJSON("/api/v1/reports/" + encodeURIComponent(reportId));
  const lang = reportLang(r);
  const probes = el("table", {class: "probes"},
    el("thead", {}, el("tr", {}, el("th", {}, tr("probe")), el("th", {}, tr("status")), el("th", {}, tr("summary")))),
    el("tbody", {}, r.probes.map((p) => el("tr", {class: "p-" + p.status},
      el("td", {}, p.name), el("td", {}, STATUSES[p.status] || p.status), el("td", {lang}, p.summary)))));
  const seconds = new Intl.NumberFormat(LOCALE, {maximumFractionDigits: 2}).format(r.duration_s);
  document.getElementById("report").replaceChildren(el("div", {class: "report-detail"},
    el("h3", {}, parts(tr("Report of {time}"), {time: clock(r.started_at)}), " ", verdictBadge(r.diagnosis.verdict, false)),
    el("p", {class: "muted small"}, [r.trigger, tr("agent {version}", {version: r.agent_version}), tr("{seconds} s", {seconds}),
      r.report_id].join(" · ")),
    r.diagnosis.causes.map((cause) => causeBlock(cause, lang)),
    riskBlock(r.risks || [], lang),
    el("details", {}, el("summary", {}, ntr("{n} probe", "{n} probes", r.probes.length)), probes)));
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("close-terminal").addEventListener("click", closeTerminal);
  // The language switch brings the browser back to the terminal it had open.
  const back = document.querySelector("form.lang-switch input[name=next]");
  if (back) back.form.addEventListener("submit", () => { back.value = window.location.pathname + window.location.hash; });
  const match = window.location.hash.match(/^#t=(.+)$/);
  if (match) openTerminal(decodeURIComponent(match[1]), false).catch(() => closeTerminal());
  refresh();
  setInterval(refresh, POLL_MS);
});
