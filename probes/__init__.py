"""The probe catalogue. Modules are imported only when their probe runs, to keep start-up light."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from probes.base import Probe

#: probe name → "module:Class", in the order a technician reads them (hardware up to the network).
CATALOGUE: dict[str, str] = {
    "memory": "probes.memory:MemoryProbe",
    "disk": "probes.disk:DiskProbe",
    "system": "probes.system:SystemProbe",
    "clock": "probes.clock:ClockProbe",
    "network.link": "probes.network.link:LinkProbe",
    "network.gateway": "probes.network.gateway:GatewayProbe",
    "network.dns": "probes.network.dns:DnsProbe",
    "network.tcp": "probes.network.tcp:TcpProbe",
    "network.tls": "probes.network.tls:TlsProbe",
    "network.path": "probes.network.path:PathProbe",
    "reader.usb": "probes.reader.usb:UsbProbe",
    "reader.serial": "probes.reader.serial_port:SerialProbe",
    "reader.events": "probes.reader.events:EventsProbe",
    "txlog": "probes.txlog:TxlogProbe",
    "trends": "probes.trends:TrendsProbe",
}


def load(name: str) -> type[Probe]:
    module, _, cls = CATALOGUE[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def all_probes() -> list[type[Probe]]:
    return [load(name) for name in CATALOGUE]
