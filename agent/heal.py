"""A corrupt store is moved aside, never a reason to stop diagnosing.

SQLite says a file is damaged in two ways: ``file is not a database`` (random bytes, a truncated
header) and ``database disk image is malformed`` (one bad page). Either way the file is renamed to
``history.sqlite3.corrupt-<UTC time>`` (kept for the help desk, with its WAL), a fresh store is
started, and the reports that were still waiting for the central server are copied over row by row:
a bad page loses the rows on it, not the rest. What happened is returned as a note that the next
stored report carries and ``posdiag status`` shows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from posdiag.agent import outbox
from posdiag.agent.history import insert_history
from posdiag.core.timefmt import compact_stamp

log = logging.getLogger("posdiag")

SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_FULL = 11, 26, 13
#: How far past the last readable row a damaged outbox is probed, row by row, for more rows,
#: when the highest key ever given out cannot be read either.
PROBE_SPAN = 20_000


def is_corruption(exc: BaseException) -> bool:
    """True for SQLite's "this file is damaged" errors (not for locks, permissions or a full disk)."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def is_full(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return (code & 0xFF) == SQLITE_FULL if code is not None else "disk is full" in str(exc)


def move_aside(path: Path) -> Path:
    """Rename the database (and its WAL) out of the way; the -shm index is rebuilt, so it goes."""
    stamp = compact_stamp()
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}.{n}")
    os.replace(path, target)
    wal = Path(f"{path}-wal")
    if wal.exists():
        os.replace(wal, f"{target}-wal")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(f"{path}-shm")
    return target


def _outbox_seqs(src: sqlite3.Connection) -> Iterator[int]:
    """The outbox rows' keys, oldest first; where a scan breaks on a bad page, probe key by key."""
    last = 0
    try:
        for (seq,) in src.execute("SELECT seq FROM outbox ORDER BY seq"):
            last = seq
            yield seq
        return
    except sqlite3.DatabaseError as exc:
        log.warning("corrupt store: outbox scan stopped after row %d (%s); probing row by row", last, exc)
    try:
        row = src.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        high = int(row[0]) if row else last
    except sqlite3.DatabaseError:
        if not last:
            return  # not even the schema reads: nothing to recover, and no way to know what was there
        high = last + PROBE_SPAN
    for seq in range(last + 1, min(high, last + PROBE_SPAN) + 1):
        try:
            found = src.execute("SELECT 1 FROM outbox WHERE seq = ?", (seq,)).fetchone()
        except sqlite3.DatabaseError:
            found = True  # on a damaged page: reading it fails again and counts it as unreadable
        if found:
            yield seq


def recover_outbox(moved: Path, dest: sqlite3.Connection) -> tuple[int, int]:
    """Copy the unsent reports that still read back from ``moved`` into ``dest``'s outbox (and its
    history). Returns (recovered, unreadable)."""
    try:
        src = sqlite3.connect(f"file:{moved}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return 0, 0
    recovered = unreadable = 0
    try:
        for seq in _outbox_seqs(src):
            try:
                row = src.execute("SELECT report_id, queued_at, started_at, size, body FROM outbox "
                                  "WHERE seq = ? AND refused_at IS NULL", (seq,)).fetchone()
            except sqlite3.DatabaseError:
                unreadable += 1
                continue
            if row is None:
                continue
            if _restore(dest, row):
                recovered += 1
            else:
                unreadable += 1
    except sqlite3.DatabaseError:
        pass  # not even the table can be found: nothing recoverable
    finally:
        src.close()
    return recovered, unreadable


def _restore(dest: sqlite3.Connection, row: tuple[Any, ...]) -> bool:
    """One recovered outbox row back into the outbox and the history; False if its body is damaged."""
    import gzip
    import json

    report_id, queued_at, started_at, _size, body = row
    try:
        report = json.loads(gzip.decompress(body))
        with dest:  # both rows or neither: a body that is not a whole report is not restored
            outbox.enqueue(dest, report_id, started_at, body, queued_at)
            insert_history(dest, report, json.dumps(report, separators=(",", ":")), started_at)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError):
        return False
    return True
