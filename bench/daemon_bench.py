#!/usr/bin/env python3
"""Daemon figures: delay from a 2824 line to its stored event report, and idle resources.

    python3 bench/daemon_bench.py [--events N] [--soak SECONDS] [--interval S] [--pos]

Resources are read from /proc/<pid> of the real daemon: RSS (VmRSS, median and max over the
soak) and CPU (utime+stime over wall time, in % of one core). With ``--pos`` a stand-in POS
process runs and ``[terminal] pos_process`` names it, so the soak includes the daemon's look at
the POS's start time between sweeps (``[daemon] pos_watch_s``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from labs.helpers import wait_for, write_config  # noqa: E402
from posdiag.agent.store import Store  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def start(tmp: Path, interval_s: float, pos: str = "") -> tuple[subprocess.Popen, Path, Path]:
    log = tmp / "pos.log"
    log.touch()
    config = write_config(tmp / "posdiag.toml", {
        "daemon": {"state_dir": str(tmp / "state"), "control_socket": str(tmp / "ctl.sock"), "interval_s": interval_s},
        "disk": {"paths": [str(tmp)], "min_free_mb": 1}, "txlog": {"path": str(log)}, "terminal": {"pos_process": pos}})
    proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "run", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for(lambda: (tmp / "ctl.sock").exists(), 15, interval=0.05):
        raise RuntimeError("daemon did not start")
    return proc, log, tmp / "state"


def events(tmp: Path) -> list[str]:
    path = tmp / "state"
    if not (path / "history.sqlite3").exists():
        return []
    with Store(path) as store:
        return [r.report_id for r in store.list() if r.trigger == "event"]


def event_delay(n: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-event-") as d:
        tmp = Path(d)
        proc, log, _ = start(tmp, 3600)
        time.sleep(1.0)  # let the boot sweep finish
        delays = []
        try:
            for i in range(n):
                before = len(events(tmp))
                started = time.perf_counter()
                with open(log, "a") as fh:
                    fh.write(f"2026-11-30 10:00:{i:02d} txn={i} code=2824\n")
                while len(events(tmp)) == before:
                    time.sleep(0.005)
                    if time.perf_counter() - started > 10:
                        raise RuntimeError("no event report within 10 s")
                delays.append(time.perf_counter() - started)
                time.sleep(0.3)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
        return delays


def proc_sample(pid: int) -> tuple[float, float]:
    """(RSS in MB, CPU seconds used so far)."""
    with open(f"/proc/{pid}/status") as fh:
        rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / TICK


def stand_in_pos(folder: Path) -> subprocess.Popen:
    """A process named like a POS application (a copy of sleep) for the daemon to watch."""
    binary = folder / "benchpos"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    return subprocess.Popen([str(binary), "86400"])


def soak(seconds: float, interval_s: float, with_pos: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-soak-") as d, contextlib.ExitStack() as stack:
        pos = stand_in_pos(Path(d)) if with_pos else None
        if pos is not None:
            stack.callback(pos.wait)
            stack.callback(pos.kill)
        proc, _, state = start(Path(d), interval_s, "benchpos" if with_pos else "")
        try:
            time.sleep(2.0)  # boot sweep done: measure the idle daemon from here
            rss0, cpu0 = proc_sample(proc.pid)
            t0 = time.monotonic()
            samples = [rss0]
            while time.monotonic() - t0 < seconds:
                time.sleep(1.0)
                samples.append(proc_sample(proc.pid)[0])
            rss1, cpu1 = proc_sample(proc.pid)
            wall = time.monotonic() - t0
            with Store(state) as store:
                sweeps = store.count()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    return {"seconds": wall, "rss_median_mb": statistics.median(samples), "rss_max_mb": max(samples),
            "cpu_percent": 100 * (cpu1 - cpu0) / wall, "sweeps": sweeps}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--soak", type=float, default=300, help="seconds of idle measurement (0: skip)")
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--pos", action="store_true", help="a stand-in POS process the daemon watches between sweeps")
    args = parser.parse_args()
    if args.events:
        delays = event_delay(args.events)
        print(f"2824 line → stored event report: median {statistics.median(delays) * 1000:.0f} ms, "
              f"max {max(delays) * 1000:.0f} ms over {len(delays)} events")
    if args.soak:
        r = soak(args.soak, args.interval, args.pos)
        print(f"daemon over {r['seconds']:.0f} s at interval_s={args.interval:g}{' watching a POS' if args.pos else ''} "
              f"({r['sweeps']} sweeps): "
              f"RSS median {r['rss_median_mb']:.1f} MB, max {r['rss_max_mb']:.1f} MB; "
              f"CPU {r['cpu_percent']:.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
