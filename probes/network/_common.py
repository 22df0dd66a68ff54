"""What the network layers share: the payment hosts as targets, addresses learnt by the DNS layer,
TCP connects classified by how they fail, and running a few blocking operations side by side."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from posdiag.core.addresses import is_address
from posdiag.core.i18n import tr
from posdiag.core.settings import PaymentHost, Settings
from posdiag.probes._netinfo import default_route, resolv_conf_servers
from posdiag.probes.base import Observation, Probe, ProbeContext, Severity
from posdiag.probes.gates import unconfigured

T = TypeVar("T")
R = TypeVar("R")

#: the info findings that show a technician what a lower layer found (the upper layers read the
#: same facts from ProbeContext.resolved and .connected)
RESOLVED = "dns.resolved"
CONNECTED = "tcp.connected"


class PaymentHostProbe(Probe):
    """Base of the probes that check the way to the payment hosts (link, gateway, DNS, TCP, TLS,
    path): they all have nothing to look at until a payment host is configured, and say so in one
    wording. A subclass narrows when it applies with :meth:`applies`."""

    def skip_reason(self) -> str | None:
        return unconfigured(self.name, self.settings) or self.applies()

    def applies(self) -> str | None:
        """Why this probe does not apply although payment hosts are configured, or None to run it."""
        return None


@dataclass(frozen=True)
class Target:
    index: int
    host: PaymentHost

    @property
    def role(self) -> str:
        """The role as data (``primary``, ``backup 1``): a machine value, the same in every language."""
        return "primary" if self.index == 0 else f"backup {self.index}"

    @property
    def label(self) -> str:
        """"acquirer-a (backup 1)", for a person; a host already named for its role is not named twice."""
        if self.host.label == self.role:
            return self.host.label
        if self.index == 0:
            return tr("{label} (primary)", label=self.host.label)
        return tr("{label} (backup {index})", label=self.host.label, index=self.index)


def targets(settings: Settings) -> list[Target]:
    return [Target(i, h) for i, h in enumerate(settings.payment_hosts)]


def gateway_address(settings: Settings) -> str | None:
    """The gateway to check: the configured address, else the default route's (None: on-link or none).
    Raises RoutesUnknown when it would come from a routing table that cannot be read."""
    gateway = settings.network.gateway
    if gateway == "auto":
        route = default_route()
        return route.gateway if route else None
    return None if gateway == "off" else gateway


def resolvers(settings: Settings) -> list[str]:
    """The configured DNS servers, or those of /etc/resolv.conf ("system")."""
    configured = settings.network.dns_servers
    return list(configured) if isinstance(configured, list) else resolv_conf_servers()


def addresses(context: ProbeContext, target: Target) -> list[str] | None:
    """Addresses to reach a target: the literal address, or what the DNS layer resolved (None: not)."""
    if is_address(target.host.host):
        return [target.host.host]
    resolved = context.resolved.get(target.host.host)
    return list(resolved) if resolved is not None else None


def connected_address(context: ProbeContext, target: Target) -> str | None:
    return context.connected.get(target.index)


@dataclass(frozen=True)
class Connect:
    """One TCP connect attempt: ``kind`` is ok, refused, timeout, unreachable or error."""

    kind: str
    ms: float
    error: str = ""


_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, getattr(errno, "EHOSTDOWN", -1), errno.EADDRNOTAVAIL}


def tcp_connect(address: str, port: int, timeout_s: float) -> Connect:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    started = time.monotonic()
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect((address, port))
        return Connect("ok", (time.monotonic() - started) * 1000)
    except TimeoutError:
        return Connect("timeout", (time.monotonic() - started) * 1000, tr("no answer within {timeout_s:g} s",
                                                                        timeout_s=timeout_s))
    except ConnectionRefusedError as exc:
        return Connect("refused", (time.monotonic() - started) * 1000, str(exc))
    except OSError as exc:
        kind = "unreachable" if exc.errno in _UNREACHABLE else "error"
        return Connect(kind, (time.monotonic() - started) * 1000, exc.strerror or str(exc))
    finally:
        sock.close()


def side_by_side(fn: Callable[[T], R], items: Iterable[T], stagger_s: float = 0.0) -> list[R]:
    """Run ``fn`` on every item in its own thread (optionally started ``stagger_s`` apart), in order."""
    items = list(items)
    out: list[R | None] = [None] * len(items)
    errors: list[BaseException] = []

    def work(i: int, item: T) -> None:
        try:
            out[i] = fn(item)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)

    threads = []
    for i, item in enumerate(items):
        if i and stagger_s:
            time.sleep(stagger_s)
        t = threading.Thread(target=work, args=(i, item), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return out  # type: ignore[return-value]


class Background(Generic[R]):
    """``fn()`` running in a daemon thread, so that a probe can start what separates rival
    explanations while the slow layer is still waiting, and collect both at the end."""

    def __init__(self, fn: Callable[[], R]) -> None:
        self._result: R | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], R]) -> None:
        try:
            self._result = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by result()
            self._error = exc

    def done_within(self, seconds: float) -> bool:
        self._thread.join(max(0.0, seconds))
        return not self._thread.is_alive()

    def result(self) -> R:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def rtt_stats(values: list[float]) -> dict[str, float]:
    """Median, p95 and jitter (mean absolute difference of consecutive samples, RFC 3550 style)."""
    import statistics  # here, not at the top: every diagnose loads this module, few measure a path

    jitter = statistics.mean(abs(a - b) for a, b in zip(values[:-1], values[1:], strict=True)) if len(values) > 1 else 0.0
    return {"median_ms": statistics.median(values), "p95_ms": percentile(values, 95), "jitter_ms": jitter}


def clauses(parts: Iterable[str]) -> str:
    """Clauses of one sentence, joined the way the language joins them ("; " in English, "；" in Chinese)."""
    # TRANSLATORS: the separator between clauses of one sentence (a semicolon and a space in English)
    return tr("; ").join(parts)


def report_per_target(obs: Observation, verdicts: dict[int, tuple[str, str, dict] | None], all_targets: list[Target],
                      also_healthy: Iterable[int] = ()) -> None:
    """Emit one finding per target whose verdict is a failure (code, message, data). A failed target
    is only a *warning* when another payment host works at this layer: the terminal fails over, so
    payments go on, degraded."""
    healthy = {i for i, v in verdicts.items() if v is None} | set(also_healthy)
    for index, verdict in verdicts.items():
        if verdict is None:
            continue
        code, message, data = verdict
        others_ok = sorted(healthy - {index})
        severity = Severity.WARN if others_ok else Severity.FAIL
        if others_ok:
            message = tr("{message}; {backup} works, so the terminal can fail over", message=message,
                         backup=all_targets[others_ok[0]].label)
        target = all_targets[index]
        obs.add(code, severity, message, host=target.host.host, port=target.host.port, role=target.role,
                failover_ok=bool(others_ok), **data)
