#!/usr/bin/env python3
"""What the technician's features cost: keeping every diagnose in the history, and a watch session.

    python3 bench/live_bench.py [--runs N] [--watch SECONDS] [--interval S]

* keep: ``posdiag diagnose`` run N times as a technician runs it (a child process, a pty card reader
  that answers, no remote host) with the state directory absent (nothing kept) and present (the
  report kept in the history, fsync'd); the median and p90 wall time of each, and the difference;
  then ``store.keep()`` alone, in-process, N times (the difference without start-up noise).
* watch: ``posdiag watch --interval S`` into a pipe for SECONDS, ended by SIGINT: sweeps done (from
  the summary it keeps), the reader's status requests per minute (what the reader and the payment
  host are asked, "it never hammers"), and the CPU the session used in % of one core (the child's
  user+system time from wait4).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs.helpers import wait_for, write_config  # noqa: E402
from labs.reader_emulator import ReaderEmulator  # noqa: E402

POSDIAG = [sys.executable, "-m", "posdiag.agent"]


def _config(folder: Path, emu: ReaderEmulator, state: Path) -> Path:
    return write_config(folder / "posdiag.toml", {
        "terminal": {"id": "lane-03"},
        "reader": {"kind": "serial", "port": emu.path, "protocol": "generic", "sysfs_root": str(folder / "none")},
        "daemon": {"state_dir": str(state), "control_socket": str(folder / "c.sock")},
        "disk": {"paths": [str(folder)], "min_free_mb": 1}, "system": {"max_load_per_cpu": 1000}})


def _walls(config: Path, runs: int) -> list[float]:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([*POSDIAG, "diagnose", "--config", str(config)], capture_output=True, check=False)
        walls.append(time.perf_counter() - started)
    return walls


def keep(folder: Path, emu: ReaderEmulator, runs: int) -> None:
    absent = _config(folder, emu, folder / "no-state")
    none = _walls(absent, runs)
    (folder / "state").mkdir()
    kept = _walls(_config(folder, emu, folder / "state"), runs)
    for name, walls in (("diagnose, nothing kept", none), ("diagnose, kept in history", kept)):
        p90 = statistics.quantiles(walls, n=10)[-1] if len(walls) >= 2 else walls[0]
        print(f"{name:28} median {statistics.median(walls) * 1000:6.0f} ms   p90 {p90 * 1000:6.0f} ms   ({runs} runs)")
    print(f"{'keeping costs':28} {1000 * (statistics.median(kept) - statistics.median(none)):+6.0f} ms (median)")
    from posdiag.agent.store import keep as keep_report
    from posdiag.core import settings

    loaded = settings.load(str(folder / "posdiag.toml"))
    report = json.loads(subprocess.run([*POSDIAG, "diagnose", "--json", "--config", str(folder / "posdiag.toml")],
                                       capture_output=True, text=True).stdout)
    took = []
    for i in range(runs):
        report["report_id"] = report["report_id"][:-6] + f"{i:06d}"
        started = time.perf_counter()
        keep_report(loaded, report)
        took.append(time.perf_counter() - started)
    print(f"{'keep() alone, in-process':28} median {statistics.median(took) * 1000:6.1f} ms   "
          f"max {max(took) * 1000:6.1f} ms   (open, insert, fsync, close)")


def watch(folder: Path, emu: ReaderEmulator, seconds: float, interval: float) -> None:
    config = _config(folder, emu, folder / "state")
    (folder / "state").mkdir(exist_ok=True)
    before = emu.frames
    proc = subprocess.Popen([*POSDIAG, "watch", "--interval", str(interval), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: emu.frames > before, timeout=30)
    started, first = time.monotonic(), emu.frames
    time.sleep(seconds)
    asked = emu.frames - first
    elapsed = time.monotonic() - started
    proc.send_signal(signal.SIGINT)
    _, status, usage = os.wait4(proc.pid, 0)
    out = proc.stdout.read() if proc.stdout else ""
    short = out.split("posdiag show ")[-1].split()[0]
    shown = subprocess.run([*POSDIAG, "show", short, "--json", "--config", str(config)], capture_output=True, text=True)
    sweeps = json.loads(shown.stdout)["watch"]["sweeps"]
    cpu = usage.ru_utime + usage.ru_stime
    print(f"watch --interval {interval:g} for {elapsed:.0f} s: {sweeps} sweeps, reader asked {asked * 60 / elapsed:.1f} "
          f"times a minute, CPU {100 * cpu / (elapsed + 1):.1f} % of one core (start-up and summary included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--watch", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ReaderEmulator("generic", "healthy") as emu:
        for name in ("keep", "watch"):
            (Path(tmp) / name).mkdir()
        keep(Path(tmp) / "keep", emu, args.runs)
        watch(Path(tmp) / "watch", emu, args.watch, args.interval)


if __name__ == "__main__":
    main()
