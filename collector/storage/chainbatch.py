"""One batch of incident facts applied in one transaction (the rules are in :mod:`.chains`).

A batch reads each chain and each terminal's part in a chain at most once, keeps them in memory while
its facts change them, and writes each changed one back once at its end: during an outage the same
few chains take hundreds of reports a second, and one round trip per report and chain would make the
keeper the slowest part of the collector on PostgreSQL. The batch is the only writer of the chains
meanwhile (the keeper's lock), so what it holds in memory is what the database would say.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from posdiag.core.timefmt import parse_utc_iso, utc_iso

FLEET, SITE = "fleet", "site"
#: how many sites a webhook message names (the count is always given)
MESSAGE_SITES = 100
CHAIN = ("id", "scope", "cause", "site", "first_at", "last_at", "report_count", "terminal_count", "site_count", "failing",
         "qualified_at", "closed_at", "covered", "announced")
#: what a batch changes in a chain
MUTABLE = CHAIN[4:]


class Batch:
    """The chains and parts one transaction touches; :meth:`record` a fact, then :meth:`flush`."""

    def __init__(self, db: Any, conn: Any, rules: Any, now: str) -> None:
        self.db, self.conn, self.rules, self.now = db, conn, rules, now
        self.chains: dict[int, dict[str, Any]] = {}
        self.by_key: dict[tuple[str, str, str], set[int]] = defaultdict(set)
        self.parts: dict[tuple[int, str], dict[str, Any]] = {}
        self.parts_of: dict[str, set[int]] = defaultdict(set)
        self.created: set[int] = set()  # chains of this batch: none of their parts is stored yet
        self.dirty: set[int] = set()
        self.dirty_parts: set[tuple[int, str]] = set()
        self.written = False  # a webhook message was written

    def _sql(self, sql: str, args: tuple | list = ()) -> Any:
        return self.db._execute(self.conn, sql, args)

    # -- chains and parts, read once --------------------------------------------------------------

    def _keep(self, row: tuple) -> dict[str, Any]:
        chain = dict(zip(CHAIN, row, strict=True))
        self.chains[chain["id"]] = chain
        self.by_key[(chain["cause"], chain["scope"], chain["site"])].add(chain["id"])
        return chain

    def chain(self, incident_id: int) -> dict[str, Any]:
        if incident_id not in self.chains:
            self._keep(self._sql(f"SELECT {', '.join(CHAIN)} FROM incidents WHERE id = ?", (incident_id,)).fetchone())
        return self.chains[incident_id]

    def find(self, scope: str, key: str, cause: str, at: str, newest: bool) -> dict[str, Any] | None:
        """The chain a fact falls in (within the window of it). A closed incident takes only late
        reports: a terminal's newest report after it belongs to a new chain."""
        t = parse_utc_iso(at)
        low, high = utc_iso(t - self.rules.window_s), utc_iso(t + self.rules.window_s)

        def fits(c: dict[str, Any]) -> bool:
            return c["last_at"] >= low and c["first_at"] <= high and not (newest and c["qualified_at"] and c["closed_at"])

        held = [self.chains[i] for i in self.by_key[(cause, scope, key)] if fits(self.chains[i])]
        if held:
            return max(held, key=lambda c: c["last_at"])
        rows = self._sql(f"SELECT {', '.join(CHAIN)} FROM incidents WHERE cause = ? AND scope = ? AND site = ? "
                         "AND last_at >= ? AND first_at <= ? ORDER BY last_at DESC", (cause, scope, key, low, high)).fetchall()
        found = [self._keep(row) for row in rows if row[0] not in self.chains]  # one held here is newer than its row
        return next((c for c in found if fits(c)), None)

    def create(self, scope: str, key: str, cause: str, at: str) -> dict[str, Any]:
        incident_id = self._sql("INSERT INTO incidents (scope, cause, site, first_at, last_at, report_count, terminal_count, "
                                "site_count, failing) VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0) RETURNING id",
                                (scope, cause, key, at, at)).fetchone()[0]
        self.created.add(incident_id)
        return self._keep((incident_id, scope, cause, key, at, at, 0, 0, 0, 0, None, None, 0, 0))

    def part(self, incident_id: int, terminal_id: str) -> dict[str, Any] | None:
        if (incident_id, terminal_id) not in self.parts and incident_id not in self.created:
            row = self._sql("SELECT site, last_at, failing FROM incident_terminals WHERE incident_id = ? AND terminal_id = ?",
                            (incident_id, terminal_id)).fetchone()
            if row is None:
                return None
            self._hold_part(incident_id, terminal_id, {"site": row[0], "last_at": row[1], "failing": row[2], "stored": True})
        return self.parts.get((incident_id, terminal_id))

    def _hold_part(self, incident_id: int, terminal_id: str, part: dict[str, Any]) -> None:
        self.parts[(incident_id, terminal_id)] = part
        self.parts_of[terminal_id].add(incident_id)

    def failing_in(self, terminal_id: str) -> list[int]:
        """The chains the terminal fails in: as stored, corrected by what this batch holds."""
        stored = {row[0] for row in self._sql("SELECT incident_id FROM incident_terminals WHERE terminal_id = ? "
                                              "AND failing = 1", (terminal_id,)).fetchall()}
        held = self.parts_of[terminal_id]
        return sorted({i for i in stored if i not in held} | {i for i in held if self.parts[(i, terminal_id)]["failing"]})

    def _write_chains(self, scope: str, cause: str) -> None:
        """Write back the changed chains of one scope and cause (what a query about them must see)."""
        for incident_id in sorted(self.dirty):
            chain = self.chains[incident_id]
            if (chain["scope"], chain["cause"]) == (scope, cause):
                self._sql(f"UPDATE incidents SET {', '.join(f'{c} = ?' for c in MUTABLE)} WHERE id = ?",
                          [*(chain[c] for c in MUTABLE), incident_id])
                self.dirty.discard(incident_id)

    def flush(self) -> None:
        """Write back every chain and part this batch changed (in one pipeline: nothing waits for an answer)."""
        with self.db._pipelined(self.conn):
            self._write_back()

    def _write_back(self) -> None:
        for incident_id in sorted(self.dirty):
            chain = self.chains[incident_id]
            self._sql(f"UPDATE incidents SET {', '.join(f'{c} = ?' for c in MUTABLE)} WHERE id = ?",
                      [*(chain[c] for c in MUTABLE), incident_id])
        for incident_id, terminal_id in sorted(self.dirty_parts):
            part = self.parts[(incident_id, terminal_id)]
            if part["stored"]:
                self._sql("UPDATE incident_terminals SET last_at = ?, failing = ? WHERE incident_id = ? AND terminal_id = ?",
                          (part["last_at"], part["failing"], incident_id, terminal_id))
            else:
                self._sql("INSERT INTO incident_terminals (incident_id, terminal_id, site, last_at, failing) "
                          "VALUES (?, ?, ?, ?, ?)", (incident_id, terminal_id, part["site"], part["last_at"], part["failing"]))
                part["stored"] = True
        self.dirty.clear()
        self.dirty_parts.clear()

    # -- the rules --------------------------------------------------------------------------------

    def record(self, terminal_id: str, site: str, cause: str | None, at: str, newest: bool) -> None:
        """One fact: a fault report joins its cause's fleet chain and its site's chain; a terminal's
        newest report ends its part in every other chain it failed in."""
        joined = []
        if cause:
            for scope, key in ((FLEET, ""), (SITE, site)):
                joined.append(self._join(scope, key, terminal_id, site, cause, at, newest))
        if newest:
            self._move_on(terminal_id, joined)

    def _join(self, scope: str, key: str, terminal_id: str, site: str, cause: str, at: str, newest: bool) -> int:
        chain = self.find(scope, key, cause, at, newest) or self.create(scope, key, cause, at)
        part = self.part(chain["id"], terminal_id)
        new_terminal = part is None
        if part is None:
            part = {"site": site, "last_at": at, "failing": 0, "stored": False}
            self._hold_part(chain["id"], terminal_id, part)
        starts_failing = newest and not part["failing"]
        part.update(last_at=max(part["last_at"], at), failing=int(bool(part["failing"]) or newest))
        self.dirty_parts.add((chain["id"], terminal_id))
        new_site = new_terminal and scope == FLEET and self._sql(
            "INSERT INTO incident_sites (incident_id, site) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (chain["id"], site)).rowcount == 1
        chain.update(first_at=min(chain["first_at"], at), last_at=max(chain["last_at"], at),
                     report_count=chain["report_count"] + 1, terminal_count=chain["terminal_count"] + new_terminal,
                     site_count=1 if scope == SITE else chain["site_count"] + new_site,
                     failing=chain["failing"] + starts_failing)
        if chain["failing"] > 0:
            chain["closed_at"] = None
        elif chain["closed_at"] is None:  # a chain of late reports only: nothing of it still fails
            chain["closed_at"] = self.now
        self.dirty.add(chain["id"])
        if chain["qualified_at"] is None and self._qualifies(scope, chain):
            self._qualify(scope, chain)
        return chain["id"]

    def _qualifies(self, scope: str, chain: dict[str, Any]) -> bool:
        if scope == FLEET:
            return chain["site_count"] >= self.rules.fleet_min_sites
        return chain["terminal_count"] >= self.rules.site_min_terminals

    def _qualify(self, scope: str, chain: dict[str, Any]) -> None:
        """The chain is an incident from now on. A site incident inside a fleet incident of the same
        cause and time is covered by it (listed and posted once, as the fleet one)."""
        span = (chain["cause"], chain["last_at"], chain["first_at"])
        self._write_chains(FLEET if scope == SITE else SITE, chain["cause"])  # the query below reads them
        if scope == SITE:
            covered = self._sql(
                "SELECT 1 FROM incidents f JOIN incident_sites s ON s.incident_id = f.id WHERE f.scope = 'fleet' AND "
                "f.cause = ? AND f.qualified_at IS NOT NULL AND f.first_at <= ? AND f.last_at >= ? AND s.site = ? LIMIT 1",
                (*span, chain["site"])).fetchone() is not None
        else:
            covered = False
            self._sql("UPDATE incidents SET covered = 1 WHERE scope = 'site' AND cause = ? AND qualified_at IS NOT NULL "
                      "AND first_at <= ? AND last_at >= ? AND site IN (SELECT site FROM incident_sites WHERE incident_id = ?)",
                      (*span, chain["id"]))
            for held in [c for c in self.chains.values() if c["scope"] == SITE and c["cause"] == chain["cause"]]:
                del self.chains[held["id"]]  # changed in the database: read again when needed
                self.by_key[(held["cause"], SITE, held["site"])].discard(held["id"])
        announce = self.rules.alerts and not covered and chain["failing"] > 0
        chain.update(qualified_at=self.now, covered=int(covered), announced=int(announce))
        self.dirty.add(chain["id"])
        if announce:
            self._message(chain, "open")

    def _move_on(self, terminal_id: str, keep: list[int]) -> None:
        """The terminal's newest report is elsewhere: it no longer fails in the chains it failed in. An
        incident whose last failing terminal moved on closes."""
        for incident_id in self.failing_in(terminal_id):
            if incident_id in keep:
                continue
            part = self.part(incident_id, terminal_id)
            part["failing"] = 0
            self.dirty_parts.add((incident_id, terminal_id))
            chain = self.chain(incident_id)
            chain["failing"] -= 1
            self.dirty.add(incident_id)
            if chain["failing"] > 0 or chain["closed_at"] is not None:
                continue
            chain["closed_at"] = self.now
            if chain["announced"] and self.rules.alerts:
                self._message(chain, "close")

    def _message(self, chain: dict[str, Any], event: str) -> None:
        """The webhook message for an opening or closing, as the incident stands now."""
        if chain["scope"] == FLEET:
            sites = [r[0] for r in self._sql("SELECT site FROM incident_sites WHERE incident_id = ? ORDER BY site LIMIT ?",
                                             (chain["id"], MESSAGE_SITES)).fetchall()]
        else:
            sites = [chain["site"]]
        body = {"event": f"incident.{event}", "event_id": f"{chain['id']}-{event}", "created_at": self.now,
                "incident": {"id": str(chain["id"]), "scope": chain["scope"], "cause": chain["cause"],
                             "site": chain["site"] or None, "sites": sites, "site_count": chain["site_count"],
                             "terminal_count": chain["terminal_count"], "first_seen_at": chain["first_at"],
                             "last_seen_at": chain["last_at"], "opened_at": chain["qualified_at"],
                             "closed_at": chain["closed_at"], "open": event == "open"}}
        self._sql("INSERT INTO alerts (incident_id, event, body, created_at, next_at) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT (incident_id, event) DO NOTHING",
                  (chain["id"], event, json.dumps(body, ensure_ascii=False, sort_keys=True), self.now, self.now))
        self.written = True
