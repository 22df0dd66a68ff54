"""ICMP echo of chosen sizes with the Don't-Fragment bit, many at once on one socket (IPv4, Linux).

ping3 cannot set DF, and the path-MTU check needs it: an echo of 1500 bytes with DF either comes
back, is refused by a router with "fragmentation needed" (the kernel then fails our send with
EMSGSIZE — the path MTU is signalled and TCP copes), or vanishes (a black hole: TCP stalls as soon
as a full-size segment is sent). Uses an unprivileged ping socket where ``net.ipv4.ping_group_range``
allows it, else a raw socket (root or CAP_NET_RAW); raises PermissionError when neither is allowed.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass

#: IP header (20) + ICMP header (8): an echo with ``n`` payload bytes is an IP packet of n + 28 bytes.
OVERHEAD = 28
#: Outcome of an echo the kernel refused to send: larger than the path MTU it already knows.
TOO_BIG = -1.0
#: Linux socket option: queue the ICMP errors a socket's packets draw (Python names it only from 3.12 on)
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
#: sock_extended_err.ee_origin of an error an ICMP message reported
_ORIGIN_ICMP = 2
TIME_EXCEEDED = 11


class SendRefused(OSError):
    """The terminal itself refused to send an echo (EPERM/EACCES on a socket it was allowed to
    open): a packet filter or security software in its own output path. Deliberately not a
    PermissionError, which means the socket itself was not allowed (no ICMP permission)."""


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _packet(ident: int, seq: int, size: int) -> bytes:
    payload = (b"posdiag-" + struct.pack("!d", time.monotonic())).ljust(max(16, size - OVERHEAD), b"\xa5")
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    return struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload


def _open(df: bool) -> tuple[socket.socket, bool]:
    """(socket, raw?) — a ping socket if permitted, else a raw one."""
    try:
        sock, raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP), False
    except PermissionError:
        sock, raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP), True
    if df:
        sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_MTU_DISCOVER", 10), getattr(socket, "IP_PMTUDISC_DO", 2))
    return sock, raw


def echo_batch(address: str, sizes: list[int], deadline: float, spread_s: float = 0.1, df: bool = True,
               first_reply: threading.Event | None = None) -> list[float | None]:
    """Send one echo per entry of ``sizes`` (IP packet bytes), spread over ``spread_s``, and wait for
    replies until ``deadline`` (time.monotonic). Returns per echo the RTT in ms, None when lost, or
    :data:`TOO_BIG` when the kernel refused it as larger than the known path MTU. ``first_reply`` is
    set as soon as any echo comes back (so a caller can decide early that ICMP is answered). Raises
    PermissionError when no ICMP socket may be opened, :class:`SendRefused` when one was opened but
    the terminal refuses to send to ``address``."""
    sock, raw = _open(df)
    ident = (os.getpid() ^ id(sock)) & 0xFFFF
    results: list[float | None] = [None] * len(sizes)
    sent_at: dict[int, float] = {}
    gap = spread_s / max(1, len(sizes) - 1)
    start = time.monotonic()
    try:
        sock.setblocking(False)
        pending = 0
        for i, size in enumerate(sizes):
            while time.monotonic() < start + i * gap:
                pending -= _receive(sock, raw, ident, sent_at, results, start + i * gap, first_reply)
            try:
                sock.sendto(_packet(ident, i, size), (address, 0))
                sent_at[i] = time.monotonic()
                pending += 1
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES):
                    raise SendRefused(exc.errno, exc.strerror) from None
                if exc.errno != errno.EMSGSIZE:
                    raise
                results[i] = TOO_BIG
        while pending > 0 and time.monotonic() < deadline:
            pending -= _receive(sock, raw, ident, sent_at, results, deadline, first_reply)
    finally:
        sock.close()
    return results


def _receive(sock: socket.socket, raw: bool, ident: int, sent_at: dict[int, float], results: list[float | None],
             until: float, first_reply: threading.Event | None) -> int:
    """Wait for replies until ``until``; record them; return how many new ones came."""
    ready, _, _ = select.select([sock], [], [], max(0.0, until - time.monotonic()))
    if not ready:
        return 0
    got = 0
    while True:
        try:
            data = sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return got
        except OSError:  # an ICMP error queued for this socket: the echo it concerns stays lost
            continue
        if raw:
            data = data[(data[0] & 0x0F) * 4:]
        if len(data) < 8:
            continue
        kind, _, _, rid, seq = struct.unpack("!BBHHH", data[:8])
        if kind != 0 or (raw and rid != ident) or seq not in sent_at or results[seq] is not None:
            continue
        results[seq] = (time.monotonic() - sent_at[seq]) * 1000
        got += 1
        if first_reply is not None:
            first_reply.set()


def first_hop_beyond(address: str, deadline: float, ttl: int = 2, count: int = 3, spread_s: float = 0.1) -> str | None:
    """Does anything beyond the gateway answer on the way to ``address``? Echoes with TTL ``ttl`` are
    forwarded by the gateway and expire at the next router, which answers "time exceeded" (or reach
    ``address`` itself, which answers the echo). Returns the address of whatever answered (None:
    nothing did before ``deadline``), so a caller can tell the uplink works without knowing any
    address that answers on purpose. Raises PermissionError when ICMP sockets are not allowed."""
    sock, raw = _open(df=False)
    ident = (os.getpid() ^ id(sock) ^ 0x5A5A) & 0xFFFF
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        if not raw:
            sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        sock.setblocking(False)
        gap = spread_s / max(1, count - 1)
        next_send, sent = time.monotonic(), 0
        while time.monotonic() < deadline:
            if sent < count and time.monotonic() >= next_send:
                sock.sendto(_packet(ident, 0x7F00 + sent, 64), (address, 0))
                sent, next_send = sent + 1, next_send + gap
            wait = min(deadline, next_send if sent < count else deadline) - time.monotonic()
            ready, _, _ = select.select([sock], [], [], max(0.0, wait))
            if ready and (who := _hop_answer(sock, raw, ident)):
                return who
    finally:
        sock.close()
    return None


@dataclass(frozen=True)
class IcmpError:
    """An ICMP error the kernel queued on a socket with IP_RECVERR: its type and code, and the address
    of whoever sent it (a router on the way, or this terminal itself)."""

    type: int
    code: int
    sender: str

    @property
    def time_exceeded(self) -> bool:
        return self.type == TIME_EXCEEDED


def queued_icmp_error(sock: socket.socket) -> IcmpError | None:
    """The next ICMP error on an IPv4 socket's error queue (IP_RECVERR set), or None when there is none
    yet. Raises OSError when the queue cannot be read."""
    try:
        _, ancdata, _, _ = sock.recvmsg(512, 512, socket.MSG_ERRQUEUE)
    except (BlockingIOError, InterruptedError):
        return None
    for level, kind, data in ancdata:
        # struct sock_extended_err (16 bytes: errno, origin, type, code, …), then the sender's sockaddr_in
        if level == socket.IPPROTO_IP and kind == IP_RECVERR and len(data) >= 24 and data[4] == _ORIGIN_ICMP:
            return IcmpError(data[5], data[6], socket.inet_ntoa(data[20:24]))
    return None


def _hop_answer(sock: socket.socket, raw: bool, ident: int) -> str | None:
    """Who answered: an echo reply's sender, or the router named in an ICMP error (time exceeded,
    unreachable). A ping socket reports errors through its error queue; a raw one sees the packets."""
    if not raw:
        try:
            if error := queued_icmp_error(sock):
                return error.sender
        except OSError:
            return None
    try:
        data, (sender, *_) = sock.recvfrom(2048)
    except OSError:
        return None
    if raw:
        data = data[(data[0] & 0x0F) * 4:]
    if len(data) < 8:
        return None
    kind, rid = data[0], struct.unpack("!H", data[4:6])[0]
    if kind == 0 and (not raw or rid == ident):
        return sender
    if raw and kind in (3, 11) and len(data) >= 36:
        inner = data[8 + (data[8] & 0x0F) * 4:]
        if len(inner) >= 6 and inner[0] == 8 and struct.unpack("!H", inner[4:6])[0] == ident:
            return sender
    return None
