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
from posdiag.probes import _dnswire
from posdiag.probes._dnswire import DnsMalformed, DnsTimeout, query
from posdiag.probes._netinfo import Route, RoutesUnknown, default_route
from posdiag.probes.network import _known


class LossyResolver:
    """A UDP resolver on loopback that drops the first ``drop`` questions, then answers NOERROR."""

    def __init__(self, drop: int) -> None:
        self.drop, self.seen = drop, 0
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
        started = time.monotonic()
        answer = query(resolver.address, "pay.example", timeout_s=0.9, resend_after_s=0.3)
        elapsed = time.monotonic() - started
    assert answer.rcode == "NOERROR" and answer.addresses == ("192.0.2.7",)
    assert resolver.seen == 2
    assert 0.25 < elapsed < 0.85  # the retry went out at 0.3 s, not after a whole timeout


def test_a_silent_resolver_costs_one_timeout_however_many_tries():
    with LossyResolver(drop=100) as resolver:
        started = time.monotonic()
        with pytest.raises(DnsTimeout):
            query(resolver.address, "pay.example", timeout_s=0.6, resend_after_s=0.2)
        elapsed = time.monotonic() - started
    assert resolver.seen == 3
    assert elapsed < 0.9


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
    net.mkdir()
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
