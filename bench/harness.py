"""Fault-injection harness: build a real fault, run ``posdiag diagnose --json`` against it, record
the top cause, its confidence and the wall time.

A scenario is a function that builds its fault inside a temporary folder (registering its own
clean-up on the ExitStack) and returns the config sections that point posdiag at it, plus
optionally a command prefix (``ip netns exec term``) to run the diagnosis somewhere else.

Every diagnosis runs the posdiag of this interpreter (``sys.executable``). With ``against`` (another
interpreter, whose posdiag is another checkout, e.g. main's), each timed diagnosis runs with both, in
turns, so that the two share the machine's noise and their ratio means something on a busy box.
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


#: Every scenario must answer within the default deadline; all but those that must sample a path's
#: loss over time within this median.
DEADLINE_S = 3.0
FAST_S = 1.5


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

    @property
    def limit_s(self) -> float:
        return DEADLINE_S if self.samples_loss else FAST_S


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
    #: wall times of the same diagnoses with the ``against`` interpreter (empty without one)
    against_wall_s: list[float] = field(default_factory=list)

    @property
    def held(self) -> int:
        return sum(t == self.scenario.expect for t in self.tops)

    @property
    def correct(self) -> bool:
        """The expected cause came out on top in every repeat, not once by luck."""
        return bool(self.tops) and self.held == len(self.tops)

    @property
    def in_time(self) -> bool:
        return bool(self.durations) and self.median_s <= self.scenario.limit_s and max(self.durations) <= DEADLINE_S

    @property
    def median_s(self) -> float:
        return statistics.median(self.wall_s) if self.wall_s else float("nan")

    @property
    def against_median_s(self) -> float:
        return statistics.median(self.against_wall_s) if self.against_wall_s else float("nan")


SCENARIOS: list[Scenario] = []


def scenario(name: str, expect: str, group: str = "host", needs_root: bool = False, repeat: int = 0,
             samples_loss: bool = False):
    def register(fn: Callable[[Path, ExitStack], Setup]):
        SCENARIOS.append(Scenario(name, expect, fn, group, needs_root, repeat, samples_loss))
        return fn
    return register


def base_sections(tmp: Path) -> dict[str, Any]:
    """Every scenario starts from a healthy, self-contained terminal inside ``tmp``."""
    # The bench shares its machine with other jobs, and no scenario injects CPU load: their load must
    # not decide a verdict (on a loaded 2-core box the default 2 per CPU reads as system.overload).
    return {"daemon": {"state_dir": str(tmp / "state"), "control_socket": str(tmp / "control.sock")},
            "disk": {"paths": [str(tmp)], "min_free_mb": 1}, "system": {"max_load_per_cpu": 50}}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in a.items()}
    for k, v in b.items():
        out[k] = {**out[k], **v} if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def diagnose(config: Path, prefix: list[str] | None = None, python: str | None = None
             ) -> tuple[float, int, dict[str, Any] | None, str]:
    cmd = [*(prefix or []), python or sys.executable, "-m", "posdiag.agent", "diagnose", "--json", "--config",
           str(config)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=120)
    wall = time.perf_counter() - started
    try:
        return wall, proc.returncode, json.loads(proc.stdout), proc.stderr
    except json.JSONDecodeError:
        return wall, proc.returncode, None, proc.stderr or proc.stdout


def run_scenario(sc: Scenario, repeat: int, against: str | None = None) -> Outcome:
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
        walls, tops, durations, report, rc, err, others = [], [], [], None, -1, "", []
        for n in range(max(repeat, sc.repeat)):
            if against and n % 2:  # the other one first every second time: neither always runs on a warmer box
                others.append(diagnose(config, setup.prefix, against)[0])
            wall, rc, report, err = diagnose(config, setup.prefix)
            if against and not n % 2:
                others.append(diagnose(config, setup.prefix, against)[0])
            walls.append(wall)
            tops.append(report["diagnosis"]["causes"][0]["id"] if report else "(no report)")
            durations.append(report["duration_s"] if report else float("inf"))
        if report is None:
            return Outcome(sc, "(no report)", 0.0, "-", rc, walls, err.strip()[-200:], tops, against_wall_s=others)
        # Show the cause that came out most often; a miss in any repeat shows in the held column.
        shown = max(set(tops), key=tops.count)
        top = report["diagnosis"]["causes"][0]
        return Outcome(sc, shown, top["confidence"], report["diagnosis"]["verdict"], rc, walls, tops=tops,
                       durations=durations, against_wall_s=others)


def checkout_of(python: str) -> Path:
    """The source folder of the posdiag that ``python`` runs (an editable install's checkout)."""
    code = "import pathlib, posdiag.agent as a; print(pathlib.Path(a.__file__).resolve().parent.parent)"
    return Path(subprocess.run([python, "-c", code], check=True, capture_output=True, text=True).stdout.strip())


def compile_bytecode(python: str | None = None) -> None:
    """Byte-compile the package as the Debian package's postinst does on a till, so that start-up is
    timed as a till pays it, not with the compiler running on every start (this box sets
    PYTHONDONTWRITEBYTECODE, so a fresh or edited checkout would otherwise never get its .pyc files)."""
    python = python or sys.executable
    folders = [f for f in ("core", "agent", "probes", "config", "collector") if (checkout_of(python) / f).is_dir()]
    subprocess.run([python, "-m", "compileall", "-q", *folders], cwd=checkout_of(python), check=True,
                   capture_output=True)


def default_config_timing(runs: int, languages: tuple[str, ...] = ("en",), against: str | None = None
                          ) -> dict[str, list[float]]:
    """Wall seconds of ``posdiag diagnose`` (text, as a technician runs it) on the packaged default
    config, per locale (``"en against"`` … for the ``against`` interpreter); the languages and the
    interpreters take turns within each round so that they share the box's noise."""
    base = {k: v for k, v in os.environ.items() if k not in ("POSDIAG_CONFIG", "LC_ALL", "LC_MESSAGES", "LANGUAGE")}
    pythons = {"": sys.executable, **({" against": against} if against else {})}
    times: dict[str, list[float]] = {lang + label: [] for lang in languages for label in pythons}
    for n in range(runs):
        for lang in languages:
            env = {**base, "LANG": "C.UTF-8" if lang == "en" else f"{lang}.UTF-8"}
            for label, python in (list(pythons.items())[::-1] if n % 2 else pythons.items()):
                started = time.perf_counter()
                subprocess.run([python, "-m", "posdiag.agent", "diagnose"], capture_output=True, cwd=REPO, env=env,
                               check=False, timeout=60)
                times[lang + label].append(time.perf_counter() - started)
    return times


def catalogue_load_ms(runs: int) -> float:
    """Median milliseconds a fresh interpreter spends choosing Chinese and loading its compiled catalogue."""
    code = ("import time; t = time.perf_counter(); from posdiag.core import i18n; i18n.use('zh_CN'); "
            "assert i18n.active() == 'zh_CN'; print((time.perf_counter() - t) * 1000)")
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                                  text=True, cwd=REPO).stdout) for _ in range(runs))


def import_time(runs: int, python: str | None = None) -> float:
    """Median seconds for the interpreter to start and import the CLI with everything a sweep loads."""
    python = python or sys.executable
    code = ("import posdiag.agent.cli, posdiag.agent.sweep, posdiag.probes.memory, posdiag.probes.disk, "
            "posdiag.probes.system, posdiag.probes.clock")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", code], check=True, cwd=REPO)
        times.append(time.perf_counter() - started)
    bare = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - started)
    return statistics.median(times) - statistics.median(bare)
