// What the collector's pages share: their words in the page's language, building elements (report
// text always as text: textContent, never innerHTML), reading the API, and times and verdicts as an
// operator reads them. Loaded before the page's own script; everything here is a global of the page.
//
// The page's own words go through tr() and ntr() (singular, plural, count) with literal strings (the
// catalogue extractor finds them there); the server puts the page's translations in the
// <script type="application/json" id="messages"> data block. A report's own text stays in the
// language the terminal wrote it in.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const LOCALE = document.documentElement.lang || "en";
const MESSAGES = readData("messages");
let skewMs = 0;           // server clock minus this browser's clock

// A <script type="application/json"> data block of the page (English or nothing when it is unreadable).
function readData(id) {
  try { return JSON.parse(document.getElementById(id)?.textContent || "{}"); } catch { return {}; }
}

// {name} in a message, filled from fields; text without fields is left as it is (as in posdiag.core.i18n).
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

// The API's answer as JSON; signed out: to the sign-in page. An error carries the API's own reason.
async function api(url, options) {
  const response = await fetch(url, {credentials: "same-origin", ...options,
    headers: {"Accept": "application/json", ...(options?.headers || {})}});
  if (response.status === 401) { window.location.assign("/signin"); throw new Error("signed out"); }
  if (!response.ok) {
    let reason = "HTTP " + response.status;
    try { reason = (await response.json()).error || reason; } catch { /* not JSON: the status says it */ }
    throw new Error(reason);
  }
  return response.json();
}

function getJSON(url) { return api(url); }

function postJSON(url, body) {
  return api(url, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
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

// A time as an element: when it was, readable, with the exact moment in its title.
function timeEl(iso, text) {
  return el("time", {datetime: iso || "", title: clock(iso)}, text === undefined ? ago(iso) : text);
}

function verdictBadge(verdict, silent) {
  const nodes = [el("span", {class: "badge v-" + (verdict || "unknown")}, verdict ? VERDICTS[verdict] || verdict : tr("no report"))];
  if (silent) nodes.push(el("span", {class: "badge silent-badge", title: tr("not heard from recently")}, tr("silent")));
  return nodes;
}

// A report's text in the language it was written in: marked so (lang) for screen readers and fonts.
function reportLang(report) {
  return report.lang === "zh_CN" ? "zh-CN" : "en";
}

function sizeText(bytes) {
  const format = new Intl.NumberFormat(LOCALE, {maximumFractionDigits: 1});
  return bytes < 1024 * 1024 ? tr("{kib} KiB", {kib: format.format(bytes / 1024)}) :
    tr("{mib} MiB", {mib: format.format(bytes / 1048576)});
}
