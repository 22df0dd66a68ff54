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

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from posdiag.core.timefmt import parse_utc_iso, utc_iso

log = logging.getLogger("posdiag.collector")

FLEET, SITE = "fleet", "site"
#: how many sites a webhook message names (the count is always given)
MESSAGE_SITES = 100


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
        done: list[int] = []
        written = False
        started = time.monotonic()
        for fact_id, terminal_id, site, cause, at, newest in rows:
            try:
                parse_utc_iso(at)
            except ValueError:  # the intake writes real instants: a row that is not one is dropped, not retried forever
                log.error("incident fact %s has no real time (%r): dropped", fact_id, at)
            else:
                written |= record(db, conn, Fact(terminal_id, site, cause, at, bool(newest)), rules, now)
            done.append(fact_id)
            if time.monotonic() - started > budget_s:
                break
        if done:
            db._execute(conn, f"DELETE FROM incident_facts WHERE id IN ({', '.join('?' for _ in done)})", done)
    return len(done), written


def record(db: Any, conn: Any, fact: Fact, rules: Rules, now: str) -> bool:
    """Update the chains for one report; True when a webhook message was written."""
    joined: list[int] = []
    written = False
    if fact.cause:
        for scope, key in ((FLEET, ""), (SITE, fact.site)):
            incident_id, opened = _join(db, conn, scope, key, fact, rules, now)
            joined.append(incident_id)
            written |= opened
    if fact.newest:
        written |= _move_on(db, conn, fact.terminal_id, joined, rules, now)
    return written


def _find(db: Any, conn: Any, scope: str, key: str, fact: Fact, window_s: float) -> dict[str, Any] | None:
    """The chain this report falls in. A closed incident takes only late reports: a terminal's newest
    report after it belongs to a new chain."""
    at = parse_utc_iso(fact.at)
    sql = ("SELECT id, first_at, last_at, terminal_count, site_count, failing, qualified_at, closed_at FROM incidents "
           "WHERE cause = ? AND scope = ? AND site = ? AND last_at >= ? AND first_at <= ?")
    if fact.newest:
        sql += " AND (qualified_at IS NULL OR closed_at IS NULL)"
    sql += " ORDER BY last_at DESC LIMIT 1"
    row = db._execute(conn, sql, (fact.cause, scope, key, utc_iso(at - window_s), utc_iso(at + window_s))).fetchone()
    if row is None:
        return None
    names = ("id", "first_at", "last_at", "terminal_count", "site_count", "failing", "qualified_at", "closed_at")
    return dict(zip(names, row, strict=True))


def _join(db: Any, conn: Any, scope: str, key: str, fact: Fact, rules: Rules, now: str) -> tuple[int, bool]:
    """Add the report to its chain (a new one if none): its id, and whether it opened as an incident now."""
    chain = _find(db, conn, scope, key, fact, rules.window_s)
    if chain is None:
        cur = db._execute(conn, "INSERT INTO incidents (scope, cause, site, first_at, last_at, report_count, terminal_count, "
                          "site_count, failing) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0) RETURNING id",
                          (scope, fact.cause, key, fact.at, fact.at))
        chain = {"id": cur.fetchone()[0], "first_at": fact.at, "last_at": fact.at, "terminal_count": 0, "site_count": 0,
                 "failing": 0, "qualified_at": None, "closed_at": None}
    new_terminal, now_failing = _add_terminal(db, conn, chain["id"], fact)
    new_site = new_terminal and scope == FLEET and db._execute(
        conn, "INSERT INTO incident_sites (incident_id, site) VALUES (?, ?) ON CONFLICT DO NOTHING",
        (chain["id"], fact.site)).rowcount == 1
    chain.update(first_at=min(chain["first_at"], fact.at), last_at=max(chain["last_at"], fact.at),
                 terminal_count=chain["terminal_count"] + new_terminal,
                 site_count=1 if scope == SITE else chain["site_count"] + new_site,
                 failing=chain["failing"] + now_failing)
    if chain["failing"] > 0:
        chain["closed_at"] = None
    elif chain["closed_at"] is None:  # a chain of late reports only: nothing of it still fails
        chain["closed_at"] = now
    db._execute(conn, "UPDATE incidents SET first_at = ?, last_at = ?, report_count = report_count + 1, terminal_count = ?, "
                "site_count = ?, failing = ?, closed_at = ? WHERE id = ?",
                (chain["first_at"], chain["last_at"], chain["terminal_count"], chain["site_count"], chain["failing"],
                 chain["closed_at"], chain["id"]))
    opened = chain["qualified_at"] is None and _qualifies(scope, chain, rules) and _qualify(db, conn, scope, fact.cause,
                                                                                            key, chain, rules, now)
    return chain["id"], opened


def _add_terminal(db: Any, conn: Any, incident_id: int, fact: Fact) -> tuple[bool, bool]:
    """The terminal's part in the chain: (it is new to the chain, it fails there from now on)."""
    part = db._execute(conn, "SELECT last_at, failing FROM incident_terminals WHERE incident_id = ? AND terminal_id = ?",
                       (incident_id, fact.terminal_id)).fetchone()
    if part is None:
        db._execute(conn, "INSERT INTO incident_terminals (incident_id, terminal_id, site, last_at, failing) "
                    "VALUES (?, ?, ?, ?, ?)", (incident_id, fact.terminal_id, fact.site, fact.at, int(fact.newest)))
        return True, fact.newest
    starts_failing = fact.newest and not part[1]
    db._execute(conn, "UPDATE incident_terminals SET last_at = ?, failing = ? WHERE incident_id = ? AND terminal_id = ?",
                (max(part[0], fact.at), int(bool(part[1]) or fact.newest), incident_id, fact.terminal_id))
    return False, starts_failing


def _qualifies(scope: str, chain: dict[str, Any], rules: Rules) -> bool:
    if scope == FLEET:
        return chain["site_count"] >= rules.fleet_min_sites
    return chain["terminal_count"] >= rules.site_min_terminals


def _qualify(db: Any, conn: Any, scope: str, cause: str, site: str, chain: dict[str, Any], rules: Rules, now: str) -> bool:
    """The chain is an incident from now on. A site incident inside a fleet incident of the same cause
    and time is covered by it (listed and posted once, as the fleet one). True: an opening was posted."""
    span = (cause, chain["last_at"], chain["first_at"])
    if scope == SITE:
        covered = db._execute(
            conn, "SELECT 1 FROM incidents f JOIN incident_sites s ON s.incident_id = f.id WHERE f.scope = 'fleet' AND "
            "f.cause = ? AND f.qualified_at IS NOT NULL AND f.first_at <= ? AND f.last_at >= ? AND s.site = ? LIMIT 1",
            (*span, site)).fetchone() is not None
    else:
        covered = False
        db._execute(conn, "UPDATE incidents SET covered = 1 WHERE scope = 'site' AND cause = ? AND qualified_at IS NOT NULL "
                    "AND first_at <= ? AND last_at >= ? AND site IN (SELECT site FROM incident_sites WHERE incident_id = ?)",
                    (*span, chain["id"]))
    announce = rules.alerts and not covered and chain["failing"] > 0
    db._execute(conn, "UPDATE incidents SET qualified_at = ?, covered = ?, announced = ? WHERE id = ?",
                (now, int(covered), int(announce), chain["id"]))
    if announce:
        _message(db, conn, chain["id"], "open", now)
    return announce


def _move_on(db: Any, conn: Any, terminal_id: str, keep: list[int], rules: Rules, now: str) -> bool:
    """The terminal's newest report is elsewhere: it no longer fails in the chains it failed in. An
    incident whose last failing terminal moved on closes. True: a closing was posted."""
    rows = db._execute(conn, "SELECT incident_id FROM incident_terminals WHERE terminal_id = ? AND failing = 1",
                       (terminal_id,)).fetchall()
    written = False
    for (incident_id,) in rows:
        if incident_id in keep:
            continue
        db._execute(conn, "UPDATE incident_terminals SET failing = 0 WHERE incident_id = ? AND terminal_id = ?",
                    (incident_id, terminal_id))
        failing, closed_at, announced = db._execute(
            conn, "UPDATE incidents SET failing = failing - 1 WHERE id = ? RETURNING failing, closed_at, announced",
            (incident_id,)).fetchone()
        if failing > 0 or closed_at is not None:
            continue
        db._execute(conn, "UPDATE incidents SET closed_at = ? WHERE id = ?", (now, incident_id))
        if announced and rules.alerts:
            _message(db, conn, incident_id, "close", now)
            written = True
    return written


def _message(db: Any, conn: Any, incident_id: int, event: str, now: str) -> None:
    """The webhook message for an opening or closing, as the incident stands in this transaction."""
    row = db._execute(conn, "SELECT scope, cause, site, first_at, last_at, terminal_count, site_count, qualified_at, "
                      "closed_at FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    scope, cause, site, first_at, last_at, terminal_count, site_count, opened_at, closed_at = row
    if scope == FLEET:
        sites = [r[0] for r in db._execute(conn, "SELECT site FROM incident_sites WHERE incident_id = ? ORDER BY site LIMIT ?",
                                           (incident_id, MESSAGE_SITES)).fetchall()]
    else:
        sites = [site]
    body = {"event": f"incident.{event}", "event_id": f"{incident_id}-{event}",
            "incident": {"id": str(incident_id), "scope": scope, "cause": cause, "site": site or None, "sites": sites,
                         "site_count": site_count, "terminal_count": terminal_count, "first_seen_at": first_at,
                         "last_seen_at": last_at, "opened_at": opened_at, "closed_at": closed_at,
                         "open": event == "open"},
            "created_at": now}
    db._execute(conn, "INSERT INTO alerts (incident_id, event, body, created_at, next_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (incident_id, event) DO NOTHING",
                (incident_id, event, json.dumps(body, ensure_ascii=False, sort_keys=True), now, now))


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
