"""Who may use the daemon's socket and state: one message for a user who may not.

The control socket (mode 0660) and the state directory (0750) are meant for root and one group of
technicians. A user outside it must be told that, and which group, rather than "not running" or a
traceback from SQLite.
"""

from __future__ import annotations

import os

from posdiag.core.i18n import N_
from posdiag.core.message import Message


def group_name(path: str) -> str:
    """The group owning ``path`` (or its nearest existing parent), by name where it has one."""
    probe = os.path.abspath(path)
    while True:
        try:
            gid = os.stat(probe).st_gid
            break
        except OSError:
            parent = os.path.dirname(probe)
            if parent == probe:
                return "root"
            probe = parent
    import grp  # POSIX only: imported where it is used

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class AccessDenied(PermissionError):
    """The calling user may not use ``path``; the message says what would let them (``message``, for
    the reader's language)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.group = group_name(path)
        self.message = Message(N_("permission denied on {path}: run as root or a member of group {group}"),
                               path=path, group=self.group)
        super().__init__(str(self.message))

    def __str__(self) -> str:
        return self.args[0]


def check_readable_dir(path: str, db_name: str) -> None:
    """Raise :class:`AccessDenied` when ``path`` (or the database ``db_name`` in it) exists but this
    user cannot read it."""
    if os.path.isdir(path) and not os.access(path, os.R_OK | os.X_OK):
        raise AccessDenied(path)
    db = os.path.join(path, db_name)
    if os.path.exists(db) and not os.access(db, os.R_OK):
        raise AccessDenied(db)
