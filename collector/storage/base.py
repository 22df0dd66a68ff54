"""The SQL both back ends share, written once with ``?`` placeholders.

Writes that must not race are single statements guarded by constraints (``INSERT … ON CONFLICT DO
NOTHING`` on the report id), never a read followed by a write, so two processes receiving the same
report at the same moment store it once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from importlib.resources import files
from typing import Any

from posdiag.collector.intake import Report
from posdiag.collector.storage.requests import RequestStore
from posdiag.core.timefmt import utc_now_iso


class StorageError(Exception):
    """The database cannot be used (bad URL, unreachable, broken schema): a message for a person."""


class Conflict(StorageError):
    """The row to create exists already (a terminal or operator name taken)."""


class Overloaded(StorageError):
    """No connection or lock could be had in time: the client should come back later."""


def utc_now() -> str:
    return utc_now_iso()


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


def _page(before: str | None, column: str, key: str, where: list[str], args: list[Any]) -> None:
    """Keyset paging, newest first: ``before`` is a time stamp, or a cursor ``time|key`` from a previous page."""
    if not before:
        return
    stamp, _, last = before.partition("|")
    if last:
        where.append(f"({column} < ? OR ({column} = ? AND {key} < ?))")
        args += [stamp, stamp, last]
    else:
        where.append(f"{column} < ?")
        args.append(stamp)


class Storage(RequestStore, ABC):
    """Terminals, operators, reports and remote requests in one SQL database."""

    backend = ""
    placeholder = "?"

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
            self._execute(conn, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, utc_now()))
            applied.append(version)
        return applied

    def ping(self) -> None:
        """Raise unless the database answers a query."""
        self._select("SELECT 1 AS one")

    # -- credentials ----------------------------------------------------------------------------

    def add_terminal(self, terminal_id: str, site: str | None, hashed: str) -> None:
        with self._connection(write=True) as conn:
            cur = self._execute(conn, "INSERT INTO terminals (id, site, token_hash, created_at) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (id) DO NOTHING", (terminal_id, site or None, hashed, utc_now()))
            if cur.rowcount != 1:
                raise Conflict(f"terminal {terminal_id!r} exists already")

    def revoke_terminal(self, terminal_id: str) -> bool:
        """Revoke a terminal's token; False when there is no such terminal. Its reports are kept."""
        with self._connection(write=True) as conn:
            cur = self._execute(conn, "UPDATE terminals SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                                (utc_now(), terminal_id))
            return cur.rowcount == 1

    def add_operator(self, name: str, hashed: str) -> None:
        with self._connection(write=True) as conn:
            cur = self._execute(conn, "INSERT INTO operators (name, token_hash, created_at) VALUES (?, ?, ?) "
                                "ON CONFLICT (name) DO NOTHING", (name, hashed, utc_now()))
            if cur.rowcount != 1:
                raise Conflict(f"operator {name!r} exists already")

    def get_terminal(self, terminal_id: str) -> dict[str, Any] | None:
        """One terminal as :meth:`list_terminals` lists it, or None."""
        rows = self._select("SELECT id, site, last_seen_at, verdict, top_cause, agent_version, last_started_at, revoked_at, "
                            "risk_due_at FROM terminals WHERE id = ?", (terminal_id,))
        return rows[0] if rows else None

    def terminal_by_token(self, hashed: str) -> dict[str, Any] | None:
        rows = self._select("SELECT id, site, revoked_at FROM terminals WHERE token_hash = ?", (hashed,))
        return rows[0] if rows else None

    def operator_by_token(self, hashed: str) -> dict[str, Any] | None:
        rows = self._select("SELECT name FROM operators WHERE token_hash = ?", (hashed,))
        return rows[0] if rows else None

    def operator_exists(self, name: str) -> bool:
        return bool(self._select("SELECT name FROM operators WHERE name = ?", (name,)))

    def secret(self, name: str, fresh: str) -> str:
        """The stored secret ``name``; ``fresh`` becomes it if none is stored yet (first process wins)."""
        with self._connection(write=True) as conn:
            self._execute(conn, "INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, fresh))
            return self._execute(conn, "SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()[0]

    # -- reports --------------------------------------------------------------------------------

    def store_report(self, report: Report, site: str) -> str:
        """Store once: ``"stored"``, ``"duplicate"`` (this terminal sent it before) or ``"conflict"``
        (the id belongs to another terminal's report)."""
        now = utc_now()
        with self._connection(write=True) as conn:
            cur = self._execute(
                conn, "INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, top_cause, "
                "agent_version, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (report_id) DO NOTHING",
                (report.report_id, report.terminal_id, site, report.started_at, now, report.verdict, report.top_cause,
                 report.agent_version, report.text))
            if cur.rowcount != 1:
                owner = self._execute(conn, "SELECT terminal_id FROM reports WHERE report_id = ?", (report.report_id,)).fetchone()
                return "duplicate" if owner and owner[0] == report.terminal_id else "conflict"
            # The terminal's state follows its newest report by started_at: a late one does not undo it.
            newest = self._execute(
                conn, "UPDATE terminals SET last_seen_at = ?, site = coalesce(site, ?), verdict = ?, top_cause = ?, "
                "agent_version = ?, last_started_at = ?, risks = ?, risk_due_at = ? "
                "WHERE id = ? AND (last_started_at IS NULL OR last_started_at <= ?)",
                (now, site, report.verdict, report.top_cause, report.agent_version, report.started_at, report.risks,
                 report.risk_due_at, report.terminal_id, report.started_at))
            if newest.rowcount == 0:  # an older report, late: the terminal is alive, its state stays
                self._execute(conn, "UPDATE terminals SET last_seen_at = ? WHERE id = ?", (now, report.terminal_id))
            if report.request_id:
                self.link_report(conn, report.request_id, report.terminal_id, report.report_id, now)
        return "stored"

    def get_report(self, report_id: str) -> str | None:
        rows = self._select("SELECT body FROM reports WHERE report_id = ?", (report_id,))
        return rows[0]["body"] if rows else None

    def list_reports(self, *, terminal: str | None = None, site: str | None = None, cause: str | None = None,
                     since: str | None = None, until: str | None = None, before: str | None = None,
                     limit: int = 100) -> list[dict[str, Any]]:
        """Report summaries, newest ``started_at`` first."""
        where, args = _filters([("terminal_id = ?", terminal), ("site = ?", site), ("top_cause = ?", cause),
                                ("started_at >= ?", since), ("started_at < ?", until)])
        _page(before, "started_at", "report_id", where, args)
        sql = ("SELECT report_id, terminal_id, site, started_at, received_at, verdict, top_cause, agent_version "
               "FROM reports" + (" WHERE " + " AND ".join(where) if where else "") +
               " ORDER BY started_at DESC, report_id DESC LIMIT ?")
        return self._select(sql, [*args, limit])

    def list_terminals(self, *, site: str | None = None, cause: str | None = None, silent_since: str | None = None,
                       before: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Terminals, most recently heard from first (never heard from: last)."""
        where, args = _filters([("site = ?", site), ("top_cause = ?", cause),
                                ("(last_seen_at IS NULL OR last_seen_at < ?)", silent_since)])
        _page(before, "coalesce(last_seen_at, '')", "id", where, args)
        sql = ("SELECT id, site, last_seen_at, verdict, top_cause, agent_version, last_started_at, revoked_at, "
               "risk_due_at FROM terminals" + (" WHERE " + " AND ".join(where) if where else "") +
               " ORDER BY coalesce(last_seen_at, '') DESC, id DESC LIMIT ?")
        return self._select(sql, [*args, limit])

    def at_risk(self, *, site: str | None = None, terminal: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Terminals whose newest report has risks ahead, the soonest due first (revoked ones left out)."""
        where, args = _filters([("site = ?", site), ("id = ?", terminal)])
        sql = ("SELECT id, site, last_started_at, risks, risk_due_at FROM terminals WHERE risk_due_at IS NOT NULL "
               "AND revoked_at IS NULL" + "".join(f" AND {term}" for term in where) + " ORDER BY risk_due_at, id LIMIT ?")
        return self._select(sql, [*args, limit])

    def faults(self, since: str, until: str | None = None) -> list[dict[str, Any]]:
        """Reports that name a cause (verdict not healthy, cause not ``none``) started in ``[since, until)``."""
        sql = ("SELECT terminal_id, site, top_cause, started_at FROM reports WHERE started_at >= ? "
               "AND verdict <> 'healthy' AND top_cause <> 'none'")
        args: list[Any] = [since]
        if until:
            sql += " AND started_at < ?"
            args.append(until)
        return self._select(sql + " ORDER BY started_at", args)

    def terminal_states(self) -> dict[str, dict[str, Any]]:
        """Each terminal's latest verdict and cause, by id (what decides whether an incident is open)."""
        rows = self._select("SELECT id, verdict, top_cause, last_started_at FROM terminals")
        return {row["id"]: row for row in rows}

    def verdict_counts(self, silent_since: str) -> dict[str, int]:
        """Terminals by the verdict of their latest report (``unknown``: none yet), and ``silent``."""
        counts = {row["v"]: int(row["n"]) for row in self._select(
            "SELECT coalesce(verdict, 'unknown') AS v, count(*) AS n FROM terminals WHERE revoked_at IS NULL "
            "GROUP BY coalesce(verdict, 'unknown')")}
        silent = self._select("SELECT count(*) AS n FROM terminals WHERE revoked_at IS NULL AND "
                              "(last_seen_at IS NULL OR last_seen_at < ?)", (silent_since,))
        counts["silent"] = int(silent[0]["n"])
        return counts


__all__ = ["Conflict", "Overloaded", "Storage", "StorageError", "utc_now"]
