"""Differential diagnosis against real faults: the rival explanations a technician would confuse.

terminal ─ router ─ payment host in namespaces (``netlab``), faults made with nft on the router:
a dead uplink behind a live gateway is not DNS, a router that answers only ARP is the LAN, heavy
random loss is not an outage, a path-MTU black hole is not a dead service. Each fault is diagnosed
more than once: the verdict must hold every time, not once by luck, and say what ruled the rival out.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from labs.helpers import codes_of as codes
from labs.helpers import probe_of as probe
from labs.helpers import top_cause as top
from labs.netlab import DNS_ADDR, GATEWAY, HOST_ADDR

pytestmark = pytest.mark.root

NAME = "pay.acquirer.test"


@pytest.fixture
def acquirer(lab, certs):
    """DNS on .53, HTTPS with a valid certificate and /health on .2."""
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}")
    lab.peer(lab.host, "tls", "--bind", HOST_ADDR, "--port", "443", "--cert", certs["valid"][0], "--key", certs["valid"][1])


@pytest.fixture
def config(config_file, certs):
    def make(*, host: str = NAME, tls: bool = True, port: int = 443, network: dict | None = None, **extra) -> Path:
        entry = {"name": "primary", "host": host, "port": port, "tls": tls, **extra}
        if tls:
            entry.update(ca_file=certs["ca"], server_name=NAME, health_path="/health")
        return config_file(payment_hosts=[entry], network={"dns_servers": [DNS_ADDR], "timeout_s": 1.0, **(network or {})})

    return make


def diagnose(lab, cfg: Path, *extra: str, **kw) -> tuple[int, dict, float]:
    """The network probes only: these faults are the network's, and a loaded test machine must not
    let the system probe's load check decide the verdict."""
    return lab.diagnose(cfg, "--only", "network", *extra, **kw)


def not_forwarding(report: dict) -> str:
    """The gateway probe's message for a router that answers ARP but neither answers nor forwards."""
    return next(f["message"] for f in probe(report, "network.gateway")["findings"] if f["code"] == "gateway.not_forwarding")


def evidence(report: dict) -> str:
    return "\n".join(report["diagnosis"]["causes"][0]["evidence"])


def test_dead_uplink_behind_a_live_gateway_is_the_wan_not_dns(lab, acquirer, config):
    cfg = config()
    rc, healthy, _ = diagnose(lab, cfg)  # an earlier, healthy sweep leaves the last-known address
    assert rc == 0, healthy["diagnosis"]
    known = json.loads((cfg.parent / "state" / "known-addresses.json").read_text())
    assert known["hosts"][NAME]["addresses"] == [HOST_ADDR]
    lab.uplink_down()
    for _ in range(2):
        rc, report, _ = diagnose(lab, cfg)
        assert rc == 2 and top(report) == "network.wan", report["diagnosis"]
        assert probe(report, "network.gateway")["status"] == "ok"
        assert {"dns.timeout", "dns.beyond_silent"} <= set(codes(report, "network.dns"))
        assert f"not DNS alone: the last-known address {HOST_ADDR} of {NAME} times out" in evidence(report)
        assert [c["id"] for c in report["diagnosis"]["causes"]] == ["network.wan"]  # DNS shown as a consequence
        assert report["duration_s"] < 3.0


def test_dead_uplink_is_the_wan_with_a_configured_fallback_address_and_no_history(lab, acquirer, config):
    lab.uplink_down()
    rc, report, _ = diagnose(lab, config(fallback_addresses=[HOST_ADDR]))
    assert rc == 2 and top(report) == "network.wan", report["diagnosis"]
    assert f"not DNS alone: the fallback address {HOST_ADDR} of primary times out as well" in evidence(report)


def test_dead_uplink_reads_in_chinese_down_to_what_ruled_dns_out(lab, acquirer, config):
    """The clause causes.toml's [ruled_out] embeds is the probe's own, so it must be Chinese too."""
    lab.uplink_down()
    rc, report, _ = diagnose(lab, config(fallback_addresses=[HOST_ADDR]), "--lang", "zh_CN")
    assert rc == 2 and top(report) == "network.wan", report["diagnosis"]
    assert f"不只是 DNS 的问题：primary 的备用地址 {HOST_ADDR} 同样超时" in evidence(report)
    silent = next(f for f in probe(report, "network.dns")["findings"] if f["code"] == "dns.beyond_silent")
    assert silent["message"].startswith("网关之外没有任何应答：")
    assert silent["data"]["silent_check"] == f"primary 的备用地址 {HOST_ADDR} 同样超时"


def test_dead_uplink_is_the_wan_on_a_fresh_terminal_by_the_next_hop(lab, acquirer, config):
    lab.uplink_down()  # no history, no fallback address: only the way to the resolver can tell
    rc, report, _ = diagnose(lab, config())
    assert rc == 2 and top(report) == "network.wan", report["diagnosis"]
    assert "not DNS alone: not even the next router beyond the gateway answers" in evidence(report)


def test_fresh_terminal_without_icmp_cannot_tell_and_says_so(lab, acquirer, config):
    lab.exec(lab.term, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    lab.uplink_down()
    rc, report, _ = diagnose(lab, config(), wrap=("setpriv", "--bounding-set", "-net_raw"))
    assert top(report) == "network.dns", report["diagnosis"]
    assert "dns.tcp_silent" in codes(report, "network.dns")
    silent = next(f for f in probe(report, "network.dns")["findings"] if f["code"] == "dns.tcp_silent")
    assert "fallback_addresses" in silent["message"]


def test_silent_resolver_alone_is_dns_and_says_the_uplink_works(lab, acquirer, config):
    lab.drop_dns()
    for _ in range(2):
        rc, report, _ = diagnose(lab, config())
        assert rc == 2 and top(report) == "network.dns", report["diagnosis"]
        assert "dns.beyond_reachable" in codes(report, "network.dns")
        assert f"not the store's uplink: resolver {DNS_ADDR} over TCP 53 answers (reset)" in evidence(report)
        # Retries side by side: one timeout (1 s), not two in a row.
        assert probe(report, "network.dns")["duration_s"] < 1.6


def test_router_answering_only_arp_is_the_lan(lab, acquirer, config):
    lab.router_arp_only()
    for _ in range(2):
        rc, report, _ = diagnose(lab, config())
        assert rc == 2 and top(report) == "network.lan", report["diagnosis"]
        assert "gateway.not_forwarding" in codes(report, "network.gateway")
        assert probe(report, "network.gateway")["metrics"]["neighbour"] == "complete"
        assert "no ping, no TCP on ports" in not_forwarding(report)
        assert "itself answers nothing above ARP" in evidence(report)
        assert report["duration_s"] < 3.0


def test_router_answering_only_arp_with_icmp_off_is_the_lan_without_claiming_a_ping(lab, acquirer, config):
    """With ``network.icmp = false`` no echo was sent: the verdict stands on ARP and TCP alone, and the
    finding must not tell the technician that the router ignored a ping."""
    lab.router_arp_only()
    rc, report, _ = diagnose(lab, config(network={"icmp": False}))
    assert rc == 2 and top(report) == "network.lan", report["diagnosis"]
    message = not_forwarding(report)
    assert "answers ARP only: no TCP on ports" in message and "no ping" not in message


def test_a_router_that_answers_only_on_its_dns_port_is_alive_and_the_fault_is_beyond_it(lab, acquirer, config):
    """A store router whose firewall drops pings and every port but its DNS forwarder's, with a dead uplink:
    TCP 53 is the sign of life that keeps the blame off the LAN."""
    lab.peer(lab.router, "tcp", "--bind", GATEWAY, "--port", "53")
    lab.filter(lab.router, "input", "meta l4proto icmp drop\n    tcp dport != 53 drop")
    lab.filter(lab.router, "forward", "drop")
    rc, report, _ = diagnose(lab, config())
    gateway = probe(report, "network.gateway")
    assert "gateway.not_forwarding" not in codes(report, "network.gateway"), gateway
    assert any("TCP 53" in f["message"] for f in gateway["findings"] if f["code"] == "gateway.icmp_blocked"), gateway
    assert top(report) == "network.wan", report["diagnosis"]


def test_heavy_random_loss_both_ways_is_degraded_every_time(lab, config):
    lab.peer(lab.host, "tcp", "--bind", HOST_ADDR, "--port", "8000")
    lab.random_loss(45)  # each way: about 70 % of round trips lost
    cfg = config(host=HOST_ADDR, tls=False, port=8000)  # default tcp_attempts (3) and ping_count (10)
    for _ in range(3):
        rc, report, _ = diagnose(lab, cfg)
        assert top(report) == "network.degraded", report["diagnosis"]
        assert "path.loss_high" in codes(report, "network.path")
        assert "not an outage" in evidence(report)
        assert report["duration_s"] < 3.0


def test_mtu_black_hole_is_degraded_with_mss_clamping_not_a_dead_service(lab, acquirer, config):
    lab.mtu_black_hole(700)
    for _ in range(2):
        rc, report, _ = diagnose(lab, config())
        assert rc == 2 and top(report) == "network.degraded", report["diagnosis"]
        assert "path.mtu_black_hole" in codes(report, "network.path")
        assert "tls.large_replies_lost" in codes(report, "network.tls")
        assert "host.service_down" not in [c["id"] for c in report["diagnosis"]["causes"]]
        path = probe(report, "network.path")
        assert 576 <= path["metrics"]["mtu_largest_ok"] < 1000
        assert "MSS clamping" in report["diagnosis"]["causes"][0]["remediation"][0]


def test_a_narrow_link_whose_router_signals_it_is_no_black_hole_and_no_fault(lab, acquirer, config):
    """The rival of the black hole: the same large echoes fail, but the router answers 'fragmentation
    needed', the kernel refuses the next large sends itself, and TCP adapts: nothing to fix."""
    lab.narrow_link(1000)
    for _ in range(2):
        rc, report, _ = diagnose(lab, config())
        assert rc == 0 and top(report) == "none", report["diagnosis"]
        found = codes(report, "network.path")
        assert "path.mtu_signalled" in found and "path.mtu_black_hole" not in found, found
        assert 576 <= probe(report, "network.path")["metrics"]["mtu_largest_ok"] <= 1000


def test_mtu_black_hole_without_icmp_is_told_by_handshake_bytes(lab, acquirer, config):
    lab.exec(lab.term, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    lab.mtu_black_hole(700)
    rc, report, _ = diagnose(lab, config(), wrap=("setpriv", "--bounding-set", "-net_raw"))
    assert top(report) == "network.degraded", report["diagnosis"]
    tls = next(f for f in probe(report, "network.tls")["findings"] if f["code"] == "tls.large_replies_lost")
    assert tls["data"]["bytes_received"] == 0 and tls["data"]["small_exchange"] == "answered"
    assert "not the payment service" in evidence(report)


def test_mtu_black_hole_before_a_host_slow_to_answer_is_still_told_by_the_small_exchange(lab, certs, config):
    """The host reacts to each connection only after 0.3 s: the small exchange, started once the handshake
    has heard nothing for a quarter of a second, waits for its answer until the handshake's own deadline."""
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}")
    lab.peer(lab.host, "tls", "--bind", HOST_ADDR, "--port", "443", "--cert", certs["valid"][0], "--key",
             certs["valid"][1], "--delay", "0.3")
    lab.mtu_black_hole(700)
    rc, report, _ = diagnose(lab, config(network={"timeout_s": 1.5}))
    tls = next(f for f in probe(report, "network.tls")["findings"] if f["code"] == "tls.large_replies_lost")
    assert tls["data"]["bytes_received"] == 0 and tls["data"]["small_exchange"] == "answered"
    assert top(report) == "network.degraded", report["diagnosis"]


def test_stalled_service_is_not_taken_for_an_mtu_black_hole(lab, certs, config):
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}")
    lab.peer(lab.host, "tls", "--bind", HOST_ADDR, "--port", "443", "--cert", certs["valid"][0], "--key",
             certs["valid"][1], "--stall")
    rc, report, _ = diagnose(lab, config())
    assert top(report) == "host.service_down", report["diagnosis"]
    stalled = next(f for f in probe(report, "network.tls")["findings"] if f["code"] == "tls.timeout")
    assert stalled["data"]["small_exchange"] == "silent"
    assert "path.mtu_black_hole" not in codes(report, "network.path")


def test_a_slow_resolver_that_answers_is_not_held_up_by_the_differential_checks(lab, certs, config):
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}", "--delay", "0.3")
    lab.peer(lab.host, "tls", "--bind", HOST_ADDR, "--port", "443", "--cert", certs["valid"][0], "--key", certs["valid"][1])
    # The checks started at 0.15 s (TCP 53, TTL-2 echoes) get no answer: awaited, they would last the whole timeout.
    lab.filter(lab.router, "forward", f"ip daddr {DNS_ADDR} tcp dport 53 drop\n    meta l4proto icmp drop")
    rc, report, _ = diagnose(lab, config())
    dns = probe(report, "network.dns")
    assert dns["status"] == "ok", dns
    assert not {"dns.beyond_silent", "dns.beyond_reachable", "dns.tcp_silent"} & set(codes(report, "network.dns"))
    assert dns["duration_s"] < 0.8
