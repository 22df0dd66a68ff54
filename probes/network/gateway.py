"""LAN: the gateway answers. ICMP echo where permitted, with the kernel's neighbour (ARP) table as
corroboration — a gateway that resolves at layer 2 but ignores pings is alive, only firewalled."""

from __future__ import annotations

import socket
import time

from posdiag.probes._netinfo import default_route, neighbour_state
from posdiag.probes.base import Observation, Probe, ProbeSkipped, Status, declare
from posdiag.probes.network._common import side_by_side


def icmp_echo(address: str, count: int, timeout_s: float, stagger_s: float = 0.02) -> list[float | None]:
    """RTTs in ms (None for a lost echo). Raises PermissionError when ICMP sockets are not allowed."""
    import ping3

    ping3.EXCEPTIONS = False

    def one(seq: int) -> float | None:
        rtt = ping3.ping(address, timeout=timeout_s, unit="ms", seq=seq)
        return rtt if isinstance(rtt, float) else None

    return side_by_side(one, range(count), stagger_s=stagger_s)


def poke_neighbour(address: str) -> None:
    """Make the kernel resolve the neighbour by sending one UDP datagram to the discard port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"", (address, 9))
        except OSError:
            pass


class GatewayProbe(Probe):
    name = "network.gateway"
    description = "the configured or default gateway answers (ICMP where allowed, neighbour table as corroboration)"
    findings = declare(fail=("gateway.unreachable",), warn=("gateway.loss",), info=("gateway.icmp_blocked",
                           "gateway.icmp_unavailable"))
    requires = ("network.link",)

    def skip_reason(self) -> str | None:
        if not self.settings.payment_hosts:
            return "no payment host configured"
        if self.settings.network.gateway == "off":
            return "gateway check disabled (network.gateway = 'off')"
        return None

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s + 1.0

    def check(self, obs: Observation) -> None:
        net = self.settings.network
        gateway = net.gateway
        if gateway == "auto":
            route = default_route()
            if route is None or route.gateway is None:
                raise ProbeSkipped("the default route has no gateway (on-link)")
            gateway = route.gateway
        obs.metric("gateway", gateway)
        rtts: list[float | None] = []
        icmp_state = "disabled"
        if net.icmp:
            try:
                rtts = icmp_echo(gateway, min(net.ping_count, 3), net.timeout_s)
                icmp_state = "used"
            except PermissionError as exc:
                icmp_state = "unavailable"
                obs.info("gateway.icmp_unavailable", f"ICMP not permitted here ({exc.strerror}); "
                         "using the neighbour table only")
        answered = [r for r in rtts if r is not None]
        if answered:
            obs.metric("rtt_ms", round(min(answered), 2))
            obs.metric("icmp_loss_percent", round(100 * (len(rtts) - len(answered)) / len(rtts), 1))
        neighbour = None
        if ":" not in gateway:
            neighbour = neighbour_state(gateway)
            if not answered and neighbour != "complete":
                # Unanswered echoes already made the kernel ask ARP; without ICMP, ask it now.
                if icmp_state != "used":
                    poke_neighbour(gateway)
                wait_s = net.timeout_s if icmp_state != "used" else min(0.2, net.timeout_s)
                deadline = time.monotonic() + wait_s
                while (neighbour := neighbour_state(gateway)) != "complete" and time.monotonic() < deadline:
                    time.sleep(0.05)
            obs.metric("neighbour", neighbour)
        if answered:
            lost = len(rtts) - len(answered)
            if lost:
                obs.warn("gateway.loss", f"gateway {gateway} lost {lost} of {len(rtts)} echoes", gateway=gateway,
                         lost=lost, sent=len(rtts))
        elif neighbour == "complete":
            if icmp_state == "used":
                obs.info("gateway.icmp_blocked", f"gateway {gateway} ignores ICMP but answers ARP: alive")
        else:
            how = "no ICMP echo reply and no ARP answer" if icmp_state == "used" else "no ARP answer"
            obs.fail("gateway.unreachable", f"gateway {gateway} does not answer ({how})", gateway=gateway,
                     neighbour=neighbour, icmp=icmp_state)
        if obs.status() is Status.OK:
            obs.summary = f"gateway {gateway} answers" + (f" in {min(answered):.1f} ms" if answered else " (ARP)")
