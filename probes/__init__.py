"""The probe catalogue. Modules are imported only when their probe runs, to keep start-up light:
a probe with nothing configured to look at (:mod:`posdiag.probes.gates`) is settled by a stand-in
that says so, and its module is never imported."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from posdiag.probes.gates import unconfigured

if TYPE_CHECKING:  # pragma: no cover
    from posdiag.core.settings import Settings
    from posdiag.probes.base import Probe

#: probe name → "module:Class", in the order a technician reads them (hardware up to the network).
CATALOGUE: dict[str, str] = {
    "memory": "posdiag.probes.memory:MemoryProbe",
    "disk": "posdiag.probes.disk:DiskProbe",
    "disk.health": "posdiag.probes.disk_health:DiskHealthProbe",
    "system": "posdiag.probes.system:SystemProbe",
    "system.crash": "posdiag.probes.crash:CrashProbe",
    "clock": "posdiag.probes.clock:ClockProbe",
    "network.link": "posdiag.probes.network.link:LinkProbe",
    "network.gateway": "posdiag.probes.network.gateway:GatewayProbe",
    "network.dns": "posdiag.probes.network.dns:DnsProbe",
    "network.tcp": "posdiag.probes.network.tcp:TcpProbe",
    "network.tls": "posdiag.probes.network.tls:TlsProbe",
    "network.path": "posdiag.probes.network.path:PathProbe",
    "network.radio": "posdiag.probes.network.radio:RadioProbe",
    "reader.usb": "posdiag.probes.reader.usb:UsbProbe",
    "reader.serial": "posdiag.probes.reader.serial_port:SerialProbe",
    "reader.events": "posdiag.probes.reader.events:EventsProbe",
    "txlog": "posdiag.probes.txlog:TxlogProbe",
    "trends": "posdiag.probes.trends:TrendsProbe",
}


def load(name: str) -> type[Probe]:
    module, _, cls = CATALOGUE[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def all_probes() -> list[type[Probe]]:
    return [load(name) for name in CATALOGUE]


def load_for(name: str, settings: Settings) -> type[Probe]:
    """The probe to run under ``settings``: its class, or, when nothing it looks at is configured, a
    stand-in of the same name that is skipped with the probe's own reason, its module left unimported."""
    reason = unconfigured(name, settings)
    if reason is None:
        return load(name)
    from posdiag.probes.base import Probe

    return type("Unconfigured", (Probe,), {"name": name, "skip_reason": lambda self: reason,
                                           "__doc__": "A probe with nothing configured to look at."})
