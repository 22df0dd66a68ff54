"""How often the POS application restarted: its start times sweep after sweep and those the daemon
looks at between sweeps (:class:`StartWatch`), and the restarts systemd counts for its unit
(``NRestarts``). Local reads and one bounded ``systemctl``; no traffic."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

import psutil
from posdiag.probes._procs import find_processes

#: the system probe's metric: when the youngest POS process started (seconds since the epoch)
START_METRIC = "pos_start_time_s"
#: the start of one process seen twice differs by rounding at most (clock ticks, two decimals)
SAME_START_S = 0.02


def restarts_seen(starts: Iterable[float | None], since: float) -> list[float]:
    """When the POS restarted, from the start times of its youngest process seen at each look, in any
    order (sweeps' and the daemon's looks between them; None: not running): every start later than
    the first one seen is a restart. Only restarts at or after ``since`` are returned, oldest first.
    A look sees at most one restart since the look before it."""
    distinct: list[float] = []
    for start in sorted(s for s in starts if s is not None):
        if not distinct or start - distinct[-1] > SAME_START_S:
            distinct.append(start)
    return [start for start in distinct[1:] if start >= since]


class StartWatch:
    """The youngest POS process's start time, looked at cheaply and often (the daemon, between sweeps).

    While the process last seen still lives with the same start time, one ``/proc/<pid>/stat`` read
    says so; only when it has gone (a crash, a restart) or none was seen are all processes scanned.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.proc: psutil.Process | None = None

    def look(self) -> float | None:
        """The youngest POS process's start time (seconds since the epoch, to the hundredth, as the
        system probe's metric), or None when none runs."""
        if self.proc is not None:
            with contextlib.suppress(psutil.Error):
                if self.proc.is_running():  # same pid and the same start time as when first seen
                    return round(self.proc.create_time(), 2)
        procs = []
        for proc in find_processes(self.name):
            with contextlib.suppress(psutil.Error):
                procs.append((proc.create_time(), proc))
        if not procs:
            self.proc = None
            return None
        started, self.proc = max(procs, key=lambda p: p[0])
        return round(started, 2)


@dataclass(frozen=True)
class UnitState:
    """What systemd says of a unit: its automatic restarts since it was last started by hand."""

    restarts: int | None
    active: str = ""
    #: when its current main process started, microseconds of CLOCK_MONOTONIC (0: not running)
    started_monotonic_us: int = 0
    why: str = ""  # "no-systemctl", "error" (with detail) when it could not be read
    detail: str = ""


def unit_state(unit: str, timeout_s: float) -> UnitState:
    tool = shutil.which("systemctl")
    if tool is None:
        return UnitState(None, why="no-systemctl")
    try:
        run = subprocess.run([tool, "show", "--property=NRestarts,ActiveState,LoadState,ExecMainStartTimestampMonotonic", "--",
                              unit], capture_output=True, text=True, timeout=max(0.05, timeout_s), errors="replace")
    except subprocess.TimeoutExpired:
        return UnitState(None, why="error", detail=f"systemctl show did not answer within {timeout_s:.1f} s")
    except OSError as exc:
        return UnitState(None, why="error", detail=str(exc.strerror or exc))
    if run.returncode != 0:
        return UnitState(None, why="error", detail=(run.stderr.strip().splitlines() or [""])[-1][:200])
    return parse_show(run.stdout)


def parse_show(text: str) -> UnitState:
    """``systemctl show`` output (``Key=value`` lines) as a :class:`UnitState`."""
    values = dict(line.partition("=")[::2] for line in text.splitlines() if "=" in line)
    if values.get("LoadState") == "not-found":
        return UnitState(None, why="error", detail="no such unit")
    restarts = values.get("NRestarts", "")
    started = values.get("ExecMainStartTimestampMonotonic", "")
    return UnitState(int(restarts) if restarts.isdigit() else None, values.get("ActiveState", ""),
                     int(started) if started.isdigit() else 0,
                     why="" if restarts.isdigit() else "error", detail="" if restarts.isdigit() else "no NRestarts")
