"""Link layer: the interface the terminal talks through is up, has carrier and an address, and a
default route exists. Reads local state only; sends nothing."""

from __future__ import annotations

from posdiag.core.i18n import N_, tr
from posdiag.probes._netinfo import default_route, interface_state
from posdiag.probes.base import Observation, Status, declare
from posdiag.probes.network._common import PaymentHostProbe


class LinkProbe(PaymentHostProbe):
    name = "network.link"
    description = N_("interface of the default route: up, carrier, an address; a default route at all")
    findings = declare(fail=("link.down", "link.interface_missing", "link.no_address", "link.no_carrier",
                           "link.no_default_route"))
    timeout_s = 1.0

    def check(self, obs: Observation) -> None:
        net = self.settings.network
        route = default_route()
        if route:
            obs.metric("default_route_interface", route.interface)
            obs.metric("default_gateway", route.gateway)
        name = net.interface if net.interface != "auto" else (route.interface if route else None)
        if route is None:
            if net.interface == "auto" or net.gateway != "off":
                obs.fail("link.no_default_route", tr("no default route: the terminal cannot reach anything beyond "
                                                     "its own subnet"), interface=name)
            if name is None:
                return
        assert name is not None
        obs.metric("interface", name)
        state = interface_state(name)
        if not state.exists:
            obs.fail("link.interface_missing", tr("interface {name} does not exist", name=name), interface=name)
            return
        if state.speed_mbps:
            obs.metric("speed_mbps", state.speed_mbps)
        obs.metric("addresses", ", ".join(state.addresses) or None)
        if not state.up:
            obs.fail("link.down", tr("interface {name} is administratively down", name=name), interface=name)
        elif state.carrier is False:
            obs.fail("link.no_carrier", tr("interface {name} has no carrier: cable unplugged or the other end is off",
                                           name=name), interface=name)
        elif not state.addresses:
            obs.fail("link.no_address", tr("interface {name} is up but has no IP address (DHCP failed?)", name=name),
                     interface=name)
        if obs.status() is Status.OK:
            addresses = ", ".join(state.addresses)
            if route and route.gateway and route.interface == name:
                obs.summary = tr("{name} up, {addresses}, gateway {gateway}", name=name, addresses=addresses,
                                 gateway=route.gateway)
            else:
                obs.summary = tr("{name} up, {addresses}", name=name, addresses=addresses)
