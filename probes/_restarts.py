"""How often the POS application restarted: its start times sweep after sweep, and the restarts
systemd counts for its unit (``NRestarts``). Local reads and one bounded ``systemctl``; no traffic."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

#: the system probe's metric: when the youngest POS process started (seconds since the epoch)
START_METRIC = "pos_start_time_s"
#: the start of one process seen twice differs by rounding at most (clock ticks, two decimals)
SAME_START_S = 0.02


def restarts_seen(starts: Sequence[float | None], since: float) -> list[float]:
    """When the POS restarted, from its start time at each sweep (oldest first; None: not seen):
    a sweep that finds a process started later than the one the sweep before it saw. Only restarts
    at or after ``since`` are returned. Sweeps see at most one restart between two of them."""
    restarts, previous = [], None
    for start in starts:
        if start is None:
            continue
        if previous is not None and start - previous > SAME_START_S and start >= since:
            restarts.append(start)
        previous = start
    return restarts


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
