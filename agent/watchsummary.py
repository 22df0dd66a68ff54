"""What a ``watch`` session saw, as text: the change lines and the summary kept with its report.

Kept apart from :mod:`posdiag.agent.watch` (which runs the sweeps) so that rendering a stored watch
report (``posdiag show``) needs nothing but the report itself.
"""

from __future__ import annotations

from typing import Any

from posdiag.agent.columns import table
from posdiag.agent.words import STATUS_WORDS, VERDICT_WORDS, said
from posdiag.core import i18n
from posdiag.core.timefmt import parse_utc_iso, utc_iso

#: a probe whose status changed this often in one session is flapping (bad, good, bad again)
FLAPPING = 3
#: the change lines a stored summary shows (all of them are in its JSON)
SHOWN_CHANGES = 20


def clock(at: str) -> str:
    """``12:03:41`` of an ISO instant (UTC, as every time posdiag writes)."""
    return at[11:19]


def change_line(change: dict[str, Any], t: i18n.Translator | None = None) -> str:
    """``12:03:41 reader.serial ok → fail``, the status words in the reader's language."""
    t = t or i18n.current()
    return f"{clock(change['at'])} {change['probe']} {_word(change['from'], t)} → {_word(change['to'], t)}"


def _word(status: str, t: i18n.Translator) -> str:
    return t.tr(STATUS_WORDS[status]) if status in STATUS_WORDS else status


def summary_lines(report: dict[str, Any], t: i18n.Translator | None = None) -> list[str]:
    """The session in a few lines: how long, how many sweeps and changes, which probe changed how
    often (a flapping one said so), the verdict at the end, then the last change lines."""
    t = t or i18n.current()
    watch = report["watch"]
    minutes = (parse_utc_iso(watch["ended_at"]) - parse_utc_iso(watch["started_at"])) / 60
    lines = [t.ntr("Watch: {n} sweep from {start} to {end} UTC ({minutes:.1f} min), {changes} change(s); at the end: "
                   "{verdict}", "Watch: {n} sweeps from {start} to {end} UTC ({minutes:.1f} min), {changes} change(s); "
                   "at the end: {verdict}", watch["sweeps"], start=clock(watch["started_at"]), end=clock(watch["ended_at"]),
                   minutes=minutes, changes=watch["changes_total"],
                   verdict=said(VERDICT_WORDS, watch["final_verdict"], t))]
    rows = []
    for probe, n in sorted(watch["changed"].items(), key=lambda item: (-item[1], item[0])):
        how = t.ntr("changed {n} time", "changed {n} times", n)
        if probe in watch["flapping"]:
            how = t.tr("{changed}: flapping", changed=how)
        rows.append(["  " + probe, how])
    lines += table(rows)
    shown = watch["changes"][-SHOWN_CHANGES:]
    if shown:
        lines += [t.tr("Changes:")] + ["  " + change_line(c, t) for c in shown]
    return lines


def count_changes(changes: list[dict[str, Any]]) -> dict[str, int]:
    """How often each probe's status changed."""
    counts: dict[str, int] = {}
    for change in changes:
        counts[change["probe"]] = counts.get(change["probe"], 0) + 1
    return counts


def watch_block(*, started: float, ended: float, interval_s: float, sweeps: int, final_verdict: str,
                changes: list[dict[str, Any]], kept: int = 500) -> dict[str, Any]:
    """The ``"watch"`` object of a stored session report (docs/report.md)."""
    changed = count_changes(changes)
    return {"started_at": utc_iso(started), "ended_at": utc_iso(ended), "interval_s": interval_s, "sweeps": sweeps,
            "final_verdict": final_verdict, "changes_total": len(changes), "changes": changes[-kept:],
            "changed": changed, "flapping": sorted(p for p, n in changed.items() if n >= FLAPPING)}
