"""A TLS client driven through memory buffers, so that the TLS probe can count the bytes the server
sent before a handshake stalled, and a tiny exchange that needs no large packet.

Handshake progress by bytes tells a path that loses large packets (an MTU black hole: the server's
certificate flight never arrives, though a 7-byte alert round trip works at once) from a service that
stalls (nothing comes back, however small).
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable

#: A TLS alert record (fatal, handshake_failure): the smallest thing a TLS server reacts to, by
#: closing the connection. It needs no packet larger than a few dozen bytes either way.
TINY_ALERT = bytes([0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x28])


class Channel:
    """TLS over ``raw`` with a deadline; ``received`` counts the raw bytes that came from the server."""

    def __init__(self, raw: socket.socket, ctx: ssl.SSLContext, server_name: str, deadline: float) -> None:
        self.raw, self.deadline, self.received = raw, deadline, 0
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self._in, self._out, server_hostname=server_name)

    def handshake(self, on_wait: Callable[[Channel], float | None] | None = None) -> None:
        """Complete the handshake. ``on_wait`` is called whenever we wait for the server; it may return
        a moment (time.monotonic) by which it wants to be called again. Raises TimeoutError at the deadline."""
        self._pump(self.tls.do_handshake, on_wait)

    def sendall(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes of application data; b"" when the server closed the channel."""
        try:
            return self._pump(lambda: self.tls.read(size), None)
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            return b""

    def _flush(self) -> None:
        pending = self._out.read()
        if pending:
            self.raw.settimeout(max(0.001, self.deadline - time.monotonic()))
            self.raw.sendall(pending)

    def _pump(self, step: Callable, on_wait: Callable[[Channel], float | None] | None):
        while True:
            try:
                result = step()
                self._flush()
                return result
            except ssl.SSLWantReadError:
                self._flush()
            wake = on_wait(self) if on_wait else None
            now = time.monotonic()
            if now >= self.deadline:
                raise TimeoutError("TLS server did not answer in time")
            self.raw.settimeout(max(0.001, min(self.deadline, wake or self.deadline) - now))
            try:
                data = self.raw.recv(16384)
            except TimeoutError:
                continue
            if data:
                self.received += len(data)
                self._in.write(data)
            else:
                self._in.write_eof()


def tiny_exchange(address: str, port: int, timeout_s: float) -> str:
    """Send :data:`TINY_ALERT` on a fresh connection: "answered" when the server reacts (closes,
    resets or replies), "silent" when nothing comes back, "no connect" when the connect fails."""
    try:
        sock = socket.create_connection((address, port), timeout=timeout_s)
    except OSError:
        return "no connect"
    try:
        sock.sendall(TINY_ALERT)
        sock.recv(64)
        return "answered"
    except TimeoutError:
        return "silent"
    except OSError:
        return "answered"  # a reset is an answer too
    finally:
        sock.close()
