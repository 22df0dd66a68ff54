"""The daemon's local control socket: one JSON request line in, one JSON reply line out.

A Unix socket with mode 0660, so the technicians' group can trigger and query the daemon
without root. ``request()`` is the client side used by ``posdiag trigger`` and ``status``.
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from typing import Any, Callable

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class DaemonNotRunning(Exception):
    pass


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(path: str, handle: Handler) -> socketserver.BaseServer:
    """Bind the socket (refusing if a live daemon already answers there) and serve in a thread."""
    if os.path.exists(path):
        try:
            request(path, {"cmd": "ping"}, timeout_s=1.0)
        except DaemonNotRunning:
            os.unlink(path)  # stale socket of a daemon that died
        else:
            raise RuntimeError(f"another posdiag daemon is already running on {path}")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    class RequestHandler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.connection.settimeout(60)
            try:
                line = self.rfile.readline(65536)
                reply = handle(json.loads(line))
            except (ValueError, OSError) as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            self.wfile.write(json.dumps(reply).encode() + b"\n")

    old_umask = os.umask(0o117)
    try:
        server = _Server(path, RequestHandler)
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o660)
    threading.Thread(target=server.serve_forever, name="control-socket", daemon=True).start()
    return server


def request(path: str, message: dict[str, Any], timeout_s: float = 30.0) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        sock.connect(path)
    except (TimeoutError, FileNotFoundError, ConnectionRefusedError, OSError) as exc:
        sock.close()
        raise DaemonNotRunning(f"no posdiag daemon answers on {path} ({exc.__class__.__name__})") from None
    with sock, sock.makefile("rwb") as stream:
        stream.write(json.dumps(message).encode() + b"\n")
        stream.flush()
        line = stream.readline()
    if not line:
        raise DaemonNotRunning(f"the daemon on {path} closed the connection")
    return json.loads(line)
