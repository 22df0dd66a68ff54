"""Where reports live: SQLite for one box, PostgreSQL for several ``serve`` processes.

Both back ends share the SQL in :mod:`posdiag.collector.storage.base`; each supplies connections,
transactions and its migration lock.
"""

from __future__ import annotations

from posdiag.collector.storage.base import Conflict, Overloaded, Storage, StorageError


def open_storage(url: str, pool_size: int = 8, timeout_s: float = 5.0) -> Storage:
    """The back end named by ``url``: ``sqlite:///relative.db``, ``sqlite:////abs/path.db`` or ``postgresql://…``."""
    if url.startswith("sqlite:///"):
        from posdiag.collector.storage.sqlite import SqliteStorage

        return SqliteStorage(url[len("sqlite:///"):], timeout_s=timeout_s)
    if url.startswith(("postgresql://", "postgres://")):
        from posdiag.collector.storage.postgres import PostgresStorage

        return PostgresStorage(url, pool_size=pool_size, timeout_s=timeout_s)
    raise StorageError(f"unsupported database URL {url.split(':', 1)[0]!r}: use sqlite:///PATH or postgresql://…")


__all__ = ["Conflict", "Overloaded", "Storage", "StorageError", "open_storage"]
