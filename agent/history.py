"""The history table: every stored report, with the columns ``history`` lists without decoding a body.

Kept apart from :mod:`posdiag.agent.store` (which opens, heals and bounds the database) so that the
salvage in :mod:`posdiag.agent.heal` can restore rows without importing the store that calls it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

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


def insert_history(db: sqlite3.Connection, report: dict[str, Any], text: str, started_at: float) -> None:
    """One history row; a report already stored (same ``report_id``) is left as it is."""
    top = report["diagnosis"]["causes"][0]
    db.execute("INSERT OR IGNORE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)",
               (report["report_id"], started_at, report["trigger"], report["diagnosis"]["verdict"], top["id"],
                top["confidence"], text))
