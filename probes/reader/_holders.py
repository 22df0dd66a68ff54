"""Which processes hold a device open. Linux reads /proc/*/fd; elsewhere the answer is unknown.

Without root, other users' processes cannot be inspected: the result says so rather than
pretending the port is free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str


def holders(device: str, proc_root: str = "/proc") -> tuple[list[Holder], int]:
    """(processes other than us holding ``device``, number of processes we could not inspect)."""
    target = os.path.realpath(device)
    me = os.getpid()
    found, hidden = [], 0
    try:
        pids = [int(p) for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return [], 0
    for pid in pids:
        if pid == me:
            continue
        fd_dir = os.path.join(proc_root, str(pid), "fd")
        try:
            fds = os.listdir(fd_dir)
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == target:
                    found.append(Holder(pid, _name(proc_root, pid)))
                    break
            except OSError:
                continue
    return found, hidden


def _name(proc_root: str, pid: int) -> str:
    try:
        with open(os.path.join(proc_root, str(pid), "comm")) as fh:
            return fh.read().strip()
    except OSError:
        return "?"
