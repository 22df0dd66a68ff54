"""One diagnosis sweep: run the probes, diagnose, build the report. Shared by the CLI and the daemon."""

from __future__ import annotations

import time
from typing import Any

from posdiag import probes
from posdiag.agent.diagnosis import KnowledgeBase, diagnose, load_knowledge
from posdiag.agent.report import build_report
from posdiag.agent.runner import ProgressHook, RunningHook, run_probes
from posdiag.core.i18n import N_
from posdiag.core.message import Message, Refusal
from posdiag.core.paths import causes_path
from posdiag.core.settings import Settings
from posdiag.core.vocabulary import Trigger


class UnknownProbe(Refusal, ValueError):
    """``--only`` named no probe and no area; the message says which names exist."""


def select_probes(only: list[str] | None) -> list[str]:
    """All probes' names, or those named in ``only`` (a name or an area prefix such as ``network``)
    with every probe they need to give an answer (:func:`prerequisites`), in the catalogue's order."""
    if not only:
        return list(probes.CATALOGUE)
    chosen = asked(only)
    chosen += [n for n in prerequisites(chosen) if n not in chosen]
    return [n for n in probes.CATALOGUE if n in chosen]


def asked(only: list[str]) -> list[str]:
    """The probes ``only`` names, each a probe name or an area prefix; refused when one names nothing."""
    chosen: list[str] = []
    for want in only:
        names = [n for n in probes.CATALOGUE if n == want or n.startswith(want + ".")]
        if not names:
            raise UnknownProbe(Message(N_("unknown probe {name!r}; known: {known}"), name=want,
                                       known=", ".join(probes.CATALOGUE)))
        chosen += [n for n in names if n not in chosen]
    return chosen


def prerequisites(names: list[str]) -> list[str]:
    """What ``names`` need to give an answer and are not among them: the probes they require and
    those whose results they read (``needs``: the TLS handshake requires the TCP connect, which
    requires the link and needs the payment host's resolved name), transitively, in the catalogue's
    order. A re-check of one layer without them would skip it for want of its inputs and come out
    healthy. Probes merely waited for (``after``) are not run for it."""
    needed: set[str] = set()
    stack = list(names)
    while stack:
        cls = probes.load(stack.pop())
        for dep in (*cls.requires, *cls.needs):
            if dep not in needed and dep not in names:
                needed.add(dep)
                stack.append(dep)
    return [n for n in probes.CATALOGUE if n in needed]


def run_sweep(settings: Settings, *, trigger: str = Trigger.ON_DEMAND.value, only: list[str] | None = None,
              knowledge: KnowledgeBase | None = None, on_result: ProgressHook | None = None,
              deadline_s: float | None = None, on_running: RunningHook | None = None) -> dict[str, Any]:
    kb = knowledge or load_knowledge(causes_path())
    classes = [probes.load_for(name, settings) for name in select_probes(only)]
    started_wall, started = time.time(), time.monotonic()
    results = run_probes(settings, classes, deadline_s=deadline_s, on_result=on_result, on_running=on_running)
    diagnosis = diagnose(results, kb)
    report = build_report(settings, results, diagnosis, trigger=trigger, started_at=started_wall,
                          duration_s=time.monotonic() - started)
    if only:
        wanted = asked(only)
        report["only"] = {"asked": wanted, "prerequisites": prerequisites(wanted)}
    return report
