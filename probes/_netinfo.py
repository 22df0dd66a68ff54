"""Read the terminal's own network state: routes, interfaces, neighbours. Local reads, no traffic.

Linux reads /proc and /sys; elsewhere psutil answers what it can and routes are unknown
(:class:`RoutesUnknown`), never taken for "no route".
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from dataclasses import dataclass

import psutil
from posdiag.core.addresses import is_address


@dataclass(frozen=True)
class Route:
    interface: str
    gateway: str | None  # None for an on-link (directly connected) default route


class RoutesUnknown(Exception):
    """The routing table could not be read (procfs hides it, the system has none, the read failed):
    whether there is a default route is *unknown*, which is not the same as knowing there is none."""

    def __init__(self, path: str, error: str) -> None:
        super().__init__(f"{path}: {error}")
        self.path = path
        self.error = error


def default_route(proc_root: str = "/proc") -> Route | None:
    """The IPv4 default route (lowest metric), then the IPv6 one; None when the tables show none.

    Raises :class:`RoutesUnknown` when a table that could hold the answer cannot be read. A missing
    IPv6 table is IPv6 switched off: it holds no route, it is not an unknown."""
    unreadable: tuple[str, OSError] | None = None
    for path, read in ((os.path.join(proc_root, "net/route"), _ipv4_default),
                       (os.path.join(proc_root, "net/ipv6_route"), _ipv6_default)):
        try:
            route = read(path)
        except OSError as exc:
            unreadable = unreadable or (path, exc)
            continue
        if route:
            return route
    if unreadable:
        path, exc = unreadable
        raise RoutesUnknown(path, exc.strerror or repr(exc)) from exc
    return None


def _ipv4_default(path: str) -> Route | None:
    best: tuple[int, Route] | None = None
    with open(path) as fh:
        next(fh, None)
        for line in fh:
            f = line.split()
            if len(f) < 8 or f[1] != "00000000" or f[7] != "00000000":
                continue
            flags, metric = int(f[3], 16), int(f[6])
            if not flags & 0x1:  # RTF_UP
                continue
            gw = socket.inet_ntoa(struct.pack("<I", int(f[2], 16))) if flags & 0x2 else None
            if best is None or metric < best[0]:
                best = (metric, Route(f[0], gw))
    return best[1] if best else None


def _ipv6_default(path: str) -> Route | None:
    try:
        with open(path) as fh:
            rows = [line.split() for line in fh]
    except FileNotFoundError:  # IPv6 switched off
        return None
    for f in rows:
        if len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo":
            nh = f[4]
            gw = str(ipaddress.IPv6Address(bytes.fromhex(nh))) if int(nh, 16) else None
            return Route(f[9], gw)
    return None


def routed_via_gateway(address: str, proc_root: str = "/proc") -> bool:
    """True when the IPv4 route the kernel would pick for ``address`` goes through a gateway, False
    when the address is on-link or unknown."""
    route = route_to(address, proc_root)
    return bool(route and route.gateway)


def on_link(address: str, proc_root: str = "/proc") -> bool:
    """True when ``address`` is on one of the terminal's own subnets (IPv4): the route the kernel
    would pick is a subnet route without a gateway — the store's LAN, where a host that does not
    answer is down itself and no router or ISP is involved. An on-link *default* route does not count."""
    best = _best_route(address, proc_root)
    return bool(best and best[0] > 0 and not best[2].gateway)


def route_to(address: str, proc_root: str = "/proc") -> Route | None:
    """The IPv4 route the kernel would pick for ``address`` (longest prefix, then lowest metric): its
    interface and gateway (None: on-link); None when no route matches or the address is not IPv4."""
    best = _best_route(address, proc_root)
    return best[2] if best else None


def _best_route(address: str, proc_root: str) -> tuple[int, int, Route] | None:
    """(prefix length, -metric, route) of the IPv4 route the kernel would pick, or None."""
    try:
        target = struct.unpack("<I", socket.inet_aton(address))[0]
        with open(os.path.join(proc_root, "net/route")) as fh:
            next(fh, None)
            rows = [line.split() for line in fh]
    except (OSError, ValueError):
        return None
    best: tuple[int, int, Route] | None = None
    for f in rows:
        if len(f) < 8 or not int(f[3], 16) & 0x1:  # RTF_UP
            continue
        dest, mask = int(f[1], 16), int(f[7], 16)
        if target & mask != dest:
            continue
        gateway = socket.inet_ntoa(struct.pack("<I", int(f[2], 16))) if int(f[3], 16) & 0x2 else None
        key = (bin(mask).count("1"), -int(f[6]))
        if best is None or key > best[:2]:
            best = (*key, Route(f[0], gateway))
    return best


@dataclass(frozen=True)
class InterfaceState:
    name: str
    exists: bool
    up: bool
    carrier: bool | None
    addresses: tuple[str, ...]
    speed_mbps: int | None


def interface_state(name: str, sys_root: str = "/sys/class/net") -> InterfaceState:
    stats = psutil.net_if_stats().get(name)
    if stats is None:
        return InterfaceState(name, False, False, None, (), None)
    up = _administratively_up(os.path.join(sys_root, name, "flags"), stats.isup)
    carrier: bool | None = None
    try:
        with open(os.path.join(sys_root, name, "carrier")) as fh:
            carrier = fh.read().strip() == "1"
    except OSError:  # reading carrier of a down interface fails with EINVAL
        carrier = None if up else False
    addrs = tuple(a.address.split("%")[0] for a in psutil.net_if_addrs().get(name, [])
                  if a.family in (socket.AF_INET, socket.AF_INET6) and not _link_local(a.address))
    return InterfaceState(name, True, up, carrier, addrs, stats.speed or None)


def _administratively_up(flags_path: str, isup: bool) -> bool:
    """IFF_UP of the interface's flags: set up by its owner, carrier or not. psutil's ``isup`` on Linux is
    IFF_RUNNING, which also wants a carrier: an unplugged cable would read as an interface set down.
    ``isup`` is the answer only where sysfs has no flags."""
    try:
        with open(flags_path) as fh:
            return bool(int(fh.read().strip(), 16) & 0x1)
    except (OSError, ValueError):
        return isup


def _link_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%")[0]).is_link_local
    except ValueError:
        return False


def neighbour_state(address: str, proc_root: str = "/proc") -> str | None:
    """ARP state of an IPv4 neighbour: 'complete', 'incomplete', or None when not in the table."""
    try:
        with open(os.path.join(proc_root, "net/arp")) as fh:
            next(fh, None)
            for line in fh:
                f = line.split()
                if f and f[0] == address:
                    return "complete" if int(f[2], 16) & 0x2 else "incomplete"
    except OSError:
        return None
    return None


def resolv_conf_servers(path: str = "/etc/resolv.conf") -> list[str]:
    servers = []
    try:
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver" and is_address(parts[1].split("%")[0]):
                    servers.append(parts[1])
    except OSError:
        pass
    return servers
