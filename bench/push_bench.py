#!/usr/bin/env python3
"""Push figures: drain rate of a backlog, memory while draining, the idle daemon with push on, and the
idle daemon asking a real collector for remote requests.

    python3 bench/push_bench.py [--backlog N] [--soak SECONDS] [--interval S] [--poll-soak SECONDS] [--poll S]

* drain: N real reports (copies of one real sweep, each with its own report_id) are queued in the
  outbox, then ``posdiag run`` starts with a loopback HTTPS server (``tests/labs/push_server.py``, its own
  process) as the central server; the rate is reports stored at the server over the time from the
  daemon's start to the last one stored. RSS of the daemon and of its sender processes is sampled
  every 50 ms from /proc (VmRSS).
* soak: the daemon with push configured at ``interval_s`` for SECONDS: RSS (median, max) and CPU of
  the daemon, and the CPU of the sender processes it started (cutime+cstime of the waited-for
  children), each in % of one core. Remote requests are off (``poll_s = 0``): the loopback server
  only takes reports.
* poll soak: the daemon at the defaults (``interval_s = 300``, ``poll_s = 30``) against a real
  ``posdiag-collector serve`` over HTTPS on loopback (its own process, SQLite), for SECONDS: the same
  RSS and CPU figures, where the children are now the senders and the poll processes, and how many
  polls the daemon made. This is the idle cost of remote requests on a till.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gzip
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs import child_env  # noqa: E402
from labs.helpers import make_certs, wait_for, write_config  # noqa: E402
from posdiag.agent import outbox  # noqa: E402
from posdiag.agent.store import Store  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TOKEN = "bench-" + uuid.uuid4().hex


def server_certs(folder: Path) -> tuple[str, str, str]:
    """Server certificate, key and the CA that signed them (the tests' trustme helper)."""
    made = make_certs(folder, "127.0.0.1")
    return (*made["valid"], made["ca"])


class Server:
    """tests/labs/push_server.py in its own process; ``count()`` asks it how many reports it stored."""

    def __init__(self, cert: str, key: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "labs.push_server", "--cert", cert, "--key", key,
                                      "--token", TOKEN], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=child_env())
        self.port = int(self.proc.stdout.readline().split()[1])

    def count(self) -> tuple[int, int]:
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        stored, duplicates, _ = self.proc.stdout.readline().split()
        return int(stored), int(duplicates)

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def config_for(tmp: Path, url: str, ca_file: str, interval_s: float, poll_s: float = 0.0, token: str = TOKEN) -> Path:
    token_file = tmp / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    return write_config(tmp / "posdiag.toml", {
        "terminal": {"id": "bench-till", "site": "bench-site"},
        "daemon": {"state_dir": str(tmp / "state"), "control_socket": str(tmp / "ctl.sock"), "interval_s": interval_s},
        "disk": {"paths": [str(tmp)], "min_free_mb": 1},
        "server": {"url": url, "token_file": str(token_file), "ca_file": ca_file, "poll_s": poll_s}})


def queue_backlog(config: Path, n: int) -> int:
    """n copies of one real report in the outbox (one transaction: the bench measures the drain)."""
    from posdiag.agent.sweep import run_sweep
    from posdiag.core import settings as cfg
    from posdiag.core.timefmt import parse_utc_iso

    settings = cfg.load(str(config))
    template = run_sweep(settings, trigger="schedule")
    size = 0
    with Store(settings.daemon.state_dir) as store, store.db:
        for _ in range(n):
            report = copy.deepcopy(template)
            report["report_id"] = str(uuid.uuid4())
            text = json.dumps(report, separators=(",", ":"))
            body = gzip.compress(text.encode(), 6)
            size += len(body)
            top = report["diagnosis"]["causes"][0]
            started = parse_utc_iso(report["started_at"])
            store.db.execute("INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (report["report_id"], started, "schedule", report["diagnosis"]["verdict"], top["id"],
                              top["confidence"], text))
            outbox.enqueue(store.db, report["report_id"], started, body, time.time())
    return size // n


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):
        return 0.0


def cpu_s(pid: int) -> tuple[float, float]:
    """(own utime+stime, waited-for children's cutime+cstime), seconds."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK, (int(f[13]) + int(f[14])) / TICK


def children(pid: int) -> list[int]:
    out = []
    for path in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in path.read_text().split()]
    return out


def start_daemon(config: Path, tmp: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "run", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=open(tmp / "daemon.log", "wb"))  # noqa: SIM115
    if not wait_for(lambda: (tmp / "ctl.sock").exists() or proc.poll() is not None, 15) or proc.poll() is not None:
        raise RuntimeError("daemon did not start: " + (tmp / "daemon.log").read_text())
    return proc


def drain(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-push-") as d:
        tmp = Path(d)
        cert, key, ca_file = server_certs(tmp)
        server = Server(cert, key)
        config = config_for(tmp, f"https://127.0.0.1:{server.port}", ca_file, 3600)
        body = queue_backlog(config, n)
        t0 = time.monotonic()
        proc = start_daemon(config, tmp)
        daemon_peak = sender_peak = 0.0
        stored = 0
        try:
            while stored < n + 1:  # the backlog and the boot report
                daemon_peak = max(daemon_peak, rss_mb(proc.pid))
                for child in children(proc.pid):
                    sender_peak = max(sender_peak, rss_mb(child))
                time.sleep(0.05)
                stored, duplicates = server.count()
                if time.monotonic() - t0 > 600:
                    raise RuntimeError(f"drain stalled at {stored}")
            elapsed = time.monotonic() - t0
            time.sleep(3)
            idle = rss_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            server.stop()
    return {"reports": stored, "seconds": elapsed, "rate": stored / elapsed, "duplicates": duplicates,
            "body_bytes": body, "daemon_peak_mb": daemon_peak, "daemon_after_mb": idle, "sender_peak_mb": sender_peak}


def soak(seconds: float, interval_s: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-push-soak-") as d:
        tmp = Path(d)
        cert, key, ca_file = server_certs(tmp)
        server = Server(cert, key)
        proc = start_daemon(config_for(tmp, f"https://127.0.0.1:{server.port}", ca_file, interval_s), tmp)
        try:
            figures = measure_idle(proc, seconds)
            stored, duplicates = server.count()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            server.stop()
    return {**figures, "stored": stored, "duplicates": duplicates}


def measure_idle(proc: subprocess.Popen, seconds: float) -> dict:
    """RSS (sampled every second) and CPU of the daemon and of the children it waited for, over ``seconds``."""
    time.sleep(3.0)  # boot sweep and its push done: the idle daemon from here
    own0, kids0 = cpu_s(proc.pid)
    t0 = time.monotonic()
    samples = []
    while time.monotonic() - t0 < seconds:
        samples.append(rss_mb(proc.pid))
        time.sleep(1.0)
    own1, kids1 = cpu_s(proc.pid)
    wall = time.monotonic() - t0
    return {"seconds": wall, "rss_median_mb": statistics.median(samples), "rss_max_mb": max(samples),
            "cpu_daemon": 100 * (own1 - own0) / wall, "cpu_senders": 100 * (kids1 - kids0) / wall}


def poll_soak(seconds: float, interval_s: float, poll_s: float) -> dict:
    """The idle daemon pushing to and polling a real collector over HTTPS."""
    from labs.collectorlab import ServeProcess
    from posdiag.collector.storage import open_storage
    from posdiag.collector.tokens import new_token, token_hash

    with tempfile.TemporaryDirectory(prefix="posdiag-bench-poll-") as d:
        tmp = Path(d)
        cert, key, ca_file = server_certs(tmp)
        db = f"sqlite:///{tmp / 'collector.db'}"
        collector = ServeProcess(db, "--cert", cert, "--key", key)
        storage = open_storage(db)
        token = new_token()
        storage.add_terminal("bench-till", "bench-site", token_hash(token))
        proc = start_daemon(config_for(tmp, collector.url, ca_file, interval_s, poll_s, token), tmp)
        try:
            figures = measure_idle(proc, seconds)
            status = subprocess.run([sys.executable, "-m", "posdiag.agent", "status", "--json", "--config",
                                     str(tmp / "posdiag.toml")], capture_output=True, text=True, cwd=REPO, timeout=60)
            remote = json.loads(status.stdout)["remote"]
            stored = len(storage.list_reports(terminal="bench-till", limit=1000))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
            collector.stop()
            storage.close()
    return {**figures, "stored": stored, "polls": remote["polls"], "poll_failures": remote["failures"],
            "last_poll": remote["last_result"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=10_000, help="reports queued before the daemon starts (0: skip)")
    parser.add_argument("--soak", type=float, default=300, help="seconds of idle measurement (0: skip)")
    parser.add_argument("--interval", type=float, default=60)
    parser.add_argument("--poll-soak", type=float, default=300, help="seconds of idle measurement with polling (0: skip)")
    parser.add_argument("--poll", type=float, default=30, help="poll_s of the poll soak (its interval_s is 300)")
    args = parser.parse_args()
    if args.backlog:
        r = drain(args.backlog)
        print(f"drain: {r['reports']} reports ({r['body_bytes']} B gzip each) in {r['seconds']:.1f} s = "
              f"{r['rate']:.0f} reports/s, {r['duplicates']} duplicate posts; RSS peak: daemon {r['daemon_peak_mb']:.1f} MB "
              f"(after: {r['daemon_after_mb']:.1f} MB), sender {r['sender_peak_mb']:.1f} MB", flush=True)
    if args.soak:
        r = soak(args.soak, args.interval)
        print(f"idle with push, {r['seconds']:.0f} s at interval_s={args.interval:g} ({r['stored']} reports pushed, "
              f"{r['duplicates']} duplicates): daemon RSS median {r['rss_median_mb']:.1f} MB, max {r['rss_max_mb']:.1f} MB; "
              f"CPU daemon {r['cpu_daemon']:.2f} % + senders {r['cpu_senders']:.2f} % = "
              f"{r['cpu_daemon'] + r['cpu_senders']:.2f} % of one core", flush=True)
    if args.poll_soak:
        r = poll_soak(args.poll_soak, 300, args.poll)
        print(f"idle with push and remote requests, {r['seconds']:.0f} s at interval_s=300, poll_s={args.poll:g}, real "
              f"collector over HTTPS ({r['polls']} polls, last {r['last_poll']}, {r['poll_failures']} failing; "
              f"{r['stored']} reports stored): daemon RSS median {r['rss_median_mb']:.1f} MB, max {r['rss_max_mb']:.1f} MB; "
              f"CPU daemon {r['cpu_daemon']:.2f} % + senders and polls {r['cpu_senders']:.2f} % = "
              f"{r['cpu_daemon'] + r['cpu_senders']:.2f} % of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
