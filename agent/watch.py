"""``posdiag watch``: diagnose again and again and show what changes, while a technician re-seats a
cable or watches an uplink flap.

One sweep at a time, each bounded by the diagnosis deadline, the next one ``interval`` after the start
of the last (and never sooner than a quarter of it after its end, so that a sweep that ran long does
not make the next one start at once). The sweeps are the same as ``diagnose``'s (:func:`run_sweep`,
``--only`` included), so the reader is left alone while the POS holds its port and a probe stuck in an
earlier sweep is not started again. On a terminal one screen is redrawn in place; elsewhere only the
change lines are printed, one per change, so the output can be logged. SIGINT (Ctrl-C) or SIGTERM
ends the session: its summary is printed and kept in the history as one report, trigger ``watch``.
"""

from __future__ import annotations

import copy
import signal
import threading
import time
from typing import Any, TextIO

from posdiag.agent.columns import fitted, table
from posdiag.agent.exits import NOTHING_CHECKED, Exit, checked_anything
from posdiag.agent.history import new_report_id
from posdiag.agent.progress import Progress, is_terminal
from posdiag.agent.report import phone_line
from posdiag.agent.screen import Screen
from posdiag.agent.sweep import run_sweep, select_probes
from posdiag.agent.watchsummary import change_line, clock, count_changes, watch_block
from posdiag.agent.words import STATUS_MARKS, VERDICT_WORDS, said
from posdiag.core.i18n import ntr, tr
from posdiag.core.numfmt import plain
from posdiag.core.timefmt import utc_iso
from posdiag.core.vocabulary import Status, Trigger, Verdict

_RANK = {Verdict.HEALTHY: 0, Verdict.DEGRADED: 1, Verdict.FAULT: 2}


class Session:
    """What the sweeps of one session saw: each probe's last status, every change, the worst report."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.started = time.time()
        self.sweeps = 0
        self.statuses: dict[str, str] = {}
        self.changes: list[dict[str, Any]] = []
        self.latest: dict[str, Any] | None = None
        self.worst: dict[str, Any] | None = None
        #: a sweep of the session could check something (else it exits 3, as diagnose does)
        self.checked = False

    def observe(self, report: dict[str, Any], now: float | None = None) -> list[dict[str, Any]]:
        """Take one sweep's report; return the changes it shows against the one before."""
        at = utc_iso(time.time() if now is None else now)
        statuses = {p["name"]: p["status"] for p in report["probes"]}
        new = [{"at": at, "probe": name, "from": self.statuses[name], "to": status}
               for name, status in statuses.items() if self.statuses.get(name, status) != status]
        self.statuses = statuses
        self.changes += new
        self.sweeps += 1
        self.latest = report
        self.checked = self.checked or checked_anything(report)
        if self.worst is None or _RANK[report["diagnosis"]["verdict"]] >= _RANK[self.worst["diagnosis"]["verdict"]]:
            self.worst = report  # the latest of the worst: the fault the technician was chasing
        return new

    def changed(self) -> dict[str, int]:
        """How often each probe's status changed so far."""
        return count_changes(self.changes)

    def summary_report(self, ended: float | None = None) -> dict[str, Any]:
        """One report for the history: the worst sweep seen (the latest of them), trigger ``watch``,
        with the session under ``"watch"``."""
        assert self.worst is not None and self.latest is not None
        report = copy.deepcopy(self.worst)
        report["report_id"] = new_report_id()
        report["trigger"] = Trigger.WATCH.value
        report["watch"] = watch_block(started=self.started, ended=time.time() if ended is None else ended,
                                      interval_s=self.interval_s, sweeps=self.sweeps,
                                      final_verdict=self.latest["diagnosis"]["verdict"], changes=self.changes)
        return report


class _Ended(Exception):
    """Raised by the signal handler to leave a sweep in progress at once."""


class LogView:
    """A stdout that is not a terminal: only the change lines, each as it happens (a slow sweep's
    progress goes to stderr when that is a terminal, as diagnose's does)."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err

    def __enter__(self) -> LogView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def progress(self) -> Progress:
        return Progress(self.err)

    def show(self, session: Session, report: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        for change in changes:
            self.out.write(change_line(change) + "\n")
        self.out.flush()


class ScreenView:
    """A terminal: one screen redrawn after every sweep, a slow sweep's progress on its bottom row."""

    def __init__(self, out: TextIO, settings: Any, interval_s: float) -> None:
        self.screen = Screen(out)
        term = settings.terminal_id + (f" @ {settings.terminal.site}" if settings.terminal.site else "")
        self.heading = tr("posdiag watch — {terminal} — every {interval} s — Ctrl-C to end", terminal=term,
                          interval=plain(interval_s))

    def __enter__(self) -> ScreenView:
        self.screen.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.screen.__exit__()

    def progress(self) -> Progress:
        return Progress(self.screen.stream, draw=self.screen.status)

    def show(self, session: Session, report: dict[str, Any], changes: list[dict[str, Any]]) -> None:
        self.screen.draw(screen_lines(session, report, changes, self.heading, self.screen.size()[1]))


def screen_lines(session: Session, report: dict[str, Any], changes: list[dict[str, Any]], heading: str,
                 rows: int) -> list[str]:
    """The watch screen: heading, verdict and top cause, every probe with a mark where it changed in
    this sweep and how often it changed, then as many of the latest change lines as fit."""
    top = report["diagnosis"]["causes"][0]
    lines = [heading,
             tr("sweep {n} at {time} UTC ({seconds:.2f} s), {changes} change(s) so far", n=session.sweeps,
                time=clock(report["started_at"]), seconds=report["duration_s"], changes=len(session.changes)), "",
             tr("Verdict: {verdict} — {title}  [{id}, confidence {confidence:.0%}]",
                verdict=said(VERDICT_WORDS, report["diagnosis"]["verdict"]), title=top["title"], id=top["id"],
                confidence=top["confidence"]), ""]
    just_changed = {c["probe"] for c in changes}
    counts = session.changed()
    probes = report["probes"]
    if len(lines) + len(probes) + (2 + min(3, len(session.changes)) if session.changes else 0) > rows - 1:
        probes = folded(probes, just_changed)  # the latest changes must stay on the screen
    lines += table([["  " + p["name"], tr(STATUS_MARKS[p["status"]]),
                     ("*" if p["name"] in just_changed else " ") + (f"{counts[p['name']]}×" if p["name"] in counts else ""),
                     p["summary"]] for p in probes])
    room = max(3, rows - len(lines) - 4)
    if session.changes:
        lines += ["", tr("Changes:")] + ["  " + change_line(c) for c in session.changes[-room:]]
    return lines


def folded(probes: list[dict[str, Any]], keep: set[str]) -> list[dict[str, Any]]:
    """The probes with the skipped ones (but those in ``keep``) folded into one row where the first of
    them was: on a short terminal a row per unconfigured check would push the changes off the screen."""
    skipped = [p["name"] for p in probes if p["status"] == Status.SKIPPED and p["name"] not in keep]
    if len(skipped) < 2:
        return probes
    out = [p for p in probes if p["name"] not in skipped]
    at = next(i for i, p in enumerate(probes) if p["name"] == skipped[0])
    out.insert(at, {"name": ntr("{n} probe", "{n} probes", len(skipped)), "status": Status.SKIPPED.value,
                    "summary": ", ".join(skipped)})
    return out


def run_watch(settings: Any, out: TextIO, err: TextIO, *, only: list[str] | None = None, interval_s: float = 2.0) -> int:
    """Watch until SIGINT or SIGTERM; print the summary, keep it in the history, exit by its verdict."""
    from posdiag.agent.diagnosis import load_knowledge
    from posdiag.core.paths import causes_path

    select_probes(only)  # an unknown name is refused before the screen is taken
    knowledge = load_knowledge(causes_path())
    session = Session(interval_s)
    view: LogView | ScreenView = ScreenView(out, settings, interval_s) if is_terminal(out) else LogView(out, err)
    stop = threading.Event()
    in_sweep = [False]

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()
        if in_sweep[0]:
            raise _Ended

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with view:
            while not stop.is_set():
                started = time.monotonic()
                progress = view.progress()
                in_sweep[0] = True
                try:
                    with progress:
                        report = run_sweep(settings, trigger=Trigger.WATCH.value, only=only, knowledge=knowledge,
                                           on_result=progress.on_result, on_running=progress.on_running)
                except _Ended:
                    break
                finally:
                    in_sweep[0] = False
                view.show(session, report, session.observe(report))
                ended = time.monotonic()
                stop.wait(max(started + interval_s - ended, interval_s / 4))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return _finish(settings, session, out, err)


def _finish(settings: Any, session: Session, out: TextIO, err: TextIO) -> int:
    """Print the session's summary and keep it in the history."""
    from posdiag.agent.store import keep, short_id_for
    from posdiag.agent.watchsummary import summary_lines

    if session.worst is None:
        err.write("posdiag: " + tr("watch ended before its first sweep finished; nothing kept") + "\n")
        return Exit.UNKNOWN
    report = session.summary_report()
    kept = keep(settings, report)
    short = short_id_for(settings.daemon.state_dir, report["report_id"])
    out.write("\n".join(fitted([*summary_lines(report), "", phone_line(report, short)])) + "\n")
    if kept:
        out.write(tr("kept in the history: posdiag show {id}", id=short) + "\n")
    else:
        err.write("posdiag: " + tr("the summary is not kept: the history in {path} cannot be written here",
                                   path=settings.daemon.state_dir) + "\n")
    out.flush()
    if not session.checked:  # every sweep, as diagnose would have: nothing checked is not healthy
        err.write("posdiag: " + tr(NOTHING_CHECKED) + "\n")
        return Exit.UNKNOWN
    return Exit.for_verdict(report["diagnosis"]["verdict"])
