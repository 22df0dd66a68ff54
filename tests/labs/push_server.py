#!/usr/bin/env python3
"""A central server for the push tests: HTTPS on loopback, stores what it receives by report_id.

It speaks the protocol as the real collector does (``POST /api/v1/reports``, gzip JSON body, bearer
token; 201 stored, 409 already stored) and can be told to misbehave: answer a given status (with
``Retry-After``), stall until released, drop the connection mid-request, or go down and come back on
the same port. It counts every post per report_id, so a test can assert "each report stored once,
in order" and see the duplicates the terminal caused.

Standalone (for the bench): ``python -m labs.push_server --port P --cert F --key F --token T`` prints ``ready``.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import http.server
import json
import socket
import ssl
import sys
import threading
from typing import Any


class PushServer:
    def __init__(self, cert: str, key: str, token: str, port: int = 0, keep_bodies: bool = True) -> None:
        self.cert, self.key, self.token = cert, key, token
        self.port = port
        self.keep_bodies = keep_bodies
        self.lock = threading.Lock()
        self.stored: dict[str, dict | None] = {}
        self.order: list[str] = []
        self.posts: collections.Counter[str] = collections.Counter()
        self.requests = 0
        self.connections = 0
        self.auth_seen: list[str] = []
        self.script: collections.deque = collections.deque()  # answers for the next requests
        self.mode: tuple = ("store",)  # ("store",) | ("status", code, retry_after) | ("stall",) | ("drop",)
        self.release = threading.Event()
        self.stalled = threading.Event()  # set when a request is being held
        self.httpd: http.server.ThreadingHTTPServer | None = None

    # --- control ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> PushServer:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        server = self

        class Httpd(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a dropped or cut connection is part of the test

            def get_request(self) -> tuple[socket.socket, Any]:
                conn, addr = self.socket.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # headers and body are two writes
                with server.lock:
                    server.connections += 1
                return ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False), addr

        self.httpd = Httpd(("127.0.0.1", self.port), _handler(self))
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="push-server",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections (and open keep-alive connections are cut)."""
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def answer(self, status: int | None = None, retry_after: int | None = None) -> None:
        self.mode = ("store",) if status is None else ("status", status, retry_after)

    def received(self) -> list[str]:
        with self.lock:
            return list(self.order)

    def duplicates(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.posts.values())

    # --- one request --------------------------------------------------------------------------------
    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.requests += 1
            mode = self.script.popleft() if self.script else self.mode
            self.auth_seen.append(h.headers.get("Authorization", ""))
        length = int(h.headers.get("Content-Length", "0"))
        if mode[0] == "drop":
            h.rfile.read(min(length, 10))
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        body = h.rfile.read(length)
        if mode[0] == "stall":
            self.stalled.set()
            self.release.wait(60)
        if mode[0] == "status":
            self.reply(h, mode[1], {"error": "told to"}, retry_after=mode[2])
            return
        if h.path != "/api/v1/reports":
            self.reply(h, 404, {"error": "no such endpoint"})
            return
        if h.headers.get("Authorization") != f"Bearer {self.token}":
            self.reply(h, 401, {"error": "unknown token"})
            return
        try:
            report = json.loads(gzip.decompress(body) if h.headers.get("Content-Encoding") == "gzip" else body)
            report_id = report["report_id"]
            assert report["schema"] == "posdiag.report/1"
        except Exception as exc:  # noqa: BLE001 - any bad body is a 400
            self.reply(h, 400, {"error": f"bad report: {exc}"})
            return
        if h.headers.get("Idempotency-Key") not in (None, report_id):
            self.reply(h, 400, {"error": "Idempotency-Key differs from report_id"})
            return
        with self.lock:
            self.posts[report_id] += 1
            first = report_id not in self.stored
            if first:
                self.stored[report_id] = report if self.keep_bodies else None
                self.order.append(report_id)
        self.reply(h, 201 if first else 409, {"report_id": report_id})

    @staticmethod
    def reply(h: http.server.BaseHTTPRequestHandler, status: int, payload: dict, retry_after: int | None = None) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        if retry_after is not None:
            h.send_header("Retry-After", str(retry_after))
        h.end_headers()
        h.wfile.write(data)


def _handler(server: PushServer) -> type:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def do_POST(self) -> None:
            server.handle(self)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    srv = PushServer(args.cert, args.key, args.token, args.port, keep_bodies=False).start()
    print(f"ready {srv.port}", flush=True)
    try:
        for line in sys.stdin:  # "count" → stored reports, duplicates; EOF stops
            if line.strip() == "count":
                print(f"{len(srv.received())} {srv.duplicates()} {srv.connections}", flush=True)
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
