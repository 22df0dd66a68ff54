"""Renderings of a report for monitoring systems: one monitoring-plugin line, Prometheus text.

Both are views of the same ``posdiag.report/1`` dict, like the text for a person. The plugin line
follows the monitoring-plugins output rules (Nagios, Icinga, Zabbix agents, Checkmk): ``SERVICE
STATE - text | perfdata`` with the state word matching the exit code, no ``|`` in the text, and
perfdata as ``'label'=value[UOM];warn;crit;min;max``. The Prometheus text is meant for
node_exporter's textfile collector, which reads every ``*.prom`` file of a directory: it must be
replaced atomically, never seen half-written.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from posdiag.agent.coverage import AREA_WORDS
from posdiag.agent.report import present_faults, risks_said
from posdiag.core import i18n
from posdiag.core.numfmt import plain
from posdiag.core.vocabulary import Verdict
from posdiag.probes.base import Status

#: Exit code → monitoring-plugin state word (the codes are the plugin convention already).
STATE_WORDS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}
STATUSES = tuple(s.value for s in Status)
VERDICTS = tuple(v.value for v in Verdict)
#: Metric-name suffix → perfdata unit of measure (the plugin guidelines' UOMs).
_UOM = (("_ms", "ms"), ("_s", "s"), ("_percent", "%"), ("_mb", "MB"))
MAX_PERFDATA = 40  # a plugin line is read by people and stored by the monitor: keep it bounded


def nagios_line(report: dict[str, Any], exit_code: int) -> str:
    """``POSDIAG <STATE> - <top cause and its evidence> | <perfdata>`` (one line, newline-terminated)."""
    state = STATE_WORDS.get(exit_code, "UNKNOWN")  # the plugin contract's words: never translated
    t = i18n.translator(report.get("lang") or i18n.DEFAULT)  # the rest in the report's own language
    top = report["diagnosis"]["causes"][0]
    confidence = f"{top['confidence']:.0%}"
    if top["id"] == "none":
        text = t.tr("no terminal-side fault found ({confidence} sure)", confidence=confidence)
        unchecked = [t.tr(AREA_WORDS.get(u["area"], u["area"])) for u in report["diagnosis"].get("not_checked", [])]
        if unchecked:
            text += t.tr("; not checked: {areas}", areas=", ".join(unchecked))
    else:
        text = f"{top['id']} ({confidence}): {top['title']}"
    evidence = top.get("evidence") or []
    if evidence and top["id"] != "none":
        text += " - " + evidence[0]
        if len(evidence) > 1:
            text += t.tr(" (+{more} more)", more=len(evidence) - 1)
    also = [c["id"] for c in present_faults(report["diagnosis"]["causes"]) if c["id"] != top["id"]]
    if also:
        text += t.tr(" - also present: {causes}", causes=", ".join(also))
    text += _risks_text(report.get("risks") or [], t)
    return f"POSDIAG {state} - {_plugin_text(text)} | {' '.join(_perfdata(report))}\n"


def unknown_line(reason: str) -> str:
    """The plugin line of a check that could not run (a bad configuration): state UNKNOWN, one line."""
    return f"POSDIAG {STATE_WORDS[3]} - {_plugin_text(reason)}\n"


def _plugin_text(text: str) -> str:
    """Text for a plugin line: one line, and no ``|`` (which starts the perfdata)."""
    return re.sub(r"\s+", " ", text).replace("|", "/").strip()


def _risks_text(risks: list[dict[str, Any]], t: i18n.Translator) -> str:
    """" - 1 risk ahead: <the soonest>, in 71.5 h": what makes a check WARNING without a fault."""
    return " - " + risks_said(risks, t) if risks else ""


def _perfdata(report: dict[str, Any]) -> list[str]:
    top = report["diagnosis"]["causes"][0]
    items = [_perf("duration", report["duration_s"], "s", lo=0),
             _perf("confidence", top["confidence"], "", lo=0, hi=1),
             *([_perf("certainty", top["certainty"], "", lo=0, hi=1)] if "certainty" in top else []),
             _perf("probes_failed", sum(p["status"] == Status.FAIL for p in report["probes"]), "", lo=0),
             _perf("probes_error", sum(p["status"] == Status.ERROR for p in report["probes"]), "", lo=0)]
    for probe in report["probes"]:
        for name, value in probe.get("metrics", {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                uom = next((u for suffix, u in _UOM if name.split("[", 1)[0].endswith(suffix)), "")
                items.append(_perf(f"{probe['name']}.{name}", value, uom))
    return items[:MAX_PERFDATA]


def _perf(label: str, value: float, uom: str, lo: float | None = None, hi: float | None = None) -> str:
    label = label.replace("'", "''").replace("=", "_")
    bounds = ";;;" + ("" if lo is None else plain(lo)) + ";" + ("" if hi is None else plain(hi))
    return f"'{label}'={plain(value)}{uom}{bounds.rstrip(';')}"


def prometheus_text(report: dict[str, Any], exit_code: int) -> str:
    """Text exposition: verdict, cause confidences, probe status and durations, numeric metrics."""
    out: list[str] = []
    terminal = report["terminal"]

    def family(name: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} gauge")
        out.extend(f"{name}{_labels(labels)} {_number(value)}" for labels, value in samples)

    verdict = report["diagnosis"]["verdict"]
    family("posdiag_info", "posdiag agent on this terminal (value always 1).",
           [({"terminal": terminal["id"], "site": terminal.get("site", ""), "version": report["agent_version"]}, 1)])
    family("posdiag_verdict", "1 for the verdict of the last diagnosis, 0 for the others.",
           [({"verdict": v}, int(v == verdict)) for v in VERDICTS])
    family("posdiag_exit_code", "Exit code of the last diagnosis (0 healthy, 1 degraded, 2 fault, 3 unknown).",
           [({}, exit_code)])
    family("posdiag_last_run_duration_seconds", "Wall time of the last diagnosis.", [({}, report["duration_s"])])
    family("posdiag_cause_confidence", "Confidence of each ranked root cause in the last diagnosis (0..1).",
           [({"cause": c["id"]}, c["confidence"]) for c in report["diagnosis"]["causes"]])
    family("posdiag_cause_certainty", "How sure the last diagnosis is that each ranked cause is present, on its own "
           "evidence (0..1).", [({"cause": c["id"]}, c["certainty"]) for c in report["diagnosis"]["causes"]
                                if "certainty" in c])
    family("posdiag_risk_hours_left", "Hours before each risk ahead fails (an expiring certificate, a filling disk …).",
           [({"risk": r["code"], "subject": r.get("subject", "")}, r["hours_left"]) for r in report.get("risks") or []
            if r.get("hours_left") is not None])
    family("posdiag_probe_status", "1 for each probe's status in the last diagnosis, 0 for the others.",
           [({"probe": p["name"], "status": s}, int(p["status"] == s)) for p in report["probes"] for s in STATUSES])
    family("posdiag_probe_duration_seconds", "How long each probe took.",
           [({"probe": p["name"]}, p["duration_s"]) for p in report["probes"]])
    metrics = [({"probe": p["name"], "metric": name}, value) for p in report["probes"]
               for name, value in p.get("metrics", {}).items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)]
    family("posdiag_probe_metric", "Numeric measurements of the probes, by the probe's own metric name "
           "(the unit is in the name: _ms, _mb, _percent).", metrics)
    return "\n".join(out) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    escaped = (f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + ",".join(escaped) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    """A sample value exactly: ``repr`` is the shortest text that reads back as the same float."""
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return plain(value)


def write_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never a part: a
    temporary file in the same directory, flushed to disk, then renamed over the target."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
