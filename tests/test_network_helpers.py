"""The small pieces the differential checks stand on, against real loopback peers and real files:
DNS retries side by side, the last-known-address record, DF echoes on loopback, the routing tables."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import threading
import time

import pytest
from labs.packets import icmp_packet, ip_header, wire
from posdiag.core.addresses import is_address
from posdiag.probes import _dnswire
from posdiag.probes._dnswire import DnsMalformed, DnsTimeout, query
from posdiag.probes._netinfo import (
    Route,
    RoutesUnknown,
    _administratively_up,
    default_route,
    interface_state,
    on_link,
    route_to,
    routed_via_gateway,
)
from posdiag.probes.network import _known


class LossyResolver:
    """A UDP resolver on loopback that drops the first ``drop`` questions, then answers NOERROR."""

    def __init__(self, drop: int) -> None:
        self.drop, self.seen = drop, 0
        self.arrived: list[float] = []  # monotonic time of each question
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1#{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            self.seen += 1
            self.arrived.append(time.monotonic())
            if self.seen <= self.drop:
                continue
            # header: same id, QR + RD + RA, NOERROR, the question echoed, one A record 192.0.2.7
            reply = data[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + data[12:]
            reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 7])
            self.sock.sendto(reply, peer)

    def __enter__(self) -> LossyResolver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


class ScriptedResolver(LossyResolver):
    """Answers every question after ``delay_s``, each in its own timer, with ``rcode`` (0 NOERROR, 2 SERVFAIL,
    3 NXDOMAIN, 5 REFUSED); a NOERROR carries 192.0.2.7 unless ``empty``."""

    def __init__(self, delay_s: float = 0.0, rcode: int = 0, empty: bool = False, ipv6_only: bool = False) -> None:
        super().__init__(drop=0)
        self.delay_s, self.rcode, self.empty, self.ipv6_only = delay_s, rcode, empty, ipv6_only

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            end = 12
            while data[end]:  # the question's name, label by label
                end += data[end] + 1
            aaaa = data[end + 1:end + 3] == b"\x00\x1c"
            answers = 0 if self.rcode or self.empty or self.ipv6_only != aaaa else 1
            reply = data[:2] + bytes([0x81, 0x80 | self.rcode]) + bytes([0, 1, 0, answers, 0, 0, 0, 0]) + data[12:]
            if answers and aaaa:
                reply += b"\xc0\x0c\x00\x1c\x00\x01\x00\x00\x00\x3c\x00\x10" + bytes.fromhex("20010db8" + "0" * 23 + "7")
            elif answers:
                reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 7])
            threading.Timer(self.delay_s, self._send, (reply, peer)).start()

    def _send(self, reply: bytes, peer: tuple) -> None:
        if not self._stop.is_set():  # a repeated question answered after the test is over: not sent
            with contextlib.suppress(OSError):
                self.sock.sendto(reply, peer)


def dns_findings(config_file, *resolvers: ScriptedResolver) -> dict[str, str]:
    """The DNS probe's findings (code → severity) for pay.test through these resolvers on loopback."""
    from posdiag.core import settings as cfg
    from posdiag.probes.network.dns import DnsProbe

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "pay.test", "port": 443}],
                                        network={"dns_servers": [r.address for r in resolvers], "timeout_s": 1.5})))
    result = DnsProbe(settings).run()
    assert result.status.value != "error", result
    return {f.code: f.severity.value for f in result.findings}


def test_only_the_host_whose_name_did_not_resolve_is_not_attempted(config_file):
    """Two payment hosts: one by address (a closed loopback port), one whose name the resolver does not
    know. TCP is tried on the first; the second is named as not attempted, and only it."""
    from labs.commands import diagnose_json
    from labs.helpers import probe_of

    with ScriptedResolver(rcode=3) as nxdomain:
        _, report = diagnose_json(config_file(
            payment_hosts=[{"name": "by-address", "host": "127.0.0.1", "port": 9, "tls": False},
                           {"name": "by-name", "host": "nowhere.test", "port": 443, "tls": False}],
            network={"dns_servers": [nxdomain.address], "timeout_s": 1.0}), "--only", "network.tcp")
    findings = probe_of(report, "network.tcp")["findings"]
    assert [f["data"]["host"] for f in findings if f["code"] == "tcp.not_attempted"] == ["nowhere.test"], findings
    assert any(f["code"] == "tcp.refused" for f in findings), findings  # the closed port was tried


@pytest.mark.parametrize(("delay_s", "slow"), [(0.7, True), (0.05, False)])
def test_a_resolver_answering_after_half_a_second_is_slow(config_file, delay_s, slow):
    with ScriptedResolver(delay_s) as resolver:
        assert ("dns.slow" in dns_findings(config_file, resolver)) is slow


@pytest.mark.parametrize(("rcode", "empty", "code"), [(0, False, None), (0, True, "dns.no_address"), (3, False, "dns.nxdomain"),
                                                      (2, False, "dns.servfail"), (5, False, "dns.refused")],
                         ids=["address", "no-address", "nxdomain", "servfail", "refused"])
def test_each_answer_of_the_resolver_is_told_apart(config_file, rcode, empty, code):
    with ScriptedResolver(rcode=rcode, empty=empty) as resolver:
        found = dns_findings(config_file, resolver)
    assert [c for c, severity in found.items() if severity != "info"] == ([code] if code else []), found


def test_a_name_with_only_an_ipv6_address_resolves(config_file):
    """No A record, an AAAA one: asked for next, and the host resolves (not 'no address')."""
    with ScriptedResolver(ipv6_only=True) as resolver:
        found = dns_findings(config_file, resolver)
    assert [c for c, severity in found.items() if severity != "info"] == [] and "dns.resolved" in found, found


def test_one_failing_resolver_beside_a_working_one_is_a_warning_not_a_failure(config_file):
    with ScriptedResolver() as good, ScriptedResolver(rcode=2) as failing:
        found = dns_findings(config_file, good, failing)
    assert found.get("dns.resolver_failing") == "warn" and "dns.servfail" not in found, found


def test_a_lost_question_is_asked_again_within_the_same_timeout():
    with LossyResolver(drop=1) as resolver:
        answer = query(resolver.address, "pay.example", timeout_s=0.9, resend_after_s=0.3)
    # answered at all: the second question went out inside the one 0.9 s timeout, not after it
    assert answer.rcode == "NOERROR" and answer.addresses == ("192.0.2.7",)
    assert resolver.seen == 2
    assert resolver.arrived[1] - resolver.arrived[0] >= 0.25  # it waited its 0.3 s before asking again


def test_a_silent_resolver_costs_one_timeout_however_many_tries():
    with LossyResolver(drop=100) as resolver:
        started = time.monotonic()
        with pytest.raises(DnsTimeout):
            query(resolver.address, "pay.example", timeout_s=0.6, resend_after_s=0.2)
        elapsed = time.monotonic() - started
    assert resolver.seen == 3  # a question every 0.2 s of the one 0.6 s timeout, not a timeout each
    assert elapsed < 1.5  # one 0.6 s timeout; three in a row would be 1.8 s


# --- the DNS wire format, byte by byte (pure parsing) ---

QUESTION = b"\x03pay\x07example\x00" + struct.pack("!HH", 1, 1)


def dns_reply(*records: tuple[int, bytes], qid: int = 0x2824, flags: int = 0x8180, question: bool = True) -> bytes:
    """A reply to ``qid``: the question, then each (type, rdata) as an answer named by a pointer to it."""
    header = struct.pack("!HHHHHH", qid, flags, int(question), len(records), 0, 0)
    answers = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata for rtype, rdata in records)
    return header + (QUESTION if question else b"") + answers


def test_a_dns_query_asks_for_the_name_label_by_label_with_recursion_desired():
    qid, packet = _dnswire.build_query("pay.example.", _dnswire.TYPE_AAAA)
    assert 0 <= qid <= 0xFFFF and packet[:12] == struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    assert packet[12:] == b"\x03pay\x07example\x00" + struct.pack("!HH", 28, 1)


def test_only_a_records_of_four_bytes_and_aaaa_of_sixteen_are_addresses():
    six = bytes(range(1, 17))
    rcode, addresses, truncated = _dnswire.parse_response(dns_reply(
        (5, b"\x03cdn\xc0\x10"), (1, bytes([192, 0, 2, 7])), (28, six), (1, six), (28, bytes([192, 0, 2, 8])),
        (16, b"")), 0x2824)
    assert (rcode, addresses, truncated) == ("NOERROR", ("192.0.2.7", "102:304:506:708:90a:b0c:d0e:f10"), False)


@pytest.mark.parametrize(("rcode", "word"), [(0, "NOERROR"), (1, "FORMERR"), (2, "SERVFAIL"), (3, "NXDOMAIN"),
                                             (4, "NOTIMP"), (5, "REFUSED"), (9, "RCODE9")])
def test_each_dns_answer_code_is_named(rcode, word):
    assert _dnswire.parse_response(dns_reply(flags=0x8180 | rcode), {7, 0x2824})[0] == word


def test_a_truncated_dns_answer_is_said_so():
    assert _dnswire.parse_response(dns_reply(flags=0x8380), 0x2824)[2] is True


@pytest.mark.parametrize(("reply", "qid", "malformed"), [
    (dns_reply(question=False)[:12], 0x2824, False), (dns_reply(question=False)[:11], 0x2824, True),
    (dns_reply(), 0x2825, True), (dns_reply(flags=0x0100), 0x2824, True),
    (dns_reply((16, b"")), 0x2824, False), (dns_reply((1, bytes(4)))[:-1], 0x2824, True),
    (dns_reply((1, bytes(4)))[:-5], 0x2824, True), (dns_reply()[:-5], 0x2824, True), (dns_reply()[:-14], 0x2824, True)],
    ids=["a-bare-header", "shorter-than-a-header", "another-query-s-id", "a-query-not-a-reply",
         "an-empty-record-to-the-last-byte", "a-record-cut-in-its-data", "a-record-cut-in-its-header",
         "a-name-without-its-end", "a-name-cut-short"])
def test_a_dns_reply_is_malformed_only_where_it_cannot_be_read_as_ours(reply, qid, malformed):
    if malformed:
        with pytest.raises(DnsMalformed):
            _dnswire.parse_response(reply, qid)
    else:
        assert _dnswire.parse_response(reply, qid)[1] == ()


@pytest.mark.parametrize(("server", "endpoint"), [("192.0.2.53", ("192.0.2.53", 53)),
                                                  ("192.0.2.53#5353", ("192.0.2.53", 5353)),
                                                  ("fd00::53#5353", ("fd00::53", 5353))])
def test_a_resolver_is_named_with_or_without_its_port(server, endpoint):
    assert _dnswire.resolver_endpoint(server) == endpoint


def test_last_known_addresses_are_kept_newest_first_and_written_only_on_change(tmp_path):
    state = str(tmp_path / "state")
    assert _known.load(state) == {}
    assert _known.remember(state, {"pay.example": "192.0.2.7"}) is True
    path = tmp_path / "state" / _known.FILE_NAME
    first = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert _known.remember(state, {"pay.example": "192.0.2.7"}) is False
    assert path.stat().st_mtime_ns == first  # nothing new, nothing written (flash storage)
    assert _known.remember(state, {"pay.example": "192.0.2.8", "backup.example": "192.0.2.9"}) is True
    assert _known.load(state) == {"pay.example": ("192.0.2.8", "192.0.2.7"), "backup.example": ("192.0.2.9",)}
    assert not [n for n in os.listdir(tmp_path / "state") if n.endswith(".tmp")]


def test_nothing_is_recorded_without_a_state_dir_or_without_an_address_that_worked(tmp_path):
    assert _known.remember(None, {"pay.example": "192.0.2.7"}) is False
    assert _known.remember("", {"pay.example": "192.0.2.7"}) is False
    assert _known.remember(str(tmp_path / "state"), {}) is False
    assert not (tmp_path / "state").exists()
    assert _known.load(None) == {} and _known.load("") == {}


def test_a_damaged_record_reads_as_empty_and_is_replaced(tmp_path):
    (tmp_path / _known.FILE_NAME).write_text("{not json")
    assert _known.load(str(tmp_path)) == {}
    assert _known.remember(str(tmp_path), {"pay.example": "192.0.2.7"}) is True
    assert json.loads((tmp_path / _known.FILE_NAME).read_text())["hosts"]["pay.example"]["addresses"] == ["192.0.2.7"]


def test_an_unwritable_state_dir_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _known.remember(str(blocker / "state"), {"pay.example": "192.0.2.7"}) is False


@pytest.mark.root
def test_df_echoes_of_every_size_come_back_on_loopback():
    from posdiag.probes.network._icmp import echo_batch

    rtts = echo_batch("127.0.0.1", [64, 576, 1500, 1500], time.monotonic() + 1.0, spread_s=0.05)
    assert all(r is not None and r >= 0 for r in rtts), rtts


def test_silent_tcp_handshakes_alone_are_not_counted_again_by_the_path_probe():
    """The TCP probe reports its own silent connects; the path probe adds path.no_answer only when
    echoes went unanswered too, so one observation is not weighed twice for the WAN."""
    from posdiag.core.settings import PaymentHost
    from posdiag.probes.network._common import Target
    from posdiag.probes.network.path import PathProbe, Samples

    plan = (Target(0, PaymentHost(host="198.18.2.2")), "198.18.2.2")
    assert PathProbe.no_answer(plan, Samples("tcp", [None] * 24, tcp_sent=24)) is None
    code, _, data = PathProbe.no_answer(plan, Samples("icmp", [None] * 24, icmp_sent=24, tcp_sent=24))
    assert code == "path.no_answer" and data["icmp_sent"] == 24
    assert PathProbe.no_answer(plan, Samples("icmp", [None, 3.5], icmp_sent=2)) is None


def test_a_percentile_lies_between_the_samples_on_either_side_of_it():
    """Twenty connect times of 1..20 ms, in the order they came: p95 is 5 % of the way from the 19th
    to the 20th (19.05 ms), the median half way from the 10th to the 11th; the ends are the extremes."""
    from posdiag.probes.network._common import percentile, rtt_stats

    samples = [float(ms) for ms in range(20, 0, -1)]
    assert rtt_stats(samples)["p95_ms"] == pytest.approx(19.05)
    assert percentile(samples, 50) == pytest.approx(10.5) == rtt_stats(samples)["median_ms"]
    assert (percentile(samples, 0), percentile(samples, 100), percentile([7.0], 95)) == (1.0, 20.0, 7.0)


@pytest.mark.parametrize("check", ["threading.Event().wait",
                                   "lambda: side_by_side(lambda wait: wait(), [threading.Event().wait] * 2)"],
                         ids=["one-check", "checks-side-by-side"])
def test_a_check_still_stuck_in_the_background_never_keeps_the_process_from_exiting(check):
    """What a probe started in the background may still wait in a system call when the runner has
    abandoned the probe at its deadline: like the probe's own thread, it dies with the process, so
    ``posdiag diagnose`` exits once its report is out. So do the threads of checks run side by side
    (the DNS probe asks every resolver at once in the background)."""
    import subprocess
    import sys

    code = ("import threading\n"
            "from posdiag.probes.network._common import Background, side_by_side\n"
            f"stuck = Background({check})\n"
            "assert not stuck.done_within(0.05)\n"
            "print('report out', flush=True)\n")
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the process did not exit: a background check kept it alive ({hung.stdout!r})")
    assert proc.returncode == 0 and proc.stdout == "report out\n", proc.stderr


ROUTE_HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
IPV4_DEFAULT = "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"  # via 192.168.1.1
IPV6_DEFAULT = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
                "fd000000000000000000000000000001 00000400 00000003 00000000 00000003     wlan0\n")


def proc_with(tmp_path, route: str | None = None, ipv6_route: str | None = None, unreadable: str = ""):
    """A /proc look-alike of real files; ``unreadable`` names a table made a folder (reading it fails)."""
    net = tmp_path / "net"
    net.mkdir(parents=True)
    for name, text in (("route", route), ("ipv6_route", ipv6_route)):
        if name == unreadable:
            (net / name).mkdir()
        elif text is not None:
            (net / name).write_text(text)
    return str(tmp_path)


@pytest.mark.parametrize("tables", [{}, {"unreadable": "route", "ipv6_route": ""},
                                    {"route": ROUTE_HEADER, "unreadable": "ipv6_route"}],
                         ids=["no-table-at-all", "ipv4-table-unreadable", "ipv6-table-unreadable"])
def test_a_routing_table_that_cannot_be_read_is_unknown_not_no_route(tmp_path, tables):
    with pytest.raises(RoutesUnknown) as caught:
        default_route(proc_with(tmp_path, **tables))
    assert caught.value.path.startswith(str(tmp_path / "net")) and caught.value.error


@pytest.mark.parametrize("ipv6_route", ["", None], ids=["ipv6-table-empty", "ipv6-switched-off"])
def test_tables_that_read_and_hold_no_default_route_are_no_route(tmp_path, ipv6_route):
    """An absent IPv6 table is IPv6 switched off: it holds no route, it is not an unknown."""
    assert default_route(proc_with(tmp_path, route=ROUTE_HEADER, ipv6_route=ipv6_route)) is None


@pytest.mark.parametrize(("tables", "route"), [
    ({"route": ROUTE_HEADER + IPV4_DEFAULT, "unreadable": "ipv6_route"}, Route("eth0", "192.168.1.1")),
    ({"ipv6_route": IPV6_DEFAULT, "unreadable": "route"}, Route("wlan0", "fd00::1"))], ids=["ipv4", "ipv6"])
def test_a_default_route_in_a_table_that_reads_is_found_whatever_the_other(tmp_path, tables, route):
    assert default_route(proc_with(tmp_path, **tables)) == route


def test_routes_that_only_look_like_a_default_are_not_one(tmp_path):
    """0.0.0.0/1 (a VPN's half of the world), a subnet route, a route cut short by the kernel: none is the
    default route; the real one after them is."""
    half = "tun0\t00000000\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0\n"  # 0.0.0.0/1 on-link
    subnet = "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"  # 192.168.1.0/24
    short = "eth9\t00000000\t0101A8C0\t0003\t0\t0\t1\n"  # seven fields: no mask to read
    assert default_route(proc_with(tmp_path, route=ROUTE_HEADER + half + subnet + short, ipv6_route="")) is None
    eight = "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\n"  # the mask is the eighth and last field
    assert default_route(proc_with(tmp_path / "b", route=ROUTE_HEADER + half + eight + short)) == Route("eth0", "192.168.1.1")


def test_of_two_default_routes_of_equal_metric_the_first_listed_is_taken(tmp_path):
    first = "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    second = "eth1\t00000000\t01AAA8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    assert default_route(proc_with(tmp_path, route=ROUTE_HEADER + first + second)) == Route("eth0", "192.168.1.1")
    onlink = "ppp0\t00000000\t00000000\t0001\t0\t0\t5\t00000000\t0\t0\t0\n"  # no RTF_GATEWAY: on-link
    assert default_route(proc_with(tmp_path / "b", route=ROUTE_HEADER + first + onlink)) == Route("ppp0", None)


IPV6_LO = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
           "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n")
IPV6_SUBNET = ("fd000000000000000000000000000000 40 00000000000000000000000000000000 00 "
               "00000000000000000000000000000000 00000100 00000001 00000000 00000001     wlan0\n")
IPV6_ONLINK = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
               "00000000000000000000000000000000 00000400 00000001 00000000 00000001     ppp0\n")


def test_the_ipv6_default_route_is_the_first_zero_prefix_route_off_loopback(tmp_path):
    """The kernel lists an unreachable ::/0 on lo and the subnets too: neither is a way out."""
    table = IPV6_SUBNET + IPV6_LO + IPV6_DEFAULT
    assert default_route(proc_with(tmp_path, route=ROUTE_HEADER, ipv6_route=table)) == Route("wlan0", "fd00::1")
    assert default_route(proc_with(tmp_path / "b", route=ROUTE_HEADER, ipv6_route=IPV6_SUBNET + IPV6_LO)) is None
    assert default_route(proc_with(tmp_path / "c", route=ROUTE_HEADER, ipv6_route=IPV6_ONLINK)) == Route("ppp0", None)
    cut = IPV6_DEFAULT.rsplit(" ", 1)[0] + "\n"  # nine fields: no interface
    assert default_route(proc_with(tmp_path / "d", route=ROUTE_HEADER, ipv6_route=cut)) is None


LAN_TABLE = ROUTE_HEADER + (
    "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"  # 192.168.1.0/24 on-link
    "eth1\t0000000A\t0302A8C0\t0003\t0\t0\t50\t000000FF\t0\t0\t0\n"  # 10.0.0.0/8 via 192.168.2.3, metric 50
    "eth0\t0000000A\t0201A8C0\t0003\t0\t0\t100\t000000FF\t0\t0\t0\n"  # 10.0.0.0/8 via 192.168.1.2
    "eth4\t000010AC\t00000000\t0001\t0\t0\t0\t0000F0FF\n"  # 172.16.0.0/12, eight fields: the mask last
    "eth5\t0007A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # 192.168.7.0/24 on eth5
    "eth6\t0007A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # the same, listed second
    "eth2\t0002010A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"  # 10.1.2.0/24, not up
    "eth3\t0003010A\t00000000\t0001\t0\t0\t0\n")  # 10.1.3.0/24 cut short: no mask to read


@pytest.mark.parametrize(("address", "route", "lan"), [
    ("192.168.1.50", Route("eth0", None), True),
    ("10.1.2.3", Route("eth1", "192.168.2.3"), False),
    ("10.1.3.3", Route("eth1", "192.168.2.3"), False),
    ("172.16.5.5", Route("eth4", None), True),
    ("192.168.7.7", Route("eth5", None), True),
    ("198.51.100.7", None, False),
    ("fd00::7", None, False),
], ids=["on-link-subnet", "lowest-metric-of-two-/8-not-a-route-that-is-down", "not-a-row-cut-short",
        "a-row-of-eight-fields", "the-first-of-two-equal-routes", "no-route",
        "not-ipv4"])
def test_the_route_to_an_address_is_the_up_route_of_longest_prefix_then_lowest_metric(tmp_path, address, route, lan):
    proc = proc_with(tmp_path, route=LAN_TABLE)
    assert route_to(address, proc) == route
    assert on_link(address, proc) is lan
    assert routed_via_gateway(address, proc) is bool(route and route.gateway)


def test_an_on_link_default_route_does_not_make_the_world_the_lan(tmp_path):
    onlink = ROUTE_HEADER + "ppp0\t00000000\t00000000\t0001\t0\t0\t5\t00000000\t0\t0\t0\n"
    proc = proc_with(tmp_path, route=onlink)
    assert route_to("198.51.100.7", proc) == Route("ppp0", None)
    assert on_link("198.51.100.7", proc) is False and routed_via_gateway("198.51.100.7", proc) is False


def test_loopback_is_an_interface_that_is_up_and_carrying_with_its_address_and_no_speed():
    state = interface_state("lo")
    assert (state.exists, state.up, state.carrier, state.speed_mbps) == (True, True, True, None)
    assert "127.0.0.1" in state.addresses and all(is_address(a) for a in state.addresses), state


@pytest.mark.parametrize(("flags", "isup", "up"), [("0x1003", False, True), ("0x1002", True, False),
                                                   ("garbled", True, True), (None, False, False)],
                         ids=["iff-up-without-running", "running-bit-not-iff-up", "unreadable-flags", "no-flags"])
def test_an_interface_is_up_by_its_iff_up_flag_and_psutil_only_without_one(tmp_path, flags, isup, up):
    path = tmp_path / "flags"
    if flags is not None:
        path.write_text(flags + "\n")
    assert _administratively_up(str(path), isup) is up


# --- the path probe's judgement of what it measured (pure logic: the samples are given) ------------------

def judged(config_file, rtts: list[float | None], **network) -> dict[str, str]:
    """The path probe's findings (code → severity) for these round trips to the first payment host."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import targets
    from posdiag.probes.network.path import PathProbe, Samples

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "192.0.2.7", "port": 443}],
                                        network={"max_loss_percent": 25, "max_rtt_ms": 100, "max_jitter_ms": 20, **network})))
    obs = Observation()
    PathProbe(settings).judge(obs, targets(settings)[0], "192.0.2.7", Samples("tcp", rtts))
    return {f.code: f.severity.value for f in obs.findings}


@pytest.mark.parametrize(("lost", "code", "severity"), [(6, "path.loss_high", "fail"), (5, "path.loss", "info"),
                                                        (0, None, None)], ids=["25-percent", "21-percent", "none"])
def test_loss_at_the_limit_is_a_fault_and_below_it_only_noted(config_file, lost, code, severity):
    found = judged(config_file, [None] * lost + [10.0] * (24 - lost))
    assert {c: s for c, s in found.items() if c.startswith("path.loss")} == ({code: severity} if code else {})


@pytest.mark.parametrize(("median_ms", "severity"), [(100, None), (101, "warn"), (300, "warn"), (301, "fail")])
def test_latency_above_the_limit_warns_and_above_three_times_it_fails(config_file, median_ms, severity):
    found = judged(config_file, [float(median_ms)] * 24)
    assert found.get("path.latency_high") == severity, found


@pytest.mark.parametrize(("swing_ms", "warned"), [(20, False), (21, True)])
def test_jitter_above_the_limit_warns(config_file, swing_ms, warned):
    found = judged(config_file, [10.0, 10.0 + swing_ms] * 12)
    assert ("path.jitter_high" in found) is warned, found


def test_one_probe_lost_in_a_hundred_is_noted(config_file):
    assert judged(config_file, [None] + [10.0] * 99, ping_count=100) == {"path.loss": "info"}


@pytest.mark.parametrize(("outcomes", "code"), [
    ("ok ok ok", None), ("ok ok timeout", "tcp.unstable"), ("ok refused refused", "tcp.unstable"),
    ("refused timeout timeout", "tcp.refused"), ("unreachable timeout timeout", "tcp.unreachable"),
    ("timeout timeout timeout", "tcp.timeout"), ("error error error", "tcp.error")])
def test_tcp_connect_outcomes_are_judged_one_failure_at_a_time(config_file, outcomes, code):
    """One failed connect of three beside working ones is instability; none working is the kind of
    failure seen, a refusal first (the host is there), then unreachable, then silence."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import Connect, targets
    from posdiag.probes.network.tcp import TcpProbe

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "203.0.113.7", "port": 443}])))
    obs = Observation()
    attempts = [Connect(kind, 5.0, "" if kind == "ok" else f"{kind} here") for kind in outcomes.split()]
    verdict = TcpProbe(settings).judge(obs, targets(settings)[0], "203.0.113.7", attempts, None)  # left the terminal
    said = [f.code for f in obs.findings if f.severity.value != "info"] + ([verdict[0]] if verdict else [])
    assert said == ([code] if code else [])
    if code in ("tcp.unreachable", "tcp.error"):  # the error of the attempt that failed that way, not another's
        assert f"({code.split('.')[1]} here)" in verdict[1], verdict


def test_payment_hosts_are_called_by_their_role():
    from posdiag.core.settings import PaymentHost
    from posdiag.probes.network._common import Target

    assert Target(0, PaymentHost(name="acquirer-a", host="a.test")).label == "acquirer-a (primary)"
    assert Target(1, PaymentHost(name="acquirer-b", host="b.test")).label == "acquirer-b (backup 1)"
    assert Target(0, PaymentHost(name="primary", host="a.test")).label == "primary"  # not "primary (primary)"
    assert Target(2, PaymentHost(name="backup 2", host="c.test")).label == "backup 2"
    assert Target(2, PaymentHost(host="c.test", port=8443)).label == "c.test:8443 (backup 2)"
    assert [Target(i, PaymentHost(host="a.test")).role for i in (0, 1, 2)] == ["primary", "backup 1", "backup 2"]


@pytest.mark.parametrize(("address", "via_gateway"), [("192.168.1.50", False), ("10.1.2.3", False), ("10.9.9.9", True),
                                                      ("198.51.100.7", True)],
                         ids=["on-link-lan", "on-link-24-inside-a-routed-16", "routed-16", "default-route"])
def test_the_route_the_kernel_would_pick_is_the_longest_prefix(tmp_path, address, via_gateway):
    """10.1.2.0/24 on-link beats 10.0.0.0/8 via a gateway; the rest goes the default way, via a gateway."""
    from posdiag.probes._netinfo import routed_via_gateway

    table = ROUTE_HEADER + IPV4_DEFAULT + (
        "eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n"  # 192.168.1.0/24 on-link
        "eth0\t0000000A\t0201A8C0\t0003\t0\t0\t100\t000000FF\t0\t0\t0\n"  # 10.0.0.0/8 via 192.168.1.2
        "eth1\t0002010A\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n")  # 10.1.2.0/24 on-link
    assert routed_via_gateway(address, proc_with(tmp_path, route=table)) is via_gateway


# --- did the connects leave the terminal? (the one-hop check's judgement; pure logic) ------------------

def _one_hop(*outcomes):
    from posdiag.probes.network._egress import _judge

    return _judge(list(outcomes), "198.18.1.1")


def _sent(code: int = 0, icmp_type: int | None = None, sender: str = "", connected: bool = False):
    from posdiag.probes.network._egress import _Outcome
    from posdiag.probes.network._icmp import IcmpError

    return _Outcome(code, IcmpError(icmp_type, 1, sender) if icmp_type is not None else None, connected)


def test_a_connect_the_first_router_answered_left_the_terminal_whatever_the_other_got():
    import errno

    assert _one_hop(_sent(), _sent(errno.EHOSTUNREACH, 11, "198.18.1.1")) is None
    assert _one_hop(_sent(connected=True), _sent()) is None


def test_a_reset_or_an_unreachable_from_the_terminal_itself_is_an_answer_from_inside():
    import errno

    reset = _one_hop(_sent(errno.ECONNREFUSED), _sent(errno.ECONNREFUSED))
    assert (reset.sign, reset.answer, reset.first_hop) == ("answered", "reset", "198.18.1.1")
    unreachable = _one_hop(_sent(errno.EHOSTUNREACH, 3, "127.0.0.1"), _sent())
    assert (unreachable.sign, unreachable.answer) == ("answered", "unreachable")
    # the ICMP error came before the connect had an error of its own: it is said as what it means
    early = _one_hop(_sent(0, 3, "127.0.0.1"), _sent())
    assert (early.answer, early.error) == ("unreachable", os.strerror(errno.EHOSTUNREACH))
    assert unreachable.error == os.strerror(errno.EHOSTUNREACH) and reset.error == os.strerror(errno.ECONNREFUSED)


def test_silence_is_a_drop_inside_but_an_answer_from_elsewhere_proves_nothing():
    import errno

    assert _one_hop(_sent(), _sent()).sign == "dropped"
    assert _one_hop(_sent(errno.EHOSTUNREACH, 3, "192.0.2.1"), _sent()) is None  # not this terminal's address
    assert _one_hop(_sent(errno.ENETUNREACH), _sent()) is None  # no route: not a packet filter


def judged_sizes(config_file, lost: int, sizes: dict[int, list]) -> dict[str, dict]:
    """The path probe's findings (code → data) for 24 small echoes, ``lost`` of them lost, and these DF echoes."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import targets
    from posdiag.probes.network.path import PathProbe, Samples

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "192.0.2.7", "port": 443}],
                                        network={"max_loss_percent": 25})))
    obs = Observation()
    PathProbe(settings).judge(obs, targets(settings)[0], "192.0.2.7",
                              Samples("icmp", [None] * lost + [10.0] * (24 - lost), sizes=sizes))
    return {f.code: {**f.data, "message": f.message} for f in obs.findings}


@pytest.mark.parametrize(("lost", "black_hole"), [(5, True), (6, False)], ids=["21-percent-lost", "25-percent-lost"])
def test_large_echoes_vanishing_are_a_black_hole_only_on_a_path_that_is_not_lossy(config_file, lost, black_hole):
    """Echoes of 576 and 1000 bytes come back, 1280 bytes and more vanish: on a path losing less than its
    limit that is an MTU black hole; at the limit, the loss explains the vanished echoes as well."""
    sizes = {576: [11.0] * 3, 1000: [12.0, None, 12.5], 1280: [None] * 3, 1400: [None] * 3, 1500: [None] * 3}
    found = judged_sizes(config_file, lost, sizes)
    assert ("path.mtu_black_hole" in found) is black_hole, found
    if black_hole:
        hole = found["path.mtu_black_hole"]
        assert (hole["largest_ok"], hole["smallest_lost"]) == (1000, 1280)
        assert "echoes up to 1000 bytes come back, 1280 bytes and more (Don't Fragment) vanish" in hole["message"]


def test_large_echoes_the_kernel_refuses_are_a_signalled_mtu_not_a_black_hole(config_file):
    from posdiag.probes.network._icmp import TOO_BIG

    sizes = {576: [11.0] * 3, 1000: [12.0] * 3, 1280: [TOO_BIG] * 3, 1400: [None, TOO_BIG, None], 1500: [None] * 3}
    found = judged_sizes(config_file, 0, sizes)
    signalled = found["path.mtu_signalled"]
    assert "path.mtu_black_hole" not in found and signalled["refused_from"] == 1280, found
    assert "is below 1280 bytes and signalled" in signalled["message"]


@pytest.mark.parametrize("order", ["wifi-first", "wired-first"])
def test_of_two_default_routes_the_one_of_lowest_metric_is_taken_and_a_route_that_is_down_never(tmp_path, order):
    """Wired (metric 100) and Wi-Fi (metric 600) both up, as NetworkManager leaves a till: the wired one
    carries the traffic, whichever the table lists first; a route without RTF_UP (metric 50) carries none."""
    from posdiag.probes._netinfo import Route, default_route

    wired = "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"  # via 192.168.1.1
    wifi = "wlan0\t00000000\t01AAA8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"  # via 192.168.170.1
    down = "usb0\t00000000\t0101000A\t0002\t0\t0\t50\t00000000\t0\t0\t0\n"  # via 10.0.1.1, not up
    table = ROUTE_HEADER + down + (wifi + wired if order == "wifi-first" else wired + wifi)
    assert default_route(proc_with(tmp_path, route=table)) == Route("eth0", "192.168.1.1")


def test_what_is_tried_beyond_the_gateway_comes_most_telling_first_once_each_and_never_the_gateway(config_file):
    """The payment hosts' own addresses (resolved, then fallback, host after host), then the resolvers over TCP
    on their own port; loopback, the gateway and repeats left out; at most eight."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import ProbeContext
    from posdiag.probes.network._beyond import candidates

    settings = cfg.load(str(config_file(payment_hosts=[
        {"name": "primary", "host": "pay.test", "port": 443, "fallback_addresses": ["203.0.113.9", "203.0.113.5"]},
        {"name": "backup", "host": "198.51.100.7", "port": 8443}])))
    context = ProbeContext(resolved={"pay.test": ("203.0.113.5", "127.0.0.1")})
    tried = candidates(settings, context, ["198.51.100.53", "192.0.2.53#5353", "192.0.2.1"], gateway="192.0.2.1")
    assert [(b.address, b.port, b.kind) for b in tried] == [
        ("203.0.113.5", 443, "host"), ("203.0.113.9", 443, "host"), ("198.51.100.7", 8443, "host"),
        ("198.51.100.53", 53, "resolver"), ("192.0.2.53", 5353, "resolver")]
    many = cfg.load(str(config_file(payment_hosts=[{"name": "primary", "host": "pay.test", "port": 443,
                                                    "fallback_addresses": [f"203.0.113.{n}" for n in range(1, 11)]}])))
    assert [b.address for b in candidates(many, ProbeContext(), [])] == [f"203.0.113.{n}" for n in range(1, 9)]
    resolved = ProbeContext(resolved={"pay.test": ("203.0.113.77",)})
    assert "203.0.113.77" in [b.address for b in candidates(settings, resolved, [])]
    assert "203.0.113.77" not in [b.address for b in candidates(settings, resolved, [], with_resolved=False)]  # DNS's own


def test_the_most_telling_silence_is_a_payment_host_s_own_before_the_next_hop():
    from posdiag.probes.network._beyond import Beyond, Tried, most_telling_silence
    from posdiag.probes.network._common import Connect

    hop = Tried(Beyond("203.0.113.5", 0, "hop 2", "hop"), Connect("timeout", 500.0))
    host = Tried(Beyond("203.0.113.5", 443, "primary", "host"), Connect("timeout", 500.0))
    resolver = Tried(Beyond("198.51.100.53", 53, "resolver", "resolver"), Connect("timeout", 500.0))
    answering = Tried(Beyond("203.0.113.9", 443, "fallback", "host"), Connect("refused", 3.0))
    assert most_telling_silence([answering, resolver, hop, host]) is host
    assert most_telling_silence([answering, resolver, hop]) is hop
    assert most_telling_silence([answering, resolver]) is None


@pytest.mark.parametrize("size", [64, 65, 576, 1500])
def test_an_echo_request_carries_the_internet_checksum_of_itself(size):
    """RFC 1071: summed with its own checksum in place, a packet sums to zero (what a raw socket's peer checks),
    whatever its size, odd ones included; it is an echo request (type 8, code 0) of the size asked for, less the
    IP and ICMP headers."""
    from posdiag.probes.network._icmp import _checksum, _packet

    packet = _packet(0x1234, 7, size)
    assert _checksum(packet) == 0 and packet[:2] == b"\x08\x00" and len(packet) + 20 == size  # + its IPv4 header


def test_when_no_large_echo_comes_back_the_largest_that_did_is_the_small_one(config_file):
    """Small echoes (64 bytes) answered, every Don't-Fragment echo from 576 bytes up lost: the black hole starts there."""
    found = judged_sizes(config_file, 0, {size: [None] * 3 for size in (576, 1000, 1280, 1400, 1500)})
    hole = found["path.mtu_black_hole"]
    assert (hole["largest_ok"], hole["smallest_lost"]) == (64, 576), hole


def test_a_neighbour_is_complete_only_with_the_kernel_s_complete_flag(tmp_path):
    from posdiag.probes._netinfo import neighbour_state

    (tmp_path / "net").mkdir()
    (tmp_path / "net/arp").write_text(
        "IP address       HW type     Flags       HW address            Mask     Device\n"
        "192.0.2.1        0x1         0x2         02:fc:00:00:00:05     *        eth0\n"
        "192.0.2.7        0x1         0x0         00:00:00:00:00:00     *        eth0\n"
        "192.0.2.70       0x1         0x6         02:fc:00:00:00:06     *        eth0\n")
    assert [neighbour_state(a, str(tmp_path)) for a in ("192.0.2.1", "192.0.2.7", "192.0.2.70", "192.0.2.9")] == [
        "complete", "incomplete", "complete", None]
    assert neighbour_state("192.0.2.1", str(tmp_path / "none")) is None


def test_resolvers_are_the_nameserver_lines_that_name_an_address(tmp_path):
    from posdiag.probes._netinfo import resolv_conf_servers

    conf = tmp_path / "resolv.conf"
    conf.write_text("# generated\nsearch store.test\nnameserver 192.0.2.53\nnameserver\nnameserver dns.store.test\n"
                    "nameserver fe80::53%eth0\n;nameserver 192.0.2.99\noptions timeout:1\nnameserver 2001:db8::53 # v6\n")
    assert resolv_conf_servers(str(conf)) == ["192.0.2.53", "fe80::53%eth0", "2001:db8::53"]
    assert resolv_conf_servers(str(tmp_path / "none")) == []


@pytest.mark.parametrize(("flags", "carrier", "up", "seen"), [("0x9", None, True, None), ("0x8", None, False, False),
                                                             ("0x9", "1", True, True), ("0x9", "0", True, False)],
                         ids=["up-carrier-unreadable", "down-carrier-unreadable", "carrier", "no-carrier"])
def test_an_interface_is_up_by_its_own_flag_and_its_carrier_read_or_unknown(tmp_path, flags, carrier, up, seen):
    """Loopback's real addresses with flags and carrier files of the test's own: IFF_UP is the owner's word,
    and a carrier the kernel will not say is unknown while up, none while down."""
    from posdiag.probes._netinfo import interface_state

    (tmp_path / "lo").mkdir()
    (tmp_path / "lo/flags").write_text(f"{flags}\n")
    if carrier is not None:
        (tmp_path / "lo/carrier").write_text(f"{carrier}\n")
    state = interface_state("lo", str(tmp_path))
    assert (state.exists, state.up, state.carrier, state.speed_mbps) == (True, up, seen, None)
    assert "127.0.0.1" in state.addresses and not any(a.startswith("fe80") for a in state.addresses)
    assert interface_state("nosuch0", str(tmp_path)) == type(state)("nosuch0", False, False, None, (), None)


# --- what the echo sockets read (crafted packets on a loopback UDP socket stand in for the wire) ----------

def test_echo_replies_are_matched_to_their_echo_once_each_through_any_ip_header_length():
    """A raw socket sees the IP header (its length in 32-bit words, options included), then the ICMP:
    only an echo *reply* with this batch's identifier to an echo still awaited counts, once; the echo
    requests themselves, others' replies, truncated packets and repeats are passed over."""
    from posdiag.probes.network._icmp import _receive

    ident = 0x1234
    with wire() as (sock, put):
        put(ip_header() + icmp_packet(0, ident, 0))
        put(ip_header(options=1) + icmp_packet(0, ident, 1))  # 24-byte header
        put(ip_header() + icmp_packet(8, ident, 2))  # our own request, as a raw socket on loopback sees it
        put(ip_header() + icmp_packet(0, ident ^ 1, 3))  # another program's ping
        put(ip_header() + icmp_packet(0, ident, 0))  # a duplicate
        put(ip_header() + icmp_packet(0, ident, 4)[:7])  # cut short
        put(ip_header() + icmp_packet(0, ident, 5))  # no echo of ours has that number
        heard = threading.Event()
        results: list = [None] * 5
        sent_at = {i: time.monotonic() for i in range(5)}
        got = _receive(sock, True, ident, sent_at, results, time.monotonic() + 5, heard)
    assert got == 2 and heard.is_set(), results
    assert [r is not None and r >= 0 for r in results] == [True, True, False, False, False], results


def test_a_ping_socket_hands_over_no_ip_header_and_its_replies_are_ours_whatever_the_identifier():
    """An unprivileged ping socket: the kernel strips the IP header and rewrites the identifier, so any
    echo reply to an awaited echo counts; with nothing to read by the deadline, nothing came."""
    from posdiag.probes.network._icmp import _receive

    with wire() as (sock, put):
        results: list = [None, None]
        assert _receive(sock, False, 0x1234, {0: time.monotonic(), 1: time.monotonic()}, results,
                        time.monotonic(), None) == 0
        put(icmp_packet(0, 0x9999, 1))
        put(icmp_packet(8, 0x9999, 0))
        got = _receive(sock, False, 0x1234, {0: time.monotonic(), 1: time.monotonic()}, results, time.monotonic() + 5, None)
    assert got == 1 and results[0] is None and results[1] is not None, results


def test_a_healthy_path_is_summed_up_and_measured_with_its_metrics(config_file):
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import targets
    from posdiag.probes.network.path import PathProbe, Samples

    settings = cfg.load(str(config_file(payment_hosts=[{"name": "primary", "host": "192.0.2.7", "port": 443}])))
    obs = Observation()
    PathProbe(settings).judge(obs, targets(settings)[0], "192.0.2.7",
                              Samples("icmp", [10.0, 12.0] * 12, sizes={576: [11.0], 1500: [13.0, None]}))
    assert obs.findings == []
    assert obs.summary == "icmp: loss 0%, median 11.0 ms, p95 12.0 ms, jitter 2.0 ms"
    assert {k: obs.metrics[k] for k in ("target", "method", "loss_percent", "samples", "mtu_largest_ok")} == {
        "target": "primary (192.0.2.7)", "method": "icmp", "loss_percent": 0, "samples": 24, "mtu_largest_ok": 1500}


def test_of_the_sizes_the_kernel_refuses_the_smallest_is_the_signalled_mtu_and_a_refusal_is_no_pass():
    from posdiag.core.settings import PaymentHost
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import Target
    from posdiag.probes.network._icmp import TOO_BIG
    from posdiag.probes.network.path import PathProbe

    obs = Observation()
    PathProbe.mtu(obs, Target(0, PaymentHost(host="192.0.2.7")), "192.0.2.7",
                  {576: [11.0], 1000: [None, 12.0], 1400: [TOO_BIG, TOO_BIG], 1280: [None, TOO_BIG], 1500: [TOO_BIG]})
    assert obs.metrics["mtu_largest_ok"] == 1000
    [signalled] = obs.findings
    assert (signalled.code, signalled.data["refused_from"]) == ("path.mtu_signalled", 1280)


# --- the DNS probe's judgement of what the resolvers said (pure logic: the outcomes are given) ------------

def _said(server: str, rcode: str | None = None, addresses: tuple[str, ...] = (), ms: float = 5.0, error: str = ""):
    from posdiag.probes._dnswire import DnsAnswer
    from posdiag.probes.network.dns import Outcome

    return Outcome(server, DnsAnswer(server, rcode, addresses, ms) if rcode else None, error)


def dns_judged(config_file, *outcomes) -> tuple[tuple | None, dict, object]:
    """(the DNS probe's verdict on pay.test, findings by code, the probe) for these resolvers' outcomes."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network.dns import DnsProbe

    probe = DnsProbe(cfg.load(str(config_file(payment_hosts=[{"host": "pay.test", "port": 443}],
                                              network={"timeout_s": 1.5}))))
    obs = Observation()
    verdict = probe.judge(obs, "pay.test", list(outcomes))
    return verdict, {f.code: f for f in obs.findings}, probe


@pytest.mark.parametrize(("outcomes", "code"), [
    ((("a", "NXDOMAIN"), ("b", "SERVFAIL"), ("c", "NOERROR")), "dns.nxdomain"),
    ((("a", "SERVFAIL"), ("b", "NOERROR"), ("c", "REFUSED")), "dns.no_address"),
    ((("a", "REFUSED"), ("b", "SERVFAIL")), "dns.servfail"),
    ((("a", "REFUSED"), ("b", "NOTIMP")), "dns.refused"),
    ((("a", None, "timeout"), ("b", "REFUSED")), "dns.refused"),
    ((("a", None, "timeout"), ("b", None, "timeout")), "dns.timeout"),
    ((("a", None, "timeout"), ("b", None, "unreachable: Network is unreachable")), "dns.unreachable")],
    ids=["nxdomain-first", "then-no-address", "then-servfail", "then-any-other-answer", "an-answer-beats-silence",
         "all-silent", "one-unreachable"])
def test_what_the_resolvers_said_is_judged_by_the_most_telling_answer(config_file, outcomes, code):
    """A name that does not exist outranks a name without address, which outranks a failing resolver, which
    outranks one that refuses; any answer outranks silence, and silence everywhere is a timeout."""
    said = [_said(o[0], o[1]) if o[1] else _said(o[0], error=o[2]) for o in outcomes]
    verdict, found, _ = dns_judged(config_file, *said)
    assert verdict[0] == code and found == {}, verdict
    assert verdict[2]["resolvers"] == {o.server: o.error or o.answer.rcode for o in said}
    if code == "dns.refused":
        assert "(NOTIMP, REFUSED)" in verdict[1] or "(REFUSED)" in verdict[1], verdict[1]
    if code == "dns.timeout":
        assert verdict[1] == "no resolver answered for pay.test within 1.5 s (3 tries)"
    if code == "dns.unreachable":
        assert verdict[1] == "resolvers unreachable for pay.test (Network is unreachable)"


def test_of_the_resolvers_that_answer_the_quickest_is_named_and_the_others_said_to_fail(config_file):
    verdict, found, probe = dns_judged(config_file, _said("slow", "NOERROR", ("192.0.2.8",), ms=700.0),
                                       _said("quick", "NOERROR", ("192.0.2.7",), ms=600.0),
                                       _said("broken", "SERVFAIL"), _said("silent", error="timeout"))
    assert verdict is None and probe.context.resolved == {"pay.test": ("192.0.2.7",)}
    assert found["dns.resolved"].data["server"] == "quick" and found["dns.resolved"].data["ms"] == 600.0
    assert (found["dns.slow"].severity.value, found["dns.slow"].data["ms"]) == ("warn", 600.0)
    failing = found["dns.resolver_failing"]
    assert failing.data["failing"] == ["broken", "silent"] and "(broken: SERVFAIL; silent: timeout)" in failing.message


@pytest.mark.parametrize(("ms", "slow"), [(500.0, False), (501.0, True)])
def test_a_name_resolved_in_more_than_half_a_second_is_slow(config_file, ms, slow):
    _, found, _ = dns_judged(config_file, _said("a", "NOERROR", ("192.0.2.7",), ms=ms))
    assert ("dns.slow" in found) is slow and "dns.resolver_failing" not in found, found





# --- the TCP probe: how its connects are said (pure logic: the attempts are given) ----------------------

def tcp_judged(config_file, outcomes: list[tuple[str, float]], stop=None, **host):
    """(verdict, observation, probe) of the TCP probe for these connect outcomes to 203.0.113.7:443."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import Connect, targets
    from posdiag.probes.network.tcp import TcpProbe

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "203.0.113.7", "port": 443, **host}],
                                        network={"timeout_s": 1.5})))
    probe, obs = TcpProbe(settings), Observation()
    attempts = [Connect(kind, ms, "" if kind == "ok" else f"{kind} here") for kind, ms in outcomes]
    return probe.judge(obs, targets(settings)[0], "203.0.113.7", attempts, stop), obs, probe


def test_connects_that_mostly_work_are_measured_and_the_failed_ones_named(config_file):
    verdict, obs, probe = tcp_judged(config_file, [("ok", 5.0), ("timeout", 1500.0), ("ok", 7.0), ("refused", 1.0)],
                                     name="acquirer")
    assert verdict is None and probe.context.connected == {0: "203.0.113.7"}
    assert {k: v for k, v in obs.metrics.items()} == {"connect_ok[acquirer]": "2/4", "connect_median_ms[acquirer]": 6.0,
                                                      "connect_p95_ms[acquirer]": 6.9}
    connected = next(f for f in obs.findings if f.code == "tcp.connected")
    assert connected.data == {"index": 0, "address": "203.0.113.7", "median_ms": 6.0}
    unstable = next(f for f in obs.findings if f.code == "tcp.unstable")
    assert unstable.message == "acquirer (primary): 2 of 4 connects failed (timed out, refused)"
    assert unstable.data["outcomes"] == {"ok": 2, "timeout": 1, "refused": 1} and unstable.data["attempts"] == 4


@pytest.mark.parametrize(("outcomes", "code", "message"), [
    ("timeout", "tcp.timeout", "203.0.113.7:443 (primary) does not answer: 1 connect timed out after 1.5 s"),
    ("timeout timeout", "tcp.timeout", "203.0.113.7:443 (primary) does not answer: 2 connects timed out after 1.5 s"),
    ("error timeout", "tcp.timeout", "203.0.113.7:443 (primary) does not answer: 2 connects timed out after 1.5 s"),
    ("error", "tcp.error", "203.0.113.7:443 (primary): connect failed (error here)")])
def test_connects_that_all_fail_are_said_by_their_kind_naming_the_address_once(config_file, outcomes, code, message):
    """A host configured by its address is named by it once ("203.0.113.7:443", not "… at 203.0.113.7:443")."""
    verdict, obs, _ = tcp_judged(config_file, [(kind, 1500.0) for kind in outcomes.split()])
    assert verdict[:2] == (code, message) and obs.metrics["connect_ok[203.0.113.7:443]"] == f"0/{len(outcomes.split())}"


def test_the_one_hop_check_runs_only_when_no_connect_worked_and_within_the_time_left(config_file, monkeypatch):
    """A sweep that connected sends nothing more; one that did not gives the one-hop check at most 0.3 s,
    and never more than the probe has left less a tenth of a second. (The check itself is replaced by a
    recorder of what it is asked: it would send packets to an address outside this machine.)"""
    from posdiag.probes.network import tcp
    from posdiag.probes.network._common import Connect

    _, _, probe = tcp_judged(config_file, [("ok", 1.0)])
    asked: list = []
    monkeypatch.setattr(tcp._egress, "stopped_here", lambda address, port, wait_s, via_router: asked.append(wait_s))
    assert probe.stopped_here((443, "203.0.113.7", [Connect("timeout", 1.0), Connect("ok", 2.0)])) is None
    assert asked == []
    # 0.38 s left gives the check 0.28 s, less what this test took since: room for a busy machine
    for left in (10, 0.38, 0):
        probe.deadline_at = time.monotonic() + left
        probe.stopped_here((443, "203.0.113.7", [Connect("timeout", 1.0)]))
    assert asked[0] == tcp.EGRESS_WAIT_S == 0.3 and 0.1 < asked[1] <= 0.28 and asked[2] == 0.0, asked


# --- what the network layers share ----------------------------------------------------------------------

def test_a_failed_payment_host_is_a_fault_unless_another_works_at_the_same_layer(config_file):
    """The terminal fails over: a failed host beside a working one (or one this layer does not check) is a
    warning naming the first that works; with none working it is a fault."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network._common import report_per_target, targets

    settings = cfg.load(str(config_file(payment_hosts=[{"name": "a", "host": "192.0.2.1", "port": 443},
                                                       {"name": "b", "host": "192.0.2.2", "port": 8443},
                                                       {"name": "c", "host": "192.0.2.3", "port": 443}])))
    hosts = targets(settings)
    down = ("tcp.timeout", "it does not answer", {"address": "x"})

    def said(verdicts, also=()):
        obs = Observation()
        report_per_target(obs, verdicts, hosts, also)
        return [(f.code, f.severity.value, f.message, f.data["failover_ok"], f.data["role"], f.data["port"])
                for f in obs.findings]

    assert said({0: down, 1: down}) == [("tcp.timeout", "fail", "it does not answer", False, "primary", 443),
                                        ("tcp.timeout", "fail", "it does not answer", False, "backup 1", 8443)]
    assert said({0: down, 1: None, 2: None}) == [
        ("tcp.timeout", "warn", "it does not answer; b (backup 1) works, so the terminal can fail over", True, "primary", 443)]
    assert said({0: down}, also={2}) == [
        ("tcp.timeout", "warn", "it does not answer; c (backup 2) works, so the terminal can fail over", True, "primary", 443)]
    assert said({0: None, 1: None}) == []


@pytest.mark.parametrize(("values", "stats"), [
    ([5.0], {"median_ms": 5.0, "p95_ms": 5.0, "jitter_ms": 0.0}),
    ([1.0, 3.0, 2.0], {"median_ms": 2.0, "p95_ms": 2.9, "jitter_ms": 1.5}),
    ([10.0, 20.0], {"median_ms": 15.0, "p95_ms": 19.5, "jitter_ms": 10.0})])
def test_jitter_is_the_mean_step_between_consecutive_round_trips_and_none_for_one(values, stats):
    from posdiag.probes.network._common import rtt_stats

    assert rtt_stats(values) == pytest.approx(stats)


def test_the_gateway_and_resolvers_checked_are_the_configured_ones_else_the_system_s(config_file):
    import dataclasses

    from posdiag.core import settings as cfg
    from posdiag.probes.base import ProbeContext
    from posdiag.probes.network._common import Target, addresses, gateway_address, resolvers, targets

    def settings(**network):
        return cfg.load(str(config_file(payment_hosts=[{"host": "pay.test", "port": 443}], network=network)))

    assert gateway_address(settings(gateway="192.0.2.1")) == "192.0.2.1"
    assert gateway_address(settings(gateway="off")) is None
    assert resolvers(settings(dns_servers=["192.0.2.53", "192.0.2.54#5353"])) == ["192.0.2.53", "192.0.2.54#5353"]
    assert resolvers(settings(dns_servers=[])) == []
    named = targets(settings())[0]
    assert addresses(ProbeContext(), named) is None  # not resolved (yet)
    assert addresses(ProbeContext(resolved={"pay.test": ("192.0.2.7", "192.0.2.8")}), named) == ["192.0.2.7", "192.0.2.8"]
    assert addresses(ProbeContext(resolved={"pay.test": ()}), named) == []
    literal = Target(0, dataclasses.replace(named.host, host="192.0.2.9"))
    assert addresses(ProbeContext(resolved={"192.0.2.9": ("192.0.2.1",)}), literal) == ["192.0.2.9"]





def test_a_reset_that_came_with_an_icmp_error_or_a_connect_with_an_error_of_its_own_proves_no_drop_inside():
    """Only a reset with no ICMP error behind it was made inside the terminal; only connects all still
    waiting, with nothing heard, were dropped inside. A timeout of its own or a router's error is no proof."""
    import errno

    assert _one_hop(_sent(errno.ECONNREFUSED, 3, "192.0.2.1"), _sent(errno.ECONNREFUSED, 3, "192.0.2.1")) is None
    assert _one_hop(_sent(), _sent(errno.ETIMEDOUT)) is None
    assert _one_hop(_sent(), _sent(0, 3, "192.0.2.1")) is None
    dropped = _one_hop(_sent(), _sent(), _sent())
    assert (dropped.sign, dropped.first_hop, dropped.answer, dropped.error) == ("dropped", "198.18.1.1", "", "")


def test_only_this_terminal_s_own_addresses_are_its_own():
    from posdiag.probes.network._egress import _is_own

    assert _is_own("127.0.0.1") is True
    assert _is_own("127.0.0.2") is False  # routed through lo, but sent from 127.0.0.1


def test_loopback_link_local_and_unspecified_addresses_are_never_tried_beyond_the_gateway(config_file):
    """Nor a resolver named by something that is not an address (a system resolv.conf may hold anything)."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import ProbeContext
    from posdiag.probes.network._beyond import candidates, hops

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "pay.test", "port": 443, "fallback_addresses": [
        "169.254.1.1", "0.0.0.0", "::1", "fe80::1", "203.0.113.5"]}])))
    assert [b.address for b in candidates(settings, ProbeContext(), ["127.0.0.53", "resolver.lan"])] == ["203.0.113.5"]
    assert hops(["127.0.0.1", "169.254.1.1", "2001:db8::1"], icmp=True) == []
    assert hops(["203.0.113.5"], icmp=False) == []


def test_four_last_known_addresses_are_kept_per_host_and_an_old_one_that_works_again_moves_to_the_front(tmp_path):
    state = str(tmp_path)
    for n in range(1, 6):
        assert _known.remember(state, {"pay.example": f"192.0.2.{n}"}) is True
    assert _known.load(state) == {"pay.example": ("192.0.2.5", "192.0.2.4", "192.0.2.3", "192.0.2.2")}
    assert _known.remember(state, {"pay.example": "192.0.2.3"}) is True
    assert _known.load(state)["pay.example"] == ("192.0.2.3", "192.0.2.5", "192.0.2.4", "192.0.2.2")
    record = json.loads((tmp_path / _known.FILE_NAME).read_text())["hosts"]["pay.example"]
    assert abs(record["seen_at"] - time.time()) < 3600
    assert _known.remember(state, {}) is False and _known.remember(None, {"pay.example": "192.0.2.9"}) is False
    assert _known.load(None) == {} and _known.load("") == {}


def test_an_icmp_error_queued_on_a_socket_names_its_type_code_and_sender():
    """A datagram to a closed loopback port draws ICMP "port unreachable" (type 3, code 3) from 127.0.0.1,
    queued on the socket that asked for errors; it is no "time exceeded". Before it, nothing is queued."""
    from posdiag.probes.network._icmp import IP_RECVERR, IcmpError, queued_icmp_error

    with socket.create_server(("127.0.0.1", 0)) as taken:  # a port nothing listens on for UDP either
        port = taken.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.setblocking(False)
        assert queued_icmp_error(sock) is None
        sock.sendto(b"", ("127.0.0.1", port))
        assert wait_for_error(sock) == IcmpError(3, 3, "127.0.0.1")
    assert IcmpError(11, 0, "192.0.2.1").time_exceeded and not IcmpError(3, 3, "192.0.2.1").time_exceeded


def wait_for_error(sock: socket.socket, timeout: float = 5.0):
    from posdiag.probes.network._icmp import queued_icmp_error

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        error = queued_icmp_error(sock)
        if error is not None:
            return error
        time.sleep(0.01)
    return None


def test_no_resolver_at_all_is_a_dns_fault_and_names_asked_twice_are_resolved_once(config_file):
    from posdiag.core import settings as cfg
    from posdiag.probes.network.dns import DnsProbe

    def run(servers, hosts):
        settings = cfg.load(str(config_file(payment_hosts=hosts, network={"dns_servers": servers, "timeout_s": 1.5})))
        return DnsProbe(settings).run()

    empty = run([], [{"host": "pay.test", "port": 443}])
    assert [(f.code, f.severity.value) for f in empty.findings] == [("dns.no_resolver", "fail")]
    with ScriptedResolver() as resolver:
        twice = run([resolver.address], [{"host": "pay.test", "port": 443}, {"host": "pay.test", "port": 8443},
                                         {"host": "192.0.2.9", "port": 443}])
    assert {f.code for f in twice.findings} == {"dns.resolved"} and twice.status.value == "ok", twice
    assert {f.data["name"] for f in twice.findings} == {"pay.test"}  # the address needs no resolving
    assert twice.summary == f"1 name resolved via {resolver.address}"
    assert twice.metrics["resolvers"] == resolver.address


def test_a_name_that_does_not_resolve_leaves_nothing_to_connect_to_or_measure_and_says_so(config_file):
    from labs.commands import diagnose_json
    from labs.helpers import probe_of

    with ScriptedResolver(rcode=3) as nxdomain:
        _, report = diagnose_json(config_file(
            payment_hosts=[{"name": "primary", "host": "nowhere.test", "port": 443, "tls": False}],
            network={"dns_servers": [nxdomain.address], "timeout_s": 1.0}), "--only", "network.tcp,network.path")
    tcp, path = probe_of(report, "network.tcp"), probe_of(report, "network.path")
    assert (tcp["status"], tcp["summary"]) == ("skipped", "no payment host name resolved"), tcp
    assert (path["status"], path["summary"]) == ("skipped", "no payment host address to measure: no name resolved"), path


def test_the_dns_probe_asks_a_lost_question_again_within_its_timeout(config_file):
    """The resolver loses the first question (UDP): the probe asks again a third of its timeout later and
    the name resolves, rather than waiting out the timeout for an answer that will never come."""
    from posdiag.core import settings as cfg
    from posdiag.probes.network.dns import DnsProbe

    with LossyResolver(drop=1) as resolver:
        settings = cfg.load(str(config_file(payment_hosts=[{"host": "pay.test", "port": 443}],
                                            network={"dns_servers": [resolver.address], "timeout_s": 1.5})))
        result = DnsProbe(settings).run()
    assert result.status.value == "ok" and [f.code for f in result.findings] == ["dns.resolved"], result
    assert resolver.seen == 2


def test_a_silent_resolver_is_asked_three_times_within_the_dns_probe_s_timeout(config_file):
    from posdiag.core import settings as cfg
    from posdiag.probes.network.dns import DnsProbe

    with LossyResolver(drop=100) as resolver:
        settings = cfg.load(str(config_file(payment_hosts=[{"host": "pay.test", "port": 443}],
                                            network={"dns_servers": [resolver.address], "timeout_s": 0.6})))
        result = DnsProbe(settings).run()
    assert [f.code for f in result.findings] == ["dns.timeout"] and resolver.seen == 3, (result, resolver.seen)
    assert "within 0.6 s (3 tries)" in result.findings[0].message


def test_the_one_hop_check_is_for_ipv4_routes_through_a_router_only():
    """Connects to an IPv6 host, or to one on the terminal's own subnet, are not sent with a TTL of 1 (the
    socket for it is IPv4; on the own subnet a TTL of 1 reaches the host and tells nothing): nothing shows."""
    from posdiag.probes.network._egress import stopped_here

    with socket.create_server(("::1", 0), family=socket.AF_INET6) as taken:
        closed = taken.getsockname()[1]
    assert stopped_here("::1", closed, 0.1, via_router=True) is None
    assert stopped_here("127.0.0.1", closed, 0.1, via_router=False) is None


@pytest.mark.parametrize(("hosts", "skipped"), [
    ([], "no payment host configured"), ([{"host": "203.0.113.7", "port": 443, "tls": False}], "no payment host uses TLS"),
    ([{"host": "203.0.113.7", "port": 443, "tls": True}], None)], ids=["no-host", "no-tls-host", "a-tls-host"])
def test_a_payment_host_probe_runs_only_when_a_host_is_configured_and_it_applies(config_file, hosts, skipped):
    from posdiag.core import settings as cfg
    from posdiag.probes.network.tls import TlsProbe

    reason = TlsProbe(cfg.load(str(config_file(payment_hosts=hosts)))).skip_reason()
    assert reason is None if skipped is None else skipped in reason, reason


@pytest.mark.parametrize(("gateway", "address"), [("192.0.2.1", "192.0.2.1"), ("off", None)])
def test_a_configured_gateway_is_taken_as_written_and_off_is_none(config_file, gateway, address):
    from posdiag.core import settings as cfg
    from posdiag.probes.network._common import gateway_address

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "203.0.113.7", "port": 443}],
                                        network={"gateway": gateway})))
    assert gateway_address(settings) == address


def test_a_host_s_addresses_are_its_literal_address_or_what_dns_resolved_and_none_when_unresolved(config_file):
    from posdiag.core import settings as cfg
    from posdiag.probes.base import ProbeContext
    from posdiag.probes.network._common import addresses, targets

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "203.0.113.7", "port": 443},
                                                       {"host": "pay.test", "port": 443},
                                                       {"host": "gone.test", "port": 443}])))
    context = ProbeContext(resolved={"pay.test": ("192.0.2.7", "192.0.2.8"), "gone.test": ()})
    literal, named, empty = targets(settings)
    assert addresses(context, literal) == ["203.0.113.7"]
    assert addresses(context, named) == ["192.0.2.7", "192.0.2.8"]
    assert addresses(context, empty) == []  # resolved to nothing: not "not resolved"
    assert addresses(ProbeContext(), named) is None


def test_a_background_check_is_waited_for_and_gives_its_result_or_its_error():
    from posdiag.probes.network._common import Background

    quick = Background(lambda: (time.sleep(0.1), "done")[1])
    assert quick.done_within(30) is True and quick.result() == "done"

    def fails() -> None:
        raise LookupError("no such host")

    failed = Background(fails)
    assert failed.done_within(30) is True
    with pytest.raises(LookupError, match="no such host"):
        failed.result()


def test_checks_side_by_side_keep_their_order_start_apart_only_after_the_first_and_pass_on_an_error():
    from posdiag.probes.network._common import side_by_side

    called = time.monotonic()
    started: dict[str, float] = {}

    def note(name: str) -> str:
        started[name] = time.monotonic()
        return name.upper()

    assert side_by_side(note, ["a", "b"], stagger_s=0.6) == ["A", "B"]
    assert started["a"] - called < 0.5 <= started["b"] - started["a"]  # no wait before the first
    with pytest.raises(ZeroDivisionError):
        side_by_side(lambda n: 1 / n, [1, 0, 2])


@pytest.mark.parametrize(("samples", "jitter"), [([10.0, 14.0, 12.0], 3.0), ([5.0], 0.0), ([7.0, 7.0], 0.0)],
                         ids=["three", "one", "two-equal"])
def test_jitter_is_the_mean_difference_of_consecutive_samples_and_zero_for_one(samples, jitter):
    from posdiag.probes.network._common import rtt_stats

    assert rtt_stats(samples)["jitter_ms"] == pytest.approx(jitter)


@pytest.mark.parametrize(("kind", "answered"), [("ok", True), ("refused", True), ("timeout", False),
                                                ("unreachable", False), ("error", False)])
def test_a_check_beyond_the_gateway_is_answered_by_a_connection_or_a_reset_only(kind, answered):
    from posdiag.probes.network._beyond import Beyond, Tried, most_telling_silence
    from posdiag.probes.network._common import Connect

    tried = Tried(Beyond("203.0.113.5", 443, "primary", "host"), Connect(kind, 3.0, "boom"))
    assert tried.answered is answered
    assert (most_telling_silence([tried]) is None) is answered


@pytest.mark.parametrize(("kind", "outcome", "also", "said"), [
    ("hop", "timeout", False, "not even the next router beyond the gateway answers (echoes with TTL 2 "
                                          "toward 203.0.113.5)"),
    ("hop", "ok", False, "the next hop beyond the gateway toward 203.0.113.5 answers (from 198.51.100.1)"),
    ("host", "ok", False, "primary accepts connections"), ("host", "refused", False, "primary answers (reset)"),
    ("host", "timeout", False, "primary times out"), ("host", "timeout", True, "primary times out as well"),
    ("host", "unreachable", True, "primary is unreachable as well"),
    ("host", "error", False, "primary fails (from 198.51.100.1)"),
    ("host", "error", True, "primary fails (from 198.51.100.1) as well")])
def test_what_a_check_beyond_the_gateway_found_is_said_for_its_kind_and_outcome(kind, outcome, also, said):
    from posdiag.probes.network._beyond import Beyond, Tried
    from posdiag.probes.network._common import Connect

    assert Tried(Beyond("203.0.113.5", 443, "primary", kind), Connect(outcome, 3.0, "from 198.51.100.1")).describe(
        also=also) == said


def test_addresses_that_cannot_be_beyond_the_gateway_are_never_tried_nor_what_dns_gave_when_left_out(config_file):
    from posdiag.core import settings as cfg
    from posdiag.probes.base import ProbeContext
    from posdiag.probes.network._beyond import _local, candidates

    settings = cfg.load(str(config_file(payment_hosts=[
        {"name": "primary", "host": "pay.test", "port": 443,
         "fallback_addresses": ["169.254.1.1", "fe80::1", "0.0.0.0", "::", "203.0.113.9"]}])))
    context = ProbeContext(resolved={"pay.test": ("203.0.113.5",)})
    assert [b.address for b in candidates(settings, context, [])] == ["203.0.113.5", "203.0.113.9"]
    assert [b.address for b in candidates(settings, context, [], with_resolved=False)] == ["203.0.113.9"]
    assert _local("pay.test") is True and _local("203.0.113.9") is False


def test_hop_checks_go_toward_two_ipv4_addresses_routed_via_the_gateway_and_only_with_icmp(monkeypatch):
    from posdiag.probes.network import _beyond

    routed = {"203.0.113.5", "203.0.113.6", "203.0.113.7", "2001:db8::5"}
    monkeypatch.setattr(_beyond, "routed_via_gateway", lambda address: address in routed)  # the routing answer, as given
    toward = ["192.168.1.50", "2001:db8::5", "127.0.0.1", "203.0.113.5", "203.0.113.6", "203.0.113.7"]
    assert [(b.address, b.port, b.kind) for b in _beyond.hops(toward, icmp=True)] == [
        ("203.0.113.5", 0, "hop"), ("203.0.113.6", 0, "hop")]
    assert _beyond.hops(toward, icmp=False) == []


def test_checks_beyond_the_gateway_wait_until_the_deadline_but_never_less_than_a_tenth_of_a_second():
    """A loopback listener whose queue is full drops new SYNs: a silent peer, without leaving the machine."""
    from posdiag.probes.network._beyond import Beyond, try_all

    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = server.getsockname()[1]
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    held = socket.create_connection(("127.0.0.1", port), timeout=5)  # fills the queue
    try:
        silent, refused = Beyond("127.0.0.1", port, "silent"), Beyond("127.0.0.1", closed_port, "closed")
        [late] = try_all([silent], time.monotonic() - 1)
        assert late.outcome.kind == "timeout" and 90 <= late.outcome.ms < 900, late
        waited, reset = try_all([silent, refused], time.monotonic() + 1.5)
        assert waited.outcome.kind == "timeout" and 1300 <= waited.outcome.ms < 5000, waited
        assert reset.outcome.kind == "refused" and reset.answered, reset
    finally:
        held.close()
        server.close()


def test_a_ttl_1_connect_is_connected_refused_or_failed_at_once_as_loopback_answers_it():
    """On loopback a TTL of 1 is enough: a listener connects it, a closed port resets it, and a connect the
    kernel refuses at once (to the broadcast address) keeps the error connect_ex gave, not SO_ERROR's 0."""
    import errno

    from posdiag.probes.network._egress import _outcome, _ttl1

    listener = socket.create_server(("127.0.0.1", 0))
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    outcomes = {}
    try:
        for name, where in (("listening", listener.getsockname()), ("closed", ("127.0.0.1", closed_port)),
                            ("broadcast", ("255.255.255.255", 443))):
            with _ttl1(socket.SOCK_STREAM) as sock:
                started = sock.connect_ex(where)
                o = _outcome(sock, started, time.monotonic() + 5)
                outcomes[name] = (o.errno, o.connected)
    finally:
        listener.close()
    assert outcomes == {"listening": (0, True), "closed": (errno.ECONNREFUSED, False),
                        "broadcast": (errno.ENETUNREACH, False)}


def test_an_address_is_the_terminal_s_own_only_when_the_kernel_would_send_from_it():
    from posdiag.probes.network._egress import _is_own

    assert _is_own("127.0.0.1") is True
    assert _is_own("127.0.0.2") is False  # routed to, not held
    assert _is_own("255.255.255.255") is False  # a route the kernel refuses to take: no answer from here


def test_connects_to_loopback_or_over_ipv6_are_not_said_stopped_here():
    """Loopback lets everything through; IPv6 and a host on the terminal's own subnet get no one-hop check."""
    from posdiag.probes.network._egress import one_hop, refused_here, stopped_here

    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert refused_here("127.0.0.1", port) is None
    assert stopped_here("127.0.0.1", port, 0.3, via_router=False) is None
    assert stopped_here("::1", port, 0.3, via_router=True) is None
    # the host itself answers the TTL-1 datagram (port unreachable), no router does: nothing to compare with
    assert one_hop("127.0.0.1", port, 0.5) is None


@pytest.mark.root
def test_a_hop_check_answered_by_the_gateway_itself_is_no_answer_from_beyond():
    """TTL-2 echoes toward loopback are answered by 127.0.0.1: from beyond, unless that is the gateway."""
    from posdiag.probes.network._beyond import Beyond, try_all

    hop = Beyond("127.0.0.1", 0, "hop 2", "hop")
    [beyond] = try_all([hop], time.monotonic() + 3, gateway="192.0.2.1")
    assert (beyond.outcome.kind, beyond.outcome.error, beyond.answered) == ("ok", "from 127.0.0.1", True)
    assert 0 <= beyond.outcome.ms < 3000
    [gateway] = try_all([hop], time.monotonic() + 3, gateway="127.0.0.1")
    assert (gateway.outcome.kind, gateway.outcome.error) == ("timeout", "answered by the gateway 127.0.0.1")


def test_a_connect_is_timed_in_milliseconds_until_the_handshake_completes():
    """A listener whose queue is full drops the SYN; freed after 0.3 s, the kernel's retransmission one
    second after the first SYN gets through: the connect took about 1000 ms."""
    from posdiag.probes.network._common import tcp_connect

    server = socket.create_server(("127.0.0.1", 0), backlog=0)
    held = socket.create_connection(server.getsockname(), timeout=5)  # fills the queue

    def free() -> None:
        time.sleep(0.3)
        server.accept()[0].close()

    threading.Thread(target=free, daemon=True).start()
    try:
        connect = tcp_connect("127.0.0.1", server.getsockname()[1], 10)
    finally:
        held.close()
        server.close()
    assert connect.kind == "ok" and 500 <= connect.ms < 5000, connect
