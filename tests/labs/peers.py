#!/usr/bin/env python3
"""Real network peers for the tests, started inside a namespace: ``peers.py KIND [options]``.

Prints ``ready`` on stdout once listening, then serves until killed.

    tcp  --bind A --port P                                  accepts connections and holds them
    tls  --bind A --port P --cert F --key F [--status N] [--stall] [--delay S]   HTTPS; --stall never handshakes,
         --delay waits S seconds before reading each connection (a host slow to answer)
    dns  --bind A --zone NAME=ADDR ... [--mode answer|nxdomain|servfail|silent] [--delay S]
    echo --bind A [--slow-seq N ...] [--delay S]   answers ICMP echo to A (the kernel told not to),
                                                   the echoes numbered N only after S seconds
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import threading
import time


def listen(bind: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(64)
    return sock


def serve_tcp(args: argparse.Namespace) -> None:
    sock = listen(args.bind, args.port)
    ready()
    held = []
    while True:
        conn, _ = sock.accept()
        held.append(conn)
        held = held[-200:]


def serve_tls(args: argparse.Namespace) -> None:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.cert, args.key)
    sock = listen(args.bind, args.port)
    ready()

    def handle(conn: socket.socket) -> None:
        try:
            if args.stall:
                time.sleep(60)
                return
            time.sleep(args.delay)
            conn.settimeout(10)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                body = b"ok\n"
                tls.sendall(f"HTTP/1.1 {args.status} X\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                            .encode() + body)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def serve_dns(args: argparse.Namespace) -> None:
    from dnslib import QTYPE, RCODE, RR, A, DNSRecord

    zone = dict(z.split("=", 1) for z in args.zone)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, 53))
    ready()
    while True:
        data, peer = sock.recvfrom(4096)
        if args.mode == "silent":
            continue
        try:
            request = DNSRecord.parse(data)
        except Exception:  # noqa: BLE001 - garbage in, nothing out
            continue
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if args.mode == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
        elif args.mode == "nxdomain" or name not in zone:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(zone[name]), ttl=60))
        if args.delay:
            time.sleep(args.delay)
        sock.sendto(reply.pack(), peer)


def icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def serve_echo(args: argparse.Namespace) -> None:
    """A host whose echo replies take their time: run where ``net.ipv4.icmp_echo_ignore_all`` is set."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    bind = socket.inet_aton(args.bind)
    ready()
    while True:
        packet, (source, _) = sock.recvfrom(65535)
        header = (packet[0] & 0x0F) * 4
        request = packet[header:]
        if packet[16:20] != bind or len(request) < 8 or request[0] != 8:  # echo requests to A only
            continue
        reply = b"\0\0\0\0" + request[4:]  # type 0 (echo reply), code 0; same id, sequence and payload
        reply = reply[:2] + icmp_checksum(reply).to_bytes(2, "big") + reply[4:]
        delay = args.delay if int.from_bytes(request[6:8], "big") in args.slow_seq else 0.0
        threading.Timer(delay, sock.sendto, args=(reply, (source, 0))).start()


def ready() -> None:
    print("ready", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["tcp", "tls", "dns", "echo"])
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--status", type=int, default=200)
    parser.add_argument("--stall", action="store_true")
    parser.add_argument("--zone", action="append", default=[])
    parser.add_argument("--mode", default="answer", choices=["answer", "nxdomain", "servfail", "silent"])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--slow-seq", type=int, action="append", default=[])
    args = parser.parse_args()
    {"tcp": serve_tcp, "tls": serve_tls, "dns": serve_dns, "echo": serve_echo}[args.kind](args)


if __name__ == "__main__":
    sys.exit(main())
