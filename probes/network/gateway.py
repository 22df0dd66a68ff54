"""LAN: the gateway answers. ICMP echo where permitted, with the kernel's neighbour (ARP) table as
corroboration — a gateway that resolves at layer 2 but ignores pings may be alive and only
firewalled, or dead above layer 2. While the echoes are awaited, the probe asks what separates the
two: does the gateway answer TCP on a port routers use, and does anything beyond it answer (it
forwards)? A router that answers ARP and nothing else, and forwards nothing, is the LAN's fault."""

from __future__ import annotations

import contextlib
import socket
import time

from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._netinfo import RoutesUnknown, neighbour_state
from posdiag.probes.base import Observation, ProbeSkipped, Status, declare
from posdiag.probes.network import _beyond
from posdiag.probes.network._common import Background, PaymentHostProbe, gateway_address, resolvers, side_by_side

#: Ports a store router commonly answers on (DNS forwarder, web UI, SSH); a reset counts as an answer.
ROUTER_PORTS = (53, 80, 443, 22)
#: An echo to the gateway not back by then (LAN round trips are milliseconds): start the other checks.
GRACE_S = 0.15


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
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
        sock.sendto(b"", (address, 9))


class GatewayProbe(PaymentHostProbe):
    name = "network.gateway"
    description = N_("the configured or default gateway answers (ICMP where allowed, neighbour table as corroboration); "
                     "when it ignores pings, whether it answers TCP and forwards")
    findings = declare(fail=("gateway.not_forwarding", "gateway.unreachable"), warn=("gateway.loss",),
                       info=("gateway.icmp_blocked", "gateway.icmp_unavailable"))
    requires = ("network.link",)

    def applies(self) -> str | None:
        if self.settings.network.gateway == "off":
            return tr("gateway check disabled (network.gateway = 'off')")
        return None

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s + 1.0

    def gateway(self) -> str:
        try:
            gateway = gateway_address(self.settings)
        except RoutesUnknown as unknown:
            raise ProbeSkipped(tr("the routing table cannot be read ({error}): no gateway to check (set "
                                  "network.gateway to check one)", error=unknown.error)) from None
        if gateway is None:
            raise ProbeSkipped(tr("the default route has no gateway (on-link)"))
        return gateway

    def check(self, obs: Observation) -> None:
        gateway = self.gateway()
        obs.metric("gateway", gateway)
        started = time.monotonic()
        rtts, icmp_state, others = self.echoes(obs, gateway, started)
        answered = [r for r in rtts if r is not None]
        if answered:
            obs.metric("rtt_ms", round(min(answered), 2))
            obs.metric("icmp_loss_percent", round(100 * (len(rtts) - len(answered)) / len(rtts), 1))
        neighbour = self.neighbour(obs, gateway, bool(answered), icmp_state)
        if answered:
            lost = len(rtts) - len(answered)
            if lost:
                obs.warn("gateway.loss", ntr("gateway {gateway} lost {lost} of {n} echo",
                                             "gateway {gateway} lost {lost} of {n} echoes", len(rtts), gateway=gateway,
                                             lost=lost), gateway=gateway, lost=lost, sent=len(rtts))
        elif neighbour == "complete":
            self.judge_silent(obs, gateway, icmp_state, others.result() if others else None)
        else:
            if icmp_state == "used":
                message = tr("gateway {gateway} does not answer (no ICMP echo reply and no ARP answer)", gateway=gateway)
            else:
                message = tr("gateway {gateway} does not answer (no ARP answer)", gateway=gateway)
            obs.fail("gateway.unreachable", message, gateway=gateway, neighbour=neighbour, icmp=icmp_state)
        if obs.status() is Status.OK:
            obs.summary = (tr("gateway {gateway} answers in {ms:.1f} ms", gateway=gateway, ms=min(answered)) if answered
                           else tr("gateway {gateway} answers (ARP)", gateway=gateway))

    def echoes(self, obs: Observation, gateway: str, started: float):
        """(RTTs, ICMP state, the TCP/forwarding checks if they were started while the echoes went unanswered)."""
        net = self.settings.network
        deadline = started + net.timeout_s
        if not net.icmp:
            return [], "disabled", Background(lambda: self.others(gateway, deadline))
        echo = Background(lambda: icmp_echo(gateway, min(net.ping_count, 3), net.timeout_s))
        others = None if echo.done_within(GRACE_S) else Background(lambda: self.others(gateway, deadline))
        try:
            rtts = echo.result()
        except PermissionError as exc:
            obs.info("gateway.icmp_unavailable", tr("ICMP not permitted here ({error}); using the neighbour table and TCP",
                                                    error=exc.strerror))
            return [], "unavailable", others or Background(lambda: self.others(gateway, deadline))
        return rtts, "used", others

    def others(self, gateway: str, deadline: float) -> tuple[list[_beyond.Tried], list[_beyond.Tried]]:
        """(the gateway's own TCP ports, addresses beyond it), tried side by side until ``deadline``."""
        own = [_beyond.Beyond(gateway, port, tr("gateway {gateway} TCP {port}", gateway=gateway, port=port))
               for port in ROUTER_PORTS]
        beyond = _beyond.candidates(self.settings, self.context, resolvers(self.settings), gateway)
        tried = _beyond.try_all(own + beyond, deadline)
        return tried[:len(own)], tried[len(own):]

    def neighbour(self, obs: Observation, gateway: str, answered: bool, icmp_state: str) -> str | None:
        if ":" in gateway:
            return None
        net = self.settings.network
        neighbour = neighbour_state(gateway)
        if not answered and neighbour != "complete" and icmp_state != "used":
            # Unanswered echoes made the kernel ask ARP for the whole timeout already; without ICMP, ask it now.
            poke_neighbour(gateway)
            deadline = time.monotonic() + net.timeout_s
            while (neighbour := neighbour_state(gateway)) != "complete" and time.monotonic() < deadline:
                time.sleep(0.05)
        obs.metric("neighbour", neighbour)
        return neighbour

    def judge_silent(self, obs: Observation, gateway: str, icmp_state: str,
                     others: tuple[list[_beyond.Tried], list[_beyond.Tried]] | None) -> None:
        """The gateway answers ARP but no echo: alive if it answers TCP or forwards, else not working."""
        own, beyond = others or ([], [])
        alive = [t for t in own + beyond if t.answered]
        if alive or not beyond:
            if icmp_state == "used" and alive:
                obs.info("gateway.icmp_blocked", tr("gateway {gateway} ignores ICMP but answers ARP: {answer}: alive",
                                                    gateway=gateway, answer=alive[0].describe()))
            elif icmp_state == "used":
                obs.info("gateway.icmp_blocked", tr("gateway {gateway} ignores ICMP but answers ARP: alive", gateway=gateway))
            return
        fields = {"gateway": gateway, "ports": "/".join(str(t.beyond.port) for t in own), "tried": _beyond.summary(beyond)}
        if icmp_state == "used":
            message = tr("gateway {gateway} answers ARP only: no ping, no TCP on ports {ports}, and nothing beyond it answers "
                         "({tried}): the router is up at layer 2 but neither answers nor forwards", **fields)
        else:
            message = tr("gateway {gateway} answers ARP only: no TCP on ports {ports}, and nothing beyond it answers "
                         "({tried}): the router is up at layer 2 but neither answers nor forwards", **fields)
        obs.fail("gateway.not_forwarding", message,
                 gateway=gateway, tried={f"{t.beyond.address}:{t.beyond.port}": t.outcome.kind for t in own + beyond})
