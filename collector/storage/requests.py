"""Remote requests in the database: asked by operators, fetched and answered by terminals.

A request is ``pending`` when asked, ``delivered`` once its terminal has fetched it, then ``done`` or
``failed``; one still pending or delivered at ``expires_at`` reads as ``expired`` (computed when read,
so every ``serve`` process agrees without a sweeper). Each write that must not race is one guarded
statement: the unique ``open_key`` (``"terminal kind"`` while open) keeps one open request per
terminal and kind, and an answer only lands on a request of that terminal that is still open.

Written against the shared ``?``-placeholder SQL of :class:`~posdiag.collector.storage.base.Storage`,
which mixes this class in.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from typing import Any

from posdiag.core.timefmt import utc_now_iso

log = logging.getLogger("posdiag.collector")
KINDS = ("diagnose", "bundle")
OPEN = ("pending", "delivered")
#: the columns a request is read with
COLUMNS = ("request_id, terminal_id, kind, state, created_at, requested_by, expires_at, delivered_at, finished_at, "
           "report_id, error")


def open_key(terminal_id: str, kind: str) -> str:
    return f"{terminal_id} {kind}"


def visible_state(row: dict[str, Any], now: str) -> str:
    """The state as the API tells it: an open request past its expiry is ``expired``."""
    return "expired" if row["state"] in OPEN and row["expires_at"] <= now else row["state"]


class RequestStore:
    """The request methods of a storage back end (mixed into ``Storage``, which supplies the SQL plumbing)."""

    _connection: Any
    _execute: Any
    _select: Any

    def _event(self, conn: Any, request_id: str, actor: str, event: str, at: str) -> None:
        self._execute(conn, "INSERT INTO request_events (request_id, at, actor, event) VALUES (?, ?, ?, ?)",
                      (request_id, at, actor, event))

    def create_request(self, terminal_id: str, kind: str, operator: str, expires_at: str) -> tuple[str, dict[str, Any] | None]:
        """Ask ``terminal_id`` for ``kind`` on behalf of ``operator``: ``("created", request)``, or
        ``("open", request)`` when one of that kind is still open (asking twice does not ask twice; the
        second ask is audited), ``("no-terminal", None)`` or ``("revoked", None)``."""
        now, key = utc_now_iso(), open_key(terminal_id, kind)
        with self._connection(write=True) as conn:
            terminal = self._execute(conn, "SELECT revoked_at FROM terminals WHERE id = ?", (terminal_id,)).fetchone()
            if terminal is None:
                return "no-terminal", None
            if terminal[0] is not None:
                return "revoked", None
            # An expired request no longer holds its terminal's slot.
            self._execute(conn, "UPDATE requests SET open_key = NULL WHERE open_key = ? AND expires_at <= ?", (key, now))
            request_id = str(uuid.uuid4())
            cur = self._execute(
                conn, "INSERT INTO requests (request_id, terminal_id, kind, state, created_at, requested_by, expires_at, "
                "open_key) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT (open_key) DO NOTHING",
                (request_id, terminal_id, kind, now, operator, expires_at, key))
            outcome = "created" if cur.rowcount == 1 else "open"
            if outcome == "open":
                request_id = self._execute(conn, "SELECT request_id FROM requests WHERE open_key = ?", (key,)).fetchone()[0]
            self._event(conn, request_id, f"operator:{operator}", "asked" if outcome == "created" else "asked again", now)
        return outcome, self.get_request(request_id)

    def get_request(self, request_id: str) -> dict[str, Any] | None:
        rows = self._select(f"SELECT {COLUMNS} FROM requests WHERE request_id = ?", (request_id,))
        return rows[0] if rows else None

    def request_events(self, request_id: str) -> list[dict[str, Any]]:
        return self._select("SELECT at, actor, event FROM request_events WHERE request_id = ? ORDER BY seq",
                            (request_id,))

    def list_requests(self, terminal_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
        """A terminal's requests, newest first."""
        return self._select(f"SELECT {COLUMNS} FROM requests WHERE terminal_id = ? "
                            "ORDER BY created_at DESC, request_id DESC LIMIT ?", (terminal_id, limit))

    def deliver_requests(self, terminal_id: str) -> list[dict[str, Any]]:
        """The terminal's open, unexpired requests, oldest first; the pending ones become delivered.

        The terminal asks every few seconds, so the common answer (nothing open) costs one read by the
        unique ``open_key`` and no write."""
        now = utc_now_iso()
        keys = [open_key(terminal_id, kind) for kind in KINDS]
        rows = self._select(f"SELECT request_id, kind, state, created_at, expires_at FROM requests WHERE open_key IN "
                            f"({', '.join('?' for _ in keys)}) AND expires_at > ? ORDER BY created_at", (*keys, now))
        pending = [row["request_id"] for row in rows if row["state"] == "pending"]
        if pending:
            with self._connection(write=True) as conn:
                for request_id in pending:
                    cur = self._execute(conn, "UPDATE requests SET state = 'delivered', delivered_at = ? "
                                        "WHERE request_id = ? AND state = 'pending'", (now, request_id))
                    if cur.rowcount == 1:
                        self._event(conn, request_id, f"terminal:{terminal_id}", "delivered", now)
        return [{k: row[k] for k in ("request_id", "kind", "created_at", "expires_at")} for row in rows]

    def answer_request(self, request_id: str, terminal_id: str, kind: str | None, *, error: str | None = None,
                       bundle: bytes | None = None) -> str:
        """A terminal's answer: a bundle (done) or an error (failed). Returns ``"done"``/``"failed"``
        (recorded now), ``"unknown"`` (no such request of this terminal: another's is not told apart),
        ``"wrong-kind"`` (not a request of ``kind``; None: any kind), ``"expired"``, or the state it
        already has (``"already-done"``, ``"already-failed"``)."""
        now = utc_now_iso()
        state = "failed" if error is not None else "done"
        with self._connection(write=True) as conn:
            row = self._execute(conn, "SELECT terminal_id, kind, state, expires_at FROM requests WHERE request_id = ?",
                                (request_id,)).fetchone()
            if row is None or row[0] != terminal_id:
                return "unknown"
            if kind is not None and row[1] != kind:
                return "wrong-kind"
            if row[2] not in OPEN:
                return f"already-{row[2]}"
            if row[3] <= now:
                return "expired"
            cur = self._execute(conn, "UPDATE requests SET state = ?, finished_at = ?, error = ?, open_key = NULL "
                                "WHERE request_id = ? AND state IN ('pending', 'delivered')", (state, now, error, request_id))
            if cur.rowcount != 1:  # answered by a racing call a moment ago
                return "already-done"
            if bundle is not None:
                self._execute(conn, "INSERT INTO bundles (request_id, terminal_id, received_at, size, sha256, body) "
                              "VALUES (?, ?, ?, ?, ?, ?)", (request_id, terminal_id, now, len(bundle),
                                                            hashlib.sha256(bundle).hexdigest(), bundle))
            self._event(conn, request_id, f"terminal:{terminal_id}", state, now)
        return state

    def link_report(self, conn: Any, request_id: str, terminal_id: str, report_id: str, now: str) -> bool:
        """Inside the report's own insert: its diagnose request is done, if it is this terminal's and
        still open. A report naming another terminal's request (or a closed one) changes nothing."""
        cur = self._execute(conn, "UPDATE requests SET state = 'done', finished_at = ?, report_id = ?, open_key = NULL "
                            "WHERE request_id = ? AND terminal_id = ? AND kind = 'diagnose' "
                            "AND state IN ('pending', 'delivered') AND expires_at > ?",
                            (now, report_id, request_id, terminal_id, now))
        if cur.rowcount == 1:
            self._event(conn, request_id, f"terminal:{terminal_id}", "done", now)
            log.info("remote request %s of %s: done (report %s)", request_id, terminal_id, report_id)
        else:
            log.info("report %s of %s names request %s, which is not an open diagnose request of this terminal: "
                     "stored, answering nothing", report_id, terminal_id, request_id)
        return cur.rowcount == 1

    def bundle_info(self, request_id: str) -> dict[str, Any] | None:
        rows = self._select("SELECT terminal_id, received_at, size, sha256 FROM bundles WHERE request_id = ?", (request_id,))
        return rows[0] if rows else None

    def fetch_bundle(self, request_id: str, operator: str) -> dict[str, Any] | None:
        """The bundle with its body, for ``operator`` to download (audited), or None."""
        rows = self._select("SELECT terminal_id, received_at, size, body FROM bundles WHERE request_id = ?", (request_id,))
        if not rows:
            return None
        with self._connection(write=True) as conn:
            self._event(conn, request_id, f"operator:{operator}", "downloaded", utc_now_iso())
        return {**rows[0], "body": bytes(rows[0]["body"])}
