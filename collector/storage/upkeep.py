"""What the collector keeps besides reports, and what it lets go: page sessions, webhook messages
waiting to be posted, and the pruning of what is older than the retention (reports, incidents,
support bundles).

Every ``serve`` process runs the same upkeep on the shared database, so each step is safe to run
twice at once: a message is claimed with a lease by one process at a time, and pruning deletes in
small batches that any process may take.
"""

from __future__ import annotations

from typing import Any

#: support bundles deleted in one transaction (a bundle may be megabytes)
BUNDLE_BATCH = 10


class Upkeep:
    """Mixed into :class:`~posdiag.collector.storage.base.Storage`, whose connections it uses."""

    _connection: Any
    _execute: Any
    _select: Any

    # -- page sessions --------------------------------------------------------------------------

    def add_session(self, hashed: str, operator: str, created_at: str, expires_at: str) -> None:
        with self._connection(write=True) as conn:
            self._execute(conn, "INSERT INTO sessions (token_hash, operator, created_at, expires_at) VALUES (?, ?, ?, ?)",
                          (hashed, operator, created_at, expires_at))

    def session_operator(self, hashed: str, now: str) -> str | None:
        """The operator a live session belongs to (None: signed out, expired, or the operator removed)."""
        rows = self._select("SELECT s.operator FROM sessions s JOIN operators o ON o.name = s.operator "
                            "WHERE s.token_hash = ? AND s.expires_at > ?", (hashed, now))
        return rows[0]["operator"] if rows else None

    def end_session(self, hashed: str) -> None:
        with self._connection(write=True) as conn:
            self._execute(conn, "DELETE FROM sessions WHERE token_hash = ?", (hashed,))

    def remove_operator(self, name: str) -> bool:
        """Remove an operator and end their sessions; False when there is no such operator."""
        with self._connection(write=True) as conn:
            self._execute(conn, "DELETE FROM sessions WHERE operator = ?", (name,))
            return self._execute(conn, "DELETE FROM operators WHERE name = ?", (name,)).rowcount == 1

    # -- webhook messages -----------------------------------------------------------------------

    def claim_alerts(self, now: str, lease_until: str, limit: int = 10) -> list[dict[str, Any]]:
        """Messages due now that no other process holds, each leased to this one until ``lease_until``.
        An incident's messages go in order: its closing waits until its opening is out. Nothing due
        (the usual case) costs one read, no write."""
        ids = [row["id"] for row in self._select(
            "SELECT id FROM alerts a WHERE sent_at IS NULL AND given_up_at IS NULL AND next_at <= ? "
            "AND (lease_until IS NULL OR lease_until < ?) AND NOT EXISTS (SELECT 1 FROM alerts e WHERE "
            "e.incident_id = a.incident_id AND e.id < a.id AND e.sent_at IS NULL AND e.given_up_at IS NULL) "
            "ORDER BY id LIMIT ?", (now, now, limit))]
        if not ids:
            return []
        claimed = []
        with self._connection(write=True) as conn:
            for alert_id in ids:  # another process may have claimed one meanwhile: the condition says
                row = self._execute(conn, "UPDATE alerts SET lease_until = ? WHERE id = ? AND sent_at IS NULL AND "
                                    "(lease_until IS NULL OR lease_until < ?) "
                                    "RETURNING id, incident_id, event, body, attempts, created_at",
                                    (lease_until, alert_id, now)).fetchone()
                if row:
                    claimed.append(dict(zip(("id", "incident_id", "event", "body", "attempts", "created_at"), row,
                                            strict=True)))
        return claimed

    def alert_sent(self, alert_id: int, now: str) -> None:
        with self._connection(write=True) as conn:
            self._execute(conn, "UPDATE alerts SET sent_at = ?, attempts = attempts + 1, lease_until = NULL, last_error = NULL "
                          "WHERE id = ?", (now, alert_id))

    def alert_failed(self, alert_id: int, error: str, next_at: str | None, now: str) -> None:
        """A failed attempt: tried again at ``next_at``, or given up (None)."""
        change, value = ("next_at", next_at) if next_at else ("given_up_at", now)
        with self._connection(write=True) as conn:
            self._execute(conn, f"UPDATE alerts SET attempts = attempts + 1, lease_until = NULL, last_error = ?, {change} = ? "
                          "WHERE id = ?", (error[:500], value, alert_id))

    # -- retention ------------------------------------------------------------------------------

    def prune_reports(self, cutoff: str, batch: int) -> int:
        """Delete up to ``batch`` reports that started before ``cutoff``, never a terminal's newest;
        how many went. One short transaction: intake waits at most for one batch."""
        with self._connection(write=True) as conn:
            return self._execute(
                conn, "DELETE FROM reports WHERE report_id IN (SELECT r.report_id FROM reports r WHERE r.started_at < ? "
                "AND r.started_at < (SELECT t.last_started_at FROM terminals t WHERE t.id = r.terminal_id) "
                "ORDER BY r.started_at LIMIT ?)", (cutoff, batch)).rowcount

    def prune_records(self, cutoff: str, now: str, batch: int) -> int:
        """Delete up to ``batch`` incidents closed before ``cutoff`` (with their parts and webhook
        messages), a few support bundles received before it (each up to megabytes), and expired
        sessions; how many incidents and bundles went."""
        with self._connection(write=True) as conn:
            bundles = self._execute(conn, "DELETE FROM bundles WHERE request_id IN (SELECT request_id FROM bundles "
                                    "WHERE received_at < ? ORDER BY received_at LIMIT ?)",
                                    (cutoff, BUNDLE_BATCH)).rowcount
            ids = [row[0] for row in self._execute(
                conn, "SELECT id FROM incidents WHERE closed_at < ? AND last_at < ? ORDER BY id LIMIT ?",
                (cutoff, cutoff, batch)).fetchall()]
            if ids:
                marks = ", ".join("?" for _ in ids)
                for table in ("incident_terminals", "incident_sites", "alerts"):
                    self._execute(conn, f"DELETE FROM {table} WHERE incident_id IN ({marks})", ids)
                self._execute(conn, f"DELETE FROM incidents WHERE id IN ({marks})", ids)
            self._execute(conn, "DELETE FROM sessions WHERE expires_at < ?", (now,))
            return len(ids) + bundles
