"""Run probes concurrently, each under its own deadline and all under one overall deadline.

Probes run in daemon threads: a probe stuck in a system call cannot be interrupted in Python,
so the runner stops *waiting* for it when its deadline passes, reports what it had observed so
far with status ``error``, and moves on. The abandoned thread dies with the process.
Probes that ``require`` others start when those finish, and are skipped when they came out unusable.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from posdiag.agent import BUILD_EPOCH
from posdiag.agent.history import nothing_stored
from posdiag.agent.words import STATUS_WORDS
from posdiag.core.i18n import tr
from posdiag.core.settings import Settings
from posdiag.probes.base import (
    Finding,
    Observation,
    Probe,
    ProbeContext,
    ProbeResult,
    Severity,
    Status,
    skipped_result,
    timed_out_result,
)

ProgressHook = Callable[[ProbeResult, int, int], None]
#: told the names of the probes running now, whenever that changes (what a slow sweep waits for),
#: with how many probes are done and how many the sweep has in all
RunningHook = Callable[[tuple[str, ...], int, int], None]

#: Threads of probes abandoned at their deadline and still stuck. In the long-running daemon a
#: probe stuck in a system call must not pile up one more thread every sweep: while its previous
#: run is alive, the probe is reported as still stuck instead of being started again.
_stuck: dict[str, threading.Thread] = {}
_stuck_lock = threading.Lock()


@dataclass
class _Running:
    probe: Probe
    obs: Observation
    started: float
    deadline: float
    thread: threading.Thread


def run_probes(settings: Settings, probe_classes: list[type[Probe]], deadline_s: float | None = None,
               on_result: ProgressHook | None = None, on_running: RunningHook | None = None) -> list[ProbeResult]:
    """Run ``probe_classes`` and return one result per probe, in the order given."""
    overall = time.monotonic() + (deadline_s if deadline_s is not None else settings.diagnosis.deadline_s)
    context = ProbeContext(state_dir=settings.daemon.state_dir, build_epoch=BUILD_EPOCH,
                           history=_stored_history(settings.daemon.state_dir),
                           pos_starts=_stored_pos_starts(settings.daemon.state_dir))
    return _Sweep(settings, probe_classes, overall, context, on_result, on_running).run()


def _stored_history(state_dir: str) -> Callable[[int], list]:
    """The stored sweeps, for the trends probe. The store (sqlite3, gzip, the outbox) is imported
    only when a probe asks and something is stored, not on every ``diagnose`` start-up."""

    def read(limit: int) -> list:
        if nothing_stored(state_dir):
            return []
        from posdiag.agent.store import history_reader

        return history_reader(state_dir)(limit)

    return read


def _stored_pos_starts(state_dir: str) -> Callable[[], list]:
    """The POS's start times the daemon saw between sweeps, for the crash probe (read as the history is)."""

    def read() -> list:
        if nothing_stored(state_dir):
            return []
        from posdiag.agent.store import pos_starts_reader

        return pos_starts_reader(state_dir)()

    return read


class _Sweep:
    """The state of one run: which probes wait, run and are done. One thread (the caller's) drives
    it; probe threads only hand their result back through ``done``."""

    def __init__(self, settings: Settings, probe_classes: list[type[Probe]], overall: float, context: ProbeContext,
                 on_result: ProgressHook | None, on_running: RunningHook | None = None) -> None:
        self.settings, self.classes, self.overall = settings, probe_classes, overall
        self.context, self.on_result, self.on_running = context, on_result, on_running
        self.names = {cls.name for cls in probe_classes}
        self.pending = list(probe_classes)
        self.running: dict[str, _Running] = {}
        self.results: dict[str, ProbeResult] = {}
        self.blocked_by: dict[str, str] = {}  # skipped probe → the failed probe at the root of its skip
        self.done: queue.Queue[tuple[str, ProbeResult]] = queue.Queue()

    def run(self) -> list[ProbeResult]:
        self.start_ready()
        while self.running or self.pending:
            if not self.running:  # everything left waits on something that will never come
                for cls in self.pending:
                    self.finish(skipped_result(cls.name, tr("prerequisite did not run")))
                break
            self.wait_for_one()
            self.start_ready()
        order = {cls.name: i for i, cls in enumerate(self.classes)}
        return sorted(self.results.values(), key=lambda r: order[r.name])

    def finish(self, result: ProbeResult) -> None:
        self.results[result.name] = result
        self.context.results[result.name] = result
        if self.on_result:
            self.on_result(result, len(self.results), len(self.classes))
        self.tell_running()

    def tell_running(self) -> None:
        if self.on_running:
            self.on_running(tuple(self.running), len(self.results), len(self.classes))

    def start_ready(self) -> None:
        """Start (or settle without running) every pending probe whose prerequisites are done."""
        for cls in list(self.pending):
            needed = [r for r in cls.requires if r in self.names]
            if any(r not in self.results for r in needed + [a for a in cls.after + cls.needs if a in self.names]):
                continue
            self.pending.remove(cls)
            blocked = [r for r in needed if not self.results[r].usable]
            if blocked:
                self.finish(self.skipped_for(cls, blocked))
            elif time.monotonic() >= self.overall:
                self.finish(skipped_result(cls.name, tr("no time left before the diagnosis deadline")))
            elif _still_stuck(cls.name):
                self.finish(ProbeResult(cls.name, Status.ERROR, 0.0, tr("still stuck in an earlier sweep; not started"),
                                        (Finding("probe.still_stuck", Severity.INFO,
                                                 tr("{probe} from an earlier sweep has not returned yet",
                                                    probe=cls.name)),), {}))
            else:
                self.start(cls)

    def skipped_for(self, cls: type[Probe], blocked: list[str]) -> ProbeResult:
        """The result of a probe whose prerequisites failed: it names the layer that really failed."""
        if all(self.results[r].status is Status.SKIPPED for r in blocked):
            own = cls(self.settings, self.context).skip_reason()
            if own:  # not applicable here anyway: say so rather than blame the prerequisite
                return skipped_result(cls.name, own)
        roots = list(dict.fromkeys(self.blocked_by.get(r, r) for r in blocked))
        self.blocked_by[cls.name] = roots[0]
        why = tr("; ").join(tr("{probe} {status}", probe=r, status=tr(STATUS_WORDS[self.results[r].status]))
                            for r in roots)
        return skipped_result(cls.name, tr("prerequisite not met: {why}", why=why))

    def start(self, cls: type[Probe]) -> None:
        now = time.monotonic()
        probe = cls(self.settings, self.context)
        skipped = probe.not_applicable()
        if skipped is not None:  # nothing configured for it: said at once, no thread
            self.finish(skipped)
            return
        obs = Observation()
        thread = threading.Thread(target=lambda p=probe, o=obs: self.done.put((p.name, p.run(o))),
                                  name=f"probe-{cls.name}", daemon=True)
        probe.deadline_at = min(self.overall, now + probe.deadline_s())
        self.running[cls.name] = _Running(probe, obs, now, probe.deadline_at, thread)
        thread.start()
        self.tell_running()

    def wait_for_one(self) -> None:
        """Until a probe returns or the nearest deadline passes; overdue probes are abandoned."""
        next_deadline = min(r.deadline for r in self.running.values())
        try:
            name, result = self.done.get(timeout=max(0.0, next_deadline - time.monotonic()))
        except queue.Empty:
            now = time.monotonic()
            for name, run in list(self.running.items()):
                if now >= run.deadline:
                    del self.running[name]
                    with _stuck_lock:
                        _stuck[name] = run.thread
                    self.finish(timed_out_result(name, run.obs, now - run.started))
            return
        if self.running.pop(name, None) is not None:
            self.finish(result)


def _still_stuck(name: str) -> bool:
    """True while the thread of this probe abandoned in an earlier sweep has not returned."""
    with _stuck_lock:
        previous = _stuck.get(name)
        if previous is not None and previous.is_alive():
            return True
        _stuck.pop(name, None)
        return False
