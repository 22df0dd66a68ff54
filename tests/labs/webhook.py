"""A real webhook receiver on loopback: records every post, checks its signature, fails on request.

``fail_next`` answers the next posts 500 (the first of them with ``Retry-After: 1``), the others are
answered ``status`` (204); ``hold`` keeps a post waiting until released, to show that intake does
not wait for the receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, secret: bytes, port: int = 0) -> None:
        self.secret = secret
        self.posts: list[dict[str, Any]] = []  # every post, delivered or not
        self.fail_next = 0
        self.status = 204
        self.location = ""  # sent as Location with the status, when set (a redirect)
        self.hold = threading.Event()
        self.hold.set()  # set: answer at once
        self.holding = threading.Event()  # set while a post waits on ``hold``
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                want = "sha256=" + hmac.new(receiver.secret, body, hashlib.sha256).hexdigest()
                if not receiver.hold.is_set():
                    receiver.holding.set()
                    receiver.hold.wait(30)
                    receiver.holding.clear()
                with receiver._lock:
                    failing = receiver.fail_next > 0
                    receiver.fail_next -= failing
                    receiver.posts.append({"body": json.loads(body), "headers": dict(self.headers),
                                           "signed": hmac.compare_digest(want, self.headers.get("X-Posdiag-Signature", "")),
                                           "delivered": not failing})
                self.send_response(500 if failing else receiver.status)
                if failing:
                    self.send_header("Retry-After", "1")
                elif receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/posdiag?channel=ops"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def delivered(self) -> list[dict[str, Any]]:
        """The bodies of the posts answered 2xx, in order."""
        with self._lock:
            return [p["body"] for p in self.posts if p["delivered"]]

    def stop(self) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()
