"""Does anything beyond the gateway answer? The question that separates rival explanations.

Silent resolvers may mean that only DNS fails, or that nothing passes the store's uplink at all; a
gateway that ignores pings may be alive and forwarding, or dead above layer 2. What tells them apart
is whether something *beyond* the gateway still answers: the payment hosts at the addresses they
had when things worked (``_known``), their configured fallback addresses, the resolvers themselves
over TCP port 53, the backup host. Any answer, even a reset, proves the way out works.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from posdiag.agent.config import Settings
from posdiag.probes._netinfo import is_address
from posdiag.probes.base import ProbeContext
from posdiag.probes.network import _known
from posdiag.probes.network._common import Connect, side_by_side, targets, tcp_connect

#: At most this many addresses are tried: enough to rule a rival out, few enough to stay light.
MAX_TRIED = 8


@dataclass(frozen=True)
class Beyond:
    """One address beyond the gateway and why it is worth trying (``what``, for a person)."""

    address: str
    port: int
    what: str
    #: "host" (a payment host's address) or "resolver" (a DNS server over TCP 53)
    kind: str = "host"


@dataclass(frozen=True)
class Tried:
    beyond: Beyond
    outcome: Connect

    @property
    def answered(self) -> bool:
        """A connection or a reset: either way a packet came back from beyond the gateway."""
        return self.outcome.kind in ("ok", "refused")

    def describe(self) -> str:
        verb = {"ok": "accepts connections", "refused": "answers (reset)", "timeout": "times out",
                "unreachable": "is unreachable"}.get(self.outcome.kind, f"fails ({self.outcome.error})")
        return f"{self.beyond.what} {verb}"


def _local(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return ip.is_loopback or ip.is_link_local or ip.is_unspecified


def candidates(settings: Settings, context: ProbeContext, resolvers: list[str], gateway: str | None = None,
               with_resolved: bool = True) -> list[Beyond]:
    """Addresses beyond the gateway, most telling first: the payment hosts (literal, resolved,
    last-known, fallback), then the resolvers over TCP 53. The gateway itself and loopback are left out."""
    known = _known.load(context.state_dir)
    found: list[Beyond] = []
    for target in targets(settings):
        host = target.host
        if is_address(host.host):
            found.append(Beyond(host.host, host.port, f"{target.label} at {host.host}:{host.port}"))
        if with_resolved:
            found += [Beyond(a, host.port, f"{target.label} at {a}:{host.port}") for a in context.resolved.get(host.host, ())]
        found += [Beyond(a, host.port, f"the last-known address {a} of {host.host}") for a in known.get(host.host, ())]
        found += [Beyond(a, host.port, f"the fallback address {a} of {target.label}") for a in host.fallback_addresses]
    for server in resolvers:
        address = server.rsplit("#", 1)[0]
        found.append(Beyond(address, 53, f"resolver {address} over TCP 53", "resolver"))
    unique: dict[tuple[str, int], Beyond] = {}
    for b in found:
        if b.address != gateway and not _local(b.address):
            unique.setdefault((b.address, b.port), b)
    return list(unique.values())[:MAX_TRIED]


def try_all(beyond: list[Beyond], deadline: float) -> list[Tried]:
    """Connect to every address side by side, each given the time left until ``deadline``."""
    timeout = max(0.1, deadline - time.monotonic())
    outcomes = side_by_side(lambda b: tcp_connect(b.address, b.port, timeout), beyond)
    return [Tried(b, o) for b, o in zip(beyond, outcomes, strict=True)]


def summary(tried: list[Tried]) -> str:
    return "; ".join(t.describe() for t in tried)
