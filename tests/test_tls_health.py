"""The TLS probe's health request against real TLS servers on loopback (no namespaces needed)."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import re
import socket
import ssl
import struct
import time

import pytest
import trustme
from labs.commands import run_cli
from labs.tlsserver import LoopbackTlsServer


class DroppingTlsServer(LoopbackTlsServer):
    """Completes the handshake, reads the health request, then resets the connection (RST)."""

    def handle(self, tls: ssl.SSLSocket) -> None:
        tls.recv(4096)
        tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class AnsweringTlsServer(DroppingTlsServer):
    """Completes the handshake and answers the health request with ``status`` (or with the whole
    ``status_line``, as written)."""

    def __init__(self, cert: trustme.LeafCert, status: int = 200, status_line: str | None = None,
                 delay_s: float = 0.0) -> None:
        self.status_line = f"HTTP/1.1 {status} X" if status_line is None else status_line
        self.delay_s = delay_s
        super().__init__(cert)

    def handle(self, tls: ssl.SSLSocket) -> None:
        request = b""
        while b"\r\n\r\n" not in request and (chunk := tls.recv(4096)):
            request += chunk
        time.sleep(self.delay_s)
        tls.sendall(f"{self.status_line}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())


def tls_probe(server: DroppingTlsServer | AnsweringTlsServer, tmp_path, config_file,
              only: str = "network.link,network.tcp,network.tls") -> dict:
    """The TLS probe's result, from a real diagnosis of ``server`` (pay.test on loopback, its health
    path /health); the server's socket is closed afterwards."""
    config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                         "server_name": "pay.test", "ca_file": str(tmp_path / "ca.pem"),
                                         "health_path": "/health"}])
    try:
        rc, out, _ = run_cli("diagnose", "--json", "--only", only, "--config", str(config))
    finally:
        server.sock.close()
    return next(p for p in json.loads(out)["probes"] if p["name"] == "network.tls")


def tls_against_raw_peer(config_file, handle, **sections) -> dict:
    """The TLS probe's result against a plain TCP server on loopback that gives every connection it
    takes to ``handle`` (in its own thread), and holds it until the diagnosis is over."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.getsockname()[1],
                                         "tls": True, "server_name": "pay.test"}], **sections)
    try:
        rc, out, _ = run_cli("diagnose", "--json", "--only", "network.tls", "--config", str(config))
    finally:
        server.close()
        for conn in held:
            conn.close()
    return next(p for p in json.loads(out)["probes"] if p["name"] == "network.tls")


def tls_findings(server: DroppingTlsServer, tmp_path, config_file) -> dict[str, dict]:
    """The TLS probe's findings by code (see :func:`tls_probe`)."""
    return {f["code"]: f for f in tls_probe(server, tmp_path, config_file)["findings"]}


@pytest.fixture
def ca(tmp_path):
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return authority


def test_health_request_reset_is_a_lost_connection_not_a_timeout(ca, tmp_path, config_file):
    server = DroppingTlsServer(ca.issue_cert("pay.test"))
    try:
        config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                             "server_name": "pay.test", "ca_file": str(tmp_path / "ca.pem"),
                                             "health_path": "/health"}])
        rc, out, _ = run_cli("diagnose", "--json", "--only", "network.link,network.tcp,network.tls",
                             "--config", str(config))
    finally:
        server.sock.close()
    report = json.loads(out)
    tls = next(p for p in report["probes"] if p["name"] == "network.tls")
    codes = [f["code"] for f in tls["findings"]]
    assert "http.connection_lost" in codes and "http.timeout" not in codes
    assert report["diagnosis"]["causes"][0]["id"] == "host.service_down"
    assert rc == 2


def test_expired_certificate_reads_in_chinese(ca, tmp_path, config_file, speak_chinese):
    """A real TLS server with an expired certificate: a till that speaks Chinese is told so in Chinese."""
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    server = DroppingTlsServer(ca.issue_cert("pay.test", not_before=past - datetime.timedelta(days=365), not_after=past))
    try:
        config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                             "server_name": "pay.test", "ca_file": str(tmp_path / "ca.pem")}])
        rc, out, _ = run_cli("diagnose", "--json", "--lang", "zh_CN", "--only", "network.link,network.tcp,network.tls",
                             "--config", str(config))
    finally:
        server.sock.close()
    report = json.loads(out)
    tls = next(p for p in report["probes"] if p["name"] == "network.tls")
    expired = next(f for f in tls["findings"] if f["code"] == "tls.cert_expired")
    shown = expired["data"]["certificate"]
    assert expired["message"] == (f"primary（pay.test，127.0.0.1:{server.port}）：服务器证书已过期；"
                                  f"证书：主体 {shown['subject']}，颁发者 {shown['issuer']}，"
                                  f"有效期 {shown['not_before']} 至 {shown['not_after']}，SHA-256 {shown['sha256']}")
    assert rc == 2


@pytest.mark.parametrize(("status", "code"), [(200, None), (399, None), (400, "http.client_error"),
                                              (499, "http.client_error"), (500, "http.server_error"),
                                              (599, "http.server_error")])
def test_health_answers_are_judged_at_both_edges_of_client_and_server_errors(ca, tmp_path, config_file, status, code):
    found = tls_findings(AnsweringTlsServer(ca.issue_cert("pay.test"), status), tmp_path, config_file)
    assert [c for c in found if c.startswith("http.")] == ([code] if code else []), found


@pytest.mark.parametrize(("status_line", "code"), [("HTTP/1.1 200", None), ("HTTP/1.1 200 ", None),
                                                   ("HTTP/1.1 503", "http.server_error"),
                                                   ("HTTP/1.1", "http.bad_response"), ("HTTP/1.1 OK", "http.bad_response")],
                         ids=["200-no-reason", "200-empty-reason", "503-no-reason", "no-status", "words-for-status"])
def test_a_status_line_without_a_reason_phrase_is_still_an_http_answer(ca, tmp_path, config_file, status_line, code):
    """The reason phrase is optional (RFC 9112): a service that answers ``HTTP/1.1 200`` is healthy, one
    that answers ``HTTP/1.1 503`` is down; only a line without a numeric status is not HTTP."""
    found = tls_findings(AnsweringTlsServer(ca.issue_cert("pay.test"), status_line=status_line), tmp_path, config_file)
    assert [c for c in found if c.startswith("http.")] == ([code] if code else []), found


class WatchfulTlsServer(AnsweringTlsServer):
    """Also keeps the first bytes of every connection, peeked before the handshake reads them."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self.first_bytes: list[bytes] = []
        super().__init__(cert)

    def accepted(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            self.first_bytes.append(conn.recv(16, socket.MSG_PEEK))
        except OSError:
            self.first_bytes.append(b"")


def test_a_host_that_answers_at_once_is_sent_no_small_exchange_beside_the_handshake(ca, tmp_path, config_file):
    """The 7-byte exchange that tells a black hole from a stall is for a handshake that has heard nothing
    for a quarter of a second: a host answering at once sees the handshake alone (and the TCP layer's
    empty connects), never a stray alert on a connection of its own."""
    from posdiag.probes.network._tlsbio import TINY_ALERT

    server = WatchfulTlsServer(ca.issue_cert("pay.test"))
    found = tls_findings(server, tmp_path, config_file)
    assert found == {}, found
    hellos = [b for b in server.first_bytes if b[:1] == b"\x16"]  # a TLS handshake record
    assert len(hellos) == 1 and not [b for b in server.first_bytes if b and b[:1] != b"\x16"], server.first_bytes
    assert TINY_ALERT[:16] not in server.first_bytes


@pytest.mark.parametrize(("days", "warned"), [(13.5, True), (14.5, False)], ids=["13.5-days-left", "14.5-days-left"])
def test_a_certificate_is_said_to_expire_soon_from_fourteen_days_ahead(ca, tmp_path, config_file, days, warned):
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = ca.issue_cert("pay.test", not_before=now - datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=days))
    found = tls_findings(AnsweringTlsServer(cert), tmp_path, config_file)
    assert ("tls.expiring_soon" in found) is warned, found
    assert "tls.cert_expired" not in found


def test_a_certificate_that_fails_verification_is_named_by_subject_issuer_dates_and_fingerprint(ca, tmp_path, config_file):
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    leaf = ca.issue_cert("pay.test", not_before=past - datetime.timedelta(days=365), not_after=past)
    server = DroppingTlsServer(leaf)
    try:
        config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                             "server_name": "pay.test", "ca_file": str(tmp_path / "ca.pem")}])
        rc, out, _ = run_cli("diagnose", "--json", "--only", "network.link,network.tcp,network.tls", "--config", str(config))
    finally:
        server.sock.close()
    report = json.loads(out)
    expired = next(f for p in report["probes"] for f in p["findings"] if f["code"] == "tls.cert_expired")
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    fingerprint = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    shown = expired["data"]["certificate"]
    assert shown["sha256"] == fingerprint
    assert shown["not_after"] == past.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert "O=trustme" in shown["subject"] and "Testing cert" in shown["subject"]
    assert "Testing CA" in shown["issuer"]
    assert f"at 127.0.0.1:{server.port}: the server certificate has expired; certificate: subject {shown['subject']}" \
        in expired["message"] and fingerprint in expired["message"]
    assert report["diagnosis"]["causes"][0]["id"] == "tls.failure" and rc == 2


@pytest.mark.parametrize(("verify_code", "code"), [
    (10, "tls.cert_expired"), (9, "tls.cert_not_yet_valid"), (62, "tls.name_mismatch"),
    *[(untrusted, "tls.untrusted") for untrusted in (2, 18, 19, 20, 21, 27)], (7, "tls.verify_failed")])
def test_each_verification_error_of_openssl_is_named_for_whose_fault_it_is(verify_code, code):
    """OpenSSL's X509_V_ERR codes: expiry, a clock before the validity, another name, each way of not being
    trusted (no issuer, self-signed, untrusted root…), and anything else as a plain verification failure."""
    from posdiag.probes.network.tls import TlsProbe

    error = ssl.SSLCertVerificationError(1, "certificate verify failed")
    error.verify_code, error.verify_message = verify_code, "as OpenSSL says"
    found, _, data = TlsProbe.classify_verify("primary", error)
    assert (found, data) == (code, {"verify_code": verify_code, "verify_message": "as OpenSSL says"})
    assert TlsProbe.findings[found].value == "fail"  # declared: a payment host the terminal cannot trust is a fault


def test_the_health_answer_is_timed_in_milliseconds(ca, tmp_path, config_file):
    """A service that takes 0.3 s to answer its health path: the time measured is that, in ms."""
    server = AnsweringTlsServer(ca.issue_cert("pay.test"), delay_s=0.3)
    metrics = tls_probe(server, tmp_path, config_file, only="network.tls")["metrics"]
    assert 300 <= metrics["health_ms[primary]"] < 3000 and metrics["health_status[primary]"] == 200, metrics
    assert metrics["health_ms[primary]"] == round(metrics["health_ms[primary]"], 2)


def test_a_handshake_stalled_after_the_server_s_first_bytes_is_a_timeout_without_a_small_exchange(config_file,
                                                                                                    tmp_path):
    """The service starts its answer (a record header) and stops: large replies do get through, so no
    7-byte exchange is tried; the stall is the service's, with the bytes it sent counted."""

    def stall(conn: socket.socket) -> None:
        # The header goes out as soon as a connection is taken, before the ClientHello is even read, so
        # a busy machine cannot hold it back past the probe's quarter second of grace (the TCP probe's
        # plain connects get it too, and close).
        with contextlib.suppress(OSError):
            conn.sendall(b"\x16\x03\x03\x00\x40")  # the start of a ServerHello, then a stall

    tls = tls_against_raw_peer(config_file, stall, network={"timeout_s": 0.5})
    [finding] = tls["findings"]
    assert finding["code"] == "tls.timeout" and finding["data"]["bytes_received"] == 5, finding
    assert finding["data"]["small_exchange"] == "not tried" and "(5 bytes from the server)" in finding["message"]


def test_a_payment_host_without_a_ca_file_is_verified_against_the_system_s_authorities(ca, tmp_path, config_file):
    """No ca_file: the system's trusted authorities decide, and the test's own CA is not one of them."""
    server = AnsweringTlsServer(ca.issue_cert("pay.test"))
    config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                         "server_name": "pay.test"}])
    try:
        rc, out, _ = run_cli("diagnose", "--json", "--only", "network.tls", "--config", str(config))
    finally:
        server.sock.close()
    tls = next(p for p in json.loads(out)["probes"] if p["name"] == "network.tls")
    assert [f["code"] for f in tls["findings"]] == ["tls.untrusted"], tls


@pytest.mark.parametrize(("der", "element"), [
    (b"\x04\x01\x07", (0x04, 2, 3)), (b"\x04\x81\x01\x07", (0x04, 3, 4)),
    (b"\x04\x84\x00\x00\x00\x01\x07", (0x04, 6, 7)), (b"\x04\x00", (0x04, 2, 2)), (b"\x04\x81\x00", (0x04, 3, 3)),
    (b"\x04\x85\x00\x00\x00\x00\x01\x07", "bad length"), (b"\x04\x80\x07\x00\x00", "bad length"),
    (b"\x04\x82\x00", "bad length"), (b"\x04\x02\x07", "truncated"), (b"\x04", "truncated")],
    ids=["short-form", "long-form-1", "long-form-4", "empty", "long-form-empty", "long-form-5", "indefinite", "length-cut-short",
         "value-cut-short", "header-cut-short"])
def test_a_der_length_takes_one_to_four_bytes_and_never_reaches_past_the_data(der, element):
    """A certificate's DER element: a short length, or 0x80 + n with n from 1 to 4 length bytes (up to 4 GB);
    no other n, and nothing reaching beyond the bytes received, is a certificate this reader trusts itself to read."""
    from posdiag.probes.network._x509 import BadCertificate, _tlv

    if isinstance(element, str):
        with pytest.raises(BadCertificate, match=element):
            _tlv(der, 0)
    else:
        assert _tlv(der, 0) == element


def _certificate(ca, tmp_path, not_before: datetime.datetime, not_after: datetime.datetime) -> tuple[bytes, str]:
    leaf = ca.issue_cert("pay.test", not_before=not_before, not_after=not_after)
    pem = leaf.cert_chain_pems[0].bytes().decode()
    return ssl.PEM_cert_to_DER_cert(pem), pem


@pytest.mark.parametrize("stamp", ["2049-12-31T23:59:59Z", "2050-01-01T00:00:00Z"])
def test_validity_dates_read_as_their_century_says_utctime_up_to_2049_generalizedtime_after(ca, tmp_path, stamp):
    """RFC 5280: UTCTime's two-digit years 50..99 are 19xx and 00..49 are 20xx; from 2050 GeneralizedTime."""
    from posdiag.probes.network._x509 import read

    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    der, pem = _certificate(ca, tmp_path, datetime.datetime(1950, 6, 1, tzinfo=datetime.timezone.utc), when)
    info = read(der)
    assert (info.not_before, info.not_after) == ("1950-06-01T00:00:00Z", stamp)


def test_a_certificate_is_named_unit_before_organisation_and_cut_short_is_no_certificate(ca, tmp_path):
    from posdiag.probes.network._x509 import BadCertificate, read

    now = datetime.datetime.now(datetime.timezone.utc)
    der, pem = _certificate(ca, tmp_path, now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))
    info = read(der)
    assert info.subject.startswith("OU=Testing cert #") and ", O=trustme" in info.subject, info  # as people write it
    assert info.issuer.startswith("OU=Testing CA #") and ", O=trustme" in info.issuer, info
    with pytest.raises(BadCertificate):
        read(der[:40])


def _der(tag: int, *parts: bytes) -> bytes:
    """One DER element of the parts joined: short length below 128 bytes, long form above."""
    content = b"".join(parts)
    n, size = len(content), (len(content).bit_length() + 7) // 8
    length = bytes([n]) if n < 0x80 else bytes([0x80 | size]) + n.to_bytes(size, "big")
    return bytes([tag]) + length + content


def _der_name(*parts: tuple[bytes, int, bytes]) -> bytes:
    """An X.509 Name of (attribute OID, string tag, value) parts, one per RDN, in the order given."""
    return _der(0x30, *(_der(0x31, _der(0x30, _der(0x06, oid), _der(tag, value))) for oid, tag, value in parts))


CN, ORG, SERIAL = bytes([0x55, 4, 3]), bytes([0x55, 4, 10]), bytes([0x55, 4, 5])


def _der_certificate(validity: list[bytes], fields: int = 5) -> bytes:
    """A version-1 certificate (no [0] version): serial, algorithm, issuer, validity, subject — or fewer."""
    subject = _der_name((ORG, 0x13, b"Acme"), (SERIAL, 0x13, b"42"), (CN, 0x1E, "pay.tést".encode("utf-16-be")),
                        (CN, 0x0C, b"second"), (ORG, 0x04, b"not a string"))
    issuer = _der_name((CN, 0x14, "Caf\xe9 CA".encode("latin-1")))
    tbs = [_der(0x02, b"\x01"), _der(0x30), issuer, _der(0x30, *validity), subject][:fields]
    return _der(0x30, _der(0x30, *tbs), _der(0x30), _der(0x03, b"\x00"))


def test_a_certificate_read_from_its_bytes_names_common_name_then_organisation_in_any_string_type():
    """Only CN, OU, O, L, ST, C are shown, in that order whatever the certificate's; the first value of each;
    BMP, Latin-1, printable and UTF-8 strings decoded; five fields are enough, four or a validity of three
    dates are not a certificate."""
    from posdiag.probes.network._x509 import BadCertificate, read

    times = [_der(0x17, b"500601000000Z"), _der(0x18, b"20491231235959Z")]
    info = read(_der_certificate(times))
    assert (info.subject, info.issuer) == ("CN=pay.tést, O=Acme", "CN=Café CA")
    assert (info.not_before, info.not_after) == ("1950-06-01T00:00:00Z", "2049-12-31T23:59:59Z")
    with pytest.raises(BadCertificate, match="too few fields"):
        read(_der_certificate(times, fields=4))
    with pytest.raises(BadCertificate, match="bad validity"):
        read(_der_certificate([*times, times[0]]))
    with pytest.raises(BadCertificate, match="bad time"):
        read(_der_certificate([times[0], _der(0x18, b"2049-12-31")]))


class ClosingTlsServer(LoopbackTlsServer):
    """Completes the handshake, reads the health request, and closes the TLS session without a word."""

    def handle(self, tls: ssl.SSLSocket) -> None:
        tls.recv(4096)
        tls.unwrap()


class LongHeadTlsServer(LoopbackTlsServer):
    """Answers the health request with a status line split over many small writes (a slow, chatty proxy)."""

    def handle(self, tls: ssl.SSLSocket) -> None:
        tls.recv(4096)
        for piece in ("HTTP/1.1 ", "50", "3 Service Unavailable", "\r\n", "Content-Length: 0\r\n\r\n"):
            tls.sendall(piece.encode())
            time.sleep(0.02)


@pytest.mark.parametrize(("server", "code", "words"), [
    (ClosingTlsServer, "http.connection_lost", "the service closed the connection without answering"),
    (LongHeadTlsServer, "http.server_error", "the payment service answers HTTP 503")], ids=["closed", "in-pieces"])
def test_the_health_answer_is_read_to_its_status_line_however_it_comes(ca, tmp_path, config_file, server, code, words):
    """The status line is read until it ends, across the pieces it comes in; a service that closes cleanly
    without a byte has lost the connection (not a timeout, not a bad answer)."""
    found = tls_findings(server(ca.issue_cert("pay.test")), tmp_path, config_file)
    assert list(found) == [code] and f"primary /health: {words}" in found[code]["message"], found


def test_a_healthy_handshake_is_summed_up_with_its_time_and_the_days_its_certificate_has_left(ca, tmp_path, config_file):
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = ca.issue_cert("pay.test", not_before=now - datetime.timedelta(days=1), not_after=now + datetime.timedelta(days=40))
    tls = tls_probe(AnsweringTlsServer(cert), tmp_path, config_file)
    metrics = tls["metrics"]
    assert tls["status"] == "ok" and tls["findings"] == [], tls
    assert metrics["cert_days_left[primary]"] == pytest.approx(40, abs=0.1) and metrics["tls_version[primary]"] in (
        "TLSv1.2", "TLSv1.3") and metrics["handshake_ms[primary]"] > 0, metrics
    assert re.fullmatch(r"primary \d+(\.\d+)? ms, (39\.9|40) days left", tls["summary"]), tls["summary"]


def test_without_a_tls_payment_host_the_tls_probe_does_not_apply(tmp_path, config_file):
    with socket.create_server(("127.0.0.1", 0)) as plain:
        config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": plain.getsockname()[1],
                                             "tls": False}])
        rc, out, _ = run_cli("diagnose", "--json", "--only", "network.tls", "--config", str(config))
    tls = next(p for p in json.loads(out)["probes"] if p["name"] == "network.tls")
    assert tls["status"] == "skipped" and tls["summary"] == "no payment host uses TLS", tls


@pytest.mark.parametrize(("reply", "code", "words"), [
    (None, "tls.reset", "connection closed during the handshake (SSLEOFError)"),
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "tls.handshake_failed", "handshake failed (WRONG_VERSION_NUMBER)")],
    ids=["closes-at-once", "answers-in-plain-http"])
def test_a_service_that_closes_or_speaks_no_tls_fails_the_handshake_in_its_own_words(config_file, reply, code, words):
    """Not TLS behind the port (a plain HTTP server, a proxy), or a service that hangs up as the hello arrives."""

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.2)
            hello = b""
            with contextlib.suppress(OSError):  # read to the end: then the close is a clean one, not a reset
                while chunk := conn.recv(4096):
                    hello += chunk
            if hello[:1] == b"\x16" and reply:  # a ClientHello
                conn.sendall(reply)
                time.sleep(0.2)

    tls = tls_against_raw_peer(config_file, answer)
    [finding] = tls["findings"]
    assert finding["code"] == code and finding["message"].endswith(words), finding


def test_a_tls_fault_beside_a_backup_without_tls_is_a_warning_the_terminal_can_fail_over(ca, tmp_path, config_file):
    """The backup speaks no TLS, so this layer has nothing against it: it works here, and the primary's expired
    certificate is a warning naming it, not a fault."""
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    server = DroppingTlsServer(ca.issue_cert("pay.test", not_before=past - datetime.timedelta(days=365), not_after=past))
    with socket.create_server(("127.0.0.1", 0)) as plain:
        config = config_file(payment_hosts=[
            {"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True, "server_name": "pay.test",
             "ca_file": str(tmp_path / "ca.pem")},
            {"name": "backup", "host": "127.0.0.1", "port": plain.getsockname()[1], "tls": False}])
        try:
            rc, out, _ = run_cli("diagnose", "--json", "--only", "network.tls", "--config", str(config))
        finally:
            server.sock.close()
    tls = next(p for p in json.loads(out)["probes"] if p["name"] == "network.tls")
    [expired] = tls["findings"]
    assert (expired["code"], expired["severity"], expired["data"]["failover_ok"]) == ("tls.cert_expired", "warn", True)
    assert "; backup (backup 1) works, so the terminal can fail over" in expired["message"], expired


class SlowToGreetTlsServer(AnsweringTlsServer):
    """Waits ``greet_s`` after a ClientHello arrives before handshaking (a busy host), then answers the health
    request after ``delay_s``."""

    def __init__(self, cert: trustme.LeafCert, greet_s: float, delay_s: float) -> None:
        self.greet_s = greet_s
        super().__init__(cert, delay_s=delay_s)

    def accepted(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            if conn.recv(1, socket.MSG_PEEK) == b"\x16":  # a handshake; the TCP probe's empty connects pass
                time.sleep(self.greet_s)


def test_a_slow_handshake_and_a_health_answer_past_the_timeout_each_get_the_timeout_within_the_probe_s_time(
        ca, tmp_path, config_file):
    """The handshake takes 0.3 s and the health answer never comes in time: the request gives up at timeout_s
    after the handshake and says so, within the probe's own time (twice timeout_s, and a little)."""
    server = SlowToGreetTlsServer(ca.issue_cert("pay.test"), greet_s=0.3, delay_s=1.5)
    config = config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": server.port, "tls": True,
                                         "server_name": "pay.test", "ca_file": str(tmp_path / "ca.pem"),
                                         "health_path": "/health"}], network={"timeout_s": 0.5})
    try:
        rc, out, _ = run_cli("diagnose", "--json", "--only", "network.tls", "--config", str(config))
    finally:
        server.sock.close()
    tls = next(p for p in json.loads(out)["probes"] if p["name"] == "network.tls")
    assert tls["status"] == "fail" and [f["code"] for f in tls["findings"]] == ["http.timeout"], tls
    assert tls["findings"][0]["message"].startswith("primary /health: no HTTP answer within 0.5 s")
    assert tls["metrics"]["handshake_ms[primary]"] >= 300, tls


def _signed_der(subject: list, not_before: datetime.datetime, not_after: datetime.datetime) -> bytes:
    """A self-signed DER certificate with ``subject`` (cryptography NameAttributes) as subject and issuer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(subject)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(not_before).not_valid_after(not_after).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def _rewrapped(der: bytes, keep) -> bytes:
    """``der`` with its TBSCertificate's fields filtered by ``keep`` (a slice), lengths made right."""
    from posdiag.probes.network import _x509

    _, cert_s, cert_e = _x509._tlv(der, 0)
    tbs_tag, tbs_s, tbs_e = _x509._tlv(der, cert_s)
    fields, pos = [], tbs_s
    while pos < tbs_e:
        fields.append(der[pos:(pos := _x509._tlv(der, pos)[2])])
    rest = der[tbs_e:cert_e]
    return _der(0x30, _der(tbs_tag, b"".join(fields[keep])) + rest)


def _utc(*when: int) -> datetime.datetime:
    return datetime.datetime(*when, tzinfo=datetime.timezone.utc)


def test_a_certificate_is_read_for_its_names_dates_and_fingerprint_from_its_der_bytes():
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from posdiag.probes.network import _x509

    der = _signed_der([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acq"),
                        x509.NameAttribute(NameOID.COMMON_NAME, "pay.test")], _utc(2024, 1, 2, 3, 4, 5),
                       _utc(2026, 7, 8, 9, 10, 11))
    info = _x509.read(der)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert info.to_dict() == {"subject": "CN=pay.test, O=Acq, C=CN", "issuer": "CN=pay.test, O=Acq, C=CN",
                              "not_before": "2024-01-02T03:04:05Z", "not_after": "2026-07-08T09:10:11Z",
                              "sha256": ":".join(digest[i:i + 2] for i in range(0, 64, 2))}
    assert len(info.sha256.split(":")) == 32


@pytest.mark.parametrize(("when", "text"), [
    (_utc(1950, 1, 1, 0, 0, 0), "1950-01-01T00:00:00Z"),  # UTCTime "50…": the first year of the 1900s
    (_utc(2049, 12, 31, 23, 59, 59), "2049-12-31T23:59:59Z"),  # UTCTime "49…": the last of the 2000s
    (_utc(2050, 1, 1, 0, 0, 0), "2050-01-01T00:00:00Z"),  # GeneralizedTime from 2050 on
], ids=["utctime-1950", "utctime-2049", "generalized-2050"])
def test_certificate_dates_are_read_in_the_century_rfc_5280_gives_two_digit_years(when, text):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from posdiag.probes.network import _x509

    der = _signed_der([x509.NameAttribute(NameOID.COMMON_NAME, "t")], when, _utc(2060, 1, 1))
    assert _x509.read(der).not_before == text


def test_name_parts_in_every_string_type_are_read_and_a_non_string_value_is_left_out():
    from cryptography import x509
    from cryptography.x509.name import _ASN1Type
    from cryptography.x509.oid import NameOID
    from posdiag.probes.network import _x509

    der = _signed_der([x509.NameAttribute(NameOID.COMMON_NAME, "pay.test", _ASN1Type.UniversalString),
                        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "收单", _ASN1Type.BMPString),
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acq", _ASN1Type.T61String),
                        x509.NameAttribute(NameOID.LOCALITY_NAME, "Town", _ASN1Type.IA5String),
                        x509.NameAttribute(NameOID.SERIAL_NUMBER, "42")], _utc(2024, 1, 1), _utc(2030, 1, 1))
    assert _x509.read(der).subject == "OU=收单, O=Acq, L=Town"  # CN in UniversalString: not read; serialNumber: not shown


@pytest.mark.parametrize(("kept", "readable"), [
    (slice(1, None), True),  # no [0] version: a v1 certificate
    (slice(1, 6), True),  # serial, algorithm, issuer, validity, subject: the five fields read
    (slice(1, 5), False),  # no subject
], ids=["v1", "five-fields", "four-fields"])
def test_a_certificate_needs_its_first_five_fields_after_the_optional_version(kept, readable):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from posdiag.probes.network import _x509

    der = _rewrapped(_signed_der([x509.NameAttribute(NameOID.COMMON_NAME, "pay.test")], _utc(2024, 1, 1),
                                  _utc(2030, 1, 1)), kept)
    if readable:
        info = _x509.read(der)
        assert (info.subject, info.not_before, info.not_after) == ("CN=pay.test", "2024-01-01T00:00:00Z",
                                                                   "2030-01-01T00:00:00Z")
    else:
        with pytest.raises(_x509.BadCertificate, match="too few fields"):
            _x509.read(der)


@pytest.mark.parametrize(("data", "element"), [
    (b"\x05\x00", (5, 2, 2)),  # an empty element ending where the bytes end
    (b"\x04\x02ab", (4, 2, 4)),
    (b"\x04\x81\x02ab", (4, 3, 5)),  # long form, one length byte
    (b"\x30", None), (b"", None),  # no room for a length
    (b"\x04\x03ab", None),  # one byte short
], ids=["empty-at-end", "short-form", "long-form", "tag-only", "nothing", "short-by-one"])
def test_a_der_element_is_bounded_by_the_bytes_there_are(data, element):
    from posdiag.probes.network import _x509

    if element is None:
        with pytest.raises(_x509.BadCertificate, match="truncated"):
            _x509._tlv(data, 0)
    else:
        assert _x509._tlv(data, 0) == element


def test_the_client_certificate_s_expiry_is_read_from_the_first_pem_block_only(ca):
    from posdiag.core.timefmt import parse_utc_iso
    from posdiag.probes.network import _x509

    leaf = ca.issue_cert("pay.test", not_after=_utc(2031, 5, 6, 7, 8, 9))
    pem = leaf.cert_chain_pems[0].bytes().decode() + ca.cert_pem.bytes().decode()
    assert _x509.not_after("key and notes first\n" + pem) == parse_utc_iso("2031-05-06T07:08:09Z")
    assert _x509.not_after("no certificate here") is None
    assert _x509.not_after("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----") is None


@pytest.fixture
def silent_server():
    """A TCP server on loopback that accepts and says nothing, and hangs up after 6 s at the latest."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = server.accept()
            time.sleep(6)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1]
    server.close()


class _Woken(Exception):
    pass


@pytest.mark.parametrize("asked_s", [None, 100.0], ids=["no-wake", "wake-after-the-deadline"])
def test_a_silent_handshake_ends_at_its_deadline_whatever_wake_up_is_asked(silent_server, asked_s):
    from posdiag.probes.network._tlsbio import Channel

    raw = socket.create_connection(("127.0.0.1", silent_server), timeout=5)
    started = time.monotonic()
    channel = Channel(raw, ssl.create_default_context(), "pay.test", started + 0.5)
    with pytest.raises(TimeoutError):
        channel.handshake(lambda ch: None if asked_s is None else time.monotonic() + asked_s)
    raw.close()
    assert time.monotonic() - started < 4  # the 0.5 s deadline, not the server's hang-up at 6 s
    assert channel.received == 0


def test_a_waiting_handshake_calls_back_at_the_moment_asked_before_its_deadline(silent_server):
    from posdiag.probes.network._tlsbio import Channel

    raw = socket.create_connection(("127.0.0.1", silent_server), timeout=5)
    started = time.monotonic()
    calls: list[float] = []

    def on_wait(ch: Channel) -> float:
        calls.append(time.monotonic() - started)
        if len(calls) > 1:
            raise _Woken
        return time.monotonic() + 0.2

    with pytest.raises(_Woken):
        Channel(raw, ssl.create_default_context(), "pay.test", started + 30).handshake(on_wait)
    raw.close()
    assert 0.15 <= calls[1] < 4, calls  # woken at 0.2 s as asked, not at the server's hang-up or the deadline
