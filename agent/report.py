"""The report of one diagnosis (schema ``posdiag.report/1``) and its renderings.

Data and presentation are kept apart: :func:`build_report` makes the JSON contract (docs/report.md),
:func:`render_text` turns that same dict into what a technician reads at the till.
"""

from __future__ import annotations

import socket
from typing import Any

from posdiag.agent import __version__
from posdiag.agent.columns import SCREEN, display_width, fitted, pad, pad_left, wrap
from posdiag.agent.coverage import AREA_WORDS
from posdiag.agent.diagnosis import PRESENT, Diagnosis
from posdiag.agent.history import SHORT_ID, new_report_id
from posdiag.agent.reworded import in_language, written_in
from posdiag.agent.words import LANGUAGE_WORDS, STATUS_MARKS, VERDICT_WORDS, said
from posdiag.core import i18n
from posdiag.core.redact import mask_data
from posdiag.core.settings import Settings
from posdiag.core.timefmt import utc_iso
from posdiag.probes.base import ProbeResult

SCHEMA = "posdiag.report/1"


def build_report(settings: Settings, results: list[ProbeResult], diagnosis: Diagnosis, *, trigger: str,
                 started_at: float, duration_s: float) -> dict[str, Any]:
    """The report of one diagnosis, with card data and secrets masked (:mod:`posdiag.core.redact`) once,
    here: whatever a probe quoted (a POS log line, a reader's name, a health path's query) is masked
    before the report is printed, stored in the history or pushed to the central server."""
    return mask_data({
        "schema": SCHEMA,
        "report_id": new_report_id(),
        "terminal": {"id": settings.terminal_id, "site": settings.terminal.site, "hostname": socket.gethostname()},
        "agent_version": __version__,
        "lang": i18n.active(),
        "trigger": trigger,
        "started_at": utc_iso(started_at),
        "duration_s": round(duration_s, 3),
        "probes": [r.to_dict() for r in results],
        "diagnosis": diagnosis.to_dict(),
        "risks": diagnosis.risks,
    })


def phone_line(report: dict[str, Any], short_id: str | None = None, t: i18n.Translator | None = None) -> str:
    """The one line a technician reads out to the help desk: verdict, top cause, short id, time, in
    the reader's language (``t``, else this process's); the title as the report gives it."""
    t = t or i18n.current()
    top = report["diagnosis"]["causes"][0]
    risks = report.get("risks") or []
    # with no fault, what makes the terminal less than healthy is read out, not "no fault found"
    title = risks_said(risks, t) if top["id"] == "none" and risks else top["title"]
    when = report["started_at"][11:16]  # the hour and minute: the id says which report, the time when
    return t.tr("{verdict}: {title} · report {id} · {time} UTC", verdict=said(VERDICT_WORDS, report["diagnosis"]["verdict"], t),
                title=title, id=short_id or report["report_id"][:SHORT_ID], time=when)


def risks_said(risks: list[dict[str, Any]], t: i18n.Translator) -> str:
    """"1 risk ahead: <the soonest>, in 71.5 h", for the phone line and the monitoring plugin's line."""
    soonest = risks[0]
    return t.ntr("{n} risk ahead: {title}, {when}", "{n} risks ahead, the soonest: {title}, {when}", len(risks),
                 title=soonest["title"], when=risk_when(soonest, t))


def render_text(report: dict[str, Any], short_id: str | None = None, t: i18n.Translator | None = None) -> str:
    """What a technician reads: the line to read out on the phone, verdict, every fault found (each
    with why and what to do), then the mere alternatives, what was not checked, the risks ahead, the
    probes (and what a watch session saw).

    In the reader's language (``t``, else this process's) whatever language the report was written
    in: headings, verdict and status words, and the causes' and risks' titles, explanations and steps
    (looked up again in the knowledge base, :mod:`posdiag.agent.reworded`). What the probes wrote —
    findings, evidence, summaries — stays as the terminal wrote it, and one line at the end says in
    which language when it is not the reader's. Columns are aligned by display width (a CJK
    character is two cells) and lines wrapped to 80 of them, under their bullet or their column. A
    report of an older agent (no ``certainty``, no ``not_checked``, no ``lang``) reads as it always did.
    """
    t = t or i18n.current()
    written = written_in(report)
    report = in_language(report, t.lang)
    diag = report["diagnosis"]
    term = report["terminal"]
    where = f"{term['id']}" + (f" @ {term['site']}" if term.get("site") else "")
    verdict = diag["verdict"]
    lines = [phone_line(report, short_id, t), "",
             f"posdiag {report['agent_version']} — {where} — {report['started_at']} ({report['duration_s']:.2f} s)",
             "", t.tr("Verdict: {verdict}", verdict=said(VERDICT_WORDS, verdict, t))]
    lines += _recheck_lines(report, t)
    faults = present_faults(diag["causes"])
    if len(faults) > 1:
        lines.append(t.ntr("{n} fault found, each on its own evidence:", "{n} faults found, each on its own evidence:",
                           len(faults)))
        for i, cause in enumerate(faults, 1):
            lines += ["", *_bracket_apart(t.tr("Fault {i} of {n}: {title}  [{id}, confidence {confidence}, certainty "
                                               "{certainty}]", i=i, n=len(faults), title=cause["title"], id=cause["id"],
                                               confidence=_percent(cause["confidence"]),
                                               certainty=_percent(cause["certainty"])))]
            lines += _cause_lines(cause, t)
    else:
        faults = diag["causes"][:1]
        lines += [*_bracket_apart(_top_heading(faults[0], t)), *_cause_lines(faults[0], t)]
    others = [c for c in diag["causes"] if c not in faults]
    if others:
        lines += ["", t.tr("Other possible causes:")] + [_alternative(c, t) for c in others]
    if diag.get("not_checked"):
        lines += ["", t.tr("Not checked:")]
        lines += [f"  - {t.tr(AREA_WORDS[u['area']]) if u['area'] in AREA_WORDS else u['area']} — {u['reason']}"
                  for u in diag["not_checked"]]
    lines += risk_lines(report.get("risks") or [], t)
    if report.get("watch"):
        from posdiag.agent.watchsummary import summary_lines

        lines += [""] + summary_lines(report, t)
    lines = fitted(lines) + ["", t.tr("Probes:")] + _probe_lines(report["probes"], t)
    if written != t.lang:
        lines += ["", *fitted([t.tr("Findings and evidence are in {language}, as the terminal wrote them.",
                                    language=said(LANGUAGE_WORDS, written, t))])]
    return "\n".join(lines) + "\n"


def risk_lines(risks: list[dict[str, Any]], t: i18n.Translator) -> list[str]:
    """Risks ahead under their own heading, soonest first: each with when, what was seen, the steps."""
    if not risks:
        return []
    lines = ["", t.tr("Risks ahead (not a cause of a 2824 yet; act before they fail):")]
    for risk in risks:
        lines.append(f"  - {risk['title']}  [{risk['code']}, {risk_when(risk, t)}]")
        lines.append(f"    {risk['probe']}: {risk['message']}")
        lines += [f"    {i}. {step}" for i, step in enumerate(risk.get("remediation") or [], 1)]
    return lines


def risk_when(risk: dict[str, Any], t: i18n.Translator) -> str:
    """"in 31.5 h" or "in 9.2 days", as the hours left are best read."""
    hours = risk.get("hours_left")
    if hours is None:
        return t.tr("soon")
    if hours < 48:
        return t.tr("in {hours:.1f} h", hours=hours)
    return t.tr("in {days:.1f} days", days=hours / 24)


def present_faults(causes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The causes of a report that are faults present on their own evidence, most likely first."""
    return [c for c in causes if c["id"] != "none" and c.get("certainty", 0.0) >= PRESENT]


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _top_heading(top: dict[str, Any], t: i18n.Translator) -> str:
    confidence = _percent(top["confidence"])
    if top["id"] == "none":
        return t.tr("Most likely: {title}  [none, confidence {confidence}]", title=top["title"], confidence=confidence)
    if "certainty" not in top:
        return t.tr("Most likely cause: {title}  [{id}, confidence {confidence}]", title=top["title"], id=top["id"],
                    confidence=confidence)
    return t.tr("Most likely cause: {title}  [{id}, confidence {confidence}, certainty {certainty}]", title=top["title"],
                id=top["id"], confidence=confidence, certainty=_percent(top["certainty"]))


def _bracket_apart(heading: str) -> list[str]:
    """A cause's heading too wide for the screen breaks before its bracket (``[id, confidence …]``),
    which goes whole to the next line, in every language: a Chinese line is otherwise wrapped at any
    character, splitting the bracket in two."""
    title, gap, bracket = heading.rpartition("  [")
    if not gap or display_width(heading) <= SCREEN:
        return [heading]
    return [title, "  [" + bracket]


def _cause_lines(cause: dict[str, Any], t: i18n.Translator) -> list[str]:
    """A cause told in full: what it means, why posdiag says so, what it explains, what to do."""
    lines = [f"  {cause['explanation']}"] if cause.get("explanation") else []
    lines += ["", t.tr("Why:")] + [f"  - {e}" for e in cause["evidence"]]
    if cause.get("consequences"):
        lines += [t.tr("Also failing because of it:")] + [f"  - {c}" for c in cause["consequences"]]
    return lines + ["", t.tr("What to do:")] + [f"  {i}. {step}" for i, step in enumerate(cause["remediation"], 1)]


def _alternative(cause: dict[str, Any], t: i18n.Translator) -> str:
    sure = t.tr(", certainty {certainty}", certainty=_percent(cause["certainty"])) if "certainty" in cause else ""
    return f"  - {cause['title']}  [{cause['id']}, {_percent(cause['confidence'])}{sure}]"


def _recheck_lines(report: dict[str, Any], t: i18n.Translator) -> list[str]:
    """A re-check (``--only``) says what it was asked for and what else it had to run to answer."""
    only = report.get("only")
    if not only:
        return []
    asked = ", ".join(only["asked"])
    if only.get("prerequisites"):
        return [t.tr("Re-check of {asked}, with what it needs: {prerequisites}", asked=asked,
                     prerequisites=", ".join(only["prerequisites"]))]
    return [t.tr("Re-check of {asked}", asked=asked)]


def _probe_lines(probes: list[dict[str, Any]], t: i18n.Translator) -> list[str]:
    """One line per probe: name, status, time, summary, each column aligned by display width."""
    marks = [t.tr(STATUS_MARKS[p["status"]]) for p in probes]
    name_w = max((display_width(p["name"]) for p in probes), default=5)
    mark_w = max((display_width(m) for m in marks), default=5)
    lines = []
    for probe, mark in zip(probes, marks, strict=True):
        millis = pad_left(f"{probe['duration_s'] * 1000:.0f}", 6)
        head = f"  {pad(probe['name'], name_w)}  {pad(mark, mark_w)}  {millis} ms  "
        summary = wrap(probe["summary"], max(20, SCREEN - display_width(head))) or [""]
        lines += [head + summary[0]] + [" " * display_width(head) + more for more in summary[1:]]
    return lines
