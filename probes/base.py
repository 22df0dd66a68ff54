"""The probe contract: observe one area of the terminal, report typed findings, never decide a cause.

A probe subclasses :class:`Probe` and overrides :meth:`Probe.check`. :meth:`Probe.run` wraps it so
that nothing a probe does — raising, hanging, hitting a permission wall — can escape: the runner
always gets a :class:`ProbeResult`, and a broken probe shows up as status ``error`` with a finding
that says what happened instead of taking the diagnosis down with it.
"""

from __future__ import annotations

import enum
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

if TYPE_CHECKING:  # pragma: no cover - typing only
    from posdiag.agent.config import Settings


class Status(str, enum.Enum):
    """Outcome of one probe, ordered from best to worst for ``worst()``."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"


class Severity(str, enum.Enum):
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.FAIL: 2}


@dataclass(frozen=True)
class Finding:
    """One observation with a stable ``code`` (``area.what``) the diagnosis engine keys on."""

    code: str
    severity: Severity
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity.value, "message": self.message,
                "data": dict(self.data)}


@dataclass(frozen=True)
class ProbeResult:
    """What one probe saw. ``metrics`` carry units in their names (``connect_ms``, ``free_mb``)."""

    name: str
    status: Status
    duration_s: float
    summary: str
    findings: tuple[Finding, ...] = ()
    metrics: Mapping[str, float | int | str | None] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        """True when the probe ran and found its area working well enough for dependants."""
        return self.status in (Status.OK, Status.WARN)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status.value, "duration_s": round(self.duration_s, 4),
                "summary": self.summary, "findings": [f.to_dict() for f in self.findings],
                "metrics": dict(self.metrics)}


class Observation:
    """Collects findings and metrics while a probe's ``check`` runs.

    Probes append to it as they go, so that when a probe overruns its deadline the runner can
    still report what it had already seen rather than nothing.
    """

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.metrics: dict[str, float | int | str | None] = {}
        self.summary: str | None = None

    def add(self, code: str, severity: Severity | str, message: str, **data: Any) -> Finding:
        found = Finding(code, Severity(severity), message, data)
        self.findings.append(found)
        return found

    def info(self, code: str, message: str, **data: Any) -> Finding:
        return self.add(code, Severity.INFO, message, **data)

    def warn(self, code: str, message: str, **data: Any) -> Finding:
        return self.add(code, Severity.WARN, message, **data)

    def fail(self, code: str, message: str, **data: Any) -> Finding:
        return self.add(code, Severity.FAIL, message, **data)

    def metric(self, name: str, value: float | int | str | None) -> None:
        self.metrics[name] = round(value, 3) if isinstance(value, float) else value

    def status(self) -> Status:
        worst = max((_SEVERITY_RANK[f.severity] for f in self.findings), default=0)
        return (Status.OK, Status.WARN, Status.FAIL)[worst]

    def default_summary(self) -> str:
        notable = [f for f in self.findings if f.severity is not Severity.INFO]
        if not notable:
            return "no problem found"
        worst = max(notable, key=lambda f: _SEVERITY_RANK[f.severity])
        more = f" (+{len(notable) - 1} more)" if len(notable) > 1 else ""
        return worst.message + more


class ProbeSkipped(Exception):
    """Raised by ``check`` (or ``skip_reason``) when the probe has nothing to look at here."""


@dataclass
class ProbeContext:
    """What a probe may read besides its settings: results of the probes it depends on."""

    results: dict[str, ProbeResult] = field(default_factory=dict)
    state_dir: str | None = None


class Probe:
    """Base of every probe. Subclasses set ``name``/``description`` and override ``check``.

    ``requires`` names probes whose results this one needs; when one of them did not come out
    usable, the runner marks this probe ``skipped`` with the reason, so that the root of a failure
    stays visible instead of being drowned by its consequences.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ()
    #: Probes to wait for without depending on them: their results are read when present.
    after: ClassVar[tuple[str, ...]] = ()
    #: How long the probe may take at most; the runner also caps it by the overall deadline.
    timeout_s: ClassVar[float] = 2.5

    def __init__(self, settings: Settings, context: ProbeContext | None = None) -> None:
        self.settings = settings
        self.context = context or ProbeContext()
        #: time.monotonic() by which the runner stops waiting; set by the runner before ``run``.
        self.deadline_at: float | None = None

    def remaining_s(self) -> float:
        """Seconds left before the runner gives up on this probe: probes that can trade thoroughness
        for time (more samples, longer waits) fit their work into it."""
        if self.deadline_at is None:
            return self.deadline_s()
        return max(0.0, self.deadline_at - time.monotonic())

    def skip_reason(self) -> str | None:
        """Why the probe does not apply on this terminal (nothing configured), or None to run it."""
        return None

    def deadline_s(self) -> float:
        """The probe's own deadline; overridden where it follows configuration."""
        return self.timeout_s

    def check(self, obs: Observation) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, obs: Observation | None = None) -> ProbeResult:
        """Run ``check`` and turn whatever happens into a result. Never raises."""
        obs = obs if obs is not None else Observation()
        started = time.monotonic()
        try:
            reason = self.skip_reason()
            if reason:
                raise ProbeSkipped(reason)
            self.check(obs)
        except ProbeSkipped as skipped:
            return skipped_result(self.name, str(skipped), time.monotonic() - started)
        except PermissionError as exc:
            obs.add("probe.permission_denied", Severity.INFO,
                    f"{self.name} lacks a permission it needs: {exc}", error=str(exc))
            return self._result(obs, started, Status.ERROR, f"could not run: permission denied ({exc})")
        except Exception as exc:  # noqa: BLE001 - containing probe bugs is the point
            obs.add("probe.crashed", Severity.INFO, f"{self.name} failed internally: {exc!r}",
                    error=repr(exc), traceback=traceback.format_exc(limit=4))
            return self._result(obs, started, Status.ERROR, f"could not run: {exc!r}")
        return self._result(obs, started, obs.status(), obs.summary or obs.default_summary())

    def _result(self, obs: Observation, started: float, status: Status, summary: str) -> ProbeResult:
        return ProbeResult(self.name, status, time.monotonic() - started, summary,
                           tuple(obs.findings), dict(obs.metrics))


def skipped_result(name: str, reason: str, duration_s: float = 0.0) -> ProbeResult:
    return ProbeResult(name, Status.SKIPPED, duration_s, reason,
                       (Finding("probe.skipped", Severity.INFO, reason),), {})


def timed_out_result(name: str, obs: Observation, waited_s: float) -> ProbeResult:
    """Result for a probe that missed its deadline: keep what it saw before it got stuck."""
    message = f"{name} did not finish within {waited_s:.2f} s and was abandoned"
    findings = tuple(obs.findings) + (
        Finding("probe.timeout", Severity.INFO, message, {"deadline_s": round(waited_s, 3)}),)
    return ProbeResult(name, Status.ERROR, waited_s, message, findings, dict(obs.metrics))
