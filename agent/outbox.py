"""The outbox: reports waiting for the central server, in the same SQLite file as the history.

Each queued report keeps its own gzip copy (exactly the HTTP body the sender posts), so history
retention never deletes an unsent report, and the sender never re-encodes. Rows leave the outbox
when the server has the report (201, or 200/409 for one it already had); a report the server
refuses (another 4xx) stays, set aside, so it is never retried forever nor lost silently. The
spool is bounded: when it outgrows ``spool_max_mb`` the oldest reports go first, and are counted.

The push counters and the sender's last result live in the ``meta`` table beside it, written by the
sender process and read by ``posdiag status``: the daemon itself never holds an HTTP client.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from typing import Any

log = logging.getLogger("posdiag")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,  -- queue order: oldest first
    report_id   TEXT NOT NULL UNIQUE,               -- the server's idempotency key
    queued_at   REAL NOT NULL,
    started_at  REAL NOT NULL,
    size        INTEGER NOT NULL,                   -- bytes of body
    body        BLOB NOT NULL,                      -- gzip of the report JSON: the HTTP body
    refused_at  REAL,                               -- set aside after a 4xx: kept, never retried
    refused     TEXT                                -- the server's answer when it refused
);
CREATE INDEX IF NOT EXISTS outbox_state ON outbox (refused_at, size);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

PAGE = 100  # reports read from the outbox at a time: the backlog is never loaded whole


# --- meta: counters and the sender's last word ------------------------------------------------------
def get_meta(db: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(db: sqlite3.Connection, key: str, value: Any) -> None:
    db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
               (key, str(value)))


def add_count(db: sqlite3.Connection, key: str, n: int) -> None:
    if n:
        db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value", (key, n))


# --- queueing (the store's writer) --------------------------------------------------------------------
def enqueue(db: sqlite3.Connection, report_id: str, started_at: float, body: bytes, now: float) -> None:
    """Queue one gzip body; the caller's transaction makes it atomic with the history row."""
    db.execute("INSERT OR IGNORE INTO outbox (report_id, queued_at, started_at, size, body) VALUES (?, ?, ?, ?, ?)",
               (report_id, now, started_at, len(body), body))


def enforce_spool(db: sqlite3.Connection, max_bytes: int, keep_seq: int | None = None) -> int:
    """Evict the oldest reports until the outbox fits ``max_bytes``; returns how many unsent reports
    were dropped (set-aside ones are evicted first, as they are already counted as refused)."""
    total = db.execute("SELECT COALESCE(SUM(size), 0) FROM outbox").fetchone()[0]
    if total <= max_bytes:
        return 0
    excess = total - max_bytes
    for refused_only in (True, False):
        where = "refused_at IS NOT NULL" if refused_only else "refused_at IS NULL"
        victims, freed = [], 0
        for seq, size in db.execute(f"SELECT seq, size FROM outbox WHERE {where} ORDER BY seq"):
            if seq == keep_seq or freed >= excess:
                break
            victims.append(seq)
            freed += size
        db.executemany("DELETE FROM outbox WHERE seq = ?", ((s,) for s in victims))
        excess -= freed
        if not refused_only and victims:
            add_count(db, "push.dropped", len(victims))
            log.warning("outbox full (spool_max_mb): dropped the %d oldest unsent report(s)", len(victims))
            return len(victims)
        if excess <= 0:
            return 0
    return 0


# --- draining (the sender) ------------------------------------------------------------------------------
def pending_page(db: sqlite3.Connection, after_seq: int, limit: int = PAGE) -> list[tuple[int, str, bytes]]:
    """The next ``limit`` unsent reports after ``after_seq``, oldest first: (seq, report_id, body)."""
    return db.execute("SELECT seq, report_id, body FROM outbox WHERE refused_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
                      (after_seq, limit)).fetchall()


def mark_sent_many(db: sqlite3.Connection, seqs: list[int]) -> None:
    db.executemany("DELETE FROM outbox WHERE seq = ?", ((s,) for s in seqs))
    add_count(db, "push.sent", len(seqs))


def mark_refused(db: sqlite3.Connection, seq: int, answer: str, now: float) -> None:
    db.execute("UPDATE outbox SET refused_at = ?, refused = ? WHERE seq = ?", (now, answer, seq))
    add_count(db, "push.refused", 1)


def record_attempt(db: sqlite3.Connection, result: str, now: float, *, failures: int | None = None,
                   next_attempt_at: float | None = None) -> None:
    set_meta(db, "push.last_attempt_at", now)
    set_meta(db, "push.last_result", result)
    if failures is not None:
        set_meta(db, "push.failures", failures)
    if next_attempt_at is not None:
        set_meta(db, "push.next_attempt_at", next_attempt_at)


def requeue_refused(db: sqlite3.Connection) -> int:
    """Put reports set aside after a 4xx back in line (after fixing a token, say)."""
    return db.execute("UPDATE outbox SET refused_at = NULL, refused = NULL WHERE refused_at IS NOT NULL").rowcount


# --- reading (status) ------------------------------------------------------------------------------------
def depth(db: sqlite3.Connection) -> int:
    return db.execute("SELECT COUNT(*) FROM outbox WHERE refused_at IS NULL").fetchone()[0]


def summary(db: sqlite3.Connection, now: float | None = None) -> dict[str, Any]:
    """The ``push`` keys of ``posdiag status`` (all but ``configured``, which only the config knows)."""
    from posdiag.core.timefmt import utc_iso

    now = now if now is not None else time.time()
    oldest = db.execute("SELECT queued_at FROM outbox WHERE refused_at IS NULL ORDER BY seq LIMIT 1").fetchone()
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'push.%'").fetchall())
    last_at = meta.get("push.last_attempt_at")
    return {"outbox": depth(db),
            "oldest_unsent_s": round(max(0.0, now - oldest[0]), 1) if oldest else None,
            "last_attempt_at": utc_iso(float(last_at)) if last_at else None,
            "last_result": meta.get("push.last_result"),
            "sent": int(meta.get("push.sent", 0)), "refused": int(meta.get("push.refused", 0)),
            "dropped": int(meta.get("push.dropped", 0))}


def empty_summary() -> dict[str, Any]:
    return {"outbox": 0, "oldest_unsent_s": None, "last_attempt_at": None, "last_result": None,
            "sent": 0, "refused": 0, "dropped": 0}


def next_attempt_at(db: sqlite3.Connection) -> float:
    value = get_meta(db, "push.next_attempt_at")
    return float(value) if value else 0.0


def load_json_meta(db: sqlite3.Connection, key: str) -> dict[str, Any] | None:
    value = get_meta(db, key)
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None
