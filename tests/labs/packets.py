"""Crafted ICMP packets on a loopback UDP socket: what an echo socket reads, without a network.

The code that reads echo replies and ICMP errors takes whatever a socket hands it; a UDP socket on
loopback carrying crafted bytes hands over exactly those, so each field's edge can be tested."""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Callable, Iterator


def ip_header(options: int = 0) -> bytes:
    """An IPv4 header as a raw ICMP socket hands it over: IHL 5 (20 bytes), or more with options."""
    return bytes([0x45 + options]) + bytes(19 + 4 * options)


def icmp_packet(kind: int, ident: int, seq: int, payload: bytes = b"posdiag-") -> bytes:
    """An ICMP echo request (8) or reply (0) header with this identifier and sequence number, then ``payload``."""
    return struct.pack("!BBHHH", kind, 0, 0, ident, seq) + payload


def time_exceeded(inner_ident: int, kind: int = 11) -> bytes:
    """A router's ICMP error quoting our echo: its header, then the IP header and first 8 bytes of the echo."""
    return ip_header() + struct.pack("!BBHI", kind, 0, 0, 0) + ip_header() + icmp_packet(8, inner_ident, 0x7F00)


@contextlib.contextmanager
def wire() -> Iterator[tuple[socket.socket, Callable[[bytes], int]]]:
    """(the socket the code reads, a function that puts one datagram on it from loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as reader, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as writer:
        reader.bind(("127.0.0.1", 0))
        reader.setblocking(False)
        yield reader, lambda data: writer.sendto(data, reader.getsockname())
