"""A small network of our own in network namespaces: terminal ─ router ─ payment host.

Addresses come from 198.18.0.0/15, the range reserved for network benchmarks (RFC 2544): nothing
here can route to this machine's own network or beyond, because the namespaces have no link to it.

    term  t0 198.18.1.2/24  ── r0 198.18.1.1/24  router  r1 198.18.2.1/24 ── h0 198.18.2.2, .3, .53  host

198.18.1.77 is on the terminal's own subnet and nobody holds it: a host on the store's LAN that is off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from labs import REPO, child_env

TERM_ADDR, GATEWAY = "198.18.1.2", "198.18.1.1"
HOST_ADDR, BACKUP_ADDR, DNS_ADDR = "198.18.2.2", "198.18.2.3", "198.18.2.53"
#: on the terminal's subnet, held by nobody: it never answers ARP
LAN_HOST_ADDR = "198.18.1.77"

#: ``wrap`` for :meth:`Lab.diagnose`: the command runs in a mount namespace of its own whose /proc
#: has no ``net/route`` (as where procfs hides it, or on a system without one), everything else of
#: /proc as it is. Files under /proc/PID/net take no mounts, so /proc becomes a tmpfs of links to a
#: fresh procfs instance, /proc/net a folder of links to its entries but ``route``.
HIDDEN_ROUTE_TABLE = ("unshare", "--mount", "sh", "-ec", """
real=$(mktemp -d)
mount -t proc proc "$real"
mount -t tmpfs -o mode=555 posdiag-test /proc
for e in "$real"/*; do [ "${e##*/}" = net ] || ln -s "$e" "/proc/${e##*/}"; done
mkdir /proc/net
for e in "$real"/net/*; do [ "${e##*/}" = route ] || ln -s "$e" "/proc/net/${e##*/}"; done
exec "$@"
""", "hide-route-table")


def sh(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, input=input)
    if check and proc.returncode:
        raise RuntimeError(f"{' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


class Lab:
    def __init__(self, tag: str | None = None) -> None:
        tag = tag or f"{os.getpid() % 100000}"
        self.term, self.router, self.host = f"pdt{tag}", f"pdr{tag}", f"pdh{tag}"
        self.peers: list[subprocess.Popen] = []

    # -- building ------------------------------------------------------------------------------
    def up(self) -> Lab:
        self.down()
        for ns in (self.term, self.router, self.host):
            sh("ip", "netns", "add", ns)
            self.ip(ns, "link", "set", "lo", "up")
        sh("ip", "-n", self.term, "link", "add", "t0", "type", "veth", "peer", "name", "r0", "netns", self.router)
        sh("ip", "-n", self.host, "link", "add", "h0", "type", "veth", "peer", "name", "r1", "netns", self.router)
        self.ip(self.term, "addr", "add", f"{TERM_ADDR}/24", "dev", "t0")
        self.ip(self.router, "addr", "add", f"{GATEWAY}/24", "dev", "r0")
        self.ip(self.router, "addr", "add", "198.18.2.1/24", "dev", "r1")
        for addr in (HOST_ADDR, BACKUP_ADDR, DNS_ADDR):
            self.ip(self.host, "addr", "add", f"{addr}/24", "dev", "h0")
        for ns, dev in ((self.term, "t0"), (self.router, "r0"), (self.router, "r1"), (self.host, "h0")):
            self.ip(ns, "link", "set", dev, "up")
        self.ip(self.term, "route", "add", "default", "via", GATEWAY)
        self.ip(self.host, "route", "add", "default", "via", "198.18.2.1")
        self.exec(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        for ns in (self.term, self.router, self.host):  # ping3 without root, as a till would run it
            self.exec(ns, "sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647")
        return self

    def down(self) -> None:
        for proc in self.peers:
            proc.kill()
            proc.wait()
        self.peers.clear()
        for ns in (self.term, self.router, self.host):
            sh("ip", "netns", "del", ns, check=False)
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- running things inside -----------------------------------------------------------------
    def ip(self, ns: str, *args: str) -> None:
        sh("ip", "-n", ns, *args)

    def exec(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", ns, *cmd, check=check)

    def nft(self, ns: str, ruleset: str) -> None:
        """Load an nft ruleset into a namespace (drop, reject, random loss …)."""
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=ruleset)

    def peer(self, ns: str, *args: str) -> subprocess.Popen:
        """Start ``python -m labs.peers ARGS`` in a namespace and wait until it says it listens."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "labs.peers", *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            proc.kill()
            raise RuntimeError(f"peer {args} did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
        self.peers.append(proc)
        return proc

    def diagnose(self, config: Path, *extra: str, timeout: float = 60, wrap: tuple[str, ...] = ()) -> tuple[int, dict, float]:
        """Run ``posdiag diagnose --json`` inside the terminal namespace (``wrap``: e.g. setpriv)."""
        import json

        started = time.monotonic()
        proc = subprocess.run(["ip", "netns", "exec", self.term, *wrap, sys.executable, "-m", "posdiag.agent", "diagnose",
                               "--json", "--config", str(config), *extra], capture_output=True, text=True, cwd=REPO,
                              timeout=timeout)
        wall = time.monotonic() - started
        if proc.returncode == 3 or not proc.stdout:
            raise RuntimeError(f"diagnose failed ({proc.returncode}): {proc.stderr}")
        return proc.returncode, json.loads(proc.stdout), wall

    def resolv_conf(self, *servers: str) -> None:
        """The terminal's /etc/resolv.conf (``ip netns exec`` mounts /etc/netns/NAME/ over /etc), so that
        getaddrinfo inside the terminal asks the lab's resolvers, never this machine's."""
        folder = Path("/etc/netns") / self.term
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "resolv.conf").write_text("".join(f"nameserver {s}\n" for s in servers) + "options timeout:1 attempts:1\n")

    # -- faults -----------------------------------------------------------------------------------
    def filter(self, ns: str, hook: str, rule: str) -> None:
        """Add one nft rule on a hook (``forward`` in the router, ``input`` on the host)."""
        self.nft(ns, f"table inet lab {{\n  chain lab_{hook} {{\n    type filter hook {hook} priority 0;\n"
                     f"    {rule}\n  }}\n}}\n")

    def black_hole(self, address: str) -> None:
        """The router silently drops everything to ``address`` (an ISP outage, a firewall)."""
        self.filter(self.router, "forward", f"ip daddr {address} drop")

    def reset_port(self, address: str, port: int) -> None:
        """The payment host answers connections to ``port`` with a TCP reset."""
        self.filter(self.host, "input", f"ip daddr {address} tcp dport {port} reject with tcp reset")

    def random_loss(self, percent: int) -> None:
        """The router drops ``percent`` % of forwarded packets at random, both ways (a congested line)."""
        self.filter(self.router, "forward", f"numgen random mod 100 < {percent} drop")

    def uplink_down(self) -> None:
        """The store's uplink is dead: the router answers (ping, ARP) but forwards nothing either way."""
        self.filter(self.router, "forward", "drop")

    def router_arp_only(self) -> None:
        """A router that still answers ARP (not IP) but neither answers nor forwards any IP packet."""
        self.filter(self.router, "forward", "drop")
        self.filter(self.router, "input", "drop")

    def mtu_black_hole(self, max_bytes: int = 700) -> None:
        """Packets above ``max_bytes`` vanish on the path without an ICMP 'fragmentation needed'."""
        self.filter(self.router, "forward", f"meta length > {max_bytes} drop")

    def narrow_link(self, mtu: int = 1000) -> None:
        """The router's link to the host carries at most ``mtu`` bytes, and the router says so: a larger
        packet with Don't Fragment is answered with ICMP 'fragmentation needed' (a signalled path MTU)."""
        self.ip(self.router, "link", "set", "r1", "mtu", str(mtu))
        self.ip(self.host, "link", "set", "h0", "mtu", str(mtu))

    def local_firewall(self, address: str, verdict: str = "drop") -> None:
        """The terminal's own packet filter drops (or rejects) everything it sends to ``address``."""
        self.filter(self.term, "output", f"ip daddr {address} {verdict}")

    def terminal_rule(self, rule: str) -> None:
        """One rule of the terminal's own packet filter, in its output path (a rule for TCP only, a port)."""
        self.filter(self.term, "output", rule)

    def block_icmp(self) -> None:
        self.filter(self.router, "forward", "meta l4proto icmp drop")

    def slow_gateway_echoes(self, seqs: tuple[int, ...], delay_s: float) -> None:
        """The router answers ping from user space (its kernel no longer does), the echoes numbered
        ``seqs`` only after ``delay_s``: a gateway whose round trips differ from one echo to the next."""
        self.exec(self.router, "sysctl", "-qw", "net.ipv4.icmp_echo_ignore_all=1")
        self.peer(self.router, "echo", "--bind", GATEWAY, "--delay", str(delay_s),
                  *(arg for seq in seqs for arg in ("--slow-seq", str(seq))))

    def drop_dns(self) -> None:
        self.filter(self.router, "forward", f"ip daddr {DNS_ADDR} udp dport 53 drop")

    def kill_gateway(self) -> None:
        """The router's LAN address is gone: the link stays up, but nobody answers for the gateway."""
        self.ip(self.router, "addr", "del", f"{GATEWAY}/24", "dev", "r0")

    def interface_down(self) -> None:
        self.ip(self.term, "link", "set", "t0", "down")

    def interface_up(self) -> None:
        """The cable is back: the link comes up and the default route (gone with the link) with it."""
        self.ip(self.term, "link", "set", "t0", "up")
        self.ip(self.term, "route", "replace", "default", "via", GATEWAY)

    def count_forwarded(self, port: int) -> None:
        """The router counts the TCP packets it forwards to ``port`` (see :meth:`forwarded`)."""
        self.filter(self.router, "forward", f"tcp dport {port} counter")

    def forwarded(self) -> int:
        """Packets counted by :meth:`count_forwarded`: proof that the terminal really sent them."""
        import re

        listing = self.exec(self.router, "nft", "list", "chain", "inet", "lab", "lab_forward").stdout
        return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))

    def remove_default_route(self) -> None:
        self.ip(self.term, "route", "del", "default")
