"""TLS: the handshake with each reachable TLS payment host, verified as the POS would verify it.
Classifies expired, not-yet-valid (a clock problem), untrusted (possible interception), name
mismatch and protocol failures; warns before the server's certificate — or the terminal's own client
certificate — expires (``[network] cert_warn_days``: a risk, with ``hours_left`` and ``due_at``);
optionally GETs a health path over the channel. A certificate that fails verification is fetched once
more without verifying it, so that the finding names what the terminal was shown: subject, issuer,
validity and SHA-256 fingerprint."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import TYPE_CHECKING

from posdiag.core.i18n import N_, tr
from posdiag.core.timefmt import utc_iso
from posdiag.probes.base import Observation, ProbeSkipped, Status, declare
from posdiag.probes.network._common import (
    Background,
    PaymentHostProbe,
    Target,
    clauses,
    connected_address,
    report_per_target,
    side_by_side,
    targets,
)

# ssl (~8 ms to import) and the channel are imported where a handshake is made, so a diagnosis with no
# TLS payment host to check (the default configuration, ``--only disk``) never loads them.
if TYPE_CHECKING:
    import ssl

    from posdiag.probes.network._tlsbio import Channel

# OpenSSL X509_V_ERR_* codes
_EXPIRED, _NOT_YET_VALID, _HOSTNAME_MISMATCH = 10, 9, 62
_UNTRUSTED = {2, 18, 19, 20, 21, 27}
#: No byte from the server by then: start the tiny exchange that tells a black hole from a stall.
GRACE_S = 0.25


class TlsProbe(PaymentHostProbe):
    name = "network.tls"
    description = N_("TLS handshake with SNI and verification: expiry, trust, name; optional HTTPS health path")
    findings = declare(fail=("http.bad_response", "http.connection_lost", "http.server_error", "http.timeout", "tls.cert_expired",
                           "tls.cert_not_yet_valid", "tls.connect_failed", "tls.handshake_failed",
                           "tls.large_replies_lost", "tls.name_mismatch", "tls.reset", "tls.timeout", "tls.untrusted",
                           "tls.verify_failed", "tls.client_cert_expired", "tls.client_cert_unusable"),
                       warn=("http.client_error", "tls.expiring_soon", "tls.client_cert_expiring"))
    requires = ("network.tcp",)

    def applies(self) -> str | None:
        if not any(h.tls for h in self.settings.payment_hosts):
            return tr("no payment host uses TLS")
        return None

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s * 2 + 0.5

    def check(self, obs: Observation) -> None:
        all_targets = targets(self.settings)
        work = [(t, addr) for t in all_targets if t.host.tls and (addr := connected_address(self.context, t))]
        if not work:
            raise ProbeSkipped(tr("no TLS payment host accepted a TCP connection"))
        for target in {t.host.client_cert: t for t, _ in work if t.host.client_cert}.values():
            self.client_certificate(obs, target)
        results = side_by_side(lambda ta: self.handshake(obs, *ta), work)
        verdicts = {t.index: r for (t, _), r in zip(work, results, strict=True)}
        report_per_target(obs, verdicts, all_targets, {t.index for t in all_targets if not t.host.tls})
        if obs.status() is Status.OK:
            obs.summary = clauses(tr("{host} {ms} ms, {days} days left", host=t.host.label,
                                     ms=obs.metrics.get(f"handshake_ms[{t.host.label}]"),
                                     days=obs.metrics.get(f"cert_days_left[{t.host.label}]")) for t, _ in work)

    def context_for(self, target: Target) -> ssl.SSLContext:
        import ssl

        ctx = ssl.create_default_context(cafile=target.host.ca_file or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if target.host.client_cert:  # unusable: client_certificate() has said why; the server will refuse us
            with contextlib.suppress(OSError, ssl.SSLError):
                ctx.load_cert_chain(target.host.client_cert, target.host.client_key or None)
        return ctx

    def client_certificate(self, obs: Observation, target: Target) -> None:
        """The terminal's own certificate: readable, not expired, not expiring within ``cert_warn_days``."""
        from posdiag.probes.network._x509 import not_after

        path = target.host.client_cert
        try:
            with open(path, encoding="ascii", errors="replace") as f:
                expires = not_after(f.read(1024 * 1024))
        except OSError as exc:
            expires, error = None, exc.strerror or str(exc)
        else:
            error = tr("no certificate in it")
        if expires is None:
            obs.fail("tls.client_cert_unusable", tr("{target}: the client certificate {path} cannot be read ({error})",
                                                    target=target.label, path=path, error=error), path=path)
            return
        days = (expires - time.time()) / 86400
        obs.metric(f"client_cert_days_left[{target.host.label}]", round(days, 1))
        if days <= 0:
            obs.fail("tls.client_cert_expired", tr("{target}: the terminal's client certificate {path} expired on {date}",
                                                   target=target.label, path=path, date=utc_iso(expires)),
                     path=path, not_after=utc_iso(expires))
        elif days < self.settings.network.cert_warn_days:
            obs.warn("tls.client_cert_expiring", tr("{target}: the terminal's client certificate {path} expires in "
                                                    "{days:.1f} days ({date})", target=target.label, path=path, days=days,
                                                    date=utc_iso(expires)),
                     path=path, subject=path, **_expiry(expires))

    def handshake(self, obs: Observation, target: Target, address: str) -> tuple[str, str, dict] | None:
        import ssl

        from posdiag.probes.network._tlsbio import Channel
        host = target.host
        name = host.server_name or host.host
        label = host.label
        timeout = self.settings.network.timeout_s
        where = tr("{target} ({name}) at {address}:{port}", target=target.label, name=name, address=address, port=host.port)
        started = time.monotonic()
        try:
            raw = socket.create_connection((address, host.port), timeout=timeout)
        except OSError as exc:
            return "tls.connect_failed", tr("{where}: connection for the handshake failed ({error})", where=where,
                                            error=exc), {}
        channel = Channel(raw, self.context_for(target), name, started + timeout)
        tiny: list[Background[str]] = []
        try:
            channel.handshake(lambda ch: self.tiny_when_silent(ch, tiny, address, host.port, started))
            handshake_ms = (time.monotonic() - started) * 1000
            obs.metric(f"handshake_ms[{label}]", round(handshake_ms, 2))
            obs.metric(f"tls_version[{label}]", channel.tls.version())
            self.expiry(obs, target, channel.tls.getpeercert())
            if host.health_path:
                return self.health(obs, target, channel, name)
            return None
        except ssl.SSLCertVerificationError as exc:
            raw.close()  # first: a server that serves one connection at a time is still waiting on this one
            code, message, data = self.classify_verify(where, exc)
            return self.with_certificate(code, message, data, address, host.port, name, started + timeout * 2)
        except TimeoutError:
            return self.stalled(where, channel.received, tiny[0].result() if tiny else None)
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError, BrokenPipeError) as exc:
            return "tls.reset", tr("{where}: connection closed during the handshake ({error})", where=where,
                                   error=exc.__class__.__name__), {}
        except ssl.SSLError as exc:
            return "tls.handshake_failed", tr("{where}: handshake failed ({reason})", where=where, reason=exc.reason or exc), \
                {"reason": exc.reason}
        except OSError as exc:
            return "tls.reset", tr("{where}: connection failed during the handshake ({error})", where=where, error=exc), {}
        finally:
            raw.close()

    def tiny_when_silent(self, channel: Channel, tiny: list[Background[str]], address: str, port: int,
                         started: float) -> float | None:
        """While the handshake waits: once the server has sent nothing for :data:`GRACE_S`, start
        the tiny exchange on a second connection, side by side, ending with the handshake's deadline."""
        if tiny or channel.received:
            return None
        if time.monotonic() < started + GRACE_S:
            return started + GRACE_S
        left = channel.deadline - time.monotonic()
        from posdiag.probes.network._tlsbio import tiny_exchange

        tiny.append(Background(lambda: tiny_exchange(address, port, max(0.05, left))))
        return None

    def stalled(self, where: str, received: int, tiny: str | None) -> tuple[str, str, dict]:
        timeout = self.settings.network.timeout_s
        data = {"bytes_received": received, "small_exchange": tiny or "not tried"}
        if received == 0 and tiny == "answered":
            return "tls.large_replies_lost", tr(
                "{where}: the handshake stalled with 0 bytes of the server's reply in {timeout:g} s, while a 7-byte "
                "exchange on the same port is answered at once: large packets are lost on the path",
                where=where, timeout=timeout), data
        if tiny == "silent":
            return "tls.timeout", tr("{where}: handshake stalled for {timeout:g} s ({received} bytes from the server, and a "
                                     "7-byte exchange is not answered either): the service accepts but does not answer",
                                     where=where, timeout=timeout, received=received), data
        return "tls.timeout", tr("{where}: handshake stalled for {timeout:g} s ({received} bytes from the server): the "
                                 "service accepts but does not answer", where=where, timeout=timeout, received=received), data

    @staticmethod
    def classify_verify(where: str, exc: ssl.SSLCertVerificationError) -> tuple[str, str, dict]:
        code, message = exc.verify_code, exc.verify_message
        data = {"verify_code": code, "verify_message": message}
        if code == _EXPIRED:
            return "tls.cert_expired", tr("{where}: the server certificate has expired", where=where), data
        if code == _NOT_YET_VALID:
            return "tls.cert_not_yet_valid", tr("{where}: the server certificate is not yet valid", where=where), data
        if code == _HOSTNAME_MISMATCH:
            return "tls.name_mismatch", tr("{where}: the certificate is for another name ({message})", where=where,
                                           message=message), data
        if code in _UNTRUSTED:
            return "tls.untrusted", tr("{where}: certificate not trusted ({message})", where=where, message=message), data
        return "tls.verify_failed", tr("{where}: certificate verification failed ({message})", where=where,
                                       message=message), data

    @staticmethod
    def with_certificate(code: str, message: str, data: dict, address: str, port: int, name: str,
                         deadline: float) -> tuple[str, str, dict]:
        """The verification failure, naming the certificate the server showed (fetched once more
        without verifying it): which one it was decides whose fault it is."""
        from posdiag.probes.network import _x509

        try:
            cert = _x509.read(shown_certificate(address, port, name, max(0.05, deadline - time.monotonic())))
        except (OSError, _x509.BadCertificate):
            return code, message, data
        return code, tr("{message}; certificate: subject {subject}, issuer {issuer}, valid {not_before} to {not_after}, "
                        "SHA-256 {sha256}", message=message, **cert.to_dict()), {**data, "certificate": cert.to_dict()}

    def expiry(self, obs: Observation, target: Target, cert: dict) -> None:
        if not cert or "notAfter" not in cert:
            return
        import ssl

        expires = ssl.cert_time_to_seconds(cert["notAfter"])
        days = (expires - time.time()) / 86400
        obs.metric(f"cert_days_left[{target.host.label}]", round(days, 1))
        if days < self.settings.network.cert_warn_days:
            obs.warn("tls.expiring_soon", tr("{target}: the payment host's certificate expires in {days:.1f} days ({date})",
                                             target=target.label, days=days, date=utc_iso(expires)),
                     host=target.host.host, days_left=round(days, 1), subject=target.host.label, **_expiry(expires))

    def health(self, obs: Observation, target: Target, tls: Channel, name: str) -> tuple[str, str, dict] | None:
        path = target.host.health_path
        where = f"{target.label} {path}"  # a name and a path: no words to translate
        started = time.monotonic()
        request = (f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: posdiag\r\nConnection: close\r\n\r\n").encode()
        tls.deadline = started + self.settings.network.timeout_s
        try:
            tls.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < 8192:
                chunk = tls.recv(1024)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return "http.timeout", tr("{where}: no HTTP answer within {timeout:g} s", where=where,
                                      timeout=self.settings.network.timeout_s), {}
        except OSError as exc:  # reset, broken pipe, TLS alert: the service dropped us, it did not stall
            return "http.connection_lost", tr("{where}: connection lost during the request ({error})", where=where,
                                              error=exc), {"error": exc.__class__.__name__}
        ms = (time.monotonic() - started) * 1000
        if not head:
            return "http.connection_lost", tr("{where}: the service closed the connection without answering", where=where), {}
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            return "http.bad_response", tr("{where}: not an HTTP answer ({head!r})", where=where, head=head[:40]), {}
        status = int(parts[1])
        obs.metric(f"health_status[{target.host.label}]", status)
        obs.metric(f"health_ms[{target.host.label}]", round(ms, 2))
        if status >= 500:
            return "http.server_error", tr("{where}: the payment service answers HTTP {status}", where=where,
                                           status=status), {"status": status}
        if status >= 400:
            obs.warn("http.client_error", tr("{where}: HTTP {status}: check the configured health path", where=where,
                                             status=status), host=target.host.host, status=status)
        return None


def _expiry(expires: float) -> dict[str, object]:
    """What a risk finding carries for a certificate: the hours left and when (time runs at one hour an hour)."""
    return {"hours_left": round((expires - time.time()) / 3600, 2), "due_at": utc_iso(expires), "rate": None,
            "rate_unit": None}


def shown_certificate(address: str, port: int, name: str, timeout_s: float) -> bytes:
    """The DER certificate the server presents for ``name``, taken without verifying it (to describe a
    certificate that failed verification; nothing is sent over the channel). Raises OSError."""
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=timeout_s) as raw, \
            ctx.wrap_socket(raw, server_hostname=name) as tls:
        der = tls.getpeercert(binary_form=True)
    if not der:
        raise OSError("the server presented no certificate")
    return der
