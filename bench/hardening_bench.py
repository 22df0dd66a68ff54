#!/usr/bin/env python3
"""Hardening figures of the real daemon: what a 2824 storm, a crowd of clients and a transaction
log swapped for /dev/zero cost it.

    python3 bench/hardening_bench.py [--storm SECONDS] [--rate LINES_PER_S] [--triggers N] [--zero SECONDS]

* storm: ``rate`` 2824 lines a second for ``storm`` seconds → event reports made, daemon CPU (% of one
  core, utime+stime of the process over the storm), daemon log lines written during it.
* crowd: ``triggers`` concurrent ``trigger`` requests and, in the middle of them, one 2824 line →
  sweeps made, and how long the event waited; 50 concurrent ``status`` clients → how many answered.
* zero: the txlog replaced by a symlink to /dev/zero for ``zero`` seconds → peak RSS against idle;
  and a one-shot ``diagnose`` with that txlog → its peak RSS.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs.helpers import write_config  # noqa: E402
from posdiag.agent.control import request  # noqa: E402
from posdiag.agent.store import Store  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


class Daemon:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.log_path = tmp / "pos.log"
        self.log_path.touch()
        self.config = write_config(tmp / "posdiag.toml", {
            "daemon": {"state_dir": str(tmp / "state"), "control_socket": str(tmp / "ctl.sock"), "interval_s": 3600},
            "disk": {"paths": [str(tmp)], "min_free_mb": 1}, "txlog": {"path": str(self.log_path)}})
        self.stderr = open(tmp / "daemon.log", "wb")  # noqa: SIM115 - held for the daemon's life
        self.proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "run", "--config", str(self.config)],
                                     cwd=REPO, stdout=self.stderr, stderr=self.stderr)
        self.socket = str(tmp / "ctl.sock")
        deadline = time.monotonic() + 20
        while not self.reports():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("daemon did not start:\n" + self.log_text())
            time.sleep(0.1)

    def log_text(self) -> str:
        return (self.tmp / "daemon.log").read_text(errors="replace")

    def reports(self, trigger: str | None = None) -> list:
        state = self.tmp / "state"
        if not (state / "history.sqlite3").exists():
            return []
        with Store(state) as store:
            return [r for r in store.list(limit=100_000) if trigger is None or r.trigger == trigger]

    def sample(self) -> tuple[float, float]:
        """(RSS in MB, CPU seconds used so far) from /proc."""
        with open(f"/proc/{self.proc.pid}/status") as fh:
            rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / TICK

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)
        self.stderr.close()


def storm(seconds: float, rate: float) -> str:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-storm-") as d:
        daemon = Daemon(Path(d))
        try:
            time.sleep(1.0)
            log_lines0 = len(daemon.log_text().splitlines())
            _, cpu0 = daemon.sample()
            t0 = time.monotonic()
            written = 0
            while time.monotonic() - t0 < seconds:
                with open(daemon.log_path, "a") as fh:
                    fh.write(f"2026-11-30 10:00:00 txn={written} code=2824 rc=91\n")
                written += 1
                time.sleep(max(0.0, t0 + written / rate - time.monotonic()))
            wall = time.monotonic() - t0
            _, cpu1 = daemon.sample()
            during = len(daemon.reports("event"))
            log_lines = len(daemon.log_text().splitlines()) - log_lines0
            time.sleep(16)  # the last window's sweep (event_min_gap_s = 15) covers the tail of the storm
            covered = 0
            with Store(daemon.tmp / "state") as store:
                for r in daemon.reports("event"):
                    covered += store.get(r.report_id)["event"]["count_2824"]
        finally:
            daemon.stop()
    return (f"storm: {written} 2824 lines in {wall:.0f} s ({rate:g}/s) → {during} event reports during the storm "
            f"({covered} of {written} lines covered once the last window closed); daemon CPU "
            f"{100 * (cpu1 - cpu0) / wall:.2f} % of one core; {log_lines} daemon log lines")


def crowd(triggers: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-crowd-") as d:
        daemon = Daemon(Path(d))
        try:
            time.sleep(1.0)
            before = len(daemon.reports())
            event_at: list[float] = []

            def one(i: int) -> dict:
                if i == triggers // 2:
                    with open(daemon.log_path, "a") as fh:
                        fh.write("2026-11-30 10:00:00 txn=1 code=2824\n")
                    event_at.append(time.monotonic())
                return request(daemon.socket, {"cmd": "trigger"}, timeout_s=120)

            t0 = time.monotonic()
            found: list[float] = []

            def watch_event() -> None:
                while not daemon.reports("event") and time.monotonic() - t0 < 120:
                    time.sleep(0.05)
                found.append(time.monotonic())

            watcher = threading.Thread(target=watch_event)
            watcher.start()
            with ThreadPoolExecutor(triggers) as pool:
                replies = list(pool.map(one, range(triggers)))
            watcher.join()
            busy = time.monotonic() - t0
            sweeps = len(daemon.reports()) - before
            ok = sum(1 for r in replies if r.get("ok"))
            with ThreadPoolExecutor(50) as pool:
                statuses = list(pool.map(lambda _: request(daemon.socket, {"cmd": "status"}, timeout_s=30), range(50)))
        finally:
            daemon.stop()
    return [f"crowd: {triggers} concurrent triggers → {ok} answered, {sweeps} sweeps in all (event included), "
            f"done in {busy:.1f} s; a 2824 written among them was stored {found[0] - event_at[0]:.2f} s later",
            f"crowd: 50 concurrent status clients → {sum(1 for s in statuses if s.get('ok'))} answered"]


def zero(seconds: float) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-zero-") as d:
        tmp = Path(d)
        daemon = Daemon(tmp)
        try:
            time.sleep(2.0)
            idle = 0.0
            for _ in range(5):
                idle = max(idle, daemon.sample()[0])
                time.sleep(0.2)
            os.symlink("/dev/zero", tmp / "pos.log.new")
            os.replace(tmp / "pos.log.new", daemon.log_path)
            t0 = time.monotonic()
            peak = idle
            cpu0 = daemon.sample()[1]
            while time.monotonic() - t0 < seconds:
                time.sleep(0.2)
                peak = max(peak, daemon.sample()[0])
            cpu = 100 * (daemon.sample()[1] - cpu0) / (time.monotonic() - t0)
        finally:
            daemon.stop()
        child = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "diagnose", "--only", "txlog", "--config",
                                  str(daemon.config)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        one_shot = usage.ru_maxrss / 1024
    return [f"zero: txlog → /dev/zero for {seconds:.0f} s: daemon RSS idle {idle:.1f} MB, peak {peak:.1f} MB "
            f"(+{peak - idle:.1f} MB), CPU {cpu:.2f} % of one core",
            f"zero: one-shot diagnose --only txlog with that txlog: peak RSS {one_shot:.1f} MB, "
            f"exit {child.returncode}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storm", type=float, default=60, help="seconds of 2824 storm (0: skip)")
    parser.add_argument("--rate", type=float, default=10, help="2824 lines a second during the storm")
    parser.add_argument("--triggers", type=int, default=300, help="concurrent trigger requests (0: skip)")
    parser.add_argument("--zero", type=float, default=20, help="seconds with the txlog on /dev/zero (0: skip)")
    args = parser.parse_args()
    lines: list[str] = []
    if args.storm:
        lines.append(storm(args.storm, args.rate))
        print(lines[-1], flush=True)
    if args.triggers:
        for line in crowd(args.triggers):
            print(line, flush=True)
    if args.zero:
        for line in zero(args.zero):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
