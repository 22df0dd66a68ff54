"""Incidents kept as reports arrive.

Fault reports of one cause are chained while each lies within the window of the chain: across the
fleet (scope ``fleet``, site ``''``) and at each site (scope ``site``). A chain becomes an incident
when it spans enough sites (fleet) or terminals (site); it is open while one of its terminals still
fails (its newest report is its part in the chain), and closes when the last one moves on. So
reading incidents, for the page or ``/metrics``, never reads a report: the work is done once per
report, bounded by the handful of chains one report touches.

The intake only queues what a report means for the incidents (a *fact*: its terminal, site, cause,
time, and whether it is now the terminal's newest) in its own transaction. :func:`apply_pending`
applies queued facts in batches, one process at a time (an advisory lock on PostgreSQL, the write
lock on SQLite), each batch one transaction bounded in time: intake never waits for the incidents,
and reports of different terminals never wait for each other. A terminal's facts are queued in the
order its reports were stored (its row is locked meanwhile), so they are applied in that order.

An incident that has closed stays closed: a terminal failing again after it starts a new chain, and
a webhook hears of each opening and each closing exactly once (the message is written in the batch
that opens or closes it). A report delivered late (not its terminal's newest) still lands in the
chain of its own time, but cannot make a terminal fail again there.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from posdiag.collector.storage.chainbatch import FLEET, Batch
from posdiag.core.timefmt import parse_utc_iso

log = logging.getLogger("posdiag.collector")


@dataclass(frozen=True)
class Rules:
    """When a chain is an incident, and whether its openings and closings are posted."""

    window_s: float
    site_min_terminals: int
    fleet_min_sites: int
    alerts: bool = False


@dataclass(frozen=True)
class Fact:
    """One stored report, as incidents see it. ``cause`` is None when the report names no fault;
    ``at`` is when it ran (never later than when it arrived); ``newest``: it is now its terminal's state."""

    terminal_id: str
    site: str
    cause: str | None
    at: str
    newest: bool


def queue(db: Any, conn: Any, fact: Fact) -> None:
    """Inside the intake's transaction: the report's meaning for the incidents, to be applied."""
    db._execute(conn, "INSERT INTO incident_facts (terminal_id, site, cause, at, newest) VALUES (?, ?, ?, ?, ?)",
                (fact.terminal_id, fact.site, fact.cause, fact.at, int(fact.newest)))


def pending(db: Any) -> bool:
    """Whether facts wait to be applied (one indexed read: the usual answer is no)."""
    return bool(db._select("SELECT id FROM incident_facts ORDER BY id LIMIT 1"))


def apply_pending(db: Any, rules: Rules, now: str, limit: int, budget_s: float, wait: bool) -> tuple[int, bool]:
    """Apply up to ``limit`` queued facts, oldest first, in one transaction that stops taking more after
    ``budget_s``: (how many were applied, whether a webhook message was written). Without ``wait``,
    nothing when another process is applying them at this moment."""
    with db._connection(write=True) as conn:
        if not db._lock_keeper(conn, wait):
            return 0, False
        rows = db._execute(conn, "SELECT id, terminal_id, site, cause, at, newest FROM incident_facts ORDER BY id LIMIT ?",
                           (limit,)).fetchall()
        batch = Batch(db, conn, rules, now)
        done: list[int] = []
        started = time.monotonic()
        for fact_id, terminal_id, site, cause, at, newest in rows:
            try:
                parse_utc_iso(at)
            except ValueError:  # the intake writes real instants: a row that is not one is dropped, not retried forever
                log.error("incident fact %s has no real time (%r): dropped", fact_id, at)
            else:
                batch.record(terminal_id, site, cause, at, bool(newest))
            done.append(fact_id)
            if time.monotonic() - started > budget_s:
                break
        batch.flush()
        if done:
            db._execute(conn, f"DELETE FROM incident_facts WHERE id IN ({', '.join('?' for _ in done)})", done)
    return len(done), batch.written


# -- reading --------------------------------------------------------------------------------------

INCIDENT_COLUMNS = ("id, scope, cause, site, first_at, last_at, report_count, terminal_count, site_count, failing, "
                    "qualified_at, closed_at")


def listing(db: Any, *, since: str, until: str | None, state: bool | None, limit: int,
            recent: bool) -> list[dict[str, Any]]:
    """Incidents (covered site incidents left out), open ones first, then the most recent; each with
    its terminals, the ones still failing and its sites. ``recent``: open ones whatever their age,
    and the others seen since ``since``; otherwise those seen in ``[since, until)`` only."""
    terms = ["qualified_at IS NOT NULL", "covered = 0"]
    args: list[Any] = []
    if state is not None:
        terms.append("closed_at IS NULL" if state else "closed_at IS NOT NULL")
    terms.append("(closed_at IS NULL OR last_at >= ?)" if recent else "last_at >= ?")
    args.append(since)
    if until:
        terms.append("first_at < ?")
        args.append(until)
    rows = db._select(f"SELECT {INCIDENT_COLUMNS} FROM incidents WHERE {' AND '.join(terms)} "
                      "ORDER BY CASE WHEN closed_at IS NULL THEN 0 ELSE 1 END, last_at DESC, id DESC LIMIT ?", [*args, limit])
    if not rows:
        return rows
    marks = ", ".join("?" for _ in rows)
    ids = [row["id"] for row in rows]
    parts = db._select(f"SELECT incident_id, terminal_id, failing FROM incident_terminals WHERE incident_id IN ({marks}) "
                       "ORDER BY terminal_id", ids)
    sites = db._select(f"SELECT incident_id, site FROM incident_sites WHERE incident_id IN ({marks}) ORDER BY site", ids)
    terminals, failing, named = defaultdict(list), defaultdict(list), defaultdict(list)
    for part in parts:
        terminals[part["incident_id"]].append(part["terminal_id"])
        if part["failing"]:
            failing[part["incident_id"]].append(part["terminal_id"])
    for site in sites:
        named[site["incident_id"]].append(site["site"])
    for row in rows:
        row["terminals"], row["failing_terminals"] = terminals[row["id"]], failing[row["id"]]
        row["sites"] = named[row["id"]] if row["scope"] == FLEET else [row["site"]]
    return rows


def open_counts(db: Any) -> list[dict[str, Any]]:
    """Open incidents by scope, cause and site (``''`` for the fleet): what ``/metrics`` exposes."""
    return db._select("SELECT scope, cause, site, count(*) AS n FROM incidents WHERE qualified_at IS NOT NULL "
                      "AND closed_at IS NULL AND covered = 0 GROUP BY scope, cause, site ORDER BY scope, cause, site")
