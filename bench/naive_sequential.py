#!/usr/bin/env python3
"""Baseline for the deadline figure: the network checks of a config run one after another, each
with its own timeout, as a straightforward script would. ``naive_sequential.py CONFIG`` prints seconds."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from posdiag.core import settings as config
from posdiag.core.addresses import is_address
from posdiag.probes._dnswire import DnsTimeout, query
from posdiag.probes.network._common import tcp_connect


def main() -> None:
    settings = config.load(sys.argv[1])
    net = settings.network
    started = time.monotonic()
    for host in settings.payment_hosts:
        address = host.host
        if not is_address(address):
            for server in net.dns_servers if isinstance(net.dns_servers, list) else []:
                try:
                    answer = query(server, host.host, timeout_s=net.timeout_s)
                    address = answer.addresses[0] if answer.addresses else address
                    break
                except (DnsTimeout, OSError):
                    continue
        for _ in range(net.tcp_attempts):
            tcp_connect(address, host.port, net.timeout_s)
        if host.tls:  # a handshake attempt costs at least one more connect
            tcp_connect(address, host.port, net.timeout_s)
        for _ in range(net.ping_count):  # path quality, one probe after another
            tcp_connect(address, host.port, net.timeout_s)
    print(f"{time.monotonic() - started:.3f}")


if __name__ == "__main__":
    main()
