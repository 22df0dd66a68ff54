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
    at_risk: list[str] = field(default_factory=list)
    reports: int = 0


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


def report_sql(storage: Any) -> str:
    """The INSERT of one report row, numbered in the order it is written as the intake numbers it."""
    return ("INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, top_cause, agent_version, "
            f"body, state_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {storage.next_seq})")


def risks_of(n: int, now: float) -> list[dict[str, Any]]:
    """The risks ahead of the ``n``-th terminal at risk: a filesystem filling (due in 1 to 72 h), and for
    every third one a certificate expiring later too."""
    hours = 1 + (n * 7) % 72
    risks = [{"code": "trend.disk_filling", "title": "A filesystem will be full soon", "probe": "trends",
              "subject": "/var/lib/pos", "message": f"/var/lib/pos fills up in {hours} h", "hours_left": float(hours),
              "due_at": iso(now + hours * 3600), "rate": 120.0, "rate_unit": "MB/h", "remediation": ["free space"]}]
    if n % 3 == 0:
        risks.append({"code": "tls.expiring_soon", "title": "A certificate expires soon", "probe": "network.tls",
                      "subject": "primary", "message": "the payment host's certificate expires in 5 days",
                      "hours_left": 120.0, "due_at": iso(now + 120 * 3600), "remediation": ["renew it"]})
    return risks


def report_rows(terminal: str, site: str, times: Iterable[float], verdict: str = "healthy",
                cause: str = "none", risks: list[dict[str, Any]] | None = None) -> Iterator[tuple]:
    """Rows of ``reports`` for one terminal's reports started at ``times`` (one body shape, fresh ids)."""
    report = make_report(terminal, site, started=0, verdict=verdict, cause=cause)
    if risks:
        report["risks"] = risks
    report_id, body = report["report_id"], json.dumps(report)
    for t in times:
        fresh = str(uuid.uuid4())
        stamp = iso(t)
        yield (fresh, terminal, site, stamp, stamp, verdict, cause, "0.1.0",
               body.replace(report_id, fresh).replace(iso(0), stamp), stamp)


def build(storage: Any, *, now: float, terminals: int = 5000, sites: int = 500, faulty: int = 25, silent: int = 25,
          history: int = 0, every_s: float = 6 * 3600, silent_for_s: float = 3 * 3600, at_risk: int = 0) -> BigFleet:
    """``terminals`` in ``sites`` sites, each with a newest report a few minutes old (``faulty`` of
    them failing, spread over sites and causes), ``silent`` of them last heard ``silent_for_s`` ago,
    ``at_risk`` of them (every so many terminals) with risks ahead in their newest report (see
    :func:`risks_of`), and ``history`` older reports each, ``every_s`` apart."""
    fleet = BigFleet(sites=[f"store-{s:03d}" for s in range(sites)])
    risky = set(range(3, terminals, max(1, terminals // at_risk))[:at_risk]) if at_risk else set()
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
        risks = risks_of(len(fleet.at_risk), now) if n in risky else None
        if risks:
            fleet.at_risk.append(tid)
        if history:  # written first: numbered before the newest report, as they would have arrived
            reports.append(report_rows(tid, site, [newest - every_s * (k + 1) for k in range(history)]))
        [latest] = report_rows(tid, site, [newest], verdict, cause, risks)
        reports.append([latest])
        terminal_rows.append((tid, site, token, iso(now - 90 * 86400), iso(newest), iso(newest), iso(newest), verdict, cause,
                              "0.1.0", latest[0], json.dumps(risks) if risks else None,
                              min(r["due_at"] for r in risks) if risks else None))
    write(storage, "INSERT INTO terminals (id, site, token_hash, created_at, last_seen_at, last_started_at, state_at, verdict, "
          "top_cause, agent_version, last_report_id, risks, risk_due_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          terminal_rows)
    fleet.reports = write(storage, report_sql(storage), (row for rows in reports for row in rows))
    return fleet
