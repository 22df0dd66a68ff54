"""Clock: offset against an NTP server (SNTP, RFC 4330), kernel sync state, and impossible dates.

A wrong clock breaks certificate checks ("not yet valid") and the timestamps inside payment
messages, so even a terminal whose network is fine can fail every transaction because of it.
"""

from __future__ import annotations

import socket
import struct
import sys
import time

from posdiag.core.i18n import N_, tr
from posdiag.probes.base import Observation, Probe, Status, declare

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
NTP_PORT = 123


class NtpError(Exception):
    pass


def split_server(spec: str) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` → (host, port)."""
    if spec.startswith("["):
        host, _, rest = spec[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else NTP_PORT
    if spec.count(":") == 1:
        host, port = spec.split(":")
        return host, int(port)
    return spec, NTP_PORT


def _to_ntp(ts: float) -> bytes:
    secs = int(ts) + NTP_EPOCH_OFFSET
    frac = int((ts - int(ts)) * 2**32)
    return struct.pack("!II", secs & 0xFFFFFFFF, frac & 0xFFFFFFFF)


def _from_ntp(raw: bytes) -> float:
    secs, frac = struct.unpack("!II", raw)
    return secs - NTP_EPOCH_OFFSET + frac / 2**32


def sntp_query(host: str, port: int = NTP_PORT, timeout_s: float = 1.0) -> dict[str, float]:
    """One SNTP exchange. Returns offset_s (server minus us), delay_s and stratum."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout_s)
        t0 = time.time()
        request = bytes([0x23]) + bytes(39) + _to_ntp(t0)  # LI=0, VN=4, mode=3 (client)
        sock.sendto(request, addr)
        try:
            reply, _ = sock.recvfrom(512)
        except TimeoutError:
            raise NtpError(tr("no answer from {host}:{port} within {timeout_s:g} s", host=host, port=port,
                              timeout_s=timeout_s)) from None
        t3 = time.time()
    if len(reply) < 48:
        raise NtpError(tr("short reply ({size} bytes) from {host}:{port}", size=len(reply), host=host, port=port))
    mode, stratum = reply[0] & 0x7, reply[1]
    if mode not in (4, 5):
        raise NtpError(tr("reply from {host}:{port} is not an NTP server reply (mode {mode})", host=host, port=port,
                          mode=mode))
    if stratum == 0:
        raise NtpError(tr("{host}:{port} sent a kiss-of-death ({code})", host=host, port=port,
                          code=reply[12:16].decode("ascii", "replace")))
    if reply[24:32] != request[40:48]:
        raise NtpError(tr("reply from {host}:{port} does not answer our request (origin mismatch)", host=host, port=port))
    t1, t2 = _from_ntp(reply[32:40]), _from_ntp(reply[40:48])
    return {"offset_s": ((t1 - t0) + (t2 - t3)) / 2, "delay_s": (t3 - t0) - (t2 - t1), "stratum": stratum}


def kernel_synchronized() -> bool | None:
    """Whether the kernel's clock discipline says it is synchronized (Linux adjtimex), else None."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("_pad", ctypes.c_long * 64)]

    try:
        # the C library this interpreter already runs on: ctypes.util.find_library would start
        # ldconfig in a child process to find the same library, on every diagnosis
        libc = ctypes.CDLL(None, use_errno=True)
        state = libc.adjtimex(ctypes.byref(Timex()))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != 5  # TIME_ERROR: clock not synchronized


class ClockProbe(Probe):
    name = "clock"
    description = N_("offset against the configured NTP server (SNTP), kernel sync state, dates before the build")
    findings = declare(fail=("clock.implausible", "clock.offset_high"), warn=("clock.ntp_unreachable",
                           "clock.ntp_unresolved", "clock.offset_drifting"),
                       info=("clock.no_reference", "clock.unsynchronized"))

    def deadline_s(self) -> float:
        return self.settings.network.timeout_s * 2 + 0.5

    def check(self, obs: Observation) -> None:
        now = time.time()
        build_epoch = self.context.build_epoch
        if now < build_epoch:
            obs.fail("clock.implausible", tr("the clock reads {date}, before this software was built",
                                             date=time.strftime("%Y-%m-%d", time.gmtime(now))), now=now, build_epoch=build_epoch)
        synced = kernel_synchronized()
        if synced is not None:
            obs.metric("kernel_synchronized", int(synced))
            if not synced:
                obs.info("clock.unsynchronized", tr("the kernel does not consider the clock NTP-synchronized"))
        server = self.settings.clock.ntp_server
        if not server:
            obs.info("clock.no_reference", tr("no NTP server configured: offset not measured"))
            if obs.status() is Status.OK:
                obs.summary = tr("no NTP server configured; date plausible")
            return
        answer = self.ask(obs, server)
        if answer is None:
            return
        offset = answer["offset_s"]
        obs.metric("offset_s", round(offset, 4))
        obs.metric("ntp_delay_ms", round(answer["delay_s"] * 1000, 2))
        obs.metric("ntp_stratum", int(answer["stratum"]))
        limit = self.settings.clock.max_offset_s
        if abs(offset) > limit:
            if offset > 0:
                message = tr("clock is {offset:.1f} s behind {server} (limit {limit:g} s)", offset=offset, server=server,
                             limit=limit)
            else:
                message = tr("clock is {offset:.1f} s ahead of {server} (limit {limit:g} s)", offset=-offset,
                             server=server, limit=limit)
            obs.fail("clock.offset_high", message, offset_s=round(offset, 3), max_offset_s=limit, server=server)
        elif abs(offset) > limit / 2:
            obs.warn("clock.offset_drifting", tr("clock is {offset:.1f} s off {server}, near the {limit:g} s limit",
                                                 offset=abs(offset), server=server, limit=limit),
                     offset_s=round(offset, 3), server=server)
        if obs.status() is Status.OK:
            obs.summary = tr("offset {offset_ms:+.1f} ms against {server}", offset_ms=offset * 1000, server=server)

    def ask(self, obs: Observation, server: str) -> dict[str, float] | None:
        """The server's answer, or None once a finding says why there is none."""
        host, port = split_server(server)
        timeout = self.settings.network.timeout_s
        try:
            try:
                return sntp_query(host, port, timeout)
            except NtpError:  # one retry on silence: UDP is lossy
                return sntp_query(host, port, timeout)
        except socket.gaierror as exc:  # the time server's own name: nothing to do with any payment path
            obs.warn("clock.ntp_unresolved", tr("the NTP server name {host} does not resolve ({error}): the clock's "
                                                "offset cannot be measured", host=host, error=exc.strerror or exc),
                     server=server, error=str(exc))
        except (NtpError, OSError) as exc:
            obs.warn("clock.ntp_unreachable", tr("NTP server {server} unusable: {error}", server=server, error=exc),
                     server=server, error=str(exc))
        return None
