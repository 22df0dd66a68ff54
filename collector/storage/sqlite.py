"""SQLite back end: one file, WAL, for a collector on one box.

Each worker thread keeps its own connection. Writers of this process queue on a lock instead of
sleeping in SQLite's busy handler, which keeps latency even under a burst; ``busy_timeout`` still
covers other processes sharing the file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from posdiag.collector.storage.base import Overloaded, Storage, StorageError


class SqliteStorage(Storage):
    backend = "sqlite"

    def __init__(self, path: str, timeout_s: float = 5.0) -> None:
        if not path:
            raise StorageError("sqlite URL names no file: use sqlite:///relative.db or sqlite:////absolute/path.db")
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise StorageError(f"cannot open {self.path}: folder {self.path.parent} does not exist")
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _open(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None, check_same_thread=False)
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[Any]:
        conn = self._open()
        if write and not self._write_lock.acquire(timeout=self.timeout_s):
            raise Overloaded("the database is busy")
        try:
            if not write:  # a read is one statement, atomic on its own
                yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
                raise Overloaded("the database is busy") from None
            raise StorageError(f"SQLite {self.path}: {exc}") from None
        finally:
            if write:
                self._write_lock.release()

    def migrate(self) -> list[int]:
        # BEGIN IMMEDIATE takes the write lock: a second process starting at once waits, then finds
        # the versions applied.
        with self._connection(write=True) as conn:
            return self._apply_missing(conn)

    def close(self) -> None:
        with self._all_lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()
