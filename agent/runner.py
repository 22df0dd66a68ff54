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
from posdiag.agent.config import Settings
from posdiag.agent.store import history_reader
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
               on_result: ProgressHook | None = None) -> list[ProbeResult]:
    """Run ``probe_classes`` and return one result per probe, in the order given."""
    overall = time.monotonic() + (deadline_s if deadline_s is not None else settings.diagnosis.deadline_s)
    context = ProbeContext(state_dir=settings.daemon.state_dir, build_epoch=BUILD_EPOCH,
                           history=history_reader(settings.daemon.state_dir))
    names = {cls.name for cls in probe_classes}
    pending = list(probe_classes)
    running: dict[str, _Running] = {}
    results: dict[str, ProbeResult] = {}
    blocked_by: dict[str, str] = {}  # skipped probe → the failed probe at the root of its skip
    done: queue.Queue[tuple[str, ProbeResult]] = queue.Queue()

    def finish(result: ProbeResult) -> None:
        results[result.name] = result
        context.results[result.name] = result
        if on_result:
            on_result(result, len(results), len(probe_classes))

    def start_ready() -> None:
        for cls in list(pending):
            needed = [r for r in cls.requires if r in names]
            if any(r not in results for r in needed + [a for a in cls.after if a in names]):
                continue
            pending.remove(cls)
            blocked = [r for r in needed if not results[r].usable]
            if blocked:
                own = cls(settings, context).skip_reason() if all(
                    results[r].status is Status.SKIPPED for r in blocked) else None
                if own:  # not applicable here anyway: say so rather than blame the prerequisite
                    finish(skipped_result(cls.name, own))
                    continue
                # Name the layer that really failed, not the skipped one in between.
                roots = list(dict.fromkeys(blocked_by.get(r, r) for r in blocked))
                blocked_by[cls.name] = roots[0]
                why = "; ".join(f"{r} {results[r].status.value}" for r in roots)
                finish(skipped_result(cls.name, f"prerequisite not met: {why}"))
                continue
            now = time.monotonic()
            if now >= overall:
                finish(skipped_result(cls.name, "no time left before the diagnosis deadline"))
                continue
            with _stuck_lock:
                previous = _stuck.get(cls.name)
                if previous is not None and previous.is_alive():
                    finish(ProbeResult(cls.name, Status.ERROR, 0.0, "still stuck in an earlier sweep; not started",
                                       (Finding("probe.still_stuck", Severity.INFO,
                                                f"{cls.name} from an earlier sweep has not returned yet"),), {}))
                    continue
                _stuck.pop(cls.name, None)
            probe = cls(settings, context)
            obs = Observation()
            thread = threading.Thread(target=lambda p=probe, o=obs: done.put((p.name, p.run(o))),
                                      name=f"probe-{cls.name}", daemon=True)
            probe.deadline_at = min(overall, now + probe.deadline_s())
            running[cls.name] = _Running(probe, obs, now, probe.deadline_at, thread)
            thread.start()

    start_ready()
    while running or pending:
        if not running:  # everything left waits on something that will never come
            for cls in pending:
                finish(skipped_result(cls.name, "prerequisite did not run"))
            break
        next_deadline = min(r.deadline for r in running.values())
        try:
            name, result = done.get(timeout=max(0.0, next_deadline - time.monotonic()))
            if name in running:
                del running[name]
                finish(result)
        except queue.Empty:
            now = time.monotonic()
            for name, run in list(running.items()):
                if now >= run.deadline:
                    del running[name]
                    with _stuck_lock:
                        _stuck[name] = run.thread
                    finish(timed_out_result(name, run.obs, now - run.started))
        start_ready()
    order = {cls.name: i for i, cls in enumerate(probe_classes)}
    return sorted(results.values(), key=lambda r: order[r.name])
