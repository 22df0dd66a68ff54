"""TLS: the handshake with each reachable TLS payment host, verified as the POS would verify it.
Classifies expired, not-yet-valid (a clock problem), untrusted (possible interception), name
mismatch and protocol failures; warns before expiry; optionally GETs a health path over the channel."""

from __future__ import annotations

import socket
import ssl
import time

from posdiag.probes.base import Observation, Probe, ProbeSkipped, Status, declare
from posdiag.probes.network._common import Target, connected_address, report_per_target, side_by_side, targets

EXPIRY_WARN_DAYS = 14
# OpenSSL X509_V_ERR_* codes
_EXPIRED, _NOT_YET_VALID, _HOSTNAME_MISMATCH = 10, 9, 62
_UNTRUSTED = {2, 18, 19, 20, 21, 27}


class TlsProbe(Probe):
    name = "network.tls"
    description = "TLS handshake with SNI and verification: expiry, trust, name; optional HTTPS health path"
    findings = declare(fail=("http.bad_response", "http.connection_lost", "http.server_error", "http.timeout", "tls.cert_expired",
                           "tls.cert_not_yet_valid", "tls.connect_failed", "tls.handshake_failed", "tls.name_mismatch",
                           "tls.reset", "tls.timeout", "tls.untrusted", "tls.verify_failed"), warn=("http.client_error",
                           "tls.expiring_soon"))
    requires = ("network.tcp",)

    def skip_reason(self) -> str | None:
        if not any(h.tls for h in self.settings.payment_hosts):
            return "no payment host uses TLS"
        return None

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s * 2 + 0.5

    def check(self, obs: Observation) -> None:
        all_targets = targets(self.settings)
        work = [(t, addr) for t in all_targets if t.host.tls and (addr := connected_address(self.context, t))]
        if not work:
            raise ProbeSkipped("no TLS payment host accepted a TCP connection")
        results = side_by_side(lambda ta: self.handshake(obs, *ta), work)
        verdicts = {t.index: r for (t, _), r in zip(work, results, strict=True)}
        report_per_target(obs, verdicts, all_targets, {t.index for t in all_targets if not t.host.tls})
        if obs.status() is Status.OK:
            obs.summary = "; ".join(f"{t.host.label} {obs.metrics.get(f'handshake_ms[{t.host.label}]')} ms, "
                                    f"{obs.metrics.get(f'cert_days_left[{t.host.label}]')} days left" for t, _ in work)

    def context_for(self, target: Target) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=target.host.ca_file or None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    def handshake(self, obs: Observation, target: Target, address: str) -> tuple[str, str, dict] | None:
        host = target.host
        name = host.server_name or host.host
        label = host.label
        timeout = self.settings.network.timeout_s
        where = f"{target.label} ({name})"
        started = time.monotonic()
        try:
            raw = socket.create_connection((address, host.port), timeout=timeout)
        except OSError as exc:
            return "tls.connect_failed", f"{where}: connection for the handshake failed ({exc})", {}
        try:
            with self.context_for(target).wrap_socket(raw, server_hostname=name) as tls:
                handshake_ms = (time.monotonic() - started) * 1000
                obs.metric(f"handshake_ms[{label}]", round(handshake_ms, 2))
                obs.metric(f"tls_version[{label}]", tls.version())
                self.expiry(obs, target, tls.getpeercert())
                if host.health_path:
                    return self.health(obs, target, tls, name)
                return None
        except ssl.SSLCertVerificationError as exc:
            return self.classify_verify(where, exc)
        except TimeoutError:
            return "tls.timeout", f"{where}: handshake stalled for {timeout:g} s: the service accepts but does " \
                                  "not answer", {}
        except (ssl.SSLEOFError, ConnectionResetError, BrokenPipeError) as exc:
            return "tls.reset", f"{where}: connection closed during the handshake ({exc.__class__.__name__})", {}
        except ssl.SSLError as exc:
            return "tls.handshake_failed", f"{where}: handshake failed ({exc.reason or exc})", {"reason": exc.reason}
        except OSError as exc:
            return "tls.reset", f"{where}: connection failed during the handshake ({exc})", {}
        finally:
            raw.close()

    @staticmethod
    def classify_verify(where: str, exc: ssl.SSLCertVerificationError) -> tuple[str, str, dict]:
        code, message = exc.verify_code, exc.verify_message
        data = {"verify_code": code, "verify_message": message}
        if code == _EXPIRED:
            return "tls.cert_expired", f"{where}: the server certificate has expired", data
        if code == _NOT_YET_VALID:
            return "tls.cert_not_yet_valid", f"{where}: the server certificate is not yet valid — is the " \
                                             "terminal's clock behind?", data
        if code == _HOSTNAME_MISMATCH:
            return "tls.name_mismatch", f"{where}: the certificate is for another name ({message})", data
        if code in _UNTRUSTED:
            return "tls.untrusted", f"{where}: certificate not trusted ({message}): wrong CA file or an " \
                                    "intercepting proxy", data
        return "tls.verify_failed", f"{where}: certificate verification failed ({message})", data

    def expiry(self, obs: Observation, target: Target, cert: dict) -> None:
        if not cert or "notAfter" not in cert:
            return
        days = (ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()) / 86400
        obs.metric(f"cert_days_left[{target.host.label}]", round(days, 1))
        if days < EXPIRY_WARN_DAYS:
            obs.warn("tls.expiring_soon", f"{target.label}: certificate expires in {days:.0f} days",
                     host=target.host.host, days_left=round(days, 1))

    def health(self, obs: Observation, target: Target, tls: ssl.SSLSocket, name: str) -> tuple[str, str, dict] | None:
        path = target.host.health_path
        where = f"{target.label} {path}"
        started = time.monotonic()
        request = (f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: posdiag\r\nConnection: close\r\n\r\n").encode()
        try:
            tls.sendall(request)
            head = b""
            while b"\r\n" not in head and len(head) < 8192:
                chunk = tls.recv(1024)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return "http.timeout", f"{where}: no HTTP answer within {self.settings.network.timeout_s:g} s", {}
        except OSError as exc:  # reset, broken pipe, TLS alert: the service dropped us, it did not stall
            return "http.connection_lost", f"{where}: connection lost during the request ({exc})", \
                {"error": exc.__class__.__name__}
        ms = (time.monotonic() - started) * 1000
        if not head:
            return "http.connection_lost", f"{where}: the service closed the connection without answering", {}
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            return "http.bad_response", f"{where}: not an HTTP answer ({head[:40]!r})", {}
        status = int(parts[1])
        obs.metric(f"health_status[{target.host.label}]", status)
        obs.metric(f"health_ms[{target.host.label}]", round(ms, 2))
        if status >= 500:
            return "http.server_error", f"{where}: the payment service answers HTTP {status}", {"status": status}
        if status >= 400:
            obs.warn("http.client_error", f"{where}: HTTP {status}: check the configured health path",
                     host=target.host.host, status=status)
        return None
