"""PostgreSQL back end: for fleets that outgrow one box, with several ``serve`` processes sharing it.

Connections come from a bounded pool; a request that cannot get one in time is told to come back
(503 + Retry-After) instead of queueing without end. Migrations run under an advisory lock, so
processes that start together apply each migration once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from posdiag.collector.storage.base import Overloaded, Storage, StorageError

#: Advisory lock key of the migrations ("posdiag" in ASCII, as a number).
MIGRATION_LOCK = 0x706F7364696167
#: Advisory lock key of the one process applying incident facts ("incidnt").
KEEPER_LOCK = 0x696E6369646E74


class PostgresStorage(Storage):
    backend = "postgres"
    placeholder = "%s"
    row_lock = " FOR UPDATE"
    next_seq = "DEFAULT"  # an identity column: its own sequence, whatever other writers do

    def __init__(self, url: str, pool_size: int = 8, timeout_s: float = 5.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        try:  # one direct connection first: a wrong URL or a database that is down gets its own message, fast
            psycopg.connect(url, connect_timeout=max(1, int(timeout_s))).close()
        except psycopg.Error as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise StorageError(f"cannot connect to PostgreSQL at {_safe(url)}: {reason}") from None
        options = {"connect_timeout": max(1, int(timeout_s)), "autocommit": True}
        self._pool = psycopg_pool.ConnectionPool(url, min_size=1, max_size=max(1, pool_size), timeout=timeout_s,
                                                 open=False, kwargs=options)
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except psycopg_pool.PoolTimeout:
            self._pool.close()
            raise StorageError(f"cannot connect to PostgreSQL at {_safe(url)} within {timeout_s:g} s") from None

    @contextmanager
    def _connection(self, write: bool = False) -> Iterator[Any]:
        try:
            with self._pool.connection() as conn:
                if write:
                    with conn.transaction():
                        yield conn
                else:  # a read is one statement: autocommit spares the BEGIN and COMMIT round trips
                    yield conn
        except psycopg_pool.PoolTimeout:
            raise Overloaded("no database connection free") from None
        except psycopg.Error as exc:  # the server's own words: for the log, never for an unauthenticated caller
            raise StorageError(f"PostgreSQL: {exc}") from None

    def _pipelined(self, conn: Any) -> Any:
        return conn.pipeline()

    def _lock_keeper(self, conn: Any, wait: bool) -> bool:
        if wait:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (KEEPER_LOCK,))
            return True
        return bool(conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (KEEPER_LOCK,)).fetchone()[0])

    def migrate(self) -> list[int]:
        with self._connection(write=True) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            return self._apply_missing(conn)

    def close(self) -> None:
        self._pool.close()


def _safe(url: str) -> str:
    """The URL without a password, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable URL)"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"
