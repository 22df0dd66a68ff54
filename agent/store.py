"""Report history and the push outbox, in one SQLite file under the state directory.

WAL with ``synchronous=FULL``: a committed report survives a power cut, and readers (``posdiag
history``, ``status``, the trends probe, the sender) never block the daemon's writes. A report is
stored in the history and queued in the outbox in ONE transaction, so a crash leaves it either in
both or in neither. Retention keeps the history bounded by age and size, oldest first; it never
touches the outbox, which keeps its own compressed copy (see ``outbox.py``).

The store heals rather than stops the daemon:

* a damaged file is moved aside and a fresh one started, with the unsent reports recovered from it
  (``heal.py``); the next stored report says so under ``"store": {"healed": ...}``;
* on a full disk the oldest history is pruned to make room (a small reserve file is given up first
  so that SQLite has the pages it needs to delete anything), and a report that still does not fit
  raises :class:`StoreFull`, which the caller reports; the next stored report says how many were not
  stored, so no report is lost silently.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posdiag.agent import heal, history, outbox
from posdiag.agent.history import insert_history, writable
from posdiag.core.i18n import N_
from posdiag.core.message import Message, Refusal
from posdiag.core.timefmt import parse_utc_iso, utc_iso
from posdiag.probes.base import PastSweep

log = logging.getLogger("posdiag")

DB_NAME = history.DB_NAME
#: Given up when the disk is full so that SQLite has room to delete the oldest history.
RESERVE_NAME = "space-reserve"
RESERVE_BYTES = 256 * 1024
#: The POS application's start times the daemon saw between sweeps (its restarts, see poswatch.py).
POS_STARTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS pos_starts (
    start_s  REAL PRIMARY KEY           -- when a POS process started, seconds since the epoch
);
"""
#: start times kept: the window is minutes, and a restart needs only the start seen before it
POS_STARTS_KEPT = 200
SCHEMA = history.SCHEMA + outbox.SCHEMA + POS_STARTS_SCHEMA


class StoreFull(Refusal):
    """A report could not be stored even after pruning the whole history to make room."""


class UnknownReport(Refusal):
    """``posdiag show ID``: no stored report has that id, or several start with it."""


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
                 spool_max_mb: float = 50, readonly: bool = False, retry_open: bool = False,
                 verify: bool = True) -> None:
        self.path = Path(state_dir) / DB_NAME
        #: check the whole file for damage on opening (PRAGMA quick_check reads every page: some 25 ms
        #: for a full 50 MB history, far more from a cold disk); a write that meets damage heals anyway
        self.verify = verify
        self.max_age_s = max_age_days * 86400
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.spool_max_bytes = int(spool_max_mb * 1024 * 1024)
        #: Reports that could not be stored, and history pruned for room, since the last stored report.
        self.unstored: dict[str, Any] | None = None
        self.pruned_for_space = 0
        self.db: sqlite3.Connection = None  # type: ignore[assignment]
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
            return
        try:
            self._open()
        except (sqlite3.Error, OSError) as exc:
            if not retry_open:
                raise
            log.error("cannot open the report store %s: %s; reports are not stored until it can be", self.path, exc)

    def _open(self) -> None:
        os.makedirs(self.path.parent, mode=0o750, exist_ok=True)
        self.db = self._open_healing()
        self._ensure_reserve()

    @classmethod
    def for_settings(cls, settings: Any, *, retry_open: bool = False, verify: bool = True) -> Store:
        """The store with the configured limits: every writer opens it this way, so none prunes the
        history or the spool by the defaults instead."""
        d = settings.daemon
        return cls(d.state_dir, max_age_days=d.history_days, max_mb=d.history_max_mb,
                   spool_max_mb=settings.server.spool_max_mb, retry_open=retry_open, verify=verify)

    @classmethod
    def for_daemon(cls, settings: Any) -> Store:
        """The daemon's store. If it cannot be opened now (a disk so full that not even the space
        reserve helps, say), that is logged and each :meth:`add` tries again: the daemon starts and
        diagnoses all the same."""
        return cls.for_settings(settings, retry_open=True)

    # --- opening and healing ------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=5)
        try:
            # Pages freed by pruning can be handed back to the filesystem (only takes effect on a new file).
            db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # Small checkpoints keep the data in the main file, so that on a full disk deleting old
            # rows needs only a few free pages of WAL.
            db.execute("PRAGMA wal_autocheckpoint=100")
            db.executescript(SCHEMA)
            check = db.execute("PRAGMA quick_check(1)").fetchone()[0] if self.verify else "ok"
            if check != "ok":
                raise sqlite3.DatabaseError(f"database disk image is malformed ({check})")
        except BaseException:
            db.close()
            raise
        return db

    def _open_healing(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.OperationalError as exc:
            # A full disk: opening a WAL database needs room for its index (-shm) and WAL, and SQLite
            # may report that as an I/O error while it creates them.
            if not (heal.is_full(exc) or "disk I/O error" in str(exc)) or not self._spend_reserve():
                raise
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not heal.is_corruption(exc):
                raise
            return self._heal(str(exc), db=None)

    def _heal(self, reason: str, db: sqlite3.Connection | None) -> sqlite3.Connection:
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        reason = " ".join(reason.split())[:300]
        moved = heal.move_aside(self.path)
        fresh = self._connect()
        recovered, unreadable = heal.recover_outbox(moved, fresh)
        note = {"at": utc_iso(time.time()), "reason": reason, "moved_to": moved.name,
                "recovered_unsent": recovered, "unreadable_unsent": unreadable}
        with fresh:
            outbox.set_meta(fresh, "store.healed", json.dumps(note))
            outbox.set_meta(fresh, "store.healed_pending", 1)
        log.error("the report store %s was damaged (%s): moved to %s, started a fresh one; %d unsent report(s) "
                  "recovered, %d unreadable", self.path, reason, moved.name, recovered, unreadable)
        return fresh

    def close(self) -> None:
        if self.db is not None:
            self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------------------
    def add(self, report: dict[str, Any], *, push: bool = False) -> int:
        """Store a report in the history and, with ``push``, queue it in the outbox, atomically.

        Attaches the store's notes (healed, not stored, pruned for room) to the report under
        ``"store"`` first, so the stored and pushed copy carries them. Returns how many unsent
        reports the spool limit dropped. Raises :class:`StoreFull` when there is no room even
        after pruning the history."""
        if self.db is None:  # could not be opened before: try again now
            try:
                self._open()
            except (sqlite3.Error, OSError) as exc:
                self._note_unstored(report, str(exc))
                raise StoreFull(Message(N_("the report store {path} cannot be opened: {error}"), path=self.path,
                                        error=str(exc))) from None
        for attempt in (1, 2):
            try:
                dropped = self._add_making_room(report, push)
                break
            except sqlite3.DatabaseError as exc:
                if attempt == 2 or not heal.is_corruption(exc):
                    raise
                self.db = self._heal(str(exc), self.db)
        self.unstored, self.pruned_for_space = None, 0
        try:
            self.prune()
        except sqlite3.OperationalError as exc:
            log.warning("history retention skipped: %s", exc)
        self._ensure_reserve()
        return dropped

    def _add_making_room(self, report: dict[str, Any], push: bool) -> int:
        for _ in range(4):
            try:
                return self._insert(report, push)
            except sqlite3.OperationalError as exc:
                if not heal.is_full(exc):
                    raise
                error = str(exc)
                freed = self._make_room(self._pages_needed(report))
                if not freed:
                    break
                self.pruned_for_space += freed
        self._note_unstored(report, error)
        raise StoreFull(Message(N_("no room in {path} for report {report}, even with the oldest history pruned ({error})"),
                                path=self.path.parent, report=report["report_id"], error=error))

    def _notes(self) -> dict[str, Any]:
        notes: dict[str, Any] = {}
        if outbox.get_meta(self.db, "store.healed_pending") == "1":
            notes["healed"] = outbox.load_json_meta(self.db, "store.healed")
        if self.unstored:
            notes["unstored"] = dict(self.unstored)
        if self.pruned_for_space:
            notes["pruned_for_space"] = self.pruned_for_space
        return notes

    def _insert(self, report: dict[str, Any], push: bool) -> int:
        notes = self._notes()
        if notes:
            report["store"] = notes
        text = json.dumps(report, separators=(",", ":"))
        started = parse_utc_iso(report["started_at"])
        dropped = 0
        with self.db:
            insert_history(self.db, report, text, started)
            if push:
                outbox.enqueue(self.db, report["report_id"], started, gzip.compress(text.encode(), 6), time.time())
                seq = self.db.execute("SELECT seq FROM outbox WHERE report_id = ?", (report["report_id"],)).fetchone()
                dropped = outbox.enforce_spool(self.db, self.spool_max_bytes, keep_seq=seq[0] if seq else None)
            if "healed" in notes:
                outbox.set_meta(self.db, "store.healed_pending", 0)
        return dropped

    def _note_unstored(self, report: dict[str, Any], error: str) -> None:
        now = utc_iso(time.time())
        u = self.unstored or {"count": 0, "first_at": now, "report_ids": []}
        u["count"] += 1
        u["last_at"], u["error"] = now, error
        u["report_ids"] = (u["report_ids"] + [report["report_id"]])[-20:]
        self.unstored = u

    # --- making room on a full disk -----------------------------------------------------------------
    # Deleting rows frees pages inside the file, not on the disk, and SQLite needs free disk to write
    # anything (its WAL grows first). So: give up the reserve file to get going, delete the oldest
    # history until the file has room for the report plus a new reserve, hand those pages back to the
    # filesystem (incremental vacuum, then a truncating checkpoint), and retry. Never for a report
    # that the whole history could not make room for.
    def _pages_needed(self, report: dict[str, Any]) -> int:
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        return 2 * len(json.dumps(report, separators=(",", ":"))) // page + 8

    def _spend_reserve(self) -> bool:
        reserve = self.path.parent / RESERVE_NAME
        if not reserve.exists():
            return False
        reserve.unlink()
        log.warning("disk full under %s: gave up the %d kB space reserve", self.path.parent, RESERVE_BYTES // 1024)
        return True

    def _delete_oldest(self, n: int) -> int:
        with self.db:
            return self.db.execute("DELETE FROM reports WHERE report_id IN (SELECT report_id FROM reports "
                                   "ORDER BY started_at LIMIT ?)", (n,)).rowcount

    def _shrink(self) -> None:
        """Give the file's free pages back to the filesystem."""
        for _ in range(2):
            try:
                self.db.execute("PRAGMA incremental_vacuum").fetchall()
                self.db.commit()
                self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                return
            except sqlite3.OperationalError as exc:
                if not heal.is_full(exc) or not self._spend_reserve():
                    return

    def _make_room(self, pages: int, *, and_reserve: bool = True) -> int:
        """Delete the oldest history (never the outbox) until ``pages`` (and, unless told not, a reserve)
        are free, and return them to the disk. Returns the reports deleted; 0 when that cannot make room."""
        page = self.db.execute("PRAGMA page_size").fetchone()[0]

        def free() -> int:
            return self.db.execute("PRAGMA freelist_count").fetchone()[0]

        count, size = self.db.execute("SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM reports").fetchone()
        if not count or free() + size // page < pages:
            return 0  # not even the whole history would make room for this one
        target = pages + (2 * RESERVE_BYTES // page if and_reserve else 0)
        deleted = 0
        with contextlib.suppress(sqlite3.Error):
            self.db.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()  # so the WAL is written from its start
        while free() < target:
            try:
                n = self._delete_oldest(max(5, count // 20))
            except sqlite3.OperationalError as exc:
                if not heal.is_full(exc) or not self._spend_reserve():
                    break
                continue
            if not n:
                break
            deleted += n
        self._shrink()
        if deleted:
            log.warning("disk full under %s: pruned the %d oldest report(s) of the history to make room",
                        self.path.parent, deleted)
        return deleted

    def _ensure_reserve(self) -> None:
        """Keep the reserve file in place; when the disk has no room for it, prune the oldest history
        now, while SQLite can still write, rather than later when it cannot."""
        reserve = self.path.parent / RESERVE_NAME
        if reserve.exists():
            return
        try:
            short = 2 * RESERVE_BYTES - _free_bytes(reserve.parent)
            if short > 0:  # history is given up only when what it frees makes the reserve fit
                page = self.db.execute("PRAGMA page_size").fetchone()[0]
                self._make_room(-(-short // page), and_reserve=False)
                if _free_bytes(reserve.parent) < 2 * RESERVE_BYTES:
                    return
            with open(reserve, "wb") as fh:
                fh.write(b"\0" * RESERVE_BYTES)
        except (OSError, sqlite3.Error):
            with contextlib.suppress(OSError):
                reserve.unlink()

    def prune(self, now: float | None = None) -> int:
        """Drop reports older than the age limit, then the oldest until the bodies fit the size limit."""
        now = now if now is not None else time.time()
        with self.db:
            dropped = self.db.execute("DELETE FROM reports WHERE started_at < ?", (now - self.max_age_s,)).rowcount
            # The bodies cannot outgrow the files that hold them: only a store larger than the limit
            # has its bodies measured, which reads every one of them (40 ms for a full 50 MB history).
            if self._file_bytes() <= self.max_bytes:
                return dropped
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

    def _file_bytes(self) -> int:
        """The database and its write-ahead log, in bytes: every byte a body can occupy."""
        size = 0
        for name in (self.path, Path(f"{self.path}-wal")):
            with contextlib.suppress(OSError):
                size += os.path.getsize(name)
        return size

    # --- reading ----------------------------------------------------------------------------------------
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

    def short_id(self, report_id: str) -> str:
        """What a person reads out for ``report_id``: its first 8 characters, more where another
        stored report starts the same way."""
        return history.short_id(self.db, report_id)

    def find(self, given: str) -> dict[str, Any]:
        """The stored report whose id is ``given`` or starts with it. :class:`UnknownReport` when no
        report or several do (the message says which)."""
        found = history.matching(self.db, given)
        if len(found) == 1:
            return self.get(found[0])
        if not found:
            raise unknown_report(given)
        raise UnknownReport(Message(N_("{id!r} is the start of several reports' ids ({ids}); give more of it"),
                                    id=given[:40], ids=", ".join(self.short_id(f) for f in found)))

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

    def add_pos_start(self, start_s: float) -> None:
        """A start time of the POS process the daemon saw; only the newest :data:`POS_STARTS_KEPT` are kept."""
        if self.db is None:  # could not be opened before: try again now
            self._open()
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO pos_starts VALUES (?)", (start_s,))
            self.db.execute("DELETE FROM pos_starts WHERE start_s < (SELECT MIN(start_s) FROM (SELECT start_s FROM "
                            "pos_starts ORDER BY start_s DESC LIMIT ?))", (POS_STARTS_KEPT,))

    def pos_starts(self) -> list[float]:
        """The POS's start times the daemon saw, oldest first (none in a store written before it looked,
        or not opened)."""
        if self.db is None:
            return []
        try:
            return [row[0] for row in self.db.execute("SELECT start_s FROM pos_starts ORDER BY start_s")]
        except sqlite3.OperationalError:
            return []

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM reports").fetchone()[0]

    def push_summary(self) -> dict[str, Any]:
        """The outbox and push counters, as ``posdiag status`` shows them."""
        try:
            return outbox.summary(self.db)
        except sqlite3.OperationalError:  # a store written before the outbox existed
            return outbox.empty_summary()

    def healed(self) -> dict[str, Any] | None:
        """The last time the store was moved aside and started afresh, and what was recovered."""
        with contextlib.suppress(sqlite3.OperationalError):
            return outbox.load_json_meta(self.db, "store.healed")
        return None


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def history_reader(state_dir: str | Path) -> Callable[[int], list[PastSweep]]:
    """What :class:`ProbeContext` hands the trends probe: the stored sweeps, read only when asked.
    A damaged store reads as no history (the daemon heals it at its next write)."""

    def read(limit: int) -> list[PastSweep]:
        try:
            store = open_readonly(state_dir)
            if store is None:
                return []
            with store:
                return store.past_sweeps(limit)
        except sqlite3.DatabaseError as exc:
            log.warning("history unreadable in %s: %s", state_dir, exc)
            return []

    return read


def pos_starts_reader(state_dir: str | Path) -> Callable[[], list[float]]:
    """What :class:`ProbeContext` hands the crash probe: the POS's start times the daemon saw, read
    only when asked; a damaged store reads as none."""

    def read() -> list[float]:
        try:
            store = open_readonly(state_dir)
            if store is None:
                return []
            with store:
                return store.pos_starts()
        except sqlite3.DatabaseError as exc:
            log.warning("POS start times unreadable in %s: %s", state_dir, exc)
            return []

    return read


def keep(settings: Any, report: dict[str, Any]) -> bool:
    """Store a technician's report in the local history when this user may write there; quietly not
    when the state directory is missing, read-only or not theirs (a diagnosis never fails for it).
    Files root creates for the store are handed to the state directory's owner, the daemon's user,
    so that root's diagnose never leaves the daemon a store it cannot write."""
    state = Path(settings.daemon.state_dir)
    if not writable(str(state)):
        return False
    try:
        # not verified whole on opening: the technician waits for this, and a write that meets damage
        # heals it all the same (the daemon verifies the store when it starts)
        with Store.for_settings(settings, verify=False) as store:
            store.add(report)
    except Exception as exc:  # noqa: BLE001 - full disk, damaged or locked store: the report is printed all the same
        log.debug("report %s not kept in %s: %s", report["report_id"], state, exc)
        return False
    finally:
        _hand_to_owner(state)
    return True


def _hand_to_owner(state: Path) -> None:
    """Root writing in the daemon's state directory: the files it made belong to the directory's owner."""
    if os.geteuid() != 0:
        return
    owner = state.stat()
    for name in (DB_NAME, DB_NAME + "-wal", DB_NAME + "-shm", RESERVE_NAME):
        with contextlib.suppress(OSError):
            if os.stat(state / name).st_uid != owner.st_uid:
                os.chown(state / name, owner.st_uid, owner.st_gid)


def unknown_report(given: str) -> UnknownReport:
    return UnknownReport(Message(N_("no stored report has the id {id!r}"), id=given[:40]))


def find_report(state_dir: str | Path, given: str) -> tuple[dict[str, Any], str]:
    """The stored report ``given`` names (a short or full id) and its short id; :class:`UnknownReport`
    when none or several match, or nothing is stored yet."""
    store = open_readonly(state_dir)
    if store is None:
        raise unknown_report(given)
    with store:
        report = store.find(given)
        return report, store.short_id(report["report_id"])


def short_id_for(state_dir: str | Path, report_id: str) -> str:
    """The short id of ``report_id`` in the history of ``state_dir``; its first 8 characters when
    there is no history this user can read."""
    try:
        store = open_readonly(state_dir)
        if store is not None:
            with store:
                return store.short_id(report_id)
    except (sqlite3.Error, OSError):
        pass
    return report_id[:history.SHORT_ID]


def open_readonly(state_dir: str | Path) -> Store | None:
    """The history for readers, or None when none has been written yet. A user who may not read it
    gets :class:`AccessDenied` naming the group to join, whichever command asked."""
    from posdiag.agent.access import check_readable_dir

    check_readable_dir(str(state_dir), DB_NAME)
    if not (Path(state_dir) / DB_NAME).exists():
        return None
    return Store(state_dir, readonly=True)
