"""The words every layer shares: a probe's status, a finding's severity, a diagnosis's verdict, what
triggered it. Each is a ``str`` enum whose values are the report's JSON words (``posdiag.report/1``),
so ``Status.OK == "ok"`` and a report read back from JSON compares equal to the enum."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """Outcome of one probe. ``ok`` nothing wrong · ``warn`` degraded · ``fail`` broken · ``error`` the
    probe itself could not run · ``skipped`` not configured (or its prerequisite failed)."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Severity(str, enum.Enum):
    """Weight of one finding: ``info`` context, ``warn`` degrades payments, ``fail`` breaks them."""

    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


class Verdict(str, enum.Enum):
    """What a diagnosis concludes for the whole terminal; maps one-to-one onto exit codes 0, 1, 2."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAULT = "fault"

    @classmethod
    def of(cls, severities: set[Severity]) -> Verdict:
        """The verdict the worst severity seen calls for."""
        if Severity.FAIL in severities:
            return cls.FAULT
        return cls.DEGRADED if Severity.WARN in severities else cls.HEALTHY


class Trigger(str, enum.Enum):
    """Why a diagnosis ran."""

    ON_DEMAND = "on-demand"
    BOOT = "boot"
    SCHEDULE = "schedule"
    EVENT = "event"
    REMOTE = "remote"
    WATCH = "watch"
