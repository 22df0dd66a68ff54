"""Exit statuses of every ``posdiag`` command, in one place (the monitoring-plugin convention).

Nagios, Icinga, Zabbix and cron jobs read them as they are: 0 healthy, 1 degraded, 2 fault,
3 could not diagnose (bad configuration, bad usage, internal error, daemon unreachable).
"""

from __future__ import annotations

import enum
from typing import Any

from posdiag.core.i18n import N_
from posdiag.core.vocabulary import Status, Verdict

#: what a command says on stderr when it exits 3 because nothing was checked (:meth:`Exit.for_report`)
NOTHING_CHECKED = N_("no probe could check anything; cannot diagnose")


class Exit(enum.IntEnum):
    OK = 0
    DEGRADED = 1
    FAULT = 2
    UNKNOWN = 3

    @classmethod
    def for_verdict(cls, verdict: str) -> Exit:
        """The status a report's verdict maps to; an unknown verdict is UNKNOWN, never OK."""
        return {Verdict.HEALTHY: cls.OK, Verdict.DEGRADED: cls.DEGRADED, Verdict.FAULT: cls.FAULT}.get(verdict, cls.UNKNOWN)

    @classmethod
    def for_report(cls, report: dict[str, Any]) -> Exit:
        """The status of a diagnosis: by its verdict, but UNKNOWN when no probe could check anything
        (every probe that ran ended in ``error``, or none ran): nothing checked is not healthy."""
        return cls.for_verdict(report["diagnosis"]["verdict"]) if checked_anything(report) else cls.UNKNOWN


def checked_anything(report: dict[str, Any]) -> bool:
    """True when at least one probe of ``report`` ran and could look at what it checks."""
    return any(p["status"] not in (Status.SKIPPED, Status.ERROR) for p in report["probes"])
