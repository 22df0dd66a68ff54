"""Link layer: the interface the terminal talks through is up, has carrier and an address, and a
default route exists. Reads local state only; sends nothing.

A routing table that cannot be read is said as such (``link.routes_unknown``, for information): the
routes are unknown, not missing, and the layers above find out for themselves whether packets leave."""

from __future__ import annotations

from posdiag.core.i18n import N_, tr
from posdiag.probes._netinfo import Route, RoutesUnknown, default_route, interface_state
from posdiag.probes.base import Observation, Status, declare
from posdiag.probes.network._common import PaymentHostProbe


class LinkProbe(PaymentHostProbe):
    name = "network.link"
    description = N_("interface of the default route: up, carrier, an address; a default route at all")
    findings = declare(fail=("link.down", "link.interface_missing", "link.no_address", "link.no_carrier",
                           "link.no_default_route"), info=("link.routes_unknown",))
    timeout_s = 1.0

    def check(self, obs: Observation) -> None:
        net = self.settings.network
        route, known = self.route(obs)
        name = net.interface if net.interface != "auto" else (route.interface if route else None)
        if route is None and known and (net.interface == "auto" or net.gateway != "off"):
            obs.fail("link.no_default_route", tr("no default route: the terminal cannot reach anything beyond "
                                                 "its own subnet"), interface=name)
        if name is None:
            if not known:
                obs.summary = tr("routing table unreadable: the interface of the default route is unknown "
                                 "(set network.interface to check one)")
            return
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
            obs.fail("link.no_carrier", tr("interface {name} has no carrier", name=name), interface=name)
        elif not state.addresses:
            obs.fail("link.no_address", tr("interface {name} is up but has no IP address", name=name),
                     interface=name)
        if obs.status() is Status.OK:
            addresses = ", ".join(state.addresses)
            if route and route.gateway and route.interface == name:
                obs.summary = tr("{name} up, {addresses}, gateway {gateway}", name=name, addresses=addresses,
                                 gateway=route.gateway)
            else:
                obs.summary = tr("{name} up, {addresses}", name=name, addresses=addresses)

    @staticmethod
    def route(obs: Observation) -> tuple[Route | None, bool]:
        """The default route, and whether the routing table could be read at all."""
        try:
            route = default_route()
        except RoutesUnknown as unknown:
            obs.info("link.routes_unknown", tr("the routing table {path} cannot be read ({error}): whether there is "
                                               "a default route is unknown", path=unknown.path, error=unknown.error),
                     path=unknown.path, error=unknown.error)
            return None, False
        if route:
            obs.metric("default_route_interface", route.interface)
            obs.metric("default_gateway", route.gateway)
        return route, True
