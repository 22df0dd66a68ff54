"""TCP: connect to every payment host several times. Refused (RST: the host is there, the service
is not) is told apart from a timeout (packets vanish: WAN, firewall) and from an ICMP unreachable.
When nothing connects, two more things are looked at before the failure is named: whether the
connects left the terminal at all (:mod:`._egress`: a datagram's send refused with EPERM, or
connects with a TTL of 1 that never got as far as the first router), and whether the host is on
the terminal's own subnet (the store's LAN: no router or ISP on the way)."""

from __future__ import annotations

from collections import Counter

from posdiag.core.addresses import is_address
from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._netinfo import neighbour_state, on_link, routed_via_gateway
from posdiag.probes.base import Observation, ProbeSkipped, Status, declare
from posdiag.probes.network import _egress, _known
from posdiag.probes.network._common import (
    CONNECTED,
    Connect,
    PaymentHostProbe,
    Target,
    addresses,
    clauses,
    connected_address,
    report_per_target,
    rtt_stats,
    side_by_side,
    targets,
    tcp_connect,
)

STAGGER_S = 0.02
#: The most the one-hop check (:mod:`._egress`) waits for the first router's "time exceeded": a
#: router on the store's LAN answers within milliseconds.
EGRESS_WAIT_S = 0.3
#: How a failed connect is named in a message (the data keeps the machine words).
_KIND_WORDS = {"refused": N_("refused"), "timeout": N_("timed out"), "unreachable": N_("unreachable"),
               "error": N_("failed otherwise")}


class TcpProbe(PaymentHostProbe):
    name = "network.tcp"
    description = N_("TCP connects to each payment host: connect time median/p95, refused vs timeout vs unreachable")
    findings = declare(fail=("tcp.answered_locally", "tcp.blocked_locally", "tcp.dropped_locally", "tcp.error",
                             "tcp.lan_host_silent", "tcp.refused", "tcp.timeout", "tcp.unreachable"), warn=("tcp.unstable",),
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
        stops = side_by_side(self.stopped_here, [(target.host.port, addrs[0], attempts)
                                                 for (target, addrs), attempts in zip(reachable, outcomes, strict=True)])
        verdicts = {target.index: self.judge(obs, target, addrs[0], attempts, stop)
                    for (target, addrs), attempts, stop in zip(reachable, outcomes, stops, strict=True)}
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

    def stopped_here(self, plan: tuple[int, str, list[Connect]]) -> _egress.Stopped | None:
        """When no connect succeeded: did they leave this terminal at all? (Only then: a sweep that
        connects sends nothing more.)"""
        port, address, attempts = plan
        if any(a.kind == "ok" for a in attempts):
            return None
        wait_s = min(EGRESS_WAIT_S, max(0.0, self.remaining_s() - 0.1))
        return _egress.stopped_here(address, port, wait_s, via_router=routed_via_gateway(address))

    def judge(self, obs: Observation, target, address: str, attempts: list[Connect],
              stop: _egress.Stopped | None) -> tuple[str, str, dict] | None:
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
        return self.failed(target, address, attempts, kinds, data, stop)

    def failed(self, target: Target, address: str, attempts: list[Connect], kinds: Counter,
               data: dict, stop: _egress.Stopped | None) -> tuple[str, str, dict]:
        """No connect succeeded: say how, naming the address and port that failed."""
        port = target.host.port
        where = (target.label if f"{address}:{port}" in target.label
                 else tr("{target} at {address}:{port}", target=target.label, address=address, port=port))
        kind = next(k for k in ("refused", "unreachable", "timeout", "error") if kinds[k])
        if stop:
            return stopped(stop, where, len(attempts), kind, data)
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


def stopped(stop: _egress.Stopped, where: str, n: int, kind: str, data: dict) -> tuple[str, str, dict]:
    """The finding for connects that did not leave this terminal: what showed it, in its words."""
    kind_words = tr(_KIND_WORDS[kind])
    if stop.sign == "send_refused":
        return "tcp.blocked_locally", ntr(
            "{where}: {n} connect {kind}, and this terminal refuses to send anything to it ({error}): nothing "
            "for it leaves the terminal", "{where}: {n} connects {kind}, and this terminal refuses to send anything "
            "to it ({error}): nothing for it leaves the terminal", n, where=where, kind=kind_words,
            error=stop.error), {**data, "error": stop.error}
    one_hop = {"first_hop": stop.first_hop}
    if stop.sign == "answered":
        return "tcp.answered_locally", ntr(
            "{where}: {n} connect {kind}, answered from inside this terminal: a connect that can go no "
            "further than the first router ({first_hop}) gets the same answer at once, while a datagram to the same "
            "host reaches that router, which answers it with 'time exceeded'",
            "{where}: {n} connects {kind}, answered from inside this terminal: a connect that can go no "
            "further than the first router ({first_hop}) gets the same answer at once, while a datagram to the same "
            "host reaches that router, which answers it with 'time exceeded'", n, where=where, kind=kind_words,
            first_hop=stop.first_hop), {**data, **one_hop, "answer": stop.answer, "error": stop.error}
    return "tcp.dropped_locally", ntr(
        "{where}: {n} connect {kind}, and connects to it do not leave this terminal: sent to go no further than the "
        "first router ({first_hop}), they draw no answer from it, while a datagram to the same host reaches that "
        "router, which answers it with 'time exceeded'",
        "{where}: {n} connects {kind}, and connects to it do not leave this terminal: sent to go no further than the "
        "first router ({first_hop}), they draw no answer from it, while a datagram to the same host reaches that "
        "router, which answers it with 'time exceeded'", n, where=where, kind=kind_words,
        first_hop=stop.first_hop), {**data, **one_hop}
