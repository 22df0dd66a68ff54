"""The probe contract: observe one area of the terminal, report typed findings, never decide a cause.

A probe subclasses :class:`Probe` and overrides :meth:`Probe.check`. :meth:`Probe.run` wraps it so
that nothing a probe does — raising, hanging, hitting a permission wall — can escape: the runner
always gets a :class:`ProbeResult`, and a broken probe shows up as status ``error`` with a finding
that says what happened instead of taking the diagnosis down with it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from posdiag.core.i18n import tr
from posdiag.core.vocabulary import Severity, Status

if TYPE_CHECKING:  # pragma: no cover - typing only
    from posdiag.core.settings import Settings


_SEVERITY_RANK = {Severity.INFO: 0, Severity.WARN: 1, Severity.FAIL: 2}


def declare(*, fail: tuple[str, ...] = (), warn: tuple[str, ...] = (), info: tuple[str, ...] = ()) -> Mapping[str, Severity]:
    """A probe's declared outputs: each finding code it may emit, with the worst severity it carries.

    ``causes.toml`` is held to these declarations by a test (every code it weighs is one a probe
    emits; every warn/fail code a probe emits points at a cause), so that a typo in the knowledge
    base or a new probe code nobody weighs fails the build instead of silently never matching.
    """
    declared: dict[str, Severity] = {}
    for severity, codes in ((Severity.INFO, info), (Severity.WARN, warn), (Severity.FAIL, fail)):
        declared.update(dict.fromkeys(codes, severity))
    return declared


#: Findings the framework itself adds to any probe's result (see :meth:`Probe.run`).
FRAMEWORK_FINDINGS: Mapping[str, Severity] = declare(
    info=("probe.skipped", "probe.permission_denied", "probe.crashed", "probe.timeout", "probe.still_stuck",
          "probe.could_not_check"))

#: When set, a file to which any finding that breaks its probe's declaration is appended, one line
#: each. The test suite sets it (child processes inherit it) and fails the run if anything is in it.
CONTRACT_LOG_ENV = "POSDIAG_CONTRACT_LOG"


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
        #: (probe name, declared codes) once the probe runs; None for a bare Observation in tests.
        self.declared: tuple[str, Mapping[str, Severity]] | None = None

    def add(self, code: str, severity: Severity | str, message: str, **data: Any) -> Finding:
        found = Finding(code, Severity(severity), message, data)
        if self.declared is not None:
            _check_declared(self.declared, found)
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
            return tr("no problem found")
        worst = max(notable, key=lambda f: _SEVERITY_RANK[f.severity])
        if len(notable) == 1:
            return worst.message
        return tr("{message} (+{more} more)", message=worst.message, more=len(notable) - 1)


def _check_declared(declared: tuple[str, Mapping[str, Severity]], found: Finding) -> None:
    """Record a finding its probe did not declare (or declared milder) where the tests can see it."""
    probe, codes = declared
    allowed = codes.get(found.code, FRAMEWORK_FINDINGS.get(found.code))
    if allowed is not None and _SEVERITY_RANK[found.severity] <= _SEVERITY_RANK[allowed]:
        return
    log = os.environ.get(CONTRACT_LOG_ENV)
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"{probe}\t{found.code}\t{found.severity.value}\tdeclared {allowed.value if allowed else 'nothing'}\n")


class ProbeSkipped(Exception):
    """Raised by ``check`` (or ``skip_reason``) when the probe has nothing to look at here."""


class CouldNotCheck(Exception):
    """Raised by ``check`` when what the probe must look at is there but may not be looked at now
    (a reader port another program holds): the result is ``error`` — not checked, never "fine" —
    with the reason as its summary and ``data`` (who holds it) in a ``probe.could_not_check`` finding."""

    def __init__(self, reason: str, **data: Any) -> None:
        super().__init__(reason)
        self.data = data


@dataclass(frozen=True)
class PastSweep:
    """One earlier sweep from the stored history, as the trends probe reads it."""

    started_at: float  # seconds since the epoch (UTC)
    #: probe name → (status, metrics) of that sweep
    probes: Mapping[str, tuple[str, Mapping[str, Any]]]


def _no_history(limit: int) -> list[PastSweep]:
    return []


@dataclass
class ProbeContext:
    """What a probe may read besides its settings. Probes pass data to the probes that depend on
    them through the typed values here, never by searching each other's findings for a code.

    The agent fills what only it knows (history from its store, the build date) so that probes
    depend on the settings types and nothing else of ``posdiag.agent``.
    """

    results: dict[str, ProbeResult] = field(default_factory=dict)
    state_dir: str | None = None
    #: Release date of the running build (seconds since the epoch): a clock earlier than it is wrong.
    build_epoch: float = 0.0
    #: ``history(n)``: the last ``n`` stored sweeps, oldest first (empty where nothing is stored).
    history: Callable[[int], Sequence[PastSweep]] = _no_history
    #: ``pos_starts()``: the POS process's start times the daemon saw between sweeps (empty where none).
    pos_starts: Callable[[], Sequence[float]] = tuple
    #: network.dns → dependants: payment host name → the addresses it resolved to.
    resolved: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: network.tcp → dependants: payment host index → the address a connect succeeded to.
    connected: dict[int, str] = field(default_factory=dict)
    _kernel: dict[tuple[str, bool], Any] = field(default_factory=dict, repr=False)
    _kernel_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def kernel_log(self, path: str, *, since_clear: bool = False) -> list[tuple[float, str]]:
        """The records of the kernel log at ``path`` (see :func:`posdiag.probes._kmsg.kernel_records`),
        read once per sweep however many probes look at them; its OSError is each asker's to handle."""
        from posdiag.probes._kmsg import kernel_records

        with self._kernel_lock:  # probes run side by side: the first reads, the others wait for it
            key = (path, since_clear)
            if key not in self._kernel:
                try:
                    self._kernel[key] = kernel_records(path, since_clear=since_clear)
                except OSError as exc:
                    self._kernel[key] = exc
            got = self._kernel[key]
        if isinstance(got, OSError):
            raise got
        return got


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
    #: Probes to wait for whose results this one reads to give its answer at all, though it does not
    #: require them to succeed (TCP connects to the addresses DNS resolved): a re-check of this probe
    #: (``--only``) runs them too, with its ``requires``.
    needs: ClassVar[tuple[str, ...]] = ()
    #: How long the probe may take at most; the runner also caps it by the overall deadline.
    timeout_s: ClassVar[float] = 2.5
    #: Every finding code the probe may emit and the worst severity it carries (see :func:`declare`).
    findings: ClassVar[Mapping[str, Severity]] = {}

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

    def host_path(self, path: str) -> str:
        """``path`` (/proc/…, /sys/…, /var/crash) under ``[system] host_root``: "/" on a till, a copy of
        the kernel's files in the tests."""
        return os.path.join(self.settings.system.host_root, path.lstrip("/"))

    def deadline_s(self) -> float:
        """The probe's own deadline; overridden where it follows configuration."""
        return self.timeout_s

    def check(self, obs: Observation) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def not_applicable(self) -> ProbeResult | None:
        """The skipped result of a probe that does not apply here, settled without running it (no thread
        is started for it); None to run it. A ``skip_reason`` that raises is left to :meth:`run`, which
        reports it as the probe's error."""
        try:
            reason = self.skip_reason()
        except Exception:  # noqa: BLE001 - run() contains it and says what happened
            return None
        return skipped_result(self.name, reason) if reason else None

    def run(self, obs: Observation | None = None) -> ProbeResult:
        """Run ``check`` and turn whatever happens into a result. Never raises."""
        obs = obs if obs is not None else Observation()
        obs.declared = (self.name, self.findings)
        started = time.monotonic()
        try:
            reason = self.skip_reason()
            if reason:
                raise ProbeSkipped(reason)
            self.check(obs)
        except ProbeSkipped as skipped:
            return skipped_result(self.name, str(skipped), time.monotonic() - started)
        except CouldNotCheck as blocked:
            obs.add("probe.could_not_check", Severity.INFO, str(blocked), **blocked.data)
            return self._result(obs, started, Status.ERROR, str(blocked))
        except Exception as exc:  # noqa: BLE001 - containing probe bugs is the point
            import traceback  # only a probe that crashed needs it

            if _is_permission_error(exc):
                obs.add("probe.permission_denied", Severity.INFO,
                        tr("{probe} lacks a permission it needs: {error}", probe=self.name, error=exc), error=str(exc))
                return self._result(obs, started, Status.ERROR,
                                    tr("could not run: permission denied ({error})", error=exc))
            obs.add("probe.crashed", Severity.INFO, tr("{probe} failed internally: {error!r}", probe=self.name, error=exc),
                    error=repr(exc), traceback=traceback.format_exc(limit=4))
            return self._result(obs, started, Status.ERROR, tr("could not run: {error!r}", error=exc))
        return self._result(obs, started, obs.status(), obs.summary or obs.default_summary())

    def _result(self, obs: Observation, started: float, status: Status, summary: str) -> ProbeResult:
        return ProbeResult(self.name, status, time.monotonic() - started, summary,
                           tuple(obs.findings), dict(obs.metrics))


def _is_permission_error(exc: BaseException) -> bool:
    """PermissionError, or psutil's AccessDenied (not an OSError) — recognised without importing
    psutil here: if psutil was never imported, no exception can be one of its own."""
    if isinstance(exc, PermissionError):
        return True
    psutil = sys.modules.get("psutil")
    return psutil is not None and isinstance(exc, psutil.AccessDenied)


def skipped_result(name: str, reason: str, duration_s: float = 0.0) -> ProbeResult:
    return ProbeResult(name, Status.SKIPPED, duration_s, reason,
                       (Finding("probe.skipped", Severity.INFO, reason),), {})


def timed_out_result(name: str, obs: Observation, waited_s: float) -> ProbeResult:
    """Result for a probe that missed its deadline: keep what it saw before it got stuck."""
    message = tr("{probe} did not finish within {waited_s:.2f} s and was abandoned", probe=name, waited_s=waited_s)
    findings = tuple(obs.findings) + (
        Finding("probe.timeout", Severity.INFO, message, {"deadline_s": round(waited_s, 3)}),)
    return ProbeResult(name, Status.ERROR, waited_s, message, findings, dict(obs.metrics))
