"""Crash records in kernel-log lines: the kernel's own failures, and processes the kernel killed or
saw crash. The crash probe reads this boot's log and the previous boot's kernel messages through
the same patterns, so a record means the same wherever it was kept.

A user program's crash is logged by the kernel too (``traps: chromium[4343] general protection
fault ip:…``, ``chromium[4343]: segfault at 8 ip …``): it is that program's fault, never the
kernel's. Only the kernel's own forms — ``general protection fault: 0000 [#1]``, ``Oops:``,
``BUG:`` … — say the kernel failed.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: the kernel's own failures: oops, BUG, panic, a general protection fault in the kernel (its oops header)
OOPS = re.compile(r"(?:^|\s)(?:BUG: |Oops: |Oops - |kernel BUG at |Kernel panic - not syncing|Unable to handle kernel "
                  r"|general protection fault(?:, [^:]*)?: [0-9a-f]{4} \[#\d+\])")
HUNG = re.compile(r"INFO: task (?P<task>\S+?):(?P<pid>\d+) blocked for more than (?P<seconds>\d+) seconds")
#: a user program the kernel saw crash: its own invalid memory access
USER_CRASH = (re.compile(r"traps: (?P<comm>\S+)\[(?P<pid>\d+)\] general protection"),
              re.compile(r"(?P<comm>\S+)\[(?P<pid>\d+)\]: segfault at "))
#: the kernel's OOM killer taking a process
OOM_KILLED = (re.compile(r"Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)"),
              re.compile(r"oom-kill:.*\btask=(?P<comm>[^,]+),pid=(?P<pid>\d+)"))
#: the kernel keeps at most this many characters of a process's name (TASK_COMM_LEN - 1)
COMM_LEN = 15


@dataclass
class KernelCrashes:
    """What a run of kernel-log lines says of crashes, for the POS application named ``pos``."""

    oopses: list[str] = field(default_factory=list)
    hung_tasks: list[str] = field(default_factory=list)
    #: "oom" / "segfault" → pids of the POS the kernel killed or saw crash
    pos_deaths: dict[str, list[int]] = field(default_factory=lambda: {"oom": [], "segfault": []})
    #: other programs the kernel saw crash → how many times
    programs: collections.Counter[str] = field(default_factory=collections.Counter)


def read(messages: Iterable[str], pos: str = "") -> KernelCrashes:
    """Sort each line: a user program's crash (the POS's or another's), the OOM killer taking the POS,
    the kernel's own oops, a hung task. A line is at most one of these, in that order."""
    found = KernelCrashes()
    comm = pos[:COMM_LEN]
    for message in messages:
        user = _first_match(USER_CRASH, message)
        if user is not None:
            if pos and user["comm"] == comm:
                found.pos_deaths["segfault"].append(int(user["pid"]))
            else:
                found.programs[user["comm"]] += 1
            continue
        killed = _first_match(OOM_KILLED, message)
        if killed is not None and pos and killed["comm"] == comm:
            found.pos_deaths["oom"].append(int(killed["pid"]))
        elif OOPS.search(message):
            found.oopses.append(message)
        elif hung := HUNG.search(message):
            found.hung_tasks.append(hung["task"])
    return found


def relevant(message: str) -> bool:
    """Whether a line may tell of a crash at all (what is kept of a whole boot's kernel messages)."""
    return any(p.search(message) for p in (OOPS, HUNG, *USER_CRASH, *OOM_KILLED))


def _first_match(patterns: tuple[re.Pattern[str], ...], message: str) -> re.Match[str] | None:
    return next((m for p in patterns if (m := p.search(message))), None)
