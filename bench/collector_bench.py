#!/usr/bin/env python3
"""Collector figures: 200 terminals posting gzip reports over loopback to a real ``serve`` process; the
fleet page and its API over a fleet of 5,000 terminals; ingest while retention prunes.

    python3 bench/collector_bench.py [--what ingest,fleet,prune] [--backend sqlite|postgresql|both]
                                     [--terminals 200] [--rate 500] [--seconds 15] [--workers 1] [--max]
                                     [--samples 100] [--loads 10]

``ingest`` (the default):

Open loop: each terminal keeps its own keep-alive connection and posts on its own schedule, so that
together they offer ``--rate`` reports/s. Latency is measured from the moment a report was due, not
from when it could be sent, so a server that falls behind shows it (no coordinated omission).
``--max`` adds a closed-loop phase (every terminal posts again as soon as it has its answer): the
ceiling. PostgreSQL runs as a throwaway cluster on loopback, durable (fsync on), like a real one.
Every run is bounded: at most rate x (seconds + 3 s warm-up) reports per phase; only 127.0.0.1.

``fleet``: 5,000 terminals in 500 sites with 200,000 stored reports (written in bulk, labs/bigfleet.py),
250 of them with risks ahead, a site and a fleet incident posted on top. Each API call the page makes is timed ``--samples`` times
(p50/p95), once alone and once while 100 terminals post 50 reports/s; then the page is loaded
``--loads`` times in Debian's headless Chromium and the time to its data being drawn (the page's
``posdiag-ready`` mark, from the start of navigation) is read.

``prune``: the same fleet with 40 reports each, 12 h apart (200,000, about 130,000 older than the
7-day retention), served with ``--retain-days 7``: the open-loop ingest of ``ingest`` runs while the
pruner works through the backlog, and the pruning rate is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs import bigfleet  # noqa: E402
from labs.collector_fixtures import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from labs.collectorlab import ServeProcess, iso, make_report  # noqa: E402
from labs.pgcluster import PgCluster  # noqa: E402
from posdiag.collector.storage import open_storage  # noqa: E402
from posdiag.collector.tokens import new_token, token_hash  # noqa: E402

WARMUP_S = 3.0
#: every bench terminal connects from 127.0.0.1: one client address, as behind a proxy
ONE_ADDRESS = ("--max-connections-per-client", "0")
FLEET = {"terminals": 5000, "sites": 500, "faulty": 25, "silent": 25, "at_risk": 250}


class Terminal:
    """One terminal: a token, a keep-alive connection, and its reports gzipped in advance."""

    #: the share of its reports that blame a cause (one of three, at random); the rest are healthy
    fault_share = 0.75

    def __init__(self, tid: str, site: str, token: str, count: int) -> None:
        self.tid, self.site, self.token = tid, site, token
        self.bodies = self.make_bodies(count)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def make_bodies(self, count: int) -> list[bytes]:
        def one() -> dict:
            if random.random() < self.fault_share:
                return make_report(self.tid, self.site, cause=random.choice(["network.wan", "network.dns", "host.service_down"]))
            return make_report(self.tid, self.site, verdict="healthy", cause="none")

        return [gzip.compress(json.dumps(one()).encode()) for _ in range(count)]

    async def post(self, host: str, port: int, body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(host, port)
        head = (f"POST /api/v1/reports HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {self.token}\r\n"
                f"Content-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def _drive(terminals: list[Terminal], host: str, port: int, seconds: float, rate: float | None = None,
                 halt: threading.Event | None = None) -> tuple:
    """Every terminal posts its reports until the window ends. Open loop (``rate`` given): each report
    is due on a schedule and its latency counts from when it was due, so a slow server cannot slow
    the offered load down; closed loop (no rate): the next report goes as soon as the last is answered,
    which finds the ceiling."""
    period = len(terminals) / rate if rate else 0.0
    start = time.monotonic() + (0.2 if rate else 0.0)
    measure_from, stop = start + WARMUP_S, start + WARMUP_S + seconds
    latencies: list[float] = []
    codes: dict[int, int] = {}
    completed = [0]  # answers received inside the measured window
    dry: list[str] = []  # terminals that sent every report they had before the end

    async def run(term: Terminal) -> None:
        due = start + random.random() * period
        for body in term.bodies:
            if not rate:
                due = time.monotonic()
            if due >= stop or (halt and halt.is_set()):
                return
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            code = await term.post(host, port, body)
            done = time.monotonic()
            if due >= measure_from:
                latencies.append(done - due)
                codes[code] = codes.get(code, 0) + 1
            if measure_from <= done < stop:
                completed[0] += 1
            due += period
        else:
            dry.append(term.tid)

    await asyncio.gather(*(run(t) for t in terminals))
    if dry:
        print(f"  ({len(dry)} terminals ran out of reports before the end: the figure below understates)", flush=True)
    return latencies, codes, completed[0], seconds


def _summary(name: str, result: tuple) -> str:
    latencies, codes, completed, seconds = result
    if not latencies:
        return f"{name}: no answers"
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (f"{name}: {completed / seconds:7.1f} reports/s sustained over {seconds:g} s   "
            f"p50 {statistics.median(ordered) * 1000:6.1f} ms   p99 {p99 * 1000:6.1f} ms   answers {dict(sorted(codes.items()))}")


class Database:
    """A throwaway database of one back end: SQLite in a temporary folder, or a durable PostgreSQL cluster."""

    def __init__(self, backend: str) -> None:
        self.cluster = PgCluster(durable=True).start() if backend == "postgresql" else None
        self.url = self.cluster.url() if self.cluster else f"sqlite:///{Path(tempfile.mkdtemp(prefix='posdiag-bench-')) / 'c.db'}"
        self.storage = open_storage(self.url)
        self.storage.migrate()

    def terminals(self, count: int, per_terminal: int, prefix: str = "lane") -> list[Terminal]:
        """``count`` registered terminals with real tokens, each with ``per_terminal`` reports ready."""
        made = []
        for i in range(count):
            token, tid, site = new_token(), f"{prefix}-{i:03d}", f"store-{i // 5:03d}"
            self.storage.add_terminal(tid, site, token_hash(token))
            made.append(Terminal(tid, site, token, per_terminal))
        return made

    def close(self) -> None:
        self.storage.close()
        if self.cluster:
            self.cluster.stop()


def _address(server: ServeProcess) -> tuple[str, int]:
    host, port = server.url.split("//")[1].split(":")
    return host, int(port)


def bench(backend: str, args: argparse.Namespace) -> None:
    db = Database(backend)
    per_terminal = int(args.rate * (args.seconds + WARMUP_S + 1) / args.terminals) + 2
    terminals = db.terminals(args.terminals, per_terminal)
    db.storage.close()
    server = ServeProcess(db.url, "--workers", str(args.workers), "--db-pool-size", str(args.pool), *ONE_ADDRESS)
    host, port = _address(server)
    try:
        label = f"{backend:10s} workers={args.workers}"
        print(_summary(f"{label} open loop @ {args.rate:g}/s", asyncio.run(
            _drive(terminals, host, port, args.seconds, rate=args.rate))), flush=True)
        if args.max:  # fresh reports (new ids), enough for 1500 reports/s
            count = int(1500 * (args.seconds + WARMUP_S + 1) / args.terminals) + 2
            for term in terminals:
                term.writer = None
                term.bodies = term.make_bodies(count)
            print(_summary(f"{label} closed loop (ceiling)", asyncio.run(
                _drive(terminals, host, port, args.seconds))), flush=True)
    finally:
        server.stop()
        db.close()


# -- the fleet page and its API ------------------------------------------------------------------

def _seed_fleet(db: Database, history: int, every_s: float) -> bigfleet.BigFleet:
    started = time.monotonic()
    built = bigfleet.build(db.storage, now=time.time(), history=history, every_s=every_s, **FLEET)
    print(f"  seeded {FLEET['terminals']} terminals in {FLEET['sites']} sites with {built.reports} reports, "
          f"{len(built.at_risk)} terminals at risk, in {time.monotonic() - started:.1f} s", flush=True)
    return built


def _incidents(db: Database, url: str) -> None:
    """A site incident (3 terminals of store-042) and a fleet one (4 sites), posted as terminals post."""
    for tid, site, cause in [(f"wan-{n}", "store-042", "network.wan") for n in range(3)] + \
            [(f"host-{n}", f"store-{100 + n:03d}", "host.service_down") for n in range(4)]:
        token = new_token()
        db.storage.add_terminal(tid, site, token_hash(token))
        body = gzip.compress(json.dumps(make_report(tid, site, cause=cause)).encode())
        answer = requests.post(url + "/api/v1/reports", data=body, timeout=30,
                               headers={"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"})
        answer.raise_for_status()


def _page_calls(built: bigfleet.BigFleet) -> list[tuple[str, str]]:
    """The calls the page makes: at load and every poll, then on a search, a filter, an opened site."""
    site = built.site_of[next(iter(built.faulty))]
    return [("incidents", "/api/v1/incidents"),
            ("sites", "/api/v1/sites?limit=100"),
            ("attention", "/api/v1/terminals?order=state&state=fault%2Csilent&limit=100"),
            ("risks", "/api/v1/risks?limit=100"),
            ("open a site", f"/api/v1/terminals?site={site}&order=state&limit=1000"),
            ("search: sites", "/api/v1/sites?q=lane-012&limit=100"),
            ("search: terminals", "/api/v1/terminals?q=lane-012&order=state&limit=100"),
            ("cause: sites", "/api/v1/sites?cause=network.dns&limit=100"),
            ("cause: terminals", "/api/v1/terminals?cause=network.dns&order=state&limit=100")]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def _time_calls(url: str, operator: str, calls: list[tuple[str, str]], samples: int) -> dict[str, list[float]]:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {operator}"
    times: dict[str, list[float]] = {name: [] for name, _ in calls}
    for _ in range(samples):
        for name, path in calls:
            started = time.perf_counter()
            http.get(url + path, timeout=30).raise_for_status()
            times[name].append(time.perf_counter() - started)
    return times


def _print_calls(title: str, times: dict[str, list[float]]) -> None:
    print(f"  API, {title}:", flush=True)
    for name, values in times.items():
        print(f"    {name:18s} p50 {statistics.median(values) * 1000:6.1f} ms   p95 {_percentile(values, 0.95) * 1000:6.1f} ms"
              f"   max {max(values) * 1000:6.1f} ms", flush=True)


def _page_ready(url: str, operator: str, loads: int) -> list[float]:
    """Milliseconds from navigation to the page's data drawn, for ``loads`` loads (the first one cold)."""
    from playwright.sync_api import sync_playwright

    ready = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.goto(url + "/signin")
        page.fill("#token", operator)
        page.click("form[action='/signin'] button")
        page.wait_for_url(url + "/")
        for _ in range(loads):
            fresh = context.new_page()
            fresh.goto(url + "/")
            fresh.wait_for_selector("body[data-ready]", timeout=60_000)
            ready.append(fresh.evaluate("() => performance.getEntriesByName('posdiag-ready')[0].startTime"))
            fresh.close()
        browser.close()
    return ready


def fleet_figures(backend: str, args: argparse.Namespace) -> None:
    print(f"{backend}: the fleet page over {FLEET['terminals']} terminals", flush=True)
    db = Database(backend)
    built = _seed_fleet(db, history=39, every_s=6 * 3600)
    operator = new_token()
    db.storage.add_operator("bench", token_hash(operator))
    load = db.terminals(100, int(50 * 120 / 100) + 2, prefix="load")
    server = ServeProcess(db.url, *ONE_ADDRESS)
    try:
        _incidents(db, server.url)
        calls = _page_calls(built)
        _time_calls(server.url, operator, calls, 3)  # warm: caches, pools, the first connection
        _print_calls("alone", _time_calls(server.url, operator, calls, args.samples))
        host, port = _address(server)
        halt = threading.Event()
        ingest = threading.Thread(target=lambda: asyncio.run(_drive(load, host, port, 110, rate=50, halt=halt)))
        ingest.start()
        time.sleep(WARMUP_S)
        try:
            _print_calls("while 100 terminals post 50 reports/s", _time_calls(server.url, operator, calls, args.samples))
        finally:
            halt.set()
            ingest.join()
        ready = _page_ready(server.url, operator, args.loads)
        print(f"  page ready (data drawn) in Chromium: first {ready[0]:.0f} ms, median {statistics.median(ready):.0f} ms, "
              f"max {max(ready):.0f} ms over {len(ready)} loads", flush=True)
    finally:
        server.stop()
        db.close()


# -- ingest while pruning --------------------------------------------------------------------------

def prune_figures(backend: str, args: argparse.Namespace) -> None:
    print(f"{backend}: ingest while retention prunes", flush=True)
    db = Database(backend)
    _seed_fleet(db, history=39, every_s=12 * 3600)
    cutoff = iso(time.time() - 7 * 86400)

    def old() -> int:
        return int(db.storage._select("SELECT count(*) AS n FROM reports WHERE started_at < ?", (cutoff,))[0]["n"])

    backlog = old()
    per_terminal = int(args.rate * (args.seconds + WARMUP_S + 1) / args.terminals) + 2
    terminals = db.terminals(args.terminals, per_terminal)
    server = ServeProcess(db.url, "--retain-days", "7", *ONE_ADDRESS)
    started = time.monotonic()
    try:
        host, port = _address(server)
        result = asyncio.run(_drive(terminals, host, port, args.seconds, rate=args.rate))
        left_then = old()
        print(_summary(f"  open loop @ {args.rate:g}/s while pruning", result), flush=True)
        while old() > FLEET["silent"] and time.monotonic() - started < 600:
            time.sleep(0.5)
        took = time.monotonic() - started
        print(f"  pruned {backlog - old()} of {backlog} reports older than 7 days in {took:.1f} s "
              f"({(backlog - old()) / took:.0f}/s; {left_then} were still left when the ingest window ended)", flush=True)
    finally:
        server.stop()
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--what", default="ingest", help="comma-separated: ingest, fleet, prune (default ingest)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--terminals", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0, help="reports/s offered by all terminals together")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per phase (after 3 s warm-up)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers")
    parser.add_argument("--pool", type=int, default=8, help="serve --db-pool-size")
    parser.add_argument("--max", action="store_true", help="also measure the closed-loop ceiling")
    parser.add_argument("--fault-share", type=float, default=0.75, help="share of reports that blame a cause (0.75)")
    parser.add_argument("--samples", type=int, default=100, help="fleet: times each API call is timed")
    parser.add_argument("--loads", type=int, default=10, help="fleet: page loads in Chromium")
    args = parser.parse_args()
    if args.terminals < 1 or args.rate <= 0 or not 0 < args.seconds <= 120 or args.samples < 1 or args.loads < 1:
        parser.error("--terminals >= 1, --rate > 0, 0 < --seconds <= 120, --samples >= 1, --loads >= 1")
    Terminal.fault_share = min(1.0, max(0.0, args.fault_share))
    phases = {"ingest": bench, "fleet": fleet_figures, "prune": prune_figures}
    wanted = [w.strip() for w in args.what.split(",") if w.strip()]
    if not wanted or any(w not in phases for w in wanted):
        parser.error(f"--what takes {', '.join(phases)}")
    for what in wanted:
        for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
            phases[what](backend, args)


if __name__ == "__main__":
    main()
