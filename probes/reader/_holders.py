"""Which processes hold a device open. Linux reads /proc/*/fd; elsewhere the answer is unknown.

Without root, other users' processes cannot be inspected: the result says so rather than
pretending the port is free.

A reader behind a virtual serial bridge (``socat pty,link=/dev/ttyVR0 tcp:…``, ser2net style) is a
pseudo-terminal: the bridge holds its *master* side, the device end of the line, and often the slave
too. Such a holder is the reader's end, not a rival for the port: the master of the reader's own
pty shows in ``/proc/PID/fdinfo/FD`` as ``tty-index: N`` matching the slave ``/dev/pts/N``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_PTS = re.compile(r"^/dev/pts/(\d+)$")
_PTMX = ("/dev/ptmx", "/dev/pts/ptmx")


@dataclass(frozen=True)
class Holder:
    pid: int
    name: str
    #: holds the master side of the device's own pty: the device end of the line (a serial bridge)
    device_side: bool = False


def holders(device: str, proc_root: str = "/proc") -> tuple[list[Holder], int]:
    """(processes other than us holding ``device``, number of processes we could not inspect)."""
    target = os.path.realpath(device)
    try:
        st = os.stat(target)
        identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
    except OSError:
        identity = None
    pts = _PTS.match(target)
    index = int(pts.group(1)) if pts else None
    me = os.getpid()
    found, hidden = [], 0
    try:
        pids = [int(p) for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return [], 0
    for pid in pids:
        if pid == me:
            continue
        try:
            slave, master = _holds(os.path.join(proc_root, str(pid)), target, index, identity)
        except PermissionError:
            hidden += 1
            continue
        except OSError:
            continue
        if slave or master:
            found.append(Holder(pid, _name(proc_root, pid), device_side=master))
    return found, hidden


def _holds(proc_dir: str, target: str, index: int | None, identity: tuple[int, int] | None = None) -> tuple[bool, bool]:
    """(holds ``target`` itself, holds the master of pty number ``index``) for one process.

    A process in a container with a devpts of its own shows its /dev/pts/0 by the same path as ours:
    the file it holds is ours only when it is the same inode on the same device (``identity``), and
    a master is the device end of ours only when it belongs to our devpts."""
    fd_dir = os.path.join(proc_dir, "fd")
    slave = master = False
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if link == target:
            slave = slave or identity is None or _same_file(os.path.join(fd_dir, fd), identity)
        elif index is not None and link in _PTMX and _tty_index(os.path.join(proc_dir, "fdinfo", fd)) == index:
            master = master or identity is None or _our_ptmx(os.path.join(fd_dir, fd), identity[0])
    return slave, master


def _same_file(fd_path: str, identity: tuple[int, int]) -> bool:
    try:
        st = os.stat(fd_path)
    except OSError:
        return True  # gone or hidden: as its path says
    return (st.st_dev, st.st_ino) == identity


def _our_ptmx(fd_path: str, devpts: int) -> bool:
    """A pty master of our devpts: opened through its ptmx, or through /dev/ptmx of our /dev (a
    container's ptmx is its own devpts's)."""
    try:
        found = os.stat(fd_path).st_dev
        ours = {devpts, os.stat("/dev/ptmx").st_dev}
    except OSError:
        return True
    return found in ours


def _tty_index(fdinfo: str) -> int | None:
    try:
        with open(fdinfo) as fh:
            for line in fh:
                if line.startswith("tty-index:"):
                    return int(line.split(":", 1)[1])
    except (OSError, ValueError):
        return None
    return None


def _name(proc_root: str, pid: int) -> str:
    try:
        with open(os.path.join(proc_root, str(pid), "comm")) as fh:
            return fh.read().strip()
    except OSError:
        return "?"
