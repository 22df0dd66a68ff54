"""A big fleet in the collector's database in seconds: terminals and reports written in bulk.

Posting 200,000 reports one by one takes minutes; the page and the bench need the *stored* state of
such a fleet, so this writes the rows the intake would have written (terminals with their newest
report's state, the reports themselves) with ``executemany`` in a few transactions. What the tests
check through HTTP (incidents, the webhook) they still post through HTTP on top of it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labs.collectorlab import iso, make_report

#: causes of the fleet's faulty terminals, in turn
FAULT_CAUSES = ("network.wan", "network.dns", "host.service_down", "reader.unresponsive", "disk.full")
BATCH = 5000


@dataclass
class BigFleet:
    """What was written: terminal ids by state, and the sites."""

    sites: list[str]
    faulty: dict[str, str] = field(default_factory=dict)  # terminal id -> cause
    silent: list[str] = field(default_factory=list)
    healthy: list[str] = field(default_factory=list)
    site_of: dict[str, str] = field(default_factory=dict)
    reports: int = 0


def _body(terminal: str, site: str, started: float, verdict: str, cause: str) -> tuple[str, str]:
    report = make_report(terminal, site, started=started, verdict=verdict, cause=cause)
    return report["report_id"], json.dumps(report)


def _chunks(rows: Iterable[tuple], size: int = BATCH) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def write(storage: Any, sql: str, rows: Iterable[tuple]) -> int:
    """``executemany`` in transactions of :data:`BATCH` rows; how many rows went in."""
    count = 0
    for chunk in _chunks(rows):
        with storage._connection(write=True) as conn:
            conn.cursor().executemany(storage._sql(sql), chunk)
        count += len(chunk)
    return count


REPORT_SQL = ("INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, top_cause, agent_version, "
              "body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def report_rows(terminal: str, site: str, times: Iterable[float], verdict: str = "healthy",
                cause: str = "none") -> Iterator[tuple]:
    """Rows of ``reports`` for one terminal's reports started at ``times`` (one body shape, fresh ids)."""
    report_id, body = _body(terminal, site, 0, verdict, cause)
    for t in times:
        fresh = str(uuid.uuid4())
        stamp = iso(t)
        yield (fresh, terminal, site, stamp, stamp, verdict, cause, "0.1.0",
               body.replace(report_id, fresh).replace(iso(0), stamp))


def build(storage: Any, *, now: float, terminals: int = 5000, sites: int = 500, faulty: int = 25, silent: int = 25,
          history: int = 0, every_s: float = 6 * 3600, silent_for_s: float = 3 * 3600) -> BigFleet:
    """``terminals`` in ``sites`` sites, each with a newest report a few minutes old (``faulty`` of
    them failing, spread over sites and causes), ``silent`` of them last heard ``silent_for_s`` ago,
    and ``history`` older reports each, ``every_s`` apart."""
    fleet = BigFleet(sites=[f"store-{s:03d}" for s in range(sites)])
    terminal_rows, reports = [], []
    step = max(1, terminals // max(1, faulty + silent + 1)) + 1  # not a multiple of the sites: spread over them
    picked = iter(range(7, terminals, step))
    faulty_ids = {next(picked) for _ in range(faulty)}
    silent_ids = {next(picked) for _ in range(silent)}
    for n in range(terminals):
        tid, site = f"lane-{n:05d}", fleet.sites[n % sites]
        fleet.site_of[tid] = site
        newest = now - (silent_for_s if n in silent_ids else 60 + n % 600)
        verdict, cause = ("fault", FAULT_CAUSES[n % len(FAULT_CAUSES)]) if n in faulty_ids else ("healthy", "none")
        if n in faulty_ids:
            fleet.faulty[tid] = cause
        elif n in silent_ids:
            fleet.silent.append(tid)
        else:
            fleet.healthy.append(tid)
        token = hashlib.sha256(f"bigfleet {tid}".encode()).hexdigest()
        terminal_rows.append((tid, site, token, iso(now - 90 * 86400), iso(newest), iso(newest), iso(newest), verdict, cause,
                              "0.1.0"))
        reports.append(report_rows(tid, site, [newest], verdict, cause))
        if history:
            reports.append(report_rows(tid, site, [newest - every_s * (k + 1) for k in range(history)]))
    write(storage, "INSERT INTO terminals (id, site, token_hash, created_at, last_seen_at, last_started_at, state_at, verdict, "
          "top_cause, agent_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", terminal_rows)
    fleet.reports = write(storage, REPORT_SQL, (row for rows in reports for row in rows))
    return fleet
