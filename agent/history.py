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


def new_report_id() -> str:
    """A random (version 4) UUID, as ``uuid.uuid4()`` makes it: 122 random bits with the version and
    variant bits set. Written out here because importing ``uuid`` imports ``platform``, which compiles
    its regular expressions: some 2 ms of every ``posdiag diagnose``'s start-up."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

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


def writable(state_dir: str) -> bool:
    """True when this user may add to the history in ``state_dir`` (which must exist already): a
    technician's diagnose asks before it loads the store, so a till that keeps nothing pays nothing."""
    db = os.path.join(state_dir, DB_NAME)
    return os.access(state_dir, os.W_OK | os.X_OK) and (not os.path.exists(db) or os.access(db, os.W_OK))
