"""A payment host as far as TLS goes: a loopback server that completes handshakes with a given leaf
certificate, then does what :meth:`LoopbackTlsServer.handle` says (by default: closes)."""

from __future__ import annotations

import socket
import ssl
import threading

import trustme


class LoopbackTlsServer:
    def __init__(self, cert: trustme.LeafCert) -> None:
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.ctx)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted(conn)
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    self.handle(tls)
            except (OSError, ssl.SSLError):
                conn.close()

    def accepted(self, conn: socket.socket) -> None:
        """Before the handshake: nothing."""

    def handle(self, tls: ssl.SSLSocket) -> None:
        """After the handshake: nothing, the connection closes."""

    def close(self) -> None:
        self.sock.close()
