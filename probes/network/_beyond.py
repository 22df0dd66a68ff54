"""Does anything beyond the gateway answer? The question that separates rival explanations.

Silent resolvers may mean that only DNS fails, or that nothing passes the store's uplink at all; a
gateway that ignores pings may be alive and forwarding, or dead above layer 2. What tells them apart
is whether something *beyond* the gateway still answers: the payment hosts at the addresses they
had when things worked (``_known``), their configured fallback addresses, the resolvers themselves
over TCP port 53, the backup host, and — needing no known address at all — the next router on the
way to a resolver, which answers an echo sent with TTL 2 by "time exceeded". Any answer, even a
reset, proves the way out works.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from posdiag.core.addresses import is_address
from posdiag.core.i18n import N_, tr
from posdiag.core.settings import Settings
from posdiag.probes._dnswire import resolver_endpoint
from posdiag.probes._netinfo import routed_via_gateway
from posdiag.probes.base import ProbeContext
from posdiag.probes.network import _known
from posdiag.probes.network._common import Connect, clauses, side_by_side, targets, tcp_connect
from posdiag.probes.network._icmp import first_hop_beyond

#: At most this many addresses are tried: enough to rule a rival out, few enough to stay light.
MAX_TRIED = 8
#: What a check found, by outcome kind: "{what}" names the address tried (``Beyond.what``). The
#: ``also`` forms repeat a silence the reader has already met (the resolvers' own).
_OUTCOMES = {"ok": N_("{what} accepts connections"), "refused": N_("{what} answers (reset)"),
             "timeout": N_("{what} times out"), "unreachable": N_("{what} is unreachable")}
_OUTCOMES_ALSO = {"timeout": N_("{what} times out as well"), "unreachable": N_("{what} is unreachable as well")}
_FAILS = N_("{what} fails ({error})")
_FAILS_ALSO = N_("{what} fails ({error}) as well")


@dataclass(frozen=True)
class Beyond:
    """One address beyond the gateway and why it is worth trying (``what``, for a person, in the
    process's language: it ends up in messages and in the sentences of causes.toml's [ruled_out])."""

    address: str
    port: int
    what: str
    #: "host" (a payment host's address), "resolver" (a DNS server over TCP 53) or "hop" (the first
    #: router beyond the gateway on the way to ``address``: echoes with TTL 2)
    kind: str = "host"


@dataclass(frozen=True)
class Tried:
    beyond: Beyond
    outcome: Connect

    @property
    def answered(self) -> bool:
        """A connection or a reset: either way a packet came back from beyond the gateway."""
        return self.outcome.kind in ("ok", "refused")

    def describe(self, also: bool = False) -> str:
        """What this check found, as a clause for a person; ``also`` when it repeats a silence
        already said (a payment host silent like the resolvers)."""
        address, error = self.beyond.address, self.outcome.error
        if self.beyond.kind == "hop":
            if not self.answered:
                return tr("not even the next router beyond the gateway answers (echoes with TTL 2 toward {address})",
                          address=address)
            return tr("the next hop beyond the gateway toward {address} answers ({error})", address=address, error=error)
        kind = self.outcome.kind
        template = (_OUTCOMES_ALSO if also else _OUTCOMES).get(kind)
        if template is None:
            return tr(_FAILS_ALSO if also else _FAILS, what=self.beyond.what, error=error)
        return tr(template, what=self.beyond.what)


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
        label, port = target.label, host.port
        if is_address(host.host):
            found.append(Beyond(host.host, port, tr("{target} at {address}:{port}", target=label, address=host.host,
                                                    port=port)))
        if with_resolved:
            found += [Beyond(a, port, tr("{target} at {address}:{port}", target=label, address=a, port=port))
                      for a in context.resolved.get(host.host, ())]
        found += [Beyond(a, port, tr("the last-known address {address} of {host}", address=a, host=host.host))
                  for a in known.get(host.host, ())]
        found += [Beyond(a, port, tr("the fallback address {address} of {target}", address=a, target=label))
                  for a in host.fallback_addresses]
    for server in resolvers:
        address, port = resolver_endpoint(server)
        found.append(Beyond(address, port, tr("resolver {address} over TCP {port}", address=address, port=port), "resolver"))
    unique: dict[tuple[str, int], Beyond] = {}
    for b in found:
        if b.address != gateway and not _local(b.address):
            unique.setdefault((b.address, b.port), b)
    return list(unique.values())[:MAX_TRIED]


def hops(addresses: list[str], icmp: bool) -> list[Beyond]:
    """Hop checks toward the addresses that are routed through the gateway (IPv4, when ICMP is allowed)."""
    if not icmp:
        return []
    return [Beyond(a, 0, tr("hop 2 toward {address}", address=a), "hop") for a in addresses
            if ":" not in a and not _local(a) and routed_via_gateway(a)][:2]


def try_all(beyond: list[Beyond], deadline: float, gateway: str | None = None) -> list[Tried]:
    """Try every address side by side (TCP connects; TTL-2 echoes for hops), each until ``deadline``.
    A hop check that ICMP permissions forbid is left out of the result."""
    timeout = max(0.1, deadline - time.monotonic())
    outcomes = side_by_side(lambda b: _hop(b.address, deadline, gateway) if b.kind == "hop"
                            else tcp_connect(b.address, b.port, timeout), beyond)
    return [Tried(b, o) for b, o in zip(beyond, outcomes, strict=True) if o is not None]


def _hop(address: str, deadline: float, gateway: str | None) -> Connect | None:
    started = time.monotonic()
    try:
        who = first_hop_beyond(address, deadline)
    except PermissionError:
        return None
    ms = (time.monotonic() - started) * 1000
    if who is None or who == gateway:  # the gateway itself refusing is not "beyond" answering
        return Connect("timeout", ms, tr("answered by the gateway {address}", address=who) if who else "")
    return Connect("ok", ms, tr("from {address}", address=who))


def summary(tried: list[Tried]) -> str:
    return clauses(t.describe() for t in tried)


def most_telling_silence(tried: list[Tried]) -> Tried | None:
    """The most telling silent check: a payment host's own address before the next hop."""
    silent = [t for t in tried if not t.answered and t.beyond.kind in ("host", "hop")]
    return min(silent, key=lambda t: t.beyond.kind != "host", default=None)
