"""How much of the terminal a diagnosis could see: the areas it checked, and those it did not.

"Every check passed" is only as true as the checks that ran. A terminal with no payment host
configured has had no network checked at all; a reader whose port another program holds was never
asked. The engine says so: each area that was not checked (not configured, skipped, errored, or not
part of a re-check) is named with the reason, and the verdicts that rest on "nothing was found" —
``none``, and a fault beyond the terminal — are only as certain as the coverage behind them. The
network and the reader count as checked only when every one of their probes that ran could check:
a USB inventory that passed says nothing of a serial reader nobody could ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from posdiag.core.i18n import N_, ntr, tr
from posdiag.core.vocabulary import Status
from posdiag.probes.base import ProbeResult

#: What a person calls each area a probe belongs to (the part of its name before the first dot). The
#: trends probe reads stored sweeps, not the terminal: it is no area of its own.
AREA_WORDS = {"memory": N_("memory"), "disk": N_("disk"), "system": N_("system"), "clock": N_("clock"),
              "network": N_("network"), "reader": N_("card reader"), "txlog": N_("POS log")}
#: Areas without which "no terminal-side fault" is a guess: each one left unchecked caps the
#: certainty of a verdict that rests on nothing being found (one: at most 0.6).
CRITICAL = ("network", "reader")
#: How sure "no terminal-side fault" is when every probe that ran could check its area.
FULL = 0.95
#: ... and at most this sure while a critical area was not checked at all.
UNCHECKED_CAP = 0.6
#: ... and this much less sure when a warn/fail finding matched no cause.
UNEXPLAINED_FACTOR = 0.7


def area_of(probe: str) -> str:
    return probe.split(".", 1)[0]


@dataclass(frozen=True)
class Unchecked:
    """An area that was not (fully) checked, why (its probe's own words), and which probes could not."""

    area: str
    reason: str
    probes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "reason": self.reason, "probes": list(self.probes)}

    def line(self) -> str:
        return tr("not checked: {area} — {reason}", area=tr(AREA_WORDS[self.area]), reason=self.reason)


@dataclass
class Coverage:
    """What the results covered: areas checked and passed, areas not checked, probes that errored."""

    passed: list[str] = field(default_factory=list)
    unchecked: list[Unchecked] = field(default_factory=list)
    errored: list[ProbeResult] = field(default_factory=list)
    #: of the probes that ran (not skipped), the share that could check (did not error)
    fraction: float = 0.0
    ran: int = 0

    def certainty(self, unexplained: bool = False) -> float:
        """How sure "nothing wrong on the terminal" can be with this coverage."""
        capped = sum(u.area in CRITICAL for u in self.unchecked)
        value = FULL * self.fraction * (UNEXPLAINED_FACTOR if unexplained else 1.0)
        return round(value * (UNCHECKED_CAP / FULL) ** capped, 3)

    def lines(self) -> list[str]:
        """Evidence lines: each probe that could not check in an area otherwise checked, then each area
        not checked."""
        named = {p for u in self.unchecked for p in u.probes}
        lines = [tr("{probe}: could not check ({summary})", probe=r.name, summary=r.summary)
                 for r in self.errored if r.name not in named]
        return lines + [u.line() for u in self.unchecked]

    def unchecked_words(self) -> str:
        """The areas not checked, for a sentence ("network, card reader")."""
        return tr(", ").join(tr(AREA_WORDS[u.area]) for u in self.unchecked)

    def passed_line(self) -> str | None:
        if not self.passed:
            return None
        return tr("checked and passed: {areas}", areas=", ".join(tr(AREA_WORDS[a]) for a in self.passed))

    def ran_line(self) -> str:
        checked = round(self.fraction * self.ran)
        return ntr("{checked} of {n} probe ran and found no terminal-side fault",
                   "{checked} of {n} probes ran and found no terminal-side fault", self.ran, checked=checked)


def of(results: list[ProbeResult]) -> Coverage:
    """The coverage of one sweep's results; areas with no result at all were not part of it."""
    by_area: dict[str, list[ProbeResult]] = {a: [] for a in AREA_WORDS}
    for r in results:
        if area_of(r.name) in by_area:
            by_area[area_of(r.name)].append(r)
    ran = [r for r in results if r.status is not Status.SKIPPED]
    cover = Coverage(errored=[r for r in ran if r.status is Status.ERROR], ran=len(ran))
    cover.fraction = (len(ran) - len(cover.errored)) / len(ran) if ran else 0.0
    for area, found in by_area.items():
        unchecked = _unchecked(area, found)
        if unchecked:
            cover.unchecked.append(unchecked)
        elif all(r.status in (Status.OK, Status.SKIPPED) for r in found):
            cover.passed.append(area)
    return cover


def _unchecked(area: str, found: list[ProbeResult]) -> Unchecked | None:
    """Why ``area`` counts as not checked: none of its probes could check it (or none ran), or — for
    the network and the reader — one of them could not."""
    checked = [r for r in found if r.status in (Status.OK, Status.WARN, Status.FAIL)]
    errored = [r for r in found if r.status is Status.ERROR]
    if not found:
        return Unchecked(area, tr("not part of this diagnosis"))
    if not checked:
        culprits = errored or found
        return Unchecked(area, culprits[0].summary, tuple(r.name for r in culprits))
    if area in CRITICAL and errored:
        return Unchecked(area, errored[0].summary, tuple(r.name for r in errored))
    return None
