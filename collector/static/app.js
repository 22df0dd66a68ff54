// posdiag fleet page, for fleets of thousands: open incidents, the terminals that need attention
// (faults, then silent ones), the causes across the fleet, and sites as summary rows that open on
// demand. It never fetches the whole fleet: the API filters, counts and pages (the search, cause and
// verdict filters run on the server), and a site's terminals are fetched when it is opened.
//
// Builds on common.js (tr, el, getJSON, times, badges). Every terminal id, site name or report's word
// reaches the page as text (textContent) inside <bdi>, so a right-to-left override in a site's name
// cannot turn the page's own words around it. The filters live in the fragment (#q=…&cause=…&state=…):
// a link shares them, the language switch keeps them, and a fragment that does not decode is ignored.
"use strict";

const POLL_MS = 5000;
const PAGE = 100;                 // terminals and sites per page ("show more" adds as many)
const RISKS_SHOWN = 100;          // risks listed under "At risk"; the rest are counted
const CAUSES = readData("causes");
const STATES = {fault: tr("fault"), silent: tr("silent"), degraded: tr("degraded"), healthy: tr("healthy"),
  revoked: tr("revoked")};
const filters = {q: "", cause: "", state: ""};
const openSites = new Set();
const shown = {attention: PAGE, sites: PAGE};
let refreshing = null;
let again = false;                // asked to refresh while a refresh ran: once more when it ends

// User text (a terminal id, a site name, a cause id a report sent), isolated from the words around it.
function bdi(text, attrs) { return el("bdi", attrs || {}, text); }

// A cause as an operator reads it: its title in the page's language, with its stable id beside it.
function causeLabel(id) {
  const title = CAUSES[id];
  return el("span", {class: "cause"}, title ? [el("span", {class: "cause-title"}, title), " "] : [],
    el("code", {class: "cause-id"}, bdi(id)));
}

function siteName(site) { return site ? bdi(site) : el("span", {class: "muted"}, tr("(no site)")); }

function query(extra) {
  const params = new URLSearchParams(extra);
  for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
  return params.toString();
}

// -- the fragment: the filters of a shared link --------------------------------------------------

function readFragment() {
  const found = {};
  for (const piece of window.location.hash.replace(/^#/, "").split("&")) {
    const cut = piece.indexOf("=");
    if (cut <= 0) continue;
    try { found[piece.slice(0, cut)] = decodeURIComponent(piece.slice(cut + 1)); } catch { /* malformed: left out */ }
  }
  return found;
}

function writeFragment() {
  const pieces = Object.entries(filters).filter(([, value]) => value).map(([key, value]) => key + "=" + encodeURIComponent(value));
  history.replaceState(null, "", window.location.pathname + (pieces.length ? "#" + pieces.join("&") : ""));
}

// -- what is drawn ---------------------------------------------------------------------------------

function terminalRow(t) {
  const state = t.revoked ? "revoked" : t.silent ? "silent" : t.verdict || "silent";
  return el("li", {class: "trow s-" + state, "data-terminal": t.id},
    el("a", {class: "tid", href: "/terminals/" + encodeURIComponent(t.id)}, bdi(t.id)),
    el("span", {class: "tsite"}, siteName(t.site)),
    el("span", {class: "badges"}, el("span", {class: "badge st-" + state}, STATES[state] || state)),
    el("span", {class: "tcause"}, t.top_cause && t.verdict !== "healthy" ? causeLabel(t.top_cause) : "—"),
    el("span", {class: "seen"}, timeEl(t.last_seen_at)));
}

function terminalList(terminals) {
  return el("ul", {class: "trows"}, terminals.map(terminalRow));
}

function more(label, onClick) {
  return el("button", {type: "button", class: "more", on: {click: onClick}}, label);
}

function renderIncidents(incidents) {
  const cards = incidents.filter((i) => i.open).map((i) => el("article", {class: "incident scope-" + i.scope, "data-cause": i.cause},
    el("div", {class: "incident-head"},
      el("span", {class: "badge scope"}, i.scope === "fleet" ? tr("fleet-wide") : tr("site")), causeLabel(i.cause)),
    el("p", {}, i.scope === "fleet" ? ntr("{n} site", "{n} sites", i.site_count) : parts(tr("site {site}"), {site: siteName(i.site)}),
      " · ", ntr("{n} terminal", "{n} terminals", i.terminal_count), " · ",
      parts(tr("since {time}"), {time: timeEl(i.first_seen_at)})),
    el("p", {class: "muted small names"}, i.still_failing.slice(0, 12).flatMap((id, n) => [n ? ", " : "",
      el("a", {href: "/terminals/" + encodeURIComponent(id)}, bdi(id))]),
    i.still_failing_count > 12 ? " " + tr("and {n} more", {n: i.still_failing_count - 12}) : "")));
  document.getElementById("incidents").replaceChildren(...(cards.length ? cards : [el("p", {class: "ok-note"}, tr("No open incidents."))]));
}

// When a risk is due, from now: "in 31 h", "in 3 days" (its time on hover).
function dueIn(iso) {
  const t = parseTime(iso);
  if (Number.isNaN(t)) return "—";
  const h = Math.max(0, (t - Date.now() - skewMs) / 3600000);
  return h < 48 ? tr("in {n} h", {n: Math.round(h)}) : tr("in {n} days", {n: Math.round(h / 24)});
}

// The fleet's risks ahead, soonest first: what to act on before it becomes a 2824.
// data: GET /api/v1/risks (its first RISKS_SHOWN risks, and how many terminals are at risk in all).
function renderRisks(data) {
  const risks = data.risks.slice(0, RISKS_SHOWN);
  document.getElementById("risks-count").textContent = String(data.terminals);
  const items = risks.map((r) => el("li", {class: "risk", "data-code": r.code || ""},
    el("a", {class: "tid", href: "/terminals/" + encodeURIComponent(r.terminal), "data-terminal": r.terminal}, bdi(r.terminal)),
    " ", el("span", {class: "muted small"}, siteName(r.site)), " ",
    el("strong", {}, bdi(r.title || r.code)), " ", el("code", {}, r.code), " ",
    el("span", {class: "muted small"}, bdi(r.subject || "")), " ",
    el("time", {datetime: r.due_at || ""}, dueIn(r.due_at))));
  if (!items.length) {
    document.getElementById("risks").replaceChildren(el("p", {class: "ok-note"}, tr("No terminal at risk.")));
    return;
  }
  const children = [el("ol", {class: "risks"}, items)];
  const unlisted = data.terminals - new Set(risks.map((r) => r.terminal)).size;
  if (unlisted > 0) {
    children.push(el("p", {class: "muted more-risks"}, ntr("and {n} more terminal at risk", "and {n} more terminals at risk", unlisted)));
  } else if (data.risk_count > risks.length) {  // every terminal listed, some of their later risks cut
    children.push(el("p", {class: "muted more-risks"}, ntr("and {n} more risk", "and {n} more risks", data.risk_count - risks.length)));
  }
  document.getElementById("risks").replaceChildren(...children);
}

// totals: the matching fleet by state (null when that call failed: the list still shows what it has).
function renderAttention(data, totals) {
  const filtered = Object.values(filters).some(Boolean);
  document.getElementById("attention-heading").textContent = filtered ? tr("Matching terminals") : tr("Faults and silent terminals");
  const total = !totals ? data.terminals.length : filtered ? Object.values(totals).reduce((a, b) => a + b, 0) : totals.fault + totals.silent;
  document.getElementById("attention-count").textContent = String(total);
  const box = document.getElementById("attention");
  if (!data.terminals.length) {
    box.replaceChildren(el("p", {class: filtered ? "muted" : "ok-note"}, filtered ? tr("No terminal matches.") : tr("Every terminal reports, none fails.")));
    return;
  }
  const children = [terminalList(data.terminals)];
  if (data.next_offset !== null) {
    children.push(more(tr("Show {n} more", {n: Math.min(PAGE, total - data.terminals.length)}), () => { shown.attention += PAGE; refresh(); }));
  }
  box.replaceChildren(...children);
}

// The causes of the terminals that fail (the healthy ones are counted in the totals above).
function renderChart(all) {
  const box = document.getElementById("chart");
  const causes = all.filter((c) => c.cause !== "none");
  if (!causes.length) {
    box.replaceChildren(el("p", {class: all.length ? "ok-note" : "muted"}, all.length ? tr("No terminal reports a fault.") : tr("No reports yet.")));
    return;
  }
  const max = Math.max(...causes.map((c) => c.terminals));
  box.replaceChildren(el("ul", {class: "bars", "aria-label": tr("terminals by top cause")}, causes.map((c) => {
    const bar = el("span", {class: "fill"});
    bar.style.width = Math.max(1, Math.round(100 * c.terminals / max)) + "%";  // CSSOM: allowed by the CSP
    return el("li", {},
      el("button", {type: "button", class: "bar", title: ntr("{cause}: {n} terminal", "{cause}: {n} terminals", c.terminals,
        {cause: c.cause}), on: {click: () => setFilter("cause", c.cause === filters.cause ? "" : c.cause)}},
        el("span", {class: "bar-label"}, causeLabel(c.cause)), el("span", {class: "track"}, bar), el("span", {class: "n"}, String(c.terminals))));
  })));
}

function siteSummary(s) {
  return [el("span", {class: "site-name"}, siteName(s.site)),
    el("span", {class: "site-total muted"}, ntr("{n} terminal", "{n} terminals", s.terminals)),
    el("span", {class: "chips"}, ["fault", "silent", "degraded", "healthy"].map((state) =>
      s[state] ? el("span", {class: "chip st-" + state}, el("b", {}, String(s[state])), " ", STATES[state]) : null))];
}

// Site rows are kept by name from one poll to the next, so an open site stays open with its terminals.
const siteRows = new Map();

function siteRow(s) {
  let row = siteRows.get(s.site);
  if (!row) {
    row = el("details", {class: "site", "data-site": s.site}, el("summary", {}), el("div", {class: "site-terminals"}));
    row.addEventListener("toggle", () => {
      if (row.open) { openSites.add(s.site); loadSite(s.site).catch(showError); } else openSites.delete(s.site);
    });
    siteRows.set(s.site, row);
  }
  row.className = "site" + (s.fault ? " has-fault" : s.silent ? " has-silent" : s.degraded ? " has-degraded" : "");
  row.querySelector("summary").replaceChildren(...siteSummary(s));
  return row;
}

function renderSites(data) {
  document.getElementById("site-count").textContent = String(data.site_count);
  const rows = data.sites.map(siteRow);
  const box = document.getElementById("sites");
  const current = [...box.querySelectorAll(":scope > details.site")];
  if (rows.length !== current.length || rows.some((row, n) => row !== current[n])) box.replaceChildren(...rows);
  const names = new Set(data.sites.map((s) => s.site));
  for (const name of [...siteRows.keys()]) if (!names.has(name)) { siteRows.delete(name); openSites.delete(name); }
  box.querySelector(":scope > button.more")?.remove();
  if (data.next_offset !== null) {
    box.append(more(tr("Show {n} more sites", {n: Math.min(PAGE, data.site_count - data.sites.length)}), () => { shown.sites += PAGE; refresh(); }));
  }
  if (!data.sites.length) box.replaceChildren(el("p", {class: "muted"}, tr("No terminals registered.")));
}

async function loadSite(site) {
  const data = await getJSON("/api/v1/terminals?" + query({site, order: "state", limit: 1000}));
  const row = siteRows.get(site);
  if (row) row.querySelector(".site-terminals").replaceChildren(terminalList(data.terminals));
}

function renderTotals(data) {
  const t = data.totals;
  document.getElementById("totals").replaceChildren(
    ntr("{n} terminal", "{n} terminals", Object.values(t).reduce((a, b) => a + b, 0)), " · ",
    ntr("{n} site", "{n} sites", data.site_count), ...["fault", "silent", "degraded", "healthy"].flatMap((state) =>
      [" · ", el("span", {class: "total st-" + state}, el("b", {}, String(t[state])), " ", STATES[state])]));
}

// -- polling ----------------------------------------------------------------------------------------

function showError(error) {
  const status = document.getElementById("updated");
  status.textContent = tr("cannot update: {error}", {error: error.message});
  status.classList.add("stale");
}

// Each part is drawn from its own call: one that fails leaves the others on the page.
async function poll() {
  const filtered = Object.values(filters).some(Boolean);
  const attention = query({order: "state", limit: shown.attention, ...(filtered ? {} : {state: "fault,silent"})});
  const [incidents, sites, terminals, risks] = await Promise.allSettled([getJSON("/api/v1/incidents"),
    getJSON("/api/v1/sites?" + query({limit: shown.sites})), getJSON("/api/v1/terminals?" + attention),
    getJSON("/api/v1/risks?limit=" + RISKS_SHOWN)]);
  if (sites.status === "fulfilled") skewMs = parseTime(sites.value.now) - Date.now();
  if (incidents.status === "fulfilled") renderIncidents(incidents.value.incidents);
  if (risks.status === "fulfilled") renderRisks(risks.value);
  if (sites.status === "fulfilled") {
    renderTotals(sites.value);
    renderChart(sites.value.causes);
    renderSites(sites.value);
  }
  if (terminals.status === "fulfilled") renderAttention(terminals.value, sites.status === "fulfilled" ? sites.value.totals : null);
  await Promise.allSettled([...openSites].map(loadSite));
  const failed = [incidents, sites, terminals, risks].find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  document.getElementById("updated").textContent = tr("updated {time}", {time: new Date().toLocaleTimeString(LOCALE)});
  document.getElementById("updated").classList.remove("stale");
  if (!document.body.dataset.ready) {
    document.body.dataset.ready = "true";
    performance.mark("posdiag-ready");  // the bench reads how long the page took to draw its data
  }
}

function refresh() {
  if (refreshing) { again = true; return refreshing; }
  refreshing = poll().catch(showError).finally(() => {
    refreshing = null;
    if (again) { again = false; refresh(); }
  });
  return refreshing;
}

function setFilter(name, value) {
  filters[name] = value;
  document.getElementById(name).value = value;
  shown.attention = shown.sites = PAGE;
  writeFragment();
  refresh();
}

function fillCauses() {
  const select = document.getElementById("cause");
  const ids = Object.keys(CAUSES).filter((id) => id !== "none").sort((a, b) => CAUSES[a].localeCompare(CAUSES[b], LOCALE));
  select.append(...ids.map((id) => el("option", {value: id}, CAUSES[id] + " (" + id + ")")));
}

function watchFilters() {
  let typing = null;
  document.getElementById("q").addEventListener("input", (event) => {
    clearTimeout(typing);
    typing = setTimeout(() => setFilter("q", event.target.value.trim()), 250);
  });
  for (const name of ["cause", "state"]) {
    document.getElementById(name).addEventListener("change", (event) => setFilter(name, event.target.value));
  }
  document.getElementById("filters").addEventListener("submit", (event) => event.preventDefault());
  document.getElementById("filters").addEventListener("reset", () => {
    for (const name of Object.keys(filters)) filters[name] = "";
    writeFragment();
    setTimeout(refresh);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  setInterval(refresh, POLL_MS);  // first: nothing below may keep the page from polling
  const wanted = readFragment();
  if (wanted.t) { window.location.replace("/terminals/" + encodeURIComponent(wanted.t)); return; }  // an old link to a terminal
  fillCauses();
  for (const name of Object.keys(filters)) {
    const value = (wanted[name] || "").slice(0, 128);
    if (name === "state" && value && !(value in STATES)) continue;
    filters[name] = value;
    document.getElementById(name).value = value;
  }
  watchFilters();
  // The language switch brings the browser back to the same filters.
  const back = document.querySelector("form.lang-switch input[name=next]");
  if (back) back.form.addEventListener("submit", () => { back.value = window.location.pathname + window.location.hash; });
  refresh();
});
