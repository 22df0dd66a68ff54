"""Radio: the signal of the Wi-Fi or cellular link that carries the route to the payment host.

A weak signal shows on the path as loss and timeouts; this probe only says what the radio reads,
and the engine weighs it against what the path measured. The interface is the one the kernel's
route to the primary payment host's address uses (the default route's while the name is not
resolved); /proc and /sys are read under ``[system] host_root``.
"""

from __future__ import annotations

from posdiag.core.i18n import N_, tr
from posdiag.probes import _radio
from posdiag.probes._netinfo import default_route, route_to
from posdiag.probes.base import Observation, Status, declare
from posdiag.probes.network._common import PaymentHostProbe, addresses, targets

#: a local command is given at most this share of the time left
TOOL_SHARE = 0.4
#: this many dB (Wi-Fi) or this share of the limit (cellular) below the limit is a signal too weak to work
FAIL_DB_BELOW = 10
FAIL_SHARE = 0.5


class RadioProbe(PaymentHostProbe):
    name = "network.radio"
    description = N_("Wi-Fi or cellular signal of the interface that carries the route to the payment host")
    findings = declare(fail=("radio.weak_signal",),
                       info=("radio.no_route", "radio.signal", "radio.signal_unreadable", "radio.wired"))
    after = ("network.dns",)
    timeout_s = 1.5

    def check(self, obs: Observation) -> None:
        interface = self.interface()
        if interface is None:
            obs.info("radio.no_route", tr("no route to the payment host: no interface to look at"))
            obs.summary = tr("no route to the payment host")
            return
        obs.metric("interface", interface)
        kind = _radio.kind_of(interface, self.host_path("/sys"))
        if kind == "wired":
            obs.info("radio.wired", tr("{interface} is not a radio link", interface=interface), interface=interface)
            obs.summary = tr("{interface}: wired, no radio", interface=interface)
            return
        signal = self.read(interface, kind)
        if signal is None:
            obs.info("radio.signal_unreadable", tr(_UNREADABLE[kind], interface=interface), interface=interface, kind=kind)
            obs.summary = tr("{interface}: signal not readable", interface=interface)
            return
        self.judge(obs, interface, signal)

    def interface(self) -> str | None:
        configured = self.settings.network.interface
        if configured != "auto":
            return configured
        proc = self.host_path("/proc")
        primary = targets(self.settings)[0]
        for address in addresses(self.context, primary) or []:
            route = route_to(address, proc)
            if route:
                return route.interface
        route = default_route(proc)
        return route.interface if route else None

    def read(self, interface: str, kind: str) -> _radio.Signal | None:
        budget = self.remaining_s() * TOOL_SHARE
        if kind == "wifi":
            return (_radio.proc_wireless(interface, self.host_path("/proc/net/wireless"))
                    or _radio.iw_link(interface, budget))
        return _radio.modem_signal(interface, budget)

    def judge(self, obs: Observation, interface: str, signal: _radio.Signal) -> None:
        net = self.settings.network
        reading = _reading(signal)
        obs.metric("signal_dbm", signal.dbm)
        obs.metric("signal_percent", signal.percent)
        data = dict(interface=interface, kind=signal.kind, signal_dbm=signal.dbm, signal_percent=signal.percent,
                    technology=signal.technology, source=signal.source)
        if signal.kind == "wifi" and signal.dbm is not None:
            limit, weak, dead = f"{net.min_wifi_signal_dbm:g} dBm", signal.dbm <= net.min_wifi_signal_dbm, \
                signal.dbm <= net.min_wifi_signal_dbm - FAIL_DB_BELOW
        elif signal.percent is not None:
            limit, weak, dead = f"{net.min_cell_signal_percent:g} %", signal.percent < net.min_cell_signal_percent, \
                signal.percent < net.min_cell_signal_percent * FAIL_SHARE
        else:
            weak = dead = False
            limit = ""
        if weak:
            obs.add("radio.weak_signal", "fail" if dead else "warn",
                    tr("{interface} carries the payment route over a weak {kind} signal: {reading} (limit {limit})",
                       interface=interface, kind=tr(_KIND_WORDS[signal.kind]), reading=reading, limit=limit), **data)
        else:
            obs.info("radio.signal", tr("{interface}: {kind} signal {reading}", interface=interface,
                                        kind=tr(_KIND_WORDS[signal.kind]), reading=reading), **data)
        if obs.status() is Status.OK:
            obs.summary = tr("{interface}: {kind} signal {reading}", interface=interface, kind=tr(_KIND_WORDS[signal.kind]),
                             reading=reading)


def _reading(signal: _radio.Signal) -> str:
    """"-81 dBm, quality 41 %, lte": what was read, numbers and names only (nothing to translate)."""
    parts = [f"{signal.dbm:g} dBm" if signal.dbm is not None else "",
             f"{signal.percent:g} %" if signal.percent is not None else "", signal.technology]
    return ", ".join(p for p in parts if p)


_KIND_WORDS = {"wifi": N_("Wi-Fi"), "cellular": N_("cellular")}
_UNREADABLE = {"wifi": N_("{interface} is a Wi-Fi link, but its signal cannot be read (no /proc/net/wireless line, "
                          "no iw)"),
               "cellular": N_("{interface} is a cellular link, but its signal cannot be read (ModemManager's mmcli is "
                              "not installed or knows no modem on it)")}
