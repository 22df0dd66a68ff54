"""DNS: each payment host's name resolves through the configured (or system) resolvers. Tells apart
a name that does not exist (a configuration error) from a resolver that fails or is silent — and,
when the resolvers are silent, "only DNS fails" from "nothing beyond the gateway answers": while the
resolvers are still awaited it tries the payment hosts' last-known and fallback addresses and the
resolvers over TCP 53 (see ``_beyond``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from posdiag.core.addresses import is_address
from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._dnswire import TYPE_A, TYPE_AAAA, DnsAnswer, DnsTimeout, query, resolver_endpoint
from posdiag.probes._netinfo import RoutesUnknown
from posdiag.probes.base import Observation, ProbeSkipped, Status, declare
from posdiag.probes.network import _beyond
from posdiag.probes.network._common import (
    RESOLVED,
    Background,
    PaymentHostProbe,
    clauses,
    gateway_address,
    report_per_target,
    resolvers,
    side_by_side,
    targets,
)

SLOW_MS = 500.0
#: A resolver that has not answered by then is probably not going to: start the differential checks.
GRACE_S = 0.15
#: Questions per resolver within one timeout, asked side by side (the first answer counts).
TRIES = 3


@dataclass(frozen=True)
class Outcome:
    server: str
    answer: DnsAnswer | None
    error: str  # "timeout", "unreachable: …" when no answer came


class DnsProbe(PaymentHostProbe):
    name = "network.dns"
    description = N_("payment host names resolve via the configured resolvers: NXDOMAIN, SERVFAIL, silence, latency; "
                     "when silent, whether anything beyond the gateway answers")
    findings = declare(fail=("dns.beyond_silent", "dns.no_address", "dns.no_resolver", "dns.nxdomain", "dns.refused",
                             "dns.servfail", "dns.timeout", "dns.unreachable"),
                       warn=("dns.beyond_reachable", "dns.resolver_failing", "dns.slow"),
                       info=("dns.resolved", "dns.tcp_silent"))
    requires = ("network.link",)

    def applies(self) -> str | None:
        if all(is_address(h.host) for h in self.settings.payment_hosts):
            return tr("payment hosts are configured as IP addresses")
        return None

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s + 0.5

    def check(self, obs: Observation) -> None:
        servers = resolvers(self.settings)
        if not servers:
            obs.fail("dns.no_resolver", tr("no DNS resolver configured (empty /etc/resolv.conf)"))
            return
        obs.metric("resolvers", ", ".join(servers))
        all_targets = targets(self.settings)
        named = [t for t in all_targets if not is_address(t.host.host)]
        if not named:
            raise ProbeSkipped(tr("payment hosts are configured as IP addresses"))
        names = sorted({t.host.host for t in named})
        started = time.monotonic()
        asking = Background(lambda: side_by_side(lambda n: self.resolve(n, servers), names))
        checks = None
        if not asking.done_within(GRACE_S):  # waited for only when the resolvers stay silent
            checks = Background(lambda: self.beyond(servers, started + self.settings.network.timeout_s))
        outcomes = dict(zip(names, asking.result(), strict=True))
        verdicts = {t.index: self.judge(obs, t.host.host, outcomes[t.host.host]) for t in named}
        report_per_target(obs, verdicts, all_targets, {t.index for t in all_targets if is_address(t.host.host)})
        if checks is not None and any(v and v[0] in ("dns.timeout", "dns.unreachable") for v in verdicts.values()):
            self.differential(obs, checks.result())
        if obs.status() is Status.OK:
            obs.summary = ntr("{n} name resolved via {servers}", "{n} names resolved via {servers}", len(names),
                              servers=", ".join(servers))

    def beyond(self, servers: list[str], deadline: float) -> list[_beyond.Tried]:
        try:
            gateway = gateway_address(self.settings)
        except RoutesUnknown:  # which address is the gateway is unknown: none is left out as the gateway
            gateway = None
        addresses = [resolver_endpoint(server)[0] for server in servers]
        hops = _beyond.hops([a for a in addresses if a != gateway], self.settings.network.icmp)
        return _beyond.try_all(_beyond.candidates(self.settings, self.context, servers, gateway, with_resolved=False) + hops,
                               deadline, gateway)

    def differential(self, obs: Observation, tried: list[_beyond.Tried]) -> None:
        """Say whether the silence is DNS's alone or everything's beyond the gateway."""
        answered = [t for t in tried if t.answered]
        telling = _beyond.most_telling_silence(tried)
        data = {"tried": {f"{t.beyond.kind} {t.beyond.address}:{t.beyond.port}": t.outcome.kind for t in tried}}
        if answered:
            obs.warn("dns.beyond_reachable", tr("the resolvers are silent, but beyond the gateway {reached}",
                                                reached=_beyond.summary(answered)),
                     reached=answered[0].describe(), **data)
        elif telling:
            obs.fail("dns.beyond_silent", tr("nothing beyond the gateway answers: {tried}", tried=_beyond.summary(tried)),
                     silent_check=telling.describe(also=telling.beyond.kind == "host"), **data)
        elif tried:
            obs.info("dns.tcp_silent", tr("{tried}; nothing else beyond the gateway to try: no last-known or fallback "
                                          "address of a payment host, and no ICMP (see fallback_addresses)",
                                          tried=_beyond.summary(tried)), **data)

    def resolve(self, name: str, servers: list[str]) -> list[Outcome]:
        timeout = self.settings.network.timeout_s

        def ask(server: str) -> Outcome:
            try:
                answer = query(server, name, TYPE_A, timeout, resend_after_s=timeout / TRIES)
                if answer.rcode == "NOERROR" and not answer.addresses:
                    answer = query(server, name, TYPE_AAAA, timeout, resend_after_s=timeout / TRIES)
                return Outcome(server, answer, "")
            except DnsTimeout:
                return Outcome(server, None, "timeout")
            except OSError as exc:
                return Outcome(server, None, f"unreachable: {exc.strerror or exc}")

        return side_by_side(ask, servers)

    def judge(self, obs: Observation, name: str, outcomes: list[Outcome]) -> tuple[str, str, dict] | None:
        """Record what the resolvers said about ``name``; return a failure (code, message, data) or None."""
        good = [o for o in outcomes if o.answer and o.answer.rcode == "NOERROR" and o.answer.addresses]
        for o in outcomes:
            if o.answer:
                obs.metric(f"dns_ms[{name}@{o.server}]", round(o.answer.elapsed_ms, 2))
        if good:
            self.resolved(obs, name, outcomes, good)
            return None
        rcodes = {o.answer.rcode for o in outcomes if o.answer}
        detail = {"name": name, "resolvers": {o.server: o.error or o.answer.rcode for o in outcomes}}  # type: ignore
        if "NXDOMAIN" in rcodes:
            return "dns.nxdomain", tr("{name} does not exist (NXDOMAIN): check the configured host name", name=name), detail
        if "NOERROR" in rcodes:
            return "dns.no_address", tr("{name} exists but has no address record", name=name), detail
        if "SERVFAIL" in rcodes:
            return "dns.servfail", tr("resolver failed for {name} (SERVFAIL)", name=name), detail
        if rcodes:
            return "dns.refused", tr("resolver refused to answer for {name} ({rcodes})", name=name,
                                     rcodes=", ".join(sorted(rcodes))), detail
        if all(o.error == "timeout" for o in outcomes):
            return "dns.timeout", tr("no resolver answered for {name} within {timeout:g} s ({tries} tries)", name=name,
                                     timeout=self.settings.network.timeout_s, tries=TRIES), detail
        error = next(o.error for o in outcomes if o.error != "timeout")  # "unreachable: <the OS's words>"
        return "dns.unreachable", tr("resolvers unreachable for {name} ({error})", name=name,
                                     error=error.removeprefix("unreachable: ")), detail

    def resolved(self, obs: Observation, name: str, outcomes: list[Outcome], good: list[Outcome]) -> None:
        best = min(good, key=lambda o: o.answer.elapsed_ms)  # type: ignore[union-attr]
        assert best.answer is not None
        self.context.resolved[name] = tuple(best.answer.addresses)
        obs.info(RESOLVED, tr("{name} → {addresses} via {server} in {ms:.0f} ms", name=name,
                              addresses=", ".join(best.answer.addresses), server=best.server, ms=best.answer.elapsed_ms),
                 name=name, addresses=list(best.answer.addresses), server=best.server, ms=round(best.answer.elapsed_ms, 2))
        if best.answer.elapsed_ms > SLOW_MS:
            obs.warn("dns.slow", tr("resolving {name} took {ms:.0f} ms", name=name, ms=best.answer.elapsed_ms), name=name,
                     ms=round(best.answer.elapsed_ms, 1))
        bad = [o for o in outcomes if o not in good]
        if bad:
            what = clauses(f"{o.server}: {o.error or o.answer.rcode}" for o in bad)  # type: ignore[union-attr]
            obs.warn("dns.resolver_failing", tr("some resolvers fail for {name} ({what})", name=name, what=what),
                     name=name, failing=[o.server for o in bad])
