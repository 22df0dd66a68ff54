"""Path quality to the payment host: loss, median, p95 and jitter. ICMP where it is permitted and
answered; otherwise TCP handshakes. ICMP blocked while TCP works is not a fault — no finding here
rests on ICMP alone."""

from __future__ import annotations

from posdiag.probes.base import Observation, Probe, ProbeSkipped, Status, declare
from posdiag.probes.network._common import connected_address, rtt_stats, side_by_side, targets, tcp_connect
from posdiag.probes.network.gateway import icmp_echo

STAGGER_S = 0.02


class PathProbe(Probe):
    name = "network.path"
    description = "loss, latency median/p95 and jitter to the payment host (ICMP where allowed, else TCP handshakes)"
    findings = declare(fail=("path.latency_high", "path.loss_high"), warn=("path.jitter_high",), info=("path.icmp_blocked",
                           "path.icmp_unavailable", "path.loss"))
    requires = ("network.tcp",)

    def skip_reason(self) -> str | None:
        return None if self.settings.payment_hosts else "no payment host configured"

    def deadline_s(self) -> float:
        net = self.settings.network
        return net.timeout_s * 2 + net.ping_count * STAGGER_S + 0.5

    def check(self, obs: Observation) -> None:
        net = self.settings.network
        reachable = [(t, a) for t in targets(self.settings) if (a := connected_address(self.context, t))]
        if not reachable:
            raise ProbeSkipped("no payment host accepted a TCP connection")
        target, address = reachable[0]
        obs.metric("target", f"{target.host.label} ({address})")
        samples: list[float | None] = []
        method = "tcp"
        timeout, stagger = self.pace()
        if net.icmp:
            try:
                samples = icmp_echo(address, net.ping_count, timeout, stagger)
                method = "icmp"
            except PermissionError as exc:
                obs.info("path.icmp_unavailable", f"ICMP not permitted ({exc.strerror}): measuring with TCP handshakes")
            if method == "icmp" and not any(s is not None for s in samples):
                obs.info("path.icmp_blocked", f"{address} does not answer ICMP although TCP works: firewalled, "
                         "not a fault; measuring with TCP handshakes")
                method = "tcp"
        if method == "tcp":
            port = target.host.port
            timeout, stagger = self.pace()
            samples = [c.ms if c.kind == "ok" else None for c in
                       side_by_side(lambda _: tcp_connect(address, port, timeout), range(net.ping_count), stagger)]
        obs.metric("method", method)
        self.judge(obs, target, samples, method)

    def pace(self) -> tuple[float, float]:
        """(timeout per probe, spacing between probes) that fit every sample into the time left:
        spacing shrinks first, then the timeout, never below what still measures something."""
        net = self.settings.network
        left = self.remaining_s() - 0.15
        timeout = max(0.05, min(net.timeout_s, left * 0.75))
        stagger = max(0.002, min(STAGGER_S, (left - timeout) / max(1, net.ping_count)))
        return timeout, stagger

    def judge(self, obs: Observation, target, samples: list[float | None], method: str) -> None:
        net = self.settings.network
        answered = [s for s in samples if s is not None]
        loss = 100 * (len(samples) - len(answered)) / len(samples)
        obs.metric("loss_percent", round(loss, 1))
        obs.metric("samples", len(samples))
        where = f"path to {target.label} ({method})"
        if loss >= net.max_loss_percent:
            obs.fail("path.loss_high", f"{where}: {loss:.0f}% of {len(samples)} probes lost", loss_percent=round(loss, 1),
                     method=method, sent=len(samples))
        elif loss > 0:
            obs.info("path.loss", f"{where}: {loss:.0f}% lost", loss_percent=round(loss, 1))
        if not answered:
            return
        stats = rtt_stats(answered)
        for key, value in stats.items():
            obs.metric(key, round(value, 2))
        if stats["median_ms"] > net.max_rtt_ms * 3:
            obs.fail("path.latency_high", f"{where}: median round trip {stats['median_ms']:.0f} ms", **_r(stats))
        elif stats["median_ms"] > net.max_rtt_ms:
            obs.warn("path.latency_high", f"{where}: median round trip {stats['median_ms']:.0f} ms", **_r(stats))
        if stats["jitter_ms"] > net.max_jitter_ms:
            obs.warn("path.jitter_high", f"{where}: jitter {stats['jitter_ms']:.0f} ms", **_r(stats))
        if obs.status() is Status.OK:
            obs.summary = (f"{method}: loss {loss:.0f}%, median {stats['median_ms']:.1f} ms, p95 {stats['p95_ms']:.1f} ms, "
                           f"jitter {stats['jitter_ms']:.1f} ms")


def _r(stats: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in stats.items()}
