"""A minimal DNS stub client over UDP (RFC 1035), so the DNS probe can tell NXDOMAIN from SERVFAIL
from silence, per resolver, with a hard timeout — which ``getaddrinfo`` cannot do."""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
import time
from dataclasses import dataclass

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
TYPE_A, TYPE_AAAA, TYPE_CNAME = 1, 28, 5


class DnsTimeout(Exception):
    pass


class DnsMalformed(Exception):
    pass


@dataclass(frozen=True)
class DnsAnswer:
    server: str
    rcode: str
    addresses: tuple[str, ...]
    elapsed_ms: float
    truncated: bool = False


def build_query(name: str, qtype: int) -> tuple[int, bytes]:
    qid = struct.unpack("!H", os.urandom(2))[0]
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)  # RD set
    labels = b"".join(bytes([len(p)]) + p.encode("idna") for p in name.rstrip(".").split(".") if p)
    return qid, header + labels + b"\0" + struct.pack("!HH", qtype, 1)


def _skip_name(msg: bytes, pos: int) -> int:
    while True:
        if pos >= len(msg):
            raise DnsMalformed("name runs past the end of the message")
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += 1 + length


def parse_response(msg: bytes, qid: int | set[int]) -> tuple[str, tuple[str, ...], bool]:
    if len(msg) < 12:
        raise DnsMalformed(f"reply of {len(msg)} bytes is shorter than a DNS header")
    rid, flags, qd, an, _, _ = struct.unpack("!HHHHHH", msg[:12])
    if rid not in (qid if isinstance(qid, set) else {qid}) or not flags & 0x8000:
        raise DnsMalformed("reply does not answer our query")
    rcode = RCODES.get(flags & 0xF, f"RCODE{flags & 0xF}")
    pos = 12
    for _ in range(qd):
        pos = _skip_name(msg, pos) + 4
    addresses = []
    for _ in range(an):
        pos = _skip_name(msg, pos)
        if pos + 10 > len(msg):
            raise DnsMalformed("answer record truncated")
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[pos:pos + 10])
        pos += 10
        rdata = msg[pos:pos + rdlen]
        if len(rdata) < rdlen:
            raise DnsMalformed("answer record cut short")
        pos += rdlen
        if rtype == TYPE_A and rdlen == 4:
            addresses.append(str(ipaddress.IPv4Address(rdata)))
        elif rtype == TYPE_AAAA and rdlen == 16:
            addresses.append(str(ipaddress.IPv6Address(rdata)))
    return rcode, tuple(addresses), bool(flags & 0x0200)


def resolver_endpoint(server: str, default_port: int = 53) -> tuple[str, int]:
    """``"192.0.2.53"`` or ``"192.0.2.53#5353"`` (a configured resolver) as (address, port)."""
    address, _, port = server.rpartition("#") if "#" in server else (server, "", "")
    return address, int(port) if port else default_port


def query(server: str, name: str, qtype: int = TYPE_A, timeout_s: float = 1.0, port: int = 53,
          resend_after_s: float | None = None) -> DnsAnswer:
    """Ask one resolver. Raises DnsTimeout on silence, OSError when it cannot be reached.

    With ``resend_after_s`` the question is asked again every so often while the earlier ones are
    still awaited (UDP is lossy): retries run side by side within ``timeout_s`` instead of one
    whole timeout after another, and whichever answer comes first counts.
    """
    if "#" in server:
        server, port = resolver_endpoint(server, port)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    started = time.monotonic()
    deadline = started + timeout_s
    sent: dict[int, float] = {}
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((server, port))  # connected UDP: ICMP port-unreachable surfaces as an error
        next_send = started
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise DnsTimeout(f"no answer from {server} within {timeout_s:g} s")
            if now >= next_send:
                qid, packet = build_query(name, qtype)
                sock.send(packet)
                sent[qid] = now
                # The next try goes out on schedule (not drifting with wake-up latency); none at the deadline.
                next_send = next_send + resend_after_s if resend_after_s else deadline
                if next_send >= deadline - 0.001:
                    next_send = deadline
            sock.settimeout(max(0.001, min(deadline, next_send) - now))
            try:
                reply = sock.recv(4096)
            except TimeoutError:
                continue
            try:
                rcode, addresses, truncated = parse_response(reply, set(sent))
            except DnsMalformed:
                continue  # a stray or spoofed datagram: keep waiting for ours
            asked_at = sent[struct.unpack("!H", reply[:2])[0]]
            return DnsAnswer(server, rcode, addresses, (time.monotonic() - asked_at) * 1000, truncated)
