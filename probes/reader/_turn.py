"""One posdiag at a time at the card reader's port.

The daemon's scheduled sweep, a technician's ``watch`` and ``diagnose`` may run at once. Were they
to open the port side by side, each would see the other in /proc holding it and blame a rival
program (``reader.port_held``), or meet its exclusive lock (``reader.port_locked``): a false cause in
the very reports a technician's visit is meant to clear. So every exchange with a serial reader
takes its turn through an advisory lock (``flock``) on one file per port in the state folder: the
second posdiag waits while the first talks to the reader, and a port busy beyond that wait is said
to be checked by another posdiag, never a fault.

The lock file holds nothing. It is made readable by everyone (0644) whoever creates it, because a
shared lock on a read-only descriptor is enough for ``flock``: the daemon's user, root and a
technician in the daemon's group can all take turns on one file, whichever of them made it. Where
the file cannot be opened (no state folder yet, a folder this user may not read) or ``flock`` does
not exist (Windows), the exchange goes ahead without a turn, as it did before.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager

from posdiag.core.locks import lock_within

try:
    import fcntl
except ImportError:  # Windows: no flock, no turns
    fcntl = None  # type: ignore[assignment]

#: how often a waiting posdiag asks again whether the reader is free
POLL_S = 0.02


class ReaderBusy(Exception):
    """Another posdiag process had the reader's port for the whole of the wait."""


def lock_path(state_dir: str, port: str) -> str:
    """The lock file of ``port`` (by its real path: /dev/serial/by-id/… and /dev/ttyUSB0 are one port)."""
    name = re.sub(r"[^A-Za-z0-9.-]+", "_", os.path.realpath(port)).strip("_.")
    return os.path.join(state_dir, f"reader-{name}.lock")


@contextmanager
def reader_turn(state_dir: str | None, port: str, wait_s: float) -> Iterator[None]:
    """Hold the reader's turn for the ``with`` block, waiting up to ``wait_s`` for another posdiag
    to finish its exchange; :class:`ReaderBusy` when it does not in time."""
    fd = _open(state_dir, port)
    if fd is None:
        yield
        return
    try:
        if not lock_within(fd, wait_s, POLL_S):
            raise ReaderBusy
        yield
    finally:
        os.close(fd)  # closing releases the lock, as does the end of the process however it ends


def _open(state_dir: str | None, port: str) -> int | None:
    if fcntl is None or not state_dir:
        return None
    path = lock_path(state_dir, port)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o644)
        created = True
    except OSError:  # there already (or a folder this user may only read: EACCES comes before EEXIST)
        created = False
        try:
            fd = os.open(path, flags)
        except OSError:
            return None
    try:
        if created:
            os.fchmod(fd, 0o644)  # whatever this user's umask: every posdiag user must open it
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)  # not a plain file (a FIFO or device put there): no turn rather than a hang
    return None

