// posdiag terminal page: one terminal's latest diagnosis as the technician reads it at the till, its
// history of verdicts and causes, its remote requests, and the buttons that ask it for a diagnosis or
// a support bundle and show the answer when it comes. Polls the read API; report text reaches the page
// through textContent only (common.js). Cause titles come in the page's language from the knowledge
// base (the "causes" data block); evidence and steps stay in the language the terminal wrote them in.
"use strict";

const POLL_MS = 5000;
const WATCH_MS = 2000;
const CAUSES = readData("causes");
const TERMINAL = decodeURIComponent(window.location.pathname.replace(/^\/terminals\//, ""));
const BASE = "/api/v1/terminals/" + encodeURIComponent(TERMINAL);
const KINDS = {diagnose: tr("Diagnosis"), bundle: tr("Support bundle")};
const STATES = {pending: tr("waiting for the terminal"), delivered: tr("picked up by the terminal"), done: tr("done"),
  failed: tr("failed"), expired: tr("expired")};
const TRIGGERS = {"on-demand": tr("on demand"), boot: tr("at boot"), schedule: tr("scheduled"), event: tr("on a 2824"),
  remote: tr("asked from here"), watch: tr("live session")};
const FINAL = new Set(["done", "failed", "expired"]);

let shownReportId = null;  // the report on screen
let pinned = false;        // the operator picked a report: polling does not replace it with the newest
const watched = new Map(); // request id → its last state, for the requests this page asked and waits on

// A cause's title in the page's language (the catalogue's), else as the report has it, else its id.
function causeTitle(id, reportTitle) {
  return CAUSES[id] || reportTitle || id;
}

function steps(heading, items, lang, tag) {
  if (!items || !items.length) return [];
  return [el("h5", {}, heading), el(tag, {class: tag === "ol" ? "remediation" : "evidence", lang}, items.map((i) => el("li", {}, i)))];
}

// A report of an older agent has no certainty: its card shows the confidence alone.
function causeCard(cause, lang, first) {
  const percent = (value) => new Intl.NumberFormat(LOCALE, {style: "percent"}).format(value);
  const certainty = typeof cause.certainty === "number"
    ? el("span", {class: "certainty", title: tr("certainty: how sure the fault is present, on its own evidence")},
      tr("certain {percent}", {percent: percent(cause.certainty)}))
    : null;
  return el("article", {class: "cause-card" + (first ? " top" : ""), "data-cause": cause.id},
    el("p", {class: "cause-rank muted small"}, first ? tr("Most likely cause") : tr("Also possible")),
    el("h4", {}, el("span", {class: "cause-title"}, causeTitle(cause.id, cause.title)), " ", el("code", {}, cause.id),
      el("span", {class: "confidence", title: tr("confidence")}, percent(cause.confidence)), certainty),
    cause.explanation ? el("p", {class: "explanation", lang}, cause.explanation) : null,
    steps(tr("Why"), cause.evidence, lang, "ul"),
    steps(tr("Also failing because of it"), cause.consequences, lang, "ul"),
    steps(tr("What to do"), cause.remediation, lang, "ol"));
}

// The report's risks ahead, soonest first: not causes of this 2824, what will fail if nothing is done.
function risksBox(risks, lang) {
  if (!risks.length) return null;
  return el("section", {class: "risk-card"}, el("h4", {}, tr("Risks ahead")), risks.map((r) => el("article", {},
    el("h5", {}, el("span", {lang}, r.title || r.code), " ", el("code", {}, r.code), " ",
      parts(tr("due {time}"), {time: timeEl(r.due_at, clock(r.due_at))})),
    el("p", {lang}, r.message), steps(tr("What to do"), r.remediation, lang, "ol"))));
}

function probesTable(report, lang) {
  return el("details", {class: "probes-box"}, el("summary", {}, ntr("{n} probe", "{n} probes", report.probes.length)),
    el("table", {class: "probes"},
      el("thead", {}, el("tr", {}, el("th", {}, tr("probe")), el("th", {}, tr("status")), el("th", {}, tr("summary")))),
      el("tbody", {}, report.probes.map((p) => el("tr", {class: "p-" + p.status},
        el("td", {}, p.name), el("td", {}, STATUSES[p.status] || p.status), el("td", {lang}, p.summary))))));
}

function renderReport(report, note) {
  const lang = reportLang(report);
  const seconds = new Intl.NumberFormat(LOCALE, {maximumFractionDigits: 2}).format(report.duration_s);
  const meta = [TRIGGERS[report.trigger] || report.trigger, tr("{seconds} s", {seconds}),
    tr("agent {version}", {version: report.agent_version})].join(" · ");
  const box = document.getElementById("report");
  box.dataset.report = report.report_id;
  box.replaceChildren(el("div", {class: "report-view"},
    note ? el("p", {class: "note"}, note) : null,
    el("p", {class: "verdict-line"}, verdictBadge(report.diagnosis.verdict, false), " ",
      parts(tr("diagnosed {time}"), {time: timeEl(report.started_at, clock(report.started_at))})),
    el("p", {class: "muted small"}, meta, " · ", el("code", {}, report.report_id)),
    report.diagnosis.causes.map((cause, i) => causeCard(cause, lang, i === 0)),
    risksBox(report.risks || [], lang),
    probesTable(report, lang),
    pinned ? el("button", {type: "button", class: "link", on: {click: showLatest}}, tr("Back to the latest diagnosis")) : null));
  shownReportId = report.report_id;
}

// A report on screen in place of the latest; ``pin``: kept there while newer ones arrive.
async function showReport(reportId, note, pin = true) {
  pinned = pin;
  renderReport(await getJSON("/api/v1/reports/" + encodeURIComponent(reportId)), note);
  markHistory();
  document.getElementById("diagnosis").scrollIntoView({block: "start"});
}

function showLatest() {
  pinned = false;
  shownReportId = null;
  refresh();
}

function renderFacts(t) {
  const facts = [el("span", {class: "badges"}, verdictBadge(t.verdict, t.silent))];
  if (t.site) facts.push(el("span", {}, tr("site {site}", {site: t.site})));
  facts.push(el("span", {}, parts(tr("last heard from {time}"), {time: timeEl(t.last_seen_at)})));
  if (t.agent_version) facts.push(el("span", {}, tr("agent {version}", {version: t.agent_version})));
  if (t.soonest_risk_at) facts.push(el("span", {class: "badge at-risk"}, parts(tr("at risk, due {time}"), {time: timeEl(t.soonest_risk_at, clock(t.soonest_risk_at))})));
  if (t.revoked) facts.push(el("span", {class: "badge v-fault"}, tr("token revoked")));
  document.getElementById("terminal-facts").replaceChildren(...facts);
}

// Consecutive reports with the same verdict and cause make one entry of the timeline.
function runs(reports) {
  const out = [];
  for (const r of reports) {
    const last = out[out.length - 1];
    if (last && last.verdict === r.verdict && last.cause === r.top_cause) {
      last.first = r.started_at;
      last.count += 1;
    } else {
      out.push({verdict: r.verdict, cause: r.top_cause, newest: r.report_id, last: r.started_at, first: r.started_at, count: 1});
    }
  }
  return out;
}

function renderStrip(reports) {
  const box = document.getElementById("strip");
  if (!reports.length) { box.replaceChildren(); return; }
  const width = Math.max(200, Math.min(600, box.clientWidth || 300)), height = 18;
  const cell = width / reports.length;
  const strip = svg("svg", {width, height, viewBox: `0 0 ${width} ${height}`, role: "img", class: "strip",
    "aria-label": tr("verdicts of the last {n} reports, oldest first", {n: reports.length})});
  [...reports].reverse().forEach((r, i) => {
    const rect = svg("rect", {x: (i * cell).toFixed(1), y: 0, width: Math.max(1, cell - 1).toFixed(1), height,
      class: "v-" + r.verdict});
    rect.append(svg("title", {}, clock(r.started_at) + " · " + (VERDICTS[r.verdict] || r.verdict) + " · " + r.top_cause));
    strip.append(rect);
  });
  box.replaceChildren(strip);
}

function renderHistory(reports) {
  renderStrip(reports);
  const items = runs(reports).map((run) => el("li", {},
    el("button", {type: "button", class: "report-item", "data-report": run.newest, on: {click: () => showReport(run.newest)}},
      el("span", {class: "dot v-" + run.verdict}),
      el("span", {class: "badge v-" + run.verdict}, VERDICTS[run.verdict] || run.verdict),
      el("span", {class: "run-cause"}, causeTitle(run.cause), " ", el("code", {}, run.cause)),
      el("span", {class: "run-when muted small"},
        run.count > 1 ? [clock(run.first) + " – " + clock(run.last), " · ", ntr("{n} report", "{n} reports", run.count)] :
          clock(run.last)))));
  document.getElementById("history").replaceChildren(...(items.length ? items : [el("li", {class: "muted"}, tr("No reports yet."))]));
  markHistory();
}

function markHistory() {
  document.querySelectorAll("#history button.report-item").forEach((b) =>
    b.classList.toggle("selected", b.dataset.report === shownReportId));
}

function resultOf(request) {
  if (request.state === "done" && request.report_id) {
    return el("button", {type: "button", class: "link", on: {click: () => showReport(request.report_id,
      tr("The terminal's answer to the request of {time}", {time: clock(request.created_at)}))}}, tr("Show the report"));
  }
  if (request.state === "done" && request.bundle_url) {
    const label = request.bundle_bytes ? tr("Download the bundle ({size})", {size: sizeText(request.bundle_bytes)}) :
      tr("Download the bundle");
    return el("a", {href: request.bundle_url, download: "", class: "download"}, label);
  }
  if (request.state === "failed") return el("span", {class: "error-text"}, tr("the terminal could not: {error}", {error: request.error || "?"}));
  if (request.state === "expired") return el("span", {class: "muted"}, tr("not picked up in time: is the terminal on and checking in?"));
  return null;
}

function requestItem(request) {
  return el("li", {class: "request s-" + request.state, "data-request": request.request_id},
    el("span", {class: "request-kind"}, KINDS[request.kind] || request.kind),
    el("span", {class: "badge r-" + request.state}, STATES[request.state] || request.state),
    el("span", {class: "muted small"}, parts(tr("asked by {who} {time}"), {who: request.requested_by, time: timeEl(request.created_at)})),
    resultOf(request));
}

function renderRequests(list) {
  const items = list.map(requestItem);
  document.getElementById("requests").replaceChildren(...(items.length ? items : [el("li", {class: "muted"}, tr("No requests yet."))]));
}

async function refresh() {
  try {
    const [terminal, reports, requests] = await Promise.all([getJSON(BASE),
      getJSON("/api/v1/reports?limit=100&terminal=" + encodeURIComponent(TERMINAL)), getJSON(BASE + "/requests?limit=20")]);
    skewMs = parseTime(terminal.now) - Date.now();
    renderFacts(terminal);
    renderRequests(requests.requests);
    // The latest diagnosis is the report the terminal's state follows, not the one whose clock says
    // latest: a report dated ahead does not stay on screen until its time passes.
    const latest = terminal.last_report_id || (reports.reports[0] || {}).report_id;
    if (!pinned && latest && latest !== shownReportId) {
      renderReport(await getJSON("/api/v1/reports/" + encodeURIComponent(latest)));
    } else if (!latest) {
      document.getElementById("report").replaceChildren(el("p", {class: "muted"}, tr("No reports yet.")));
    }
    renderHistory(reports.reports);
    document.getElementById("updated").textContent = tr("updated {time}", {time: new Date().toLocaleTimeString(LOCALE)});
    document.getElementById("updated").classList.remove("stale");
  } catch (error) {
    const status = document.getElementById("updated");
    status.textContent = tr("cannot update: {error}", {error: error.message});
    status.classList.add("stale");
  }
}

// The answer to a request this page asked, shown where the operator asked it, until it is final.
function showWatched(request) {
  const said = {pending: tr("Asked. Waiting for the terminal to pick it up…"),
    delivered: tr("The terminal has picked it up and is working on it…"), done: tr("Done.")};  // else: resultOf says it
  document.getElementById("ask-result").replaceChildren(el("div", {class: "ask-state s-" + request.state,
    "data-request": request.request_id, "data-state": request.state},
  el("strong", {}, KINDS[request.kind] || request.kind), " · ", said[request.state] || "", " ", resultOf(request)));
}

function pause(ms) { return new Promise((resolve) => setTimeout(resolve, ms)); }

async function watch(requestId) {
  while (watched.has(requestId)) {
    let request;
    try {
      request = await getJSON("/api/v1/requests/" + encodeURIComponent(requestId));
    } catch {
      await pause(WATCH_MS);  // the server is busy or the network hiccups: the status line says so; ask again
      continue;
    }
    if (request.state !== watched.get(requestId)) {
      watched.set(requestId, request.state);
      showWatched(request);
    }
    if (FINAL.has(request.state)) {
      watched.delete(requestId);
      if (request.state === "done" && request.report_id) {
        await showReport(request.report_id, tr("The terminal's answer to your request, diagnosed just now."), false);
      }
      refresh();
      return;
    }
    await pause(WATCH_MS);
  }
}

async function ask(kind, button) {
  button.disabled = true;
  try {
    const request = await postJSON(BASE + "/requests", {kind});
    watched.set(request.request_id, request.state);
    showWatched(request);
    refresh();
    await watch(request.request_id);
  } catch (error) {
    document.getElementById("ask-result").replaceChildren(el("p", {class: "error-text"},
      tr("cannot ask: {error}", {error: error.message})));
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.title = TERMINAL + " · " + document.title;
  document.getElementById("ask-diagnose").addEventListener("click", (e) => ask("diagnose", e.currentTarget));
  document.getElementById("ask-bundle").addEventListener("click", (e) => ask("bundle", e.currentTarget));
  // The language switch brings the browser back to this terminal.
  const back = document.querySelector("form.lang-switch input[name=next]");
  if (back) back.form.addEventListener("submit", () => { back.value = window.location.pathname; });
  refresh();
  setInterval(refresh, POLL_MS);
});
