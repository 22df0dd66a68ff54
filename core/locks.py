"""Waiting a bounded time for an advisory lock on a file (``flock``).

Two posdiag processes take turns through such locks: one sender pushes at a time, one process talks
to the card reader at a time. Each waits a while for the other, asking again now and then, and gives
up with an answer rather than hang. POSIX only: ``fcntl`` is imported where it is used, never when a
Windows POS host imports a module that calls this.
"""

from __future__ import annotations

import time


def lock_within(fd: int, wait_s: float, poll_s: float) -> bool:
    """Take an exclusive ``flock`` on ``fd``, asking again every ``poll_s`` until ``wait_s`` has passed;
    False when another process held it all that time (closing ``fd`` releases a lock taken)."""
    import fcntl

    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
