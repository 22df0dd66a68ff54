#!/usr/bin/env python3
"""Collector figures: 200 terminals posting gzip reports over loopback to a real ``serve`` process.

    python3 bench/collector_bench.py [--backend sqlite|postgresql|both] [--terminals 200] [--rate 500]
                                     [--seconds 15] [--workers 1] [--max]

Open loop: each terminal keeps its own keep-alive connection and posts on its own schedule, so that
together they offer ``--rate`` reports/s. Latency is measured from the moment a report was due, not
from when it could be sent, so a server that falls behind shows it (no coordinated omission).
``--max`` adds a closed-loop phase (every terminal posts again as soon as it has its answer): the
ceiling. PostgreSQL runs as a throwaway cluster on loopback, durable (fsync on), like a real one.
Every run is bounded: at most rate x (seconds + 3 s warm-up) reports per phase; only 127.0.0.1.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs.collectorlab import ServeProcess, make_report  # noqa: E402
from labs.pgcluster import PgCluster  # noqa: E402
from posdiag.collector.storage import open_storage  # noqa: E402
from posdiag.collector.tokens import new_token, token_hash  # noqa: E402

WARMUP_S = 3.0


class Terminal:
    """One terminal: a token, a keep-alive connection, and its reports gzipped in advance."""

    def __init__(self, tid: str, site: str, token: str, count: int) -> None:
        self.tid, self.site, self.token = tid, site, token
        self.bodies = self.make_bodies(count)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def make_bodies(self, count: int) -> list[bytes]:
        causes = ["network.wan", "network.dns", "host.service_down", "none"]
        return [gzip.compress(json.dumps(make_report(self.tid, self.site, cause=random.choice(causes))).encode())
                for _ in range(count)]

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


async def _drive(terminals: list[Terminal], host: str, port: int, seconds: float, rate: float | None = None) -> tuple:
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
            if due >= stop:
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


def bench(backend: str, args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="posdiag-collector-bench-"))
    cluster = None
    if backend == "postgresql":
        cluster = PgCluster(durable=True).start()
        url = cluster.url()
    else:
        url = f"sqlite:///{tmp / 'collector.db'}"
    storage = open_storage(url)
    storage.migrate()
    per_terminal = int(args.rate * (args.seconds + WARMUP_S + 1) / args.terminals) + 2
    terminals = []
    for i in range(args.terminals):
        token = new_token()
        storage.add_terminal(f"lane-{i:03d}", f"store-{i // 5:03d}", token_hash(token))
        terminals.append(Terminal(f"lane-{i:03d}", f"store-{i // 5:03d}", token, per_terminal))
    storage.close()
    server = ServeProcess(url, "--workers", str(args.workers), "--db-pool-size", str(args.pool))
    host, port = server.url.split("//")[1].split(":")
    try:
        label = f"{backend:10s} workers={args.workers}"
        print(_summary(f"{label} open loop @ {args.rate:g}/s", asyncio.run(
            _drive(terminals, host, int(port), args.seconds, rate=args.rate))), flush=True)
        if args.max:  # fresh reports (new ids), enough for 1500 reports/s
            count = int(1500 * (args.seconds + WARMUP_S + 1) / args.terminals) + 2
            for term in terminals:
                term.writer = None
                term.bodies = term.make_bodies(count)
            print(_summary(f"{label} closed loop (ceiling)", asyncio.run(
                _drive(terminals, host, int(port), args.seconds))), flush=True)
    finally:
        server.stop()
        if cluster:
            cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--terminals", type=int, default=200)
    parser.add_argument("--rate", type=float, default=500.0, help="reports/s offered by all terminals together")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured time per phase (after 3 s warm-up)")
    parser.add_argument("--workers", type=int, default=1, help="serve --workers")
    parser.add_argument("--pool", type=int, default=8, help="serve --db-pool-size")
    parser.add_argument("--max", action="store_true", help="also measure the closed-loop ceiling")
    args = parser.parse_args()
    if args.terminals < 1 or args.rate <= 0 or not 0 < args.seconds <= 120:
        parser.error("--terminals >= 1, --rate > 0, 0 < --seconds <= 120")
    for backend in (["sqlite", "postgresql"] if args.backend == "both" else [args.backend]):
        bench(backend, args)


if __name__ == "__main__":
    main()
