"""TCP: connect to every payment host several times. Refused (RST: the host is there, the service
is not) is told apart from a timeout (packets vanish: WAN, firewall) and from an ICMP unreachable.
When nothing connects, two more things are looked at before the failure is named: whether the
terminal itself refuses to send to the host (EPERM on a datagram: its own packet filter), and whether
the host is on the terminal's own subnet (the store's LAN: no router or ISP on the way)."""

from __future__ import annotations

from collections import Counter

from posdiag.core.addresses import is_address
from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._netinfo import neighbour_state, on_link
from posdiag.probes.base import Observation, ProbeSkipped, Status, declare
from posdiag.probes.network import _known
from posdiag.probes.network._common import (
    CONNECTED,
    Connect,
    PaymentHostProbe,
    Target,
    addresses,
    clauses,
    connected_address,
    refused_here,
    report_per_target,
    rtt_stats,
    side_by_side,
    targets,
    tcp_connect,
)

STAGGER_S = 0.02
#: How a failed connect is named in a message (the data keeps the machine words).
_KIND_WORDS = {"refused": N_("refused"), "timeout": N_("timed out"), "unreachable": N_("unreachable"),
               "error": N_("failed otherwise")}


class TcpProbe(PaymentHostProbe):
    name = "network.tcp"
    description = N_("TCP connects to each payment host: connect time median/p95, refused vs timeout vs unreachable")
    findings = declare(fail=("tcp.blocked_locally", "tcp.error", "tcp.lan_host_silent", "tcp.refused", "tcp.timeout",
                             "tcp.unreachable"), warn=("tcp.unstable",),
                       info=("tcp.connected", "tcp.not_attempted"))
    requires = ("network.link",)
    needs = ("network.dns",)

    def deadline_s(self) -> float:
        net = self.settings.network
        return net.timeout_s + net.tcp_attempts * STAGGER_S + 0.5

    def check(self, obs: Observation) -> None:
        all_targets = targets(self.settings)
        plan = [(t, addresses(self.context, t)) for t in all_targets]
        reachable = [(t, addrs) for t, addrs in plan if addrs]
        for t, addrs in plan:
            if not addrs:
                obs.info("tcp.not_attempted", tr("{target}: not attempted, its name did not resolve", target=t.label),
                         host=t.host.host)
        if not reachable:
            raise ProbeSkipped(tr("no payment host name resolved"))
        outcomes = side_by_side(lambda ta: self.attempts(ta[1][0], ta[0].host.port), reachable)
        verdicts = {target.index: self.judge(obs, target, addrs[0], attempts)
                    for (target, addrs), attempts in zip(reachable, outcomes, strict=True)}
        report_per_target(obs, verdicts, all_targets)
        # Remember what worked: if the resolvers fall silent later, these tell DNS from the uplink.
        _known.remember(self.context.state_dir, {t.host.host: a for t in all_targets
                                                 if (a := connected_address(self.context, t)) and not is_address(t.host.host)})
        if obs.status() is Status.OK:
            obs.summary = clauses(f"{t.host.label} {obs.metrics.get(f'connect_median_ms[{t.host.label}]')} ms"
                                  for t, _ in reachable)

    def attempts(self, address: str, port: int) -> list[Connect]:
        net = self.settings.network
        return side_by_side(lambda _: tcp_connect(address, port, net.timeout_s), range(net.tcp_attempts), STAGGER_S)

    def judge(self, obs: Observation, target, address: str, attempts: list[Connect]) -> tuple[str, str, dict] | None:
        label = target.host.label
        kinds = Counter(a.kind for a in attempts)
        ok = [a.ms for a in attempts if a.kind == "ok"]
        obs.metric(f"connect_ok[{label}]", f"{len(ok)}/{len(attempts)}")
        data = {"address": address, "attempts": len(attempts), "outcomes": dict(kinds)}
        if ok:
            stats = rtt_stats(ok)
            obs.metric(f"connect_median_ms[{label}]", round(stats["median_ms"], 2))
            obs.metric(f"connect_p95_ms[{label}]", round(stats["p95_ms"], 2))
            self.context.connected[target.index] = address
            obs.info(CONNECTED, tr("{target}: connected to {address}:{port}", target=target.label, address=address,
                                   port=target.host.port), index=target.index,
                     address=address, median_ms=round(stats["median_ms"], 2))
            if len(ok) < len(attempts):
                obs.warn("tcp.unstable", ntr("{target}: {failed} of {n} connect failed ({kinds})",
                                             "{target}: {failed} of {n} connects failed ({kinds})", len(attempts),
                                             target=target.label, failed=len(attempts) - len(ok),
                                             kinds=", ".join(tr(_KIND_WORDS[k]) for k in kinds if k != "ok")),
                         host=target.host.host, role=target.role, **data)
            return None
        return self.failed(target, address, attempts, kinds, data)

    def failed(self, target: Target, address: str, attempts: list[Connect], kinds: Counter,
               data: dict) -> tuple[str, str, dict]:
        """No connect succeeded: say how, naming the address and port that failed."""
        port = target.host.port
        where = (target.label if f"{address}:{port}" in target.label
                 else tr("{target} at {address}:{port}", target=target.label, address=address, port=port))
        kind = next(k for k in ("refused", "unreachable", "timeout", "error") if kinds[k])
        refusal = refused_here(address, port)
        if refusal:
            return "tcp.blocked_locally", ntr(
                "{where}: {n} connect {kind}, and this terminal refuses to send anything to it ({error}): nothing "
                "for it leaves the terminal", "{where}: {n} connects {kind}, and this terminal refuses to send anything "
                "to it ({error}): nothing for it leaves the terminal", len(attempts), where=where,
                kind=tr(_KIND_WORDS[kind]), error=refusal), {**data, "error": refusal}
        if kind == "refused":
            return "tcp.refused", tr("{where} refuses connections (reset)", where=where), data
        if on_link(address):
            arp = tr("it answers ARP, but not TCP") if neighbour_state(address) == "complete" else tr("no ARP reply")
            return "tcp.lan_host_silent", ntr(
                "{where} is on the store's LAN (the terminal's own subnet) and does not answer: {arp}; {n} connect {kind}",
                "{where} is on the store's LAN (the terminal's own subnet) and does not answer: {arp}; {n} connects {kind}",
                len(attempts), where=where, arp=arp, kind=tr(_KIND_WORDS[kind])), data
        if kind == "unreachable":
            error = next(a.error for a in attempts if a.kind == "unreachable")
            return "tcp.unreachable", tr("{where} is unreachable ({error})", where=where, error=error), data
        if kind == "timeout":
            return "tcp.timeout", ntr("{where} does not answer: {n} connect timed out after {timeout:g} s",
                                      "{where} does not answer: {n} connects timed out after {timeout:g} s", len(attempts),
                                      where=where, timeout=self.settings.network.timeout_s), data
        error = next((a.error for a in attempts if a.error), "")
        return "tcp.error", tr("{where}: connect failed ({error})", where=where, error=error), data
