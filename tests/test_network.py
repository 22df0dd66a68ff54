"""Network probes against a real topology: terminal ─ router ─ payment host in namespaces, faults
made with nft (black hole, reset, random loss), interfaces and routes, real TLS and DNS servers.

Every test runs ``posdiag diagnose`` inside the terminal namespace; no packet leaves the namespaces.
"""

from __future__ import annotations

import os
import sys

import pytest
from labs.helpers import codes_of as codes
from labs.helpers import probe_of as probe
from labs.helpers import top_cause as top
from labs.helpers import unwrapped, wait_for
from labs.netlab import BACKUP_ADDR, DNS_ADDR, GATEWAY, HIDDEN_ROUTE_TABLE, HOST_ADDR, LAN_HOST_ADDR, TERM_ADDR

pytestmark = pytest.mark.root

NAME = "pay.acquirer.test"




@pytest.fixture
def payment(lab, certs):
    """A healthy acquirer: DNS on .53, HTTPS with a valid certificate and /health on .2."""

    def start(cert: str = "valid", dns_mode: str = "answer", status: int = 200, stall: bool = False,
              address: str = HOST_ADDR) -> None:
        c, k = certs[cert]
        lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={address}", "--zone",
                 f"backup.acquirer.test={BACKUP_ADDR}", "--mode", dns_mode)
        args = ["tls", "--bind", address, "--port", "443", "--cert", c, "--key", k, "--status", str(status)]
        lab.peer(lab.host, *args, *(["--stall"] if stall else []))

    return start


@pytest.fixture
def net_config(config_file, certs):
    def make(hosts: list[dict] | None = None, **network) -> object:
        hosts = hosts or [{"name": "primary", "host": NAME, "port": 443, "ca_file": certs["ca"],
                           "health_path": "/health"}]
        return config_file(payment_hosts=hosts, network={"dns_servers": [DNS_ADDR], "timeout_s": 0.5, **network})

    return make


def test_healthy_path_gives_none_with_every_layer_ok(lab, payment, net_config):
    payment()
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 0, report["diagnosis"]
    assert top(report) == "none"
    for layer in ("network.link", "network.gateway", "network.dns", "network.tcp", "network.tls", "network.path"):
        assert probe(report, layer)["status"] == "ok", probe(report, layer)
    assert probe(report, "network.gateway")["metrics"]["gateway"] == GATEWAY
    link = probe(report, "network.link")
    assert TERM_ADDR in link["metrics"]["addresses"] and link["metrics"]["default_gateway"] == GATEWAY, link
    assert link["summary"].startswith(f"t0 up, {TERM_ADDR}") and link["summary"].endswith(f"gateway {GATEWAY}"), link
    assert probe(report, "network.tls")["metrics"]["health_status[primary]"] == 200
    assert probe(report, "network.path")["metrics"]["loss_percent"] == 0
    assert probe(report, "network.path")["metrics"]["samples"] == 24  # ping_count 10: never fewer than 24


def test_interface_down_blames_link_and_skips_the_layers_above(lab, payment, net_config):
    payment()
    lab.interface_down()
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 2 and top(report) == "network.link_down"
    for layer in ("network.gateway", "network.dns", "network.tcp", "network.tls", "network.path"):
        assert probe(report, layer)["status"] == "skipped", layer
        assert "network.link" in probe(report, layer)["summary"]


def test_a_line_dead_at_the_far_end_is_no_carrier(lab, payment, net_config):
    """The router's end of the cable goes down: the terminal's interface is still up, without a carrier."""
    payment()
    lab.ip(lab.router, "link", "set", "r0", "down")
    assert wait_for(lambda: lab.exec(lab.term, "cat", "/sys/class/net/t0/operstate").stdout.strip() != "up",
                    10)  # the kernel has taken note (it does so within a second): as a cable unplugged a while ago
    rc, report, _ = lab.diagnose(net_config())
    assert codes(report, "network.link") == ["link.no_carrier"], probe(report, "network.link")
    assert rc == 2 and top(report) == "network.link_down"


def test_an_interface_up_without_an_address_of_its_own_is_said_so(lab, payment, net_config):
    """Its IPv4 address gone (a DHCP lease lost): the link-local IPv6 address the kernel keeps is no address to
    reach a payment host from."""
    payment()
    lab.ip(lab.term, "addr", "flush", "dev", "t0", "scope", "global")
    rc, report, _ = lab.diagnose(net_config(interface="t0"))
    found = codes(report, "network.link")
    assert "link.no_address" in found and "link.no_carrier" not in found and "link.down" not in found, found
    assert rc == 2 and top(report) == "network.link_down"


def test_a_configured_interface_that_does_not_exist_is_said_so(lab, payment, net_config):
    payment()
    rc, report, _ = lab.diagnose(net_config(interface="nosuch0"))
    assert codes(report, "network.link") == ["link.interface_missing"], probe(report, "network.link")
    assert probe(report, "network.link")["findings"][0]["data"]["interface"] == "nosuch0" and rc == 2


def test_missing_default_route_blames_link(lab, payment, net_config):
    payment()
    lab.remove_default_route()
    rc, report, _ = lab.diagnose(net_config())
    assert top(report) == "network.link_down"
    assert "link.no_default_route" in codes(report, "network.link")


@pytest.mark.parametrize(("interface", "missed"), [("auto", True), ("t0", False)])
def test_with_the_gateway_off_no_default_route_is_missed_only_when_no_interface_is_named(lab, payment, net_config,
                                                                                          interface, missed):
    """``gateway = "off"``: a terminal on its interface's own subnet needs no default route; one told
    to find its interface by the default route still does."""
    payment()
    lab.remove_default_route()
    rc, report, _ = lab.diagnose(net_config(interface=interface, gateway="off"))
    assert ("link.no_default_route" in codes(report, "network.link")) is missed, probe(report, "network.link")


@pytest.mark.parametrize("interface", ["t0", "auto"])
def test_unreadable_route_table_is_unknown_not_a_missing_route(lab, payment, net_config, interface):
    """The route table hidden from posdiag (the lab's own has a default route): the link probe says it
    could not read the routes, the engine blames nothing, and the layers above still run."""
    payment()
    rc, report, _ = lab.diagnose(net_config(interface=interface), wrap=HIDDEN_ROUTE_TABLE)
    link = probe(report, "network.link")
    assert codes(report, "network.link") == ["link.routes_unknown"], link
    assert link["status"] == "ok" and "/proc/net/route" in link["findings"][0]["message"]
    assert link["metrics"].get("interface") == (None if interface == "auto" else interface)
    assert link["summary"].startswith("routing table unreadable" if interface == "auto" else f"t0 up, {TERM_ADDR}"), link
    assert rc == 0 and top(report) == "none", report["diagnosis"]
    for layer in ("network.dns", "network.tcp", "network.tls", "network.path"):
        assert probe(report, layer)["status"] == "ok", probe(report, layer)
    gateway = probe(report, "network.gateway")
    assert gateway["status"] == "skipped" and "network.gateway" in gateway["summary"], gateway


def test_dead_gateway_blames_lan_not_dns_or_wan(lab, payment, net_config):
    payment()
    lab.kill_gateway()
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 2 and top(report) == "network.lan"
    assert "gateway.unreachable" in codes(report, "network.gateway")
    ids = [c["id"] for c in report["diagnosis"]["causes"]]
    assert "network.dns" not in ids and "network.wan" not in ids  # consequences, not rivals
    assert report["diagnosis"]["causes"][0]["consequences"]


def test_a_gateway_that_loses_one_echo_in_three_is_lossy_not_down(lab, payment, net_config):
    payment()
    lab.filter(lab.router, "input", "icmp type echo-request numgen inc mod 3 0 drop")  # exactly every third
    rc, report, _ = lab.diagnose(net_config())
    gateway = probe(report, "network.gateway")
    loss = [f for f in gateway["findings"] if f["code"] == "gateway.loss"]
    assert gateway["status"] == "warn" and len(loss) == 1, gateway
    assert "lost 1 of 3" in loss[0]["message"] and top(report) == "network.degraded"


#: how long the slow echoes of a gateway take: far above any LAN round trip, even on a busy machine
SLOW_ECHO_S = 0.7


@pytest.mark.parametrize("slow, seen_slow", [((0,), False), ((0, 1, 2), True)], ids=["one-echo-slow", "every-echo-slow"])
def test_the_gateways_round_trip_is_its_quickest_echo(lab, payment, net_config, slow, seen_slow):
    """One late echo (a router busy for a moment) does not make the LAN look slow: ``rtt_ms`` is the
    quickest echo's round trip; when every echo is late, it is late too."""
    payment()
    lab.slow_gateway_echoes(slow, SLOW_ECHO_S)
    _, report, _ = lab.diagnose(net_config(timeout_s=1.5))
    gateway = probe(report, "network.gateway")
    assert gateway["status"] == "ok" and gateway["metrics"]["icmp_loss_percent"] == 0, gateway  # all came back
    assert (gateway["metrics"]["rtt_ms"] >= SLOW_ECHO_S * 1000) is seen_slow, gateway


def test_silent_resolver_blames_dns_within_the_timeout(lab, payment, net_config):
    payment()
    lab.drop_dns()
    rc, report, wall = lab.diagnose(net_config())
    assert top(report) == "network.dns"
    assert "dns.timeout" in codes(report, "network.dns")
    assert probe(report, "network.tcp")["status"] == "skipped"
    assert report["duration_s"] < 3.0


def test_servfail_blames_dns(lab, payment, net_config):
    payment(dns_mode="servfail")
    rc, report, _ = lab.diagnose(net_config())
    assert top(report) == "network.dns"
    assert "dns.servfail" in codes(report, "network.dns")


def test_servfail_reads_in_chinese(lab, payment, net_config):
    """The resolver's failure, and why the layers above it had nothing to do, in a Chinese report."""
    payment(dns_mode="servfail")
    rc, report, _ = lab.diagnose(net_config(), "--lang", "zh_CN")
    messages = {f["code"]: f["message"] for f in probe(report, "network.dns")["findings"]}
    assert messages["dns.servfail"] == f"DNS 服务器解析 {NAME} 失败（SERVFAIL）"
    tcp = probe(report, "network.tcp")
    assert tcp["status"] == "skipped" and tcp["summary"] == "没有支付主机域名解析成功"


def test_nxdomain_blames_configuration(lab, payment, net_config):
    payment(dns_mode="nxdomain")
    rc, report, _ = lab.diagnose(net_config())
    assert top(report) == "config.invalid"
    assert "dns.nxdomain" in codes(report, "network.dns")


def test_black_holed_payment_host_blames_wan_within_the_deadline(lab, payment, net_config):
    payment()
    lab.black_hole(HOST_ADDR)
    rc, report, wall = lab.diagnose(net_config(timeout_s=1.0))
    assert rc == 2 and top(report) == "network.wan"
    assert "tcp.timeout" in codes(report, "network.tcp")
    assert report["duration_s"] <= 3.0
    assert wall < 4.0


def test_tcp_reset_blames_the_payment_service(lab, payment, net_config):
    payment()
    lab.reset_port(HOST_ADDR, 443)
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 2 and top(report) == "host.service_down"
    assert "tcp.refused" in codes(report, "network.tcp")


@pytest.mark.parametrize("fault,code", [("reset", "tcp.refused"), ("black_hole", "tcp.timeout")])
def test_a_refused_or_silent_connection_is_named_by_its_address_and_port(lab, payment, net_config, fault, code):
    payment()
    lab.reset_port(HOST_ADDR, 443) if fault == "reset" else lab.black_hole(HOST_ADDR)
    rc, report, _ = lab.diagnose(net_config())
    finding = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == code)
    assert f"primary at {HOST_ADDR}:443" in finding["message"]
    assert any(f"{HOST_ADDR}:443" in line for line in report["diagnosis"]["causes"][0]["evidence"])


def test_stalled_handshake_blames_the_payment_service(lab, payment, net_config):
    payment(stall=True)
    rc, report, _ = lab.diagnose(net_config())
    assert top(report) == "host.service_down"
    assert "tls.timeout" in codes(report, "network.tls")


def test_health_path_500_blames_the_payment_service(lab, payment, net_config):
    payment(status=503)
    rc, report, _ = lab.diagnose(net_config())
    assert top(report) == "host.service_down"
    assert "http.server_error" in codes(report, "network.tls")


@pytest.mark.parametrize("cert,code,cause", [
    ("expired", "tls.cert_expired", "tls.failure"),
    ("untrusted", "tls.untrusted", "tls.failure"),
    ("wrong_name", "tls.name_mismatch", "config.invalid"),
    ("not_yet_valid", "tls.cert_not_yet_valid", "clock.skew"),
])
def test_certificate_faults_are_classified(lab, payment, net_config, cert, code, cause):
    payment(cert=cert)
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 2
    assert code in codes(report, "network.tls")
    assert top(report) == cause


def test_certificate_expiring_soon_is_a_risk_ahead_not_a_cause(lab, payment, net_config):
    payment(cert="expiring")
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 1 and top(report) == "none"
    assert "tls.expiring_soon" in codes(report, "network.tls")
    assert [r["code"] for r in report["risks"]] == ["tls.expiring_soon"]


def test_random_loss_with_working_connects_blames_degraded_network(lab, lab_tcp_host, net_config):
    lab.random_loss(35)
    hosts = [{"name": "primary", "host": HOST_ADDR, "port": 8000, "tls": False}]
    rc, report, _ = lab.diagnose(net_config(hosts, tcp_attempts=8, ping_count=30, timeout_s=1.0))
    assert top(report) == "network.degraded", report["diagnosis"]
    assert "path.loss_high" in codes(report, "network.path")
    assert probe(report, "network.tcp")["status"] in ("ok", "warn")


def test_primary_down_but_backup_fine_is_degraded_not_a_fault(lab, payment, net_config, certs):
    payment()
    lab.peer(lab.host, "tls", "--bind", BACKUP_ADDR, "--port", "443", "--cert", certs["valid"][0],
             "--key", certs["valid"][1])
    lab.reset_port(HOST_ADDR, 443)
    hosts = [{"name": "primary", "host": NAME, "port": 443, "ca_file": certs["ca"]},
             {"name": "backup", "host": "backup.acquirer.test", "port": 443, "ca_file": certs["ca"],
              "server_name": NAME}]
    rc, report, _ = lab.diagnose(net_config(hosts))
    assert rc == 1 and report["diagnosis"]["verdict"] == "degraded"
    assert top(report) == "host.service_down"
    refused = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == "tcp.refused")
    assert refused["severity"] == "warn" and refused["data"]["failover_ok"] is True
    assert probe(report, "network.tls")["status"] == "ok"


def test_icmp_blocked_while_tcp_works_is_not_a_fault(lab, payment, net_config):
    payment()
    lab.block_icmp()
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 0 and top(report) == "none"
    path = probe(report, "network.path")
    assert path["metrics"]["method"] == "tcp"
    assert "path.icmp_blocked" in codes(report, "network.path")


def test_without_icmp_permission_rtt_comes_from_tcp_and_the_report_says_so(lab, payment, net_config):
    # As on a till without root or CAP_NET_RAW and outside net.ipv4.ping_group_range.
    payment()
    lab.exec(lab.term, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
    rc, report, _ = lab.diagnose(net_config(), wrap=("setpriv", "--bounding-set", "-net_raw"))
    assert rc == 0 and top(report) == "none"
    assert "gateway.icmp_unavailable" in codes(report, "network.gateway")
    assert probe(report, "network.gateway")["metrics"]["neighbour"] == "complete"
    assert "path.icmp_unavailable" in codes(report, "network.path")
    assert probe(report, "network.path")["metrics"]["method"] == "tcp"
    assert probe(report, "network.path")["metrics"]["median_ms"] > 0


@pytest.fixture
def lab_tcp_host(lab):
    lab.peer(lab.host, "tcp", "--bind", HOST_ADDR, "--port", "8000")


# --- what a technician met at real tills ---------------------------------------------------------

def test_a_recheck_of_tls_runs_what_it_needs_and_finds_the_broken_certificate(lab, payment, net_config):
    payment(cert="untrusted")
    rc, report, _ = lab.diagnose(net_config(), "--only", "network.tls")
    assert [p["name"] for p in report["probes"]] == ["network.link", "network.dns", "network.tcp", "network.tls"]
    assert report["only"] == {"asked": ["network.tls"], "prerequisites": ["network.link", "network.dns", "network.tcp"]}
    assert NAME in probe(report, "network.dns")["summary"] or probe(report, "network.dns")["status"] == "ok"
    assert rc == 2 and top(report) == "tls.failure"


def test_a_recheck_can_never_turn_a_failing_layer_below_into_healthy(lab, payment, net_config):
    payment()
    lab.reset_port(HOST_ADDR, 443)
    rc, report, _ = lab.diagnose(net_config(), "--only", "network.tls")
    assert probe(report, "network.tls")["status"] == "skipped"
    assert "network.tcp" in probe(report, "network.tls")["summary"]
    assert rc == 2 and top(report) == "host.service_down"


def test_a_recheck_says_in_both_languages_what_it_ran_besides(lab, payment, net_config):
    payment(cert="untrusted")
    config = net_config()
    for lang, words in (("en", "Re-check of network.tls, with what it needs: network.link, network.dns, network.tcp"),
                        ("zh_CN", "复查 network.tls，连同它所依赖的：network.link, network.dns, network.tcp")):
        run = lab.exec(lab.term, sys.executable, "-m", "posdiag.agent", "diagnose", "--only", "network.tls", "--lang", lang,
                       "--config", str(config), check=False)
        assert run.returncode == 2, run.stderr
        assert unwrapped(words) in unwrapped(run.stdout)


@pytest.mark.parametrize("verdict", ["drop", "reject"])
def test_the_terminals_own_firewall_is_blamed_not_the_isp(lab, payment, net_config, verdict):
    payment()
    lab.local_firewall(HOST_ADDR, verdict)
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 2 and top(report) == "network.local_firewall", report["diagnosis"]
    blocked = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == "tcp.blocked_locally")
    assert blocked["data"]["error"] == "Operation not permitted" and f"{HOST_ADDR}:443" in blocked["message"]
    assert probe(report, "network.path")["status"] == "fail"  # nothing leaves the terminal: the path is not "ok"
    assert "path.blocked_locally" in codes(report, "network.path")
    assert [c["id"] for c in report["diagnosis"]["causes"]] == ["network.local_firewall"]


def test_the_terminals_own_firewall_reads_in_chinese(lab, payment, net_config):
    payment()
    lab.local_firewall(HOST_ADDR)
    rc, report, _ = lab.diagnose(net_config(), "--lang", "zh_CN")
    top_cause = report["diagnosis"]["causes"][0]
    assert top_cause["id"] == "network.local_firewall" and top_cause["title"] == "配置错误：终端自身的防火墙拦截了支付主机"
    blocked = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == "tcp.blocked_locally")
    assert "这台终端自己拒绝向它发送任何数据" in blocked["message"] and f"{HOST_ADDR}:443" in blocked["message"]


#: Rules for TCP alone: ICMP and UDP to the host still leave, so no send fails with EPERM.
TCP_ONLY_RULES = {
    "reset": (f"ip daddr {HOST_ADDR} tcp dport 443 reject with tcp reset", "tcp.answered_locally"),
    "unreachable": ("meta l4proto tcp reject with icmpx type host-unreachable", "tcp.answered_locally"),
    "drop": ("tcp dport 443 drop", "tcp.dropped_locally"),
}


@pytest.mark.parametrize("kind", TCP_ONLY_RULES)
def test_a_terminal_rule_for_tcp_alone_is_blamed_on_the_terminals_own_firewall(lab, payment, net_config, kind):
    rule, code = TCP_ONLY_RULES[kind]
    payment()
    lab.terminal_rule(rule)
    rc, report, _ = lab.diagnose(net_config())
    assert rc == 2 and top(report) == "network.local_firewall", report["diagnosis"]
    finding = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == code)
    assert finding["data"]["first_hop"] == GATEWAY and f"{HOST_ADDR}:443" in finding["message"]
    assert finding["data"].get("answer") == (None if kind == "drop" else kind)
    assert not {"network.wan", "host.service_down"} & {c["id"] for c in report["diagnosis"]["causes"]}


@pytest.mark.parametrize("kind", TCP_ONLY_RULES)
def test_the_same_rule_in_the_router_is_still_the_path_or_the_host(lab, payment, net_config, kind):
    """The control: packets that leave the terminal and are reset, refused or dropped beyond it keep
    their meaning (the one-hop check sees the first router answer them)."""
    rule, _ = TCP_ONLY_RULES[kind]
    payment()
    lab.filter(lab.router, "forward", rule)
    rc, report, _ = lab.diagnose(net_config())
    expected = {"reset": "host.service_down", "unreachable": "network.wan", "drop": "network.wan"}[kind]
    assert rc == 2 and top(report) == expected, report["diagnosis"]
    assert "network.local_firewall" not in {c["id"] for c in report["diagnosis"]["causes"]}


def test_a_terminal_rule_for_tcp_alone_reads_in_chinese(lab, payment, net_config):
    payment()
    lab.terminal_rule("tcp dport 443 drop")
    rc, report, _ = lab.diagnose(net_config(), "--lang", "zh_CN")
    assert top(report) == "network.local_firewall"
    finding = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == "tcp.dropped_locally")
    assert "不会离开这台终端" in finding["message"] and GATEWAY in finding["message"]
    assert any("终端自身包过滤的规则" in line for line in report["diagnosis"]["causes"][0]["evidence"])


def test_a_payment_host_on_the_stores_lan_that_does_not_answer_arp_is_down_not_the_isp(lab, net_config):
    hosts = [{"name": "primary", "host": LAN_HOST_ADDR, "port": 8000, "tls": False}]
    rc, report, _ = lab.diagnose(net_config(hosts, timeout_s=1.0))
    assert rc == 2 and top(report) == "host.service_down", report["diagnosis"]
    silent = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == "tcp.lan_host_silent")
    assert "on the store's LAN" in silent["message"] and "no ARP reply" in silent["message"]
    assert f"{LAN_HOST_ADDR}:8000" in silent["message"]
    assert "network.wan" not in [c["id"] for c in report["diagnosis"]["causes"]]


def test_a_payment_host_on_the_stores_lan_reads_in_chinese(lab, net_config):
    hosts = [{"name": "primary", "host": LAN_HOST_ADDR, "port": 8000, "tls": False}]
    rc, report, _ = lab.diagnose(net_config(hosts, timeout_s=1.0), "--lang", "zh_CN")
    silent = next(f for f in probe(report, "network.tcp")["findings"] if f["code"] == "tcp.lan_host_silent")
    assert "在门店局域网内" in silent["message"] and "没有 ARP 应答" in silent["message"]


def test_an_ntp_name_that_does_not_resolve_is_a_clock_finding_not_a_payment_path(lab, config_file):
    lab.peer(lab.host, "dns", "--bind", DNS_ADDR, "--zone", f"{NAME}={HOST_ADDR}", "--mode", "nxdomain")
    lab.resolv_conf(DNS_ADDR)  # the terminal's own resolver: the lab's, never this machine's
    config = config_file(clock={"ntp_server": "ntp.acquirer.test"})
    rc, report, _ = lab.diagnose(config)
    assert "clock.ntp_unresolved" in codes(report, "clock")
    ids = [c["id"] for c in report["diagnosis"]["causes"]]
    assert ids == ["clock.skew"] and not [i for i in ids if i.startswith(("network.", "host."))]
    assert rc == 1
    assert any("ntp.acquirer.test does not resolve" in e for e in report["diagnosis"]["causes"][0]["evidence"])
    rc, report, _ = lab.diagnose(config, "--lang", "zh_CN")
    assert [c["id"] for c in report["diagnosis"]["causes"]] == ["clock.skew"]
    assert any("NTP 服务器域名 ntp.acquirer.test 无法解析" in e for e in report["diagnosis"]["causes"][0]["evidence"])


ARP_HEADER = "IP address       HW type     Flags       HW address            Mask     Device\n"


@pytest.mark.parametrize(("address", "state"), [("192.168.1.1", "complete"), ("192.168.1.9", "incomplete"),
                                                ("192.168.1.77", None)], ids=["complete", "incomplete", "not-in-the-table"])
def test_a_neighbours_arp_state_is_read_from_its_own_row_and_its_flags(tmp_path, address, state):
    from posdiag.probes._netinfo import neighbour_state

    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "arp").write_text(
        ARP_HEADER + "192.168.1.9      0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "192.168.1.1      0x1         0x2         52:54:00:12:34:56     *        eth0\n"
        "192.168.1.10     0x1         0x6         52:54:00:12:34:57     *        eth0\n")
    assert neighbour_state(address, str(tmp_path)) == state
    assert neighbour_state(address, str(tmp_path / "no-proc")) is None


def test_an_interface_that_is_not_there_is_neither_up_nor_carrying():
    from posdiag.probes._netinfo import InterfaceState, interface_state

    assert interface_state(f"nosuch{os.getpid() % 10000}") == InterfaceState(f"nosuch{os.getpid() % 10000}", False,
                                                                             False, None, (), None)
