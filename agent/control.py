"""The daemon's local control socket: one JSON request line in, one JSON reply line out.

A Unix socket with mode 0660, so the technicians' group can trigger and query the daemon
without root. ``request()`` is the client side used by ``posdiag trigger`` and ``status``.

Three rules keep it honest under load and against a hostile file system:

* the path is unlinked only when it is a socket no daemon answers on — a regular file there is
  somebody's, and the daemon refuses to start rather than delete it;
* the listen backlog is deep (128) and a client retries a full backlog (``EAGAIN``) or a socket
  that exists but is not yet listening, for a short bounded time, before giving up; and it then says
  "busy", never "not running", so that ``trigger`` does not diagnose locally beside a live daemon;
* every request gets a JSON object back, whatever was sent: a bad request is an error reply.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import socketserver
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from posdiag.agent.access import AccessDenied
from posdiag.core.files import file_kind
from posdiag.core.i18n import N_
from posdiag.core.message import Message, Refusal

Handler = Callable[[dict[str, Any]], dict[str, Any]]
log = logging.getLogger("posdiag")

BACKLOG = 128
#: how long a client keeps retrying a busy or not-yet-listening socket before it gives up
CONNECT_RETRY_S = 3.0
MAX_REQUEST = 65536


class DaemonNotRunning(Refusal):
    """Nothing listens on the control socket: no daemon, or a stale socket of a dead one."""


class DaemonBusy(Refusal):
    """A daemon exists on the socket but did not accept the connection in time."""


class SocketPathTaken(Refusal):
    """The control socket path is held by something that is not our socket (a file, a directory)."""


class AlreadyRunning(Refusal):
    """A live daemon answers on the control socket: a second one refuses to start."""


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG


def claim_path(path: str) -> None:
    """Make ``path`` free for our socket: remove a stale socket, refuse anything else.

    Raises :class:`SocketPathTaken` when the path is not a socket (it is left as it is) and
    :class:`AlreadyRunning` when a live daemon answers on it.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise SocketPathTaken(Message(N_("refusing to start: the control socket path {path} is {kind}, not a socket; it "
                                         "was left untouched — move it away or set [daemon] control_socket"),
                                      path=path, kind=file_kind(st.st_mode)))
    try:
        request(path, {"cmd": "ping"}, timeout_s=2.0, retry_s=1.0)
    except DaemonNotRunning:
        os.unlink(path)  # a stale socket of a daemon that died
    except DaemonBusy:
        raise AlreadyRunning(Message(N_("another posdiag daemon is already running on {path} (busy)"),
                                     path=path)) from None
    else:
        raise AlreadyRunning(Message(N_("another posdiag daemon is already running on {path}"), path=path))


def release(path: str) -> None:
    """Remove our socket at shutdown — only if a socket is still what the path names."""
    with contextlib.suppress(OSError):
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)


def _answer(handle: Handler, line: bytes) -> dict[str, Any]:
    """One reply object for one request line, whatever the line holds."""
    if not line.endswith(b"\n") and len(line) >= MAX_REQUEST:
        return {"ok": False, "error": f"bad request: longer than {MAX_REQUEST} bytes"}
    try:
        message = json.loads(line)
    except ValueError as exc:
        return {"ok": False, "error": f"bad request: not JSON ({exc})"}
    if not isinstance(message, dict):
        return {"ok": False, "error": f"bad request: expected a JSON object, got {type(message).__name__}"}
    try:
        return handle(message)
    except Exception as exc:  # noqa: BLE001 - one bad request must not cost the daemon its socket thread
        log.error("control request %.80s failed: %r", line, exc)
        return {"ok": False, "error": f"internal error: {exc!r}"}


def serve(path: str, handle: Handler) -> socketserver.BaseServer:
    """Bind the socket (refusing if a live daemon already answers there) and serve in a thread."""
    claim_path(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    class RequestHandler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.connection.settimeout(60)
            try:
                reply = _answer(handle, self.rfile.readline(MAX_REQUEST))
                self.wfile.write(json.dumps(reply).encode() + b"\n")
            except OSError:
                pass  # the client went away; nothing to answer

    old_umask = os.umask(0o117)
    try:
        server = _Server(path, RequestHandler)
    finally:
        os.umask(old_umask)
    try:
        os.chmod(path, 0o660)
        threading.Thread(target=server.serve_forever, name="control-socket", daemon=True).start()
    except BaseException:  # no thread to serve it (the system would not give one): no socket either
        server.server_close()
        release(path)
        raise
    return server


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _connect(path: str, timeout_s: float, retry_s: float) -> socket.socket:
    """A connected socket, retrying a full backlog or a socket not yet listening for ``retry_s``."""
    give_up = time.monotonic() + retry_s
    delay = 0.01
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
            return sock
        except PermissionError:
            sock.close()
            raise AccessDenied(path) from None
        except OSError as exc:
            sock.close()
            busy = exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or isinstance(exc, TimeoutError)
            retriable = busy or exc.errno == errno.ECONNREFUSED
            if not retriable or not _is_socket(path):
                raise DaemonNotRunning(Message(N_("no posdiag daemon answers on {path} ({error})"), path=path,
                                               error=exc.__class__.__name__)) from None
            if time.monotonic() >= give_up:
                if busy:
                    raise DaemonBusy(Message(N_("the posdiag daemon on {path} is busy: it did not accept the connection "
                                                "within {seconds:g} s"), path=path, seconds=retry_s)) from None
                raise DaemonNotRunning(Message(N_("no posdiag daemon answers on {path} (stale socket)"), path=path)) from None
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def request(path: str, message: dict[str, Any], timeout_s: float = 30.0,
            retry_s: float = CONNECT_RETRY_S) -> dict[str, Any]:
    """Send one request and return the daemon's reply object.

    Raises :class:`DaemonNotRunning`, :class:`DaemonBusy` or
    :class:`~posdiag.agent.access.AccessDenied` (a ``PermissionError`` naming the group to join).
    """
    sock = _connect(path, timeout_s, retry_s)
    try:
        with sock, sock.makefile("rwb") as stream:
            stream.write(json.dumps(message).encode() + b"\n")
            stream.flush()
            line = stream.readline()
    except TimeoutError:
        raise DaemonBusy(Message(N_("the posdiag daemon on {path} did not answer within {seconds:g} s"), path=path,
                                 seconds=timeout_s)) from None
    except OSError as exc:
        raise DaemonNotRunning(Message(N_("the daemon on {path} dropped the connection ({error})"), path=path,
                                       error=exc.__class__.__name__)) from None
    if not line:
        raise DaemonNotRunning(Message(N_("the daemon on {path} closed the connection"), path=path))
    try:
        reply = json.loads(line)
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise DaemonNotRunning(Message(N_("something on {path} that is not a posdiag daemon answered"), path=path))
    return reply
