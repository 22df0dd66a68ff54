"""Path quality to the payment hosts: loss, median, p95 and jitter, and whether large packets pass.

Runs as soon as the addresses are known, side by side with the TCP probe, and measures even when
every connect fails, so that a lossy path is never read as a dead one: at least
:data:`MIN_SAMPLES` probes, ICMP echoes where permitted and answered, TCP handshakes otherwise (a
reset counts as an answer: the host is there). Beside the small echoes go Don't-Fragment echoes of
growing size: small ones answered and large ones vanishing is a path-MTU black hole, which stalls
TLS although TCP connects. ICMP blocked while TCP answers is not a fault — no finding here rests on
ICMP alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._netinfo import on_link
from posdiag.probes.base import Observation, ProbeSkipped, Status, declare
from posdiag.probes.network._common import (
    Background,
    PaymentHostProbe,
    Target,
    addresses,
    report_per_target,
    rtt_stats,
    side_by_side,
    targets,
    tcp_connect,
)
from posdiag.probes.network._icmp import TOO_BIG, SendRefused, echo_batch

#: Never fewer probes than this when judging loss: at 70 % round-trip loss, all of them are lost by
#: chance with a probability of 0.7^24 ≈ 2e-4, so a lossy path is not taken for a dead one.
MIN_SAMPLES = 24
#: Probes are sent spread over this long, then all wait for one shared deadline.
SPREAD_S = 0.2
#: Without an ICMP answer by then, TCP handshakes are sampled too.
GRACE_S = 0.25
#: IP packet sizes of the Don't-Fragment echoes (3 of each): minimum MTU, VPN/4G, IPv6 minimum, PPPoE, Ethernet.
MTU_SIZES = (576, 1000, 1280, 1400, 1500)
MTU_REPEAT = 3
SMALL = 64
_ICMP_UNAVAILABLE = N_("ICMP not permitted ({error}): measuring with TCP handshakes")


@dataclass
class Samples:
    method: str
    rtts: list[float | None]
    icmp_sent: int = 0
    tcp_sent: int = 0
    #: echo size → outcomes (ms, None lost, TOO_BIG refused by the kernel) of the DF echoes
    sizes: dict[int, list[float | None]] = field(default_factory=dict)
    #: the terminal itself refused to send the echoes (its words), and no TCP handshake got through
    refused_here: str = ""

    @property
    def answered(self) -> list[float]:
        return [s for s in self.rtts if s is not None]


class PathProbe(PaymentHostProbe):
    name = "network.path"
    description = N_("loss, latency median/p95 and jitter to the payment hosts (ICMP where allowed, else TCP handshakes), "
                     "and path MTU (Don't-Fragment echoes)")
    # path.mtu_black_hole is a warning: vanishing echoes are ICMP alone (a firewall may drop large
    # ones); the fault rests on the TCP-based tls.large_replies_lost, which it corroborates.
    findings = declare(fail=("path.blocked_locally", "path.lan_host_silent", "path.latency_high", "path.loss_high",
                             "path.no_answer"),
                       warn=("path.jitter_high", "path.mtu_black_hole"),
                       info=("path.icmp_blocked", "path.icmp_unavailable", "path.loss", "path.mtu_signalled"))
    requires = ("network.link",)
    needs = ("network.dns",)

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s + SPREAD_S + 0.5

    def check(self, obs: Observation) -> None:
        plan = {}
        for t in targets(self.settings):
            addrs = addresses(self.context, t)
            if addrs and addrs[0] not in {a for _, a in plan.values()}:
                plan[t.index] = (t, addrs[0])
        if not plan:
            raise ProbeSkipped(tr("no payment host address to measure: no name resolved"))
        deadline = time.monotonic() + max(0.1, min(self.settings.network.timeout_s, self.remaining_s() - 0.2))
        measured = dict(zip(plan, side_by_side(lambda ta: self.sample(obs, ta[0], ta[1], deadline), plan.values()),
                            strict=True))
        verdicts = {i: self.no_answer(plan[i], s) for i, s in measured.items()}
        report_per_target(obs, verdicts, targets(self.settings))
        first = next((i for i, s in measured.items() if s.answered), None)
        if first is not None:
            self.judge(obs, *plan[first], measured[first])

    def sample(self, obs: Observation, target: Target, address: str, deadline: float) -> Samples:
        net = self.settings.network
        count = max(net.ping_count, MIN_SAMPLES)
        sizes = [SMALL] * count + [s for s in MTU_SIZES for _ in range(MTU_REPEAT)]
        heard = threading.Event()
        echoes = None
        if net.icmp and ":" not in address:  # the echo socket here is IPv4; IPv6 paths use TCP handshakes
            echoes = Background(lambda: echo_batch(address, sizes, deadline, SPREAD_S, first_reply=heard))
            grace_end = time.monotonic() + GRACE_S
            while not heard.wait(0.01) and time.monotonic() < grace_end and not echoes.done_within(0):
                pass
        if heard.is_set():
            return self.from_icmp(obs, echoes, sizes, count)
        port = target.host.port
        tcp = Background(lambda: side_by_side(lambda _: tcp_connect(address, port, max(0.05, deadline - time.monotonic())),
                                              range(count), SPREAD_S / count))
        connects = tcp.result()
        refusal = _refused_here(echoes)
        if refusal and not any(c.kind == "ok" for c in connects):  # a reset then comes from inside the terminal
            return Samples("tcp", [None] * count, tcp_sent=count, refused_here=refusal)
        tcp_rtts = [c.ms if c.kind in ("ok", "refused") else None for c in connects]
        if not heard.is_set() and any(r is not None for r in tcp_rtts):
            # TCP answers and ICMP has not: measure with TCP, without waiting for the echoes' deadline.
            sent = self.icmp_silent(obs, address, echoes, count)
            return Samples("tcp", tcp_rtts, icmp_sent=sent, tcp_sent=count)
        icmp = self.from_icmp(obs, echoes, sizes, count)
        return icmp if icmp.answered else Samples("tcp", tcp_rtts, icmp_sent=icmp.icmp_sent, tcp_sent=count)

    @staticmethod
    def from_icmp(obs: Observation, echoes: Background | None, sizes: list[int], count: int) -> Samples:
        """The echoes' outcome: small ones for loss and latency, the rest by size for the MTU check."""
        if echoes is None:
            return Samples("icmp", [])
        try:
            rtts = echoes.result()
        except PermissionError as exc:
            obs.info("path.icmp_unavailable", tr(_ICMP_UNAVAILABLE, error=exc.strerror))
            return Samples("icmp", [])
        except SendRefused:  # ICMP alone refused (a rule for echoes only) while TCP gets through: no finding
            return Samples("icmp", [])
        return Samples("icmp", rtts[:count], icmp_sent=count, sizes=_by_size(sizes[count:], rtts[count:]))

    @staticmethod
    def icmp_silent(obs: Observation, address: str, echoes: Background | None, count: int) -> int:
        """Say why ICMP gave nothing (not permitted, or not answered); the number of echoes sent."""
        if echoes is None:
            return 0
        if echoes.done_within(0):
            try:
                echoes.result()
            except PermissionError as exc:
                obs.info("path.icmp_unavailable", tr(_ICMP_UNAVAILABLE, error=exc.strerror))
                return 0
            except SendRefused:
                return 0
        obs.info("path.icmp_blocked", tr("{address} does not answer ICMP while TCP does: measured with TCP "
                                         "handshakes", address=address))
        return count

    @staticmethod
    def no_answer(plan: tuple[Target, str], samples: Samples) -> tuple[str, str, dict] | None:
        """Nothing answered. Said only when echoes went out too (or could not leave the terminal at
        all): silent TCP handshakes alone are what the TCP probe already reports for the same host,
        and one observation is one piece of evidence. A host on the terminal's own subnet that answers
        nothing is silent on the store's LAN, with no router or ISP on the way."""
        if samples.answered or not (samples.icmp_sent or samples.refused_here):
            return None
        target, address = plan
        data = {"address": address, "icmp_sent": samples.icmp_sent, "tcp_sent": samples.tcp_sent}
        handshakes = ntr("{n} TCP handshake", "{n} TCP handshakes", samples.tcp_sent)
        if samples.refused_here:
            return "path.blocked_locally", tr(
                "nothing on the path to {target} ({address}) can leave this terminal: it refuses to send echoes there "
                "({error}), and {handshakes} went unanswered by the host", target=target.label, address=address,
                error=samples.refused_here, handshakes=handshakes), {**data, "error": samples.refused_here}
        sent = ntr("{n} echo", "{n} echoes", samples.icmp_sent)
        if samples.tcp_sent:
            sent = tr("{echoes} and {handshakes}", echoes=sent, handshakes=handshakes)
        if on_link(address):
            return "path.lan_host_silent", tr("{target} ({address}) is on the store's LAN and answers nothing: {sent} lost",
                                              target=target.label, address=address, sent=sent), data
        return "path.no_answer", tr("nothing on the path to {target} ({address}) answers: {sent} lost", target=target.label,
                                    address=address, sent=sent), data

    def judge(self, obs: Observation, target: Target, address: str, samples: Samples) -> None:
        net = self.settings.network
        rtts, answered = samples.rtts, samples.answered
        method = samples.method
        obs.metric("target", f"{target.host.label} ({address})")
        obs.metric("method", method)
        loss = 100 * (len(rtts) - len(answered)) / len(rtts)
        obs.metric("loss_percent", round(loss, 1))
        obs.metric("samples", len(rtts))
        where = tr("path to {target} ({method})", target=target.label, method=method)
        if loss >= net.max_loss_percent:
            obs.fail("path.loss_high", ntr("{where}: {loss:.0f}% of {n} probe lost", "{where}: {loss:.0f}% of {n} probes lost",
                                           len(rtts), where=where, loss=loss), loss_percent=round(loss, 1),
                     method=method, sent=len(rtts), answered=len(answered), address=address)
        elif loss > 0:
            obs.info("path.loss", tr("{where}: {loss:.0f}% lost", where=where, loss=loss), loss_percent=round(loss, 1))
        self.latency(obs, where, answered)
        if samples.sizes and loss < net.max_loss_percent:
            self.mtu(obs, target, address, samples.sizes)
        if obs.status() is Status.OK:
            stats = rtt_stats(answered)
            obs.summary = tr("{method}: loss {loss:.0f}%, median {median_ms:.1f} ms, p95 {p95_ms:.1f} ms, "
                             "jitter {jitter_ms:.1f} ms", method=method, loss=loss, **stats)

    def latency(self, obs: Observation, where: str, answered: list[float]) -> None:
        net = self.settings.network
        stats = rtt_stats(answered)
        for key, value in stats.items():
            obs.metric(key, round(value, 2))
        if stats["median_ms"] > net.max_rtt_ms:
            add = obs.fail if stats["median_ms"] > net.max_rtt_ms * 3 else obs.warn
            add("path.latency_high", tr("{where}: median round trip {median_ms:.0f} ms", where=where, **stats), **_r(stats))
        if stats["jitter_ms"] > net.max_jitter_ms:
            obs.warn("path.jitter_high", tr("{where}: jitter {jitter_ms:.0f} ms", where=where, **stats), **_r(stats))

    @staticmethod
    def mtu(obs: Observation, target: Target, address: str, sizes: dict[int, list[float | None]]) -> None:
        """Small echoes pass (the path is not lossy): which sizes with DF come back, which vanish?"""
        passed = [s for s, out in sizes.items() if any(r is not None and r != TOO_BIG for r in out)]
        refused = [s for s, out in sizes.items() if TOO_BIG in out]
        largest_ok = max(passed, default=SMALL)
        obs.metric("mtu_largest_ok", largest_ok)
        if refused:
            obs.info("path.mtu_signalled", tr("path MTU to {address} is below {size} bytes and signalled "
                                              "(fragmentation needed): TCP adapts", address=address, size=min(refused)),
                     refused_from=min(refused))
            return
        above = [s for s in sizes if s > largest_ok]
        if above and all(all(r is None for r in sizes[s]) for s in above):
            obs.warn("path.mtu_black_hole", tr("path to {target} ({address}): echoes up to {largest_ok} bytes come "
                                               "back, {smallest_lost} bytes and more (Don't Fragment) vanish without a "
                                               "'fragmentation needed' answer", target=target.label, address=address,
                                               largest_ok=largest_ok, smallest_lost=min(above)),
                     largest_ok=largest_ok, smallest_lost=min(above), address=address)


def _refused_here(echoes: Background | None) -> str:
    """The terminal's own words if it refused to send the echoes at all (they fail at the first send),
    else "" — also while they are still on their way."""
    if echoes is None or not echoes.done_within(0):
        return ""
    try:
        echoes.result()
    except SendRefused as exc:
        return exc.strerror or str(exc)
    except OSError:
        return ""
    return ""


def _by_size(sizes: list[int], rtts: list[float | None]) -> dict[int, list[float | None]]:
    out: dict[int, list[float | None]] = {}
    for size, rtt in zip(sizes, rtts, strict=False):
        out.setdefault(size, []).append(rtt)
    return out


def _r(stats: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in stats.items()}
