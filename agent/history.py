"""The history table: every stored report, with the columns ``history`` lists without decoding a body.

Kept apart from :mod:`posdiag.agent.store` (which opens, heals and bounds the database) so that the
salvage in :mod:`posdiag.agent.heal` can restore rows without importing the store that calls it.
"""

from __future__ import annotations

import os
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


#: the first characters of a report_id that a person reads out; longer where the history needs it
SHORT_ID = 8


def short_id(db: sqlite3.Connection, report_id: str, least: int = SHORT_ID) -> str:
    """The shortest start of ``report_id``, ``least`` characters or more, that no other stored report
    shares: its neighbours in id order are the only ones that could share a longer start."""
    longest = 0
    for sql in ("SELECT MAX(report_id) FROM reports WHERE report_id < ?",
                "SELECT MIN(report_id) FROM reports WHERE report_id > ?"):
        other = db.execute(sql, (report_id,)).fetchone()[0]
        if other:
            longest = max(longest, len(os.path.commonprefix([report_id, other])))
    return report_id[:max(least, longest + 1)]


def matching(db: sqlite3.Connection, given: str, limit: int = 5) -> list[str]:
    """The stored report ids that start with ``given`` (a short or full id, any case), in id order."""
    start = given.strip().lower()
    if not start or not all(c in "0123456789abcdef-" for c in start):
        return []
    rows = db.execute("SELECT report_id FROM reports WHERE report_id >= ? AND report_id < ? ORDER BY report_id "
                      "LIMIT ?", (start, start + "~", limit))
    return [row[0] for row in rows]
