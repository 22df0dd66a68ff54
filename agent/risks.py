"""Risks ahead: what will fail if nothing is done, seen before it fails — a certificate about to
expire, a filesystem filling at a steady rate, POS memory growth, a drifting clock.

A risk is not a cause of a 2824 now: no cause is blamed for it, and its finding is never weighed as
evidence. The ``[risks]`` table of ``causes.toml`` names which finding codes are risks, with a title
and steps in each language; the probes' findings carry the numbers (``hours_left``, ``due_at``, the
``rate`` and ``rate_unit`` they were extrapolated at). Risks make a healthy verdict ``degraded``
(exit 1, Nagios WARNING, as ``check_http -C`` does for a certificate) and are listed soonest first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from posdiag.core.causes import cause_text
from posdiag.probes.base import ProbeResult, Severity


@dataclass(frozen=True)
class RiskInfo:
    code: str
    title: str
    remediation: tuple[str, ...]


def load(table: Any, evidence: dict[str, Any], lang: str, problems: list[str]) -> dict[str, RiskInfo]:
    """``[risks."code"]`` tables → RiskInfo by finding code, their text in ``lang`` (a ``[risks."code".zh_CN]``
    table, as a cause has). A risk code weighed as evidence of a cause is refused: a risk is never a cause."""
    risks: dict[str, RiskInfo] = {}
    if not isinstance(table, dict):
        problems.append("risks: expected a table of [risks.\"finding code\"] tables")
        return risks
    for code, entry in table.items():
        where = f"risks.{code}"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a table with title and remediation")
            continue
        if code in evidence:
            problems.append(f"{where}: the code is also weighed as evidence of a cause; a risk is never a cause")
        text = cause_text(entry, lang, where, problems)
        steps = text.get("remediation", [])
        if not text.get("title") or not isinstance(steps, list) or not steps:
            problems.append(f"{where}: expected a title and at least one remediation step")
            continue
        risks[code] = RiskInfo(code, str(text["title"]), tuple(str(s) for s in steps))
    return risks


def found(results: Iterable[ProbeResult], risks: dict[str, RiskInfo]) -> list[dict[str, Any]]:
    """The risks the probes saw, soonest first, as the report carries them (``risks[]``)."""
    out = []
    for result in results:
        for finding in result.findings:
            info = risks.get(finding.code)
            if info is None or finding.severity is Severity.INFO:
                continue
            data = finding.data
            out.append({"code": finding.code, "title": info.title, "probe": result.name, "message": finding.message,
                        "subject": str(data.get("subject", "")), "hours_left": _number(data.get("hours_left")),
                        "due_at": data.get("due_at"), "rate": _number(data.get("rate")),
                        "rate_unit": data.get("rate_unit"), "remediation": list(info.remediation)})
    return sorted(out, key=lambda r: (r["hours_left"] if r["hours_left"] is not None else float("inf"), r["code"]))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
