"""The history table: every stored report, with the columns ``history`` lists without decoding a body.

Kept apart from :mod:`posdiag.agent.store` (which opens, heals and bounds the database) so that the
salvage in :mod:`posdiag.agent.heal` can restore rows without importing the store that calls it,
and so that a reader learns there is no history yet without loading SQLite at all.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only: SQLite is loaded by whoever opens the database
    import sqlite3

#: The store's file (history and outbox): the sender and readers find it without importing the store.
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


def insert_history(db: sqlite3.Connection, report: dict[str, Any], text: str, started_at: float) -> None:
    """One history row; a report already stored (same ``report_id``) is left as it is."""
    top = report["diagnosis"]["causes"][0]
    db.execute("INSERT OR IGNORE INTO reports VALUES (?, ?, ?, ?, ?, ?, ?)",
               (report["report_id"], started_at, report["trigger"], report["diagnosis"]["verdict"], top["id"],
                top["confidence"], text))


def nothing_stored(state_dir: str) -> bool:
    """True when ``state_dir`` certainly holds no history yet (no database in a directory this user
    may read, or no directory at all): a one-shot ``diagnose`` on a fresh till then never loads the
    store. A directory this user may not read says nothing: the store's reader explains the refusal."""
    try:
        os.stat(os.path.join(state_dir, DB_NAME))
    except FileNotFoundError:
        return not os.path.isdir(state_dir) or os.access(state_dir, os.R_OK | os.X_OK)
    except OSError:
        return False
    return False
