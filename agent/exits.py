"""Exit statuses of every ``posdiag`` command, in one place (the monitoring-plugin convention).

Nagios, Icinga, Zabbix and cron jobs read them as they are: 0 healthy, 1 degraded, 2 fault,
3 could not diagnose (bad configuration, bad usage, internal error, daemon unreachable).
"""

from __future__ import annotations

import enum

from posdiag.core.vocabulary import Verdict


class Exit(enum.IntEnum):
    OK = 0
    DEGRADED = 1
    FAULT = 2
    UNKNOWN = 3

    @classmethod
    def for_verdict(cls, verdict: str) -> Exit:
        """The status a report's verdict maps to; an unknown verdict is UNKNOWN, never OK."""
        return {Verdict.HEALTHY: cls.OK, Verdict.DEGRADED: cls.DEGRADED, Verdict.FAULT: cls.FAULT}.get(verdict, cls.UNKNOWN)
