"""The report of one diagnosis (schema ``posdiag.report/1``) and its renderings.

Data and presentation are kept apart: :func:`build_report` makes the JSON contract of DESIGN.md,
:func:`render_text` turns that same dict into what a technician reads at the till.
"""

from __future__ import annotations

import socket
import uuid
from datetime import datetime, timezone
from typing import Any

from posdiag.agent import __version__
from posdiag.agent.config import Settings
from posdiag.agent.diagnosis import Diagnosis
from posdiag.probes.base import ProbeResult

SCHEMA = "posdiag.report/1"
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime(ISO_FORMAT)


def parse_utc_iso(text: str) -> float:
    """The inverse of :func:`utc_iso`: a report's ``started_at`` back to seconds since the epoch."""
    return datetime.strptime(text, ISO_FORMAT).replace(tzinfo=timezone.utc).timestamp()


def build_report(settings: Settings, results: list[ProbeResult], diagnosis: Diagnosis, *, trigger: str,
                 started_at: float, duration_s: float) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "report_id": str(uuid.uuid4()),
        "terminal": {"id": settings.terminal_id, "site": settings.terminal.site, "hostname": socket.gethostname()},
        "agent_version": __version__,
        "trigger": trigger,
        "started_at": utc_iso(started_at),
        "duration_s": round(duration_s, 3),
        "probes": [r.to_dict() for r in results],
        "diagnosis": diagnosis.to_dict(),
    }


_STATUS_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "error": "ERROR", "skipped": "-"}


def render_text(report: dict[str, Any]) -> str:
    """What a technician reads: verdict, the likely cause, why, what to do, then the probes."""
    diag = report["diagnosis"]
    top = diag["causes"][0]
    term = report["terminal"]
    where = f"{term['id']}" + (f" @ {term['site']}" if term.get("site") else "")
    lines = [f"posdiag {report['agent_version']} — {where} — {report['started_at']} ({report['duration_s']:.2f} s)",
             "", f"Verdict: {diag['verdict'].upper()}"]
    if top["id"] == "none":
        lines.append(f"Most likely: {top['title']}  [none, confidence {top['confidence']:.0%}]")
    else:
        lines.append(f"Most likely cause: {top['title']}  [{top['id']}, confidence {top['confidence']:.0%}]")
    if top.get("explanation"):
        lines.append(f"  {top['explanation']}")
    lines += ["", "Why:"] + [f"  - {e}" for e in top["evidence"]]
    if top.get("consequences"):
        lines += ["Also failing because of it:"] + [f"  - {c}" for c in top["consequences"]]
    lines += ["", "What to do:"] + [f"  {i}. {step}" for i, step in enumerate(top["remediation"], 1)]
    others = diag["causes"][1:]
    if others:
        lines += ["", "Other possible causes:"]
        lines += [f"  - {c['title']}  [{c['id']}, {c['confidence']:.0%}]" for c in others]
    lines += ["", "Probes:"]
    width = max(len(p["name"]) for p in report["probes"]) if report["probes"] else 5
    for p in report["probes"]:
        lines.append(f"  {p['name']:<{width}}  {_STATUS_MARK[p['status']]:<5}  {p['duration_s'] * 1000:6.0f} ms  "
                     f"{p['summary']}")
    return "\n".join(lines) + "\n"
