"""This process's own mount table, from /proc/self/mountinfo: the mount a path is reached through.

A service sandbox is made of mounts (systemd mounts an inaccessible folder over /home, a private
folder over /tmp, read-only binds over /), so what a path *is* for this process is told by the mount
its lookup ends on, not by the mount table of the host. Local reads, no traffic.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo (proc(5)): which part of which filesystem is mounted where."""

    id: int
    parent: int
    #: the folder of its filesystem that is mounted here: "/" for a whole filesystem, the source
    #: folder for a bind mount (systemd's sandbox mounts say what they are here)
    root: str
    point: str
    fstype: str
    super_options: tuple[str, ...]
    #: the filesystem's device number, "major:minor" (major 0: no block device of its own)
    device: str = ""
    #: what was mounted, as mount(8) names it ("/dev/sda2", "tmpfs", "overlay")
    source: str = ""


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def read_mounts(mountinfo: str = MOUNTINFO) -> list[Mount]:
    """Every mount this process sees, in the kernel's order (OSError when mountinfo is unreadable)."""
    table = []
    with open(mountinfo, encoding="utf-8", errors="replace") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-", 6) if "-" in fields[6:] else -1
            if sep < 0 or len(fields) < sep + 4:
                continue
            table.append(Mount(int(fields[0]), int(fields[1]), _unescape(fields[3]), _unescape(fields[4]),
                               fields[sep + 1], tuple(fields[sep + 3].split(",")), fields[2], _unescape(fields[sep + 2])))
    return table


def mount_of(path: str, table: list[Mount]) -> Mount | None:
    """The mount that a lookup of the absolute ``path`` ends on, or None for an empty table.

    Walked as the kernel walks it, one component at a time: at each prefix the mount on it (the
    topmost of a stack) is entered. So a mount hidden under a later one (the host's /home/pos under
    the sandbox's /home) is never taken, although its point is the longer match. The path is not
    looked up: it may be one this process is not allowed to see.
    """
    children: dict[int, list[Mount]] = defaultdict(list)
    for m in table:
        children[m.parent].append(m)
    ids = {m.id for m in table}
    roots = [m for m in table if m.point == "/" and m.parent not in ids]
    if not roots:
        return None
    current = _topmost(roots[-1], "/", children)
    parts = [p for p in os.path.normpath(path).split("/") if p]
    for i in range(1, len(parts) + 1):
        current = _topmost(current, "/" + "/".join(parts[:i]), children)
    return current


def _topmost(mount: Mount, point: str, children: dict[int, list[Mount]]) -> Mount:
    """The mount reached at ``point`` from ``mount``: the last of those stacked on it there, if any."""
    while True:
        on = [m for m in children[mount.id] if m.point == point]
        if not on:
            return mount
        mount = on[-1]
