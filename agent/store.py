"""Report history in SQLite under the state directory.

WAL with ``synchronous=FULL``: a committed report survives a power cut, and readers (``posdiag
history``, the trends probe) never block the daemon's writes. Retention keeps the history bounded
by age and by size, dropping the oldest reports first. Reports are stored as compact JSON.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from posdiag.agent.report import parse_utc_iso
from posdiag.probes.base import PastSweep

DB_NAME = "history.sqlite3"
SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    report_id   TEXT PRIMARY KEY,
    started_at  REAL NOT NULL,          -- seconds since the epoch (UTC)
    trigger     TEXT NOT NULL,
    verdict     TEXT NOT NULL,
    top_cause   TEXT NOT NULL,
    confidence  REAL NOT NULL,
    body        TEXT NOT NULL           -- the report, posdiag.report/1 JSON
);
CREATE INDEX IF NOT EXISTS reports_started ON reports (started_at);
"""


@dataclass(frozen=True)
class StoredReport:
    report_id: str
    started_at: float
    trigger: str
    verdict: str
    top_cause: str
    confidence: float


class Store:
    """One connection per instance; use one instance per thread."""

    def __init__(self, state_dir: str | Path, *, max_age_days: float = 30, max_mb: float = 50,
                 readonly: bool = False) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.max_age_s = max_age_days * 86400
        self.max_bytes = int(max_mb * 1024 * 1024)
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        else:
            os.makedirs(self.path.parent, mode=0o750, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=5)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, report: dict[str, Any]) -> None:
        top = report["diagnosis"]["causes"][0]
        with self.db:
            self.db.execute(
                "INSERT OR IGNORE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)",
                (report["report_id"], parse_utc_iso(report["started_at"]), report["trigger"], report["diagnosis"]["verdict"],
                 top["id"], top["confidence"], json.dumps(report, separators=(",", ":"))))
        self.prune()

    def prune(self, now: float | None = None) -> int:
        """Drop reports older than the age limit, then the oldest until the bodies fit the size limit."""
        now = now if now is not None else time.time()
        with self.db:
            dropped = self.db.execute("DELETE FROM reports WHERE started_at < ?", (now - self.max_age_s,)).rowcount
            total = self.db.execute("SELECT COALESCE(SUM(LENGTH(body)), 0) FROM reports").fetchone()[0]
            if total > self.max_bytes:
                cutoff, running = None, 0
                for started_at, size in self.db.execute(
                        "SELECT started_at, LENGTH(body) FROM reports ORDER BY started_at DESC"):
                    running += size
                    if running > self.max_bytes:
                        cutoff = started_at
                        break
                if cutoff is not None:
                    dropped += self.db.execute("DELETE FROM reports WHERE started_at <= ?", (cutoff,)).rowcount
        return dropped

    def list(self, since: float | None = None, limit: int | None = None) -> list[StoredReport]:
        sql = "SELECT report_id, started_at, trigger, verdict, top_cause, confidence FROM reports"
        args: list[Any] = []
        if since is not None:
            sql += " WHERE started_at >= ?"
            args.append(since)
        sql += " ORDER BY started_at DESC, rowid DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [StoredReport(*row) for row in self.db.execute(sql, args)]

    def get(self, report_id: str) -> dict[str, Any]:
        row = self.db.execute("SELECT body FROM reports WHERE report_id = ?", (report_id,)).fetchone()
        if row is None:
            raise KeyError(report_id)
        return json.loads(row[0])

    def recent_bodies(self, limit: int) -> Iterator[dict[str, Any]]:
        """The last ``limit`` reports, oldest first (for trends)."""
        rows = self.db.execute("SELECT body FROM reports ORDER BY started_at DESC, rowid DESC LIMIT ?", (limit,))
        for (body,) in reversed(rows.fetchall()):
            yield json.loads(body)

    def past_sweeps(self, limit: int) -> list[PastSweep]:
        """The last ``limit`` sweeps, oldest first, in the typed form probes read."""
        return [PastSweep(parse_utc_iso(body["started_at"]),
                          {p["name"]: (p["status"], p.get("metrics", {})) for p in body.get("probes", [])})
                for body in self.recent_bodies(limit)]

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM reports").fetchone()[0]


def history_reader(state_dir: str | Path) -> Callable[[int], list[PastSweep]]:
    """What :class:`ProbeContext` hands the trends probe: the stored sweeps, read only when asked."""

    def read(limit: int) -> list[PastSweep]:
        store = open_readonly(state_dir)
        if store is None:
            return []
        with store:
            return store.past_sweeps(limit)

    return read


def open_readonly(state_dir: str | Path) -> Store | None:
    """The history for readers, or None when none has been written yet."""
    if not (Path(state_dir) / DB_NAME).exists():
        return None
    return Store(state_dir, readonly=True)
