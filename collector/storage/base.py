"""The SQL both back ends share, written once with ``?`` placeholders.

Writes that must not race are single statements guarded by constraints (``INSERT … ON CONFLICT DO
NOTHING`` on the report id), never a read followed by a write, so two processes receiving the same
report at the same moment store it once. Where a report must read before it writes (its terminal's
site and state), it first locks what it reads: the terminal's row (SQLite has one writer at a time
anyway). Incidents are kept apart from the intake (see :mod:`.chains`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from importlib.resources import files
from typing import Any

import posdiag.collector.storage.chains as chains
import posdiag.collector.storage.fleet as fleet
from posdiag.collector.intake import Report
from posdiag.collector.storage.chains import Rules
from posdiag.collector.storage.fleet import TerminalQuery
from posdiag.collector.storage.requests import RequestStore
from posdiag.collector.storage.upkeep import Upkeep
from posdiag.core.timefmt import utc_now_iso
from posdiag.core.vocabulary import Verdict


class StorageError(Exception):
    """The database cannot be used (bad URL, unreachable, broken schema): a message for a person."""


class Conflict(StorageError):
    """The row to create exists already (a terminal or operator name taken)."""


class Overloaded(StorageError):
    """No connection or lock could be had in time: the client should come back later."""


def migrations(backend: str) -> list[tuple[int, str]]:
    """The ordered ``(version, sql)`` migrations of a back end, from ``migrations/<backend>/NNNN_*.sql``."""
    found = []
    for entry in (files("posdiag.collector") / "migrations" / backend).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def statements(sql: str) -> Iterator[str]:
    """The statements of a migration file (``;`` ends a statement at the end of a line)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    for part in "\n".join(lines).split(";\n"):
        if part.strip().rstrip(";").strip():
            yield part.strip().rstrip(";")


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _filters(conditions: list[tuple[str, Any]]) -> tuple[list[str], list[Any]]:
    """The WHERE terms and their arguments for the conditions whose value was given (None: not filtered)."""
    given = [(term, value) for term, value in conditions if value is not None]
    return [term for term, _ in given], [value for _, value in given]


def _page(before: str | None, column: str, key: str, where: list[str], args: list[Any],
          kind: Callable[[str], Any] = str) -> None:
    """Keyset paging, newest first: ``before`` is a time stamp, or a cursor ``time|key`` from a previous
    page (``kind`` reads its key: a number is compared as one)."""
    if not before:
        return
    stamp, _, last = before.partition("|")
    if last:
        where.append(f"({column} < ? OR ({column} = ? AND {key} < ?))")
        args += [stamp, stamp, kind(last)]
    else:
        where.append(f"{column} < ?")
        args.append(stamp)


class Storage(RequestStore, Upkeep, ABC):
    """Terminals, operators, reports, incidents and remote requests in one SQL database."""

    backend = ""
    placeholder = "?"
    #: what a SELECT adds to lock the rows it reads until the transaction ends ('' where writers take turns)
    row_lock = ""
    #: the value of a new report's ``seq``, the order reports arrived in (one writer at a time: the next number)
    next_seq = "(SELECT coalesce(max(seq), 0) + 1 FROM reports)"

    @abstractmethod
    def _connection(self, write: bool = False) -> AbstractContextManager[Any]:
        """A connection; for a write, inside a transaction committed when the block ends without an exception.

        A read (``write=False``) runs its single statement without a transaction of its own."""

    @abstractmethod
    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks; the versions applied now (none: up to date)."""

    @abstractmethod
    def close(self) -> None:
        """Release the connections."""

    def _pipelined(self, conn: Any) -> AbstractContextManager[Any]:
        """Statements whose results nobody reads, sent without waiting for each answer (a network round
        trip each on PostgreSQL; SQLite has none to save)."""
        return nullcontext()

    def _lock_keeper(self, conn: Any, wait: bool) -> bool:
        """Inside a write: become the one process applying incident facts; without ``wait``, False when
        another is (where one writer holds the whole database, the transaction itself is that lock)."""
        return True

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _execute(self, conn: Any, sql: str, args: tuple | list = ()) -> Any:
        return conn.execute(self._sql(sql), tuple(args))

    def _select(self, sql: str, args: tuple | list = ()) -> list[dict[str, Any]]:
        with self._connection() as conn:
            return _rows(self._execute(conn, sql, args))

    # -- schema ---------------------------------------------------------------------------------

    def schema_version(self) -> int:
        rows = self._select("SELECT max(version) AS v FROM schema_version")
        return int(rows[0]["v"] or 0)

    def _apply_missing(self, conn: Any) -> list[int]:
        """Inside the caller's locked transaction: create ``schema_version`` and run what is missing."""
        self._execute(conn, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row[0] for row in self._execute(conn, "SELECT version FROM schema_version").fetchall()}
        applied = []
        for version, sql in migrations(self.backend):
            if version in done:
                continue
            for statement in statements(sql):
                conn.execute(statement)
            self._execute(conn, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, utc_now_iso()))
            applied.append(version)
        return applied

    def ping(self) -> None:
        """Raise unless the database answers a query."""
        self._select("SELECT 1 AS one")

    # -- credentials ----------------------------------------------------------------------------

    def add_terminal(self, terminal_id: str, site: str | None, hashed: str) -> None:
        with self._connection(write=True) as conn:
            cur = self._execute(conn, "INSERT INTO terminals (id, site, token_hash, created_at) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (id) DO NOTHING", (terminal_id, site or None, hashed, utc_now_iso()))
            if cur.rowcount != 1:
                raise Conflict(f"terminal {terminal_id!r} exists already")

    def revoke_terminal(self, terminal_id: str) -> bool:
        """Revoke a terminal's token; False when there is no such terminal. Its reports are kept."""
        with self._connection(write=True) as conn:
            cur = self._execute(conn, "UPDATE terminals SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                                (utc_now_iso(), terminal_id))
            return cur.rowcount == 1

    def add_operator(self, name: str, hashed: str) -> None:
        with self._connection(write=True) as conn:
            cur = self._execute(conn, "INSERT INTO operators (name, token_hash, created_at) VALUES (?, ?, ?) "
                                "ON CONFLICT (name) DO NOTHING", (name, hashed, utc_now_iso()))
            if cur.rowcount != 1:
                raise Conflict(f"operator {name!r} exists already")

    def get_terminal(self, terminal_id: str) -> dict[str, Any] | None:
        """One terminal as :meth:`list_terminals` lists it, with the report that set its state; or None."""
        rows = self._select(f"SELECT {fleet.COLUMNS}, last_report_id FROM terminals WHERE id = ?", (terminal_id,))
        return rows[0] if rows else None

    def terminal_by_token(self, hashed: str) -> dict[str, Any] | None:
        rows = self._select("SELECT id, site, revoked_at FROM terminals WHERE token_hash = ?", (hashed,))
        return rows[0] if rows else None

    def operator_by_token(self, hashed: str) -> dict[str, Any] | None:
        rows = self._select("SELECT name FROM operators WHERE token_hash = ?", (hashed,))
        return rows[0] if rows else None

    def secret(self, name: str, fresh: str) -> str:
        """The stored secret ``name``; ``fresh`` becomes it if none is stored yet (first process wins)."""
        with self._connection(write=True) as conn:
            self._execute(conn, "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, fresh))
            return self._execute(conn, "SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()[0]

    # -- reports --------------------------------------------------------------------------------

    def store_report(self, report: Report, received: str | None = None) -> tuple[str, bool]:
        """Store once: ``"stored"``, ``"duplicate"`` (this terminal sent it before) or ``"conflict"``
        (the id belongs to another terminal's report); and whether incidents have a fact to apply.

        The terminal's site is fixed by its registration, or else by the first report stored for it,
        inside this transaction: reports racing to be first cannot put one terminal in two sites.
        Its state follows its newest report by the time it ran, never later than ``received``: a
        late report does not undo a newer one, and one from a clock that runs ahead cannot outrank
        the reports that follow it. Of two at the same moment, the later to arrive: the order in which
        :meth:`list_reports` lists them, so that a terminal's first listed report is the one that set
        its state (``last_report_id``).
        """
        now = received or utc_now_iso()
        at = min(report.started_at, now)
        with self._connection(write=True) as conn:
            row = self._execute(conn, "SELECT site, state_at, verdict, top_cause FROM terminals WHERE id = ?" + self.row_lock,
                                (report.terminal_id,)).fetchone()
            site, state_at, verdict, cause = row if row else (None, None, None, None)
            site = site or report.site
            cur = self._execute(
                conn, "INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, top_cause, "
                f"agent_version, body, state_at, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {self.next_seq}) "
                "ON CONFLICT (report_id) DO NOTHING",
                (report.report_id, report.terminal_id, site, report.started_at, now, report.verdict, report.top_cause,
                 report.agent_version, report.text, at))
            if cur.rowcount != 1:
                owner = self._execute(conn, "SELECT terminal_id FROM reports WHERE report_id = ?", (report.report_id,)).fetchone()
                return ("duplicate" if owner and owner[0] == report.terminal_id else "conflict"), False
            newest = state_at is None or state_at <= at
            fault = report.top_cause if _names_a_fault(report.verdict, report.top_cause) else None
            # Nothing changes for the incidents when a healthy terminal stays healthy (the common case).
            queued = bool(fault) or (newest and _names_a_fault(verdict, cause))
            with self._pipelined(conn):
                if newest:
                    self._execute(conn, "UPDATE terminals SET last_seen_at = ?, site = ?, verdict = ?, top_cause = ?, "
                                  "agent_version = ?, last_started_at = ?, state_at = ?, risks = ?, risk_due_at = ?, "
                                  "last_report_id = ? WHERE id = ?",
                                  (now, site, report.verdict, report.top_cause, report.agent_version, report.started_at, at,
                                   report.risks, report.risk_due_at, report.report_id, report.terminal_id))
                else:  # an older report, late: the terminal is alive, its state stays
                    self._execute(conn, "UPDATE terminals SET last_seen_at = ?, site = ? WHERE id = ?",
                                  (now, site, report.terminal_id))
                if queued:
                    chains.queue(self, conn, chains.Fact(report.terminal_id, site, fault, at, newest))
            if report.request_id:
                self.link_report(conn, report.request_id, report.terminal_id, report.report_id, now)
        return "stored", queued

    def apply_incident_facts(self, rules: Rules, limit: int, budget_s: float, wait: bool = False) -> tuple[int, bool]:
        """Apply queued incident facts (see :func:`.chains.apply_pending`): how many, and whether a
        webhook message was written. Costs one read when nothing waits."""
        if not chains.pending(self):
            return 0, False
        return chains.apply_pending(self, rules, utc_now_iso(), limit, budget_s, wait)

    def get_report(self, report_id: str) -> str | None:
        rows = self._select("SELECT body FROM reports WHERE report_id = ?", (report_id,))
        return rows[0]["body"] if rows else None

    def list_reports(self, *, terminal: str | None = None, site: str | None = None, cause: str | None = None,
                     since: str | None = None, until: str | None = None, before: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Report summaries, newest first in the order that sets a terminal's state: by ``state_at``
        (``started_at``, never later than ``received_at``), then the later to arrive. A report dated
        ahead is listed where it counted, not first until its time passes."""
        where, args = _filters([("terminal_id = ?", terminal), ("site = ?", site), ("top_cause = ?", cause),
                                ("started_at >= ?", since), ("started_at < ?", until)])
        _page(before, "state_at", "seq", where, args, int)
        sql = ("SELECT report_id, terminal_id, site, started_at, received_at, state_at, seq, verdict, top_cause, "
               "agent_version FROM reports" + (" WHERE " + " AND ".join(where) if where else "") +
               " ORDER BY state_at DESC, seq DESC LIMIT ?")
        return self._select(sql, [*args, limit])

    def list_terminals(self, query: TerminalQuery | None = None, *, before: str | None = None, limit: int = 1000,
                       offset: int | None = None) -> list[dict[str, Any]]:
        """Terminals, most recently heard from first (never heard from: last), paged by ``before``; or,
        with ``offset``, in attention order (faults, then silent ones, …; by site and id)."""
        query = query or TerminalQuery()
        if offset is not None:
            return self._select(*fleet.terminals_by_state(query, offset, limit))
        terms, args = query.terms()
        _page(before, "coalesce(last_seen_at, '')", "id", terms, args)
        sql = (f"SELECT {fleet.COLUMNS} FROM terminals" + (" WHERE " + " AND ".join(terms) if terms else "") +
               " ORDER BY coalesce(last_seen_at, '') DESC, id DESC LIMIT ?")
        return self._select(sql, [*args, limit])

    def site_summaries(self, query: TerminalQuery, offset: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        """Sites as summary rows: each one's matching terminals by state (see :mod:`.fleet`)."""
        return [{key: (int(value) if key != "site" else value) for key, value in row.items()}
                for row in self._select(*fleet.site_summaries(query, offset, limit))]

    def at_risk(self, *, site: str | None = None, terminal: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Terminals whose newest report has risks ahead, the soonest due first (revoked ones left out)."""
        where, args = _filters([("site = ?", site), ("id = ?", terminal)])
        sql = ("SELECT id, site, last_started_at, risks, risk_due_at FROM terminals WHERE risk_due_at IS NOT NULL "
               "AND revoked_at IS NULL" + "".join(f" AND {term}" for term in where) + " ORDER BY risk_due_at, id LIMIT ?")
        return self._select(sql, [*args, limit])

    def at_risk_count(self, *, site: str | None = None, terminal: str | None = None) -> int:
        """How many terminals :meth:`at_risk` would list without its limit."""
        where, args = _filters([("site = ?", site), ("id = ?", terminal)])
        sql = ("SELECT count(*) AS n FROM terminals WHERE risk_due_at IS NOT NULL AND revoked_at IS NULL"
               + "".join(f" AND {term}" for term in where))
        return int(self._select(sql, args)[0]["n"])

    def fleet_totals(self, query: TerminalQuery) -> dict[str, Any]:
        """The matching terminals by state, the sites they are in, and their causes (the page's chart)."""
        states = {row["st"]: int(row["n"]) for row in self._select(*fleet.state_totals(query))}
        return {"terminals": {state: states.get(state, 0) for state in fleet.STATES},
                "sites": int(self._select(*fleet.site_count(query))[0]["n"]),
                "causes": [{"cause": row["cause"], "terminals": int(row["n"])}
                           for row in self._select(*fleet.cause_counts(query))]}

    def incidents(self, *, since: str, until: str | None = None, state: bool | None = None, limit: int = 100,
                  recent: bool = False) -> list[dict[str, Any]]:
        """Incidents, open ones first (see :func:`.chains.listing`)."""
        return chains.listing(self, since=since, until=until, state=state, limit=limit, recent=recent)

    def open_incident_counts(self) -> list[dict[str, Any]]:
        return chains.open_counts(self)

    def verdict_counts(self, silent_since: str) -> dict[str, int]:
        """Terminals by the verdict of their latest report (``unknown``: none yet), and ``silent``."""
        counts = {row["v"]: int(row["n"]) for row in self._select(
            "SELECT coalesce(verdict, 'unknown') AS v, count(*) AS n FROM terminals WHERE revoked_at IS NULL "
            "GROUP BY coalesce(verdict, 'unknown')")}
        silent = self._select("SELECT count(*) AS n FROM terminals WHERE revoked_at IS NULL AND "
                              "(last_seen_at IS NULL OR last_seen_at < ?)", (silent_since,))
        counts["silent"] = int(silent[0]["n"])
        return counts


def _names_a_fault(verdict: str | None, cause: str | None) -> bool:
    """A report (or state) that blames a cause: not healthy, and its top cause is not ``none``."""
    return bool(cause) and verdict not in (None, Verdict.HEALTHY) and cause != "none"


__all__ = ["Conflict", "Overloaded", "Storage", "StorageError"]
