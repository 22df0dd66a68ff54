"""Network fault scenarios in namespaces of the bench's own: terminal ─ router ─ payment host.

Each builds the lab, starts real DNS/TLS peers, injects one fault (nft, links, routes, certs) and
runs the diagnosis inside the terminal namespace. Needs root.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness import Setup, exits, scenario
from labs.helpers import PAYMENT_NAME as NAME
from labs.helpers import make_certs
from labs.netlab import BACKUP_ADDR, DNS_ADDR, HOST_ADDR, LAN_HOST_ADDR, Lab

_counter = [0]


def new_lab() -> Lab:
    """A lab of its own: named by this process and a counter, so that two benches (or a bench and the
    tests) running at once on one machine never take down each other's namespaces."""
    _counter[0] += 1
    return Lab(f"b{os.getpid()}-{_counter[0]}").up()


def build_lab(tmp: Path, stack: ExitStack, *, cert: str = "valid", dns_mode: str = "answer", status: int = 200,
              stall: bool = False, fault: Callable[[Lab], None] | None = None, tls: bool = True,
              backup: bool = False, network: dict | None = None, prime: bool = False, host: dict | None = None,
              no_icmp: bool = False, args: list[str] | None = None) -> Setup:
    """``prime``: fault injected after one healthy sweep; ``host``: extra keys of the primary;
    ``no_icmp``: the terminal may not use ICMP (no CAP_NET_RAW, outside ping_group_range);
    ``args``: more arguments for ``posdiag diagnose`` (a re-check with ``--only``)."""
    lab = new_lab()
    stack.callback(lab.down)
    certs = make_certs(tmp)
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}",
             "--zone", f"backup.acquirer.test={BACKUP_ADDR}", "--mode", dns_mode)
    if tls:
        c, k = certs[cert]
        lab.peer(lab.host, "tls", "--bind", HOST_ADDR, "--port", "443", "--cert", c, "--key", k,
                 "--status", str(status), *(["--stall"] if stall else []))
        hosts = [{"name": "primary", "host": NAME, "port": 443, "ca_file": certs["ca"], "health_path": "/health", **(host or {})}]
    else:
        lab.peer(lab.host, "tcp", "--bind", HOST_ADDR, "--port", "8000")
        hosts = [{"name": "primary", "host": HOST_ADDR, "port": 8000, "tls": False}]
    if backup:
        lab.peer(lab.host, "tls", "--bind", BACKUP_ADDR, "--port", "443", "--cert", certs["valid"][0],
                 "--key", certs["valid"][1])
        hosts.append({"name": "backup", "host": "backup.acquirer.test", "port": 443, "ca_file": certs["ca"],
                      "server_name": NAME})
    if fault and not prime:
        fault(lab)
    prefix = ["ip", "netns", "exec", lab.term]
    if no_icmp:
        lab.exec(lab.term, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
        prefix += ["setpriv", "--bounding-set", "-net_raw"]
    net = {"dns_servers": [DNS_ADDR], "timeout_s": 1.0, **(network or {})}
    after = (lambda: fault(lab)) if fault and prime else None
    return Setup({"payment_hosts": hosts, "network": net}, prefix, after, args or [])


def net(name: str, expect: str, repeat: int = 0, samples_loss: bool = False, group: str = "network", **kw: Any) -> None:
    scenario(name, expect, group=group, needs_root=True, repeat=repeat, samples_loss=samples_loss)(
        lambda tmp, stack: build_lab(tmp, stack, **kw))


net("net-healthy", "none")
net("link-interface-down", "network.link_down", fault=Lab.interface_down)
net("link-no-default-route", "network.link_down", fault=Lab.remove_default_route)
net("lan-gateway-dead", "network.lan", fault=Lab.kill_gateway)
net("dns-silent", "network.dns", repeat=5, fault=Lab.drop_dns)  # the resolver's host still answers TCP 53
net("dns-servfail", "network.dns", dns_mode="servfail")
net("dns-nxdomain", "config.invalid", dns_mode="nxdomain")
net("wan-black-hole", "network.wan", fault=lambda lab: lab.black_hole(HOST_ADDR))
net("host-tcp-reset", "host.service_down", fault=lambda lab: lab.reset_port(HOST_ADDR, 443))
net("host-tls-stall", "host.service_down", repeat=5, stall=True)  # not an MTU black hole
net("host-http-503", "host.service_down", status=503)
net("tls-expired", "tls.failure", cert="expired")
net("tls-untrusted-ca", "tls.failure", cert="untrusted")
net("tls-wrong-name", "config.invalid", cert="wrong_name")
net("tls-not-yet-valid", "clock.skew", cert="not_yet_valid")
net("path-loss-35pct", "network.degraded", tls=False, fault=lambda lab: lab.random_loss(35),
    network={"tcp_attempts": 8, "ping_count": 30}, samples_loss=True)
net("primary-reset-backup-ok", "host.service_down", backup=True, fault=lambda lab: lab.reset_port(HOST_ADDR, 443))
net("icmp-blocked-tcp-ok", "none", fault=Lab.block_icmp)

# Differential diagnosis (issue #9): rivals a technician confuses, each held in 5 of 5 repeats.
net("uplink-down-fresh-terminal", "network.wan", repeat=5, fault=Lab.uplink_down)  # told by the next hop (TTL 2)
net("uplink-down-last-known", "network.wan", repeat=5, prime=True, fault=Lab.uplink_down)
net("uplink-down-fallback-addr", "network.wan", repeat=5, fault=Lab.uplink_down, host={"fallback_addresses": [HOST_ADDR]})
net("router-arp-only", "network.lan", repeat=5, fault=Lab.router_arp_only)
net("path-loss-45pct-both-ways", "network.degraded", repeat=5, samples_loss=True, tls=False,
    fault=lambda lab: lab.random_loss(45))
net("mtu-black-hole-700", "network.degraded", repeat=5, fault=lambda lab: lab.mtu_black_hole(700))
net("mtu-black-hole-no-icmp", "network.degraded", repeat=5, no_icmp=True, fault=lambda lab: lab.mtu_black_hole(700))

# A re-check of one layer runs what that layer needs (issue #18): it can never come out HEALTHY by
# skipping the layer that fails.
net("recheck-tls-untrusted", "tls.failure", group="recheck", cert="untrusted", args=["--only", "network.tls"])
net("recheck-tls-host-reset", "host.service_down", group="recheck", fault=lambda lab: lab.reset_port(HOST_ADDR, 443),
    args=["--only", "network.tls"])
net("recheck-tcp-black-hole", "network.wan", group="recheck", fault=lambda lab: lab.black_hole(HOST_ADDR),
    args=["--only", "network.tcp"])

# The terminal's own packet filter: its sends to the payment host fail at once (EPERM), TCP times out
# (drop) or is answered at once from inside the terminal (reject). Never the ISP.
net("fw-drop-to-host", "network.local_firewall", group="firewall", repeat=5,
    fault=lambda lab: lab.local_firewall(HOST_ADDR))
net("fw-reject-to-host", "network.local_firewall", group="firewall", repeat=5,
    fault=lambda lab: lab.local_firewall(HOST_ADDR, "reject"))
# Rules for TCP alone: ICMP and UDP to the host still leave, so no send fails with EPERM. The TCP
# connect is reset, answered "unreachable" or dropped by the terminal itself.
net("fw-tcp443-reset", "network.local_firewall", group="firewall", repeat=5,
    fault=lambda lab: lab.terminal_rule(f"ip daddr {HOST_ADDR} tcp dport 443 reject with tcp reset"))
net("fw-tcp-host-unreachable", "network.local_firewall", group="firewall", repeat=5,
    fault=lambda lab: lab.terminal_rule("meta l4proto tcp reject with icmpx type host-unreachable"))
net("fw-tcp443-drop", "network.local_firewall", group="firewall", repeat=5,
    fault=lambda lab: lab.terminal_rule("tcp dport 443 drop"))


@scenario("lan-host-no-arp", "host.service_down", group="network", needs_root=True, repeat=5)
def lan_host_down(tmp: Path, stack: ExitStack) -> Setup:
    """The payment host sits on the store's own subnet and is off: no ARP answer. Not the ISP."""
    lab = new_lab()
    stack.callback(lab.down)
    hosts = [{"name": "primary", "host": LAN_HOST_ADDR, "port": 8000, "tls": False}]
    return Setup({"payment_hosts": hosts, "network": {"dns_servers": [DNS_ADDR], "timeout_s": 1.0}},
                 ["ip", "netns", "exec", lab.term])


@scenario("ntp-name-nxdomain", "clock.skew", group="network", needs_root=True, check=exits(1))
def ntp_name_unresolved(tmp: Path, stack: ExitStack) -> Setup:
    """Only an NTP server is configured, and its name does not resolve: a clock finding, no payment path."""
    lab = new_lab()
    stack.callback(lab.down)
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}", "--mode", "nxdomain")
    lab.resolv_conf(DNS_ADDR)
    return Setup({"clock": {"ntp_server": "ntp.acquirer.test"}}, ["ip", "netns", "exec", lab.term])
