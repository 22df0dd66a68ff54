"""Fault-injection harness: build a real fault, run ``posdiag diagnose --json`` against it, record
the top cause, its confidence and certainty, and the wall time.

A scenario is a function that builds its fault inside a temporary folder (registering its own
clean-up on the ExitStack) and returns the config sections that point posdiag at it, plus
optionally a command prefix (``ip netns exec term``) to run the diagnosis somewhere else.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs.helpers import write_config  # noqa: E402


@dataclass
class Setup:
    sections: dict[str, Any]
    prefix: list[str] = field(default_factory=list)
    #: When set, one untimed diagnosis runs on the healthy setup first (leaving history and
    #: last-known addresses, as a terminal that has been running would have), then this injects the fault.
    fault_after_prime: Callable[[], None] | None = None
    #: more arguments for ``posdiag diagnose`` (a re-check: ``--only network.tls``)
    args: list[str] = field(default_factory=list)


#: Every scenario must answer within the default deadline; all but those that must sample a path's
#: loss over time within this median.
DEADLINE_S = 3.0
FAST_S = 1.5
#: a fault that is there on its own evidence: what the three faults of one till must each reach
CERTAIN = 0.8


@dataclass
class Scenario:
    name: str
    expect: str
    build: Callable[[Path, ExitStack], Setup]
    group: str = "host"
    needs_root: bool = False
    #: at least this many diagnoses, whatever --repeat says (the differential scenarios: 5 of 5)
    repeat: int = 0
    #: samples loss over time, so it may take up to the deadline rather than FAST_S
    samples_loss: bool = False
    #: independent faults of the same till: each must be ranked with certainty >= CERTAIN (the top
    #: one may be any of them and ``expect``)
    present: tuple[str, ...] = ()
    #: what the report must also say, besides its top cause (an exit code, an unsure ``none``)
    check: Callable[[dict[str, Any], int], bool] | None = None

    @property
    def limit_s(self) -> float:
        return DEADLINE_S if self.samples_loss else FAST_S

    def holds(self, report: dict[str, Any] | None, exit_code: int) -> bool:
        """The diagnosis is the right one: the expected top cause (any of the present faults), each
        present fault certain, and whatever ``check`` asks."""
        if report is None:
            return False
        causes = report["diagnosis"]["causes"]
        if causes[0]["id"] not in (self.expect, *self.present):
            return False
        if any(certainty(report, cause) < CERTAIN for cause in self.present):
            return False
        return self.check is None or self.check(report, exit_code)

    def expected_certainty(self, report: dict[str, Any]) -> float | None:
        """The certainty of the expected cause (the least certain of several present faults); None
        when the report carries no certainty (an agent before it was added)."""
        causes = report["diagnosis"]["causes"]
        if not any("certainty" in c for c in causes):
            return None
        return min(certainty(report, cause) for cause in (self.present or (self.expect,)))


def certainty(report: dict[str, Any], cause: str) -> float:
    """How sure the report is that ``cause`` is present: its certainty, 0 when it is not ranked (or
    the report is from an agent that did not say)."""
    return next((c.get("certainty", 0.0) for c in report["diagnosis"]["causes"] if c["id"] == cause), 0.0)


@dataclass
class Outcome:
    scenario: Scenario
    top: str
    confidence: float
    verdict: str
    exit_code: int
    wall_s: list[float]
    error: str = ""
    #: the top cause of every repeat
    tops: list[str] = field(default_factory=list)
    #: ``duration_s`` of every report: the time the deadline covers (start-up included)
    durations: list[float] = field(default_factory=list)
    #: whether each repeat's diagnosis held (:meth:`Scenario.holds`)
    oks: list[bool] = field(default_factory=list)
    #: certainty of the expected cause(s) in the last report (None: the report does not say)
    certainty: float | None = None

    @property
    def held(self) -> int:
        return sum(self.oks)

    @property
    def correct(self) -> bool:
        """The expected diagnosis came out in every repeat, not once by luck."""
        return bool(self.oks) and self.held == len(self.oks)

    @property
    def in_time(self) -> bool:
        return bool(self.durations) and self.median_s <= self.scenario.limit_s and max(self.durations) <= DEADLINE_S

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s) if self.wall_s else float("nan")


SCENARIOS: list[Scenario] = []


def scenario(name: str, expect: str, group: str = "host", needs_root: bool = False, repeat: int = 0,
             samples_loss: bool = False, present: tuple[str, ...] = (),
             check: Callable[[dict[str, Any], int], bool] | None = None):
    def register(fn: Callable[[Path, ExitStack], Setup]):
        SCENARIOS.append(Scenario(name, expect, fn, group, needs_root, repeat, samples_loss, present, check))
        return fn
    return register


def exits(code: int) -> Callable[[dict[str, Any], int], bool]:
    """A check: ``posdiag diagnose`` exits with ``code`` (1: degraded, what monitoring reads as WARNING)."""
    return lambda report, exit_code: exit_code == code


def risk_ahead(code: str) -> Callable[[dict[str, Any], int], bool]:
    """A check: ``posdiag diagnose`` exits 1 (degraded) and lists the risk ahead ``code``."""
    return lambda report, exit_code: exit_code == 1 and code in {r.get("code") for r in report.get("risks") or []}


def unsure(at_most: float) -> Callable[[dict[str, Any], int], bool]:
    """A check: the top cause (``none``) is at most this sure — its certainty, or its confidence in a
    report that has no certainty — because part of the terminal was not checked."""
    def check(report: dict[str, Any], exit_code: int) -> bool:
        top = report["diagnosis"]["causes"][0]
        return top.get("certainty", top["confidence"]) <= at_most
    return check


def base_sections(tmp: Path) -> dict[str, Any]:
    """Every scenario starts from a healthy, self-contained terminal inside ``tmp``."""
    # The bench shares its machine with other jobs, and no scenario injects CPU load: their load must
    # not decide a verdict (on a loaded 2-core box the default 2 per CPU reads as system.overload).
    # Nor its kernel log (what tests or other scenarios wrote there): the kernel-log scenarios name /dev/kmsg.
    (tmp / "kmsg").touch()
    return {"daemon": {"state_dir": str(tmp / "state"), "control_socket": str(tmp / "control.sock")},
            "disk": {"paths": [str(tmp)], "min_free_mb": 1},
            "system": {"max_load_per_cpu": 50, "kernel_log": str(tmp / "kmsg")}}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in a.items()}
    for k, v in b.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def diagnose(config: Path, prefix: list[str] | None = None,
             args: list[str] | None = None) -> tuple[float, int, dict[str, Any] | None, str]:
    cmd = [*(prefix or []), sys.executable, "-m", "posdiag.agent", "diagnose", "--json", "--config", str(config),
           *(args or [])]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    wall = time.perf_counter() - started
    try:
        return wall, proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        return wall, proc.returncode, None, proc.stderr or proc.stdout


def run_scenario(sc: Scenario, repeat: int) -> Outcome:
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"posdiag-bench-{sc.name}-")))
        try:
            setup = sc.build(tmp, stack)
        except Exception as exc:  # noqa: BLE001 - a scenario that cannot be built is reported, not fatal
            return Outcome(sc, "(setup failed)", 0.0, "-", -1, [], repr(exc))
        config = write_config(tmp / "posdiag.toml", merge(base_sections(tmp), setup.sections))
        if setup.fault_after_prime:
            diagnose(config, setup.prefix)
            setup.fault_after_prime()
        walls, tops, durations, oks, report, rc, err = [], [], [], [], None, -1, ""
        for _ in range(max(repeat, sc.repeat)):
            wall, rc, report, err = diagnose(config, setup.prefix, setup.args)
            walls.append(wall)
            tops.append(report["diagnosis"]["causes"][0]["id"] if report else "(no report)")
            durations.append(report["duration_s"] if report else float("inf"))
            oks.append(sc.holds(report, rc))
        if report is None:
            return Outcome(sc, "(no report)", 0.0, "-", rc, walls, err.strip()[-200:], tops, oks=oks)
        # Show the cause that came out most often; a miss in any repeat shows in the held column.
        shown = max(set(tops), key=tops.count)
        top = report["diagnosis"]["causes"][0]
        return Outcome(sc, shown, top["confidence"], report["diagnosis"]["verdict"], rc, walls, tops=tops,
                       durations=durations, oks=oks, certainty=sc.expected_certainty(report))


def compile_bytecode() -> None:
    """Byte-compile the package as the Debian package's postinst does on a till, so that start-up is
    timed as a till pays it, not with the compiler running on every start (this box sets
    PYTHONDONTWRITEBYTECODE, so a fresh or edited checkout would otherwise never get its .pyc files)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "core", "agent", "probes", "config", "collector"], cwd=REPO,
                   check=True, capture_output=True)


def technician_env(lang: str = "en") -> dict[str, str]:
    """This environment as a technician's shell at the till has it: no configuration named, the locale
    of ``lang`` alone deciding the language."""
    env = {k: v for k, v in os.environ.items() if k not in ("POSDIAG_CONFIG", "LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    return {**env, "LANG": "C.UTF-8" if lang == "en" else f"{lang}.UTF-8"}


def default_config_timing(runs: int, languages: tuple[str, ...] = ("en",)) -> dict[str, list[float]]:
    """Wall seconds of ``posdiag diagnose`` (text, as a technician runs it) on the packaged default
    config, per locale; the languages take turns within each round so that they share the box's noise."""
    times: dict[str, list[float]] = {lang: [] for lang in languages}
    for _ in range(runs):
        for lang in languages:
            env = technician_env(lang)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose"], capture_output=True, cwd=REPO, env=env,
                           check=False, timeout=60)
            times[lang].append(time.perf_counter() - started)
    return times


def catalogue_load_ms(runs: int) -> float:
    """Median milliseconds a fresh interpreter spends choosing Chinese and loading its compiled catalogue."""
    code = ("import time; t = time.perf_counter(); from posdiag.core import i18n; i18n.use('zh_CN'); "
            "assert i18n.active() == 'zh_CN'; print((time.perf_counter() - t) * 1000)")
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                                  text=True, cwd=REPO).stdout) for _ in range(runs))


def import_time(runs: int) -> float:
    """Median seconds for the interpreter to start and import the CLI with everything a sweep loads."""
    code = ("import posdiag.agent.cli, posdiag.agent.sweep, posdiag.probes.memory, posdiag.probes.disk, "
            "posdiag.probes.system, posdiag.probes.clock")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
        times.append(time.perf_counter() - started)
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    return statistics.median(times) - statistics.median(bare)
