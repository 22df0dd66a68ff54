"""How a ``serve`` process speaks HTTP: uvicorn over httptools, with limits a hostile client meets.

uvicorn's own settings bound what they can: ``limit_concurrency`` (connections and requests of one
process before 503), ``timeout_keep_alive`` (an idle connection between requests), ``backlog``. The
rest it has no setting for with httptools, so :class:`LimitedProtocol` adds them:

- a **header deadline**: a client has ``header_timeout_s`` from its connection, or from the first
  byte of its next request, to send the whole request line and headers. Trickling a byte now and
  then does not extend it (uvicorn's keep-alive timer only covers silence between requests).
- a **header size**: a request line and headers of more than ``max_header_bytes`` (up to the blank
  line that ends them, however they arrive) are answered 431 and the connection closed; the parser
  never holds more than that plus one read.
- **connections per client**: a client address holding ``max_connections_per_client`` connections
  has its next ones answered 503 (Retry-After) and closed at once, so one client cannot use up the
  process's descriptors.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
             b"content-length: 32\r\nconnection: close\r\n\r\nrequest header fields too large\n")
#: to a connection over its client's share: come back later (a terminal's push honours Retry-After)
TOO_MANY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n"
            b"content-length: 52\r\nconnection: close\r\n\r\n"
            b'{"error": "too many connections from this address"}\n')


@dataclass(frozen=True)
class Limits:
    header_timeout_s: float = 10.0
    max_header_bytes: int = 16 * 1024
    #: 0: no limit (behind a proxy, every connection comes from the proxy)
    max_connections_per_client: int = 64


class ServeConfig(uvicorn.Config):
    """uvicorn's configuration, carrying the limits to every connection of the process (it is
    pickled to each ``--workers`` process, and each counts its own connections)."""

    def __init__(self, app: Any, limits: Limits, max_connections: int, **options: Any) -> None:
        super().__init__(app, http=LimitedProtocol, limit_concurrency=max_connections, **options)
        self.limits = limits
        self.clients: Counter[str] = Counter()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "clients": Counter()}


class LimitedProtocol(HttpToolsProtocol):
    """httptools' protocol with a header deadline, a header size limit and a share of connections per client."""

    config: ServeConfig

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._limits = self.config.limits
        self._deadline: Any = None
        self._awaiting_headers = True
        self._header_bytes = 0
        self._tail = b""  # the last bytes of the headers so far: their end may span two reads
        self._client = self.client[0] if self.client else ""
        share = self._limits.max_connections_per_client
        if share and self.config.clients[self._client] >= share:
            self._client = None
            transport.write(TOO_MANY)
            transport.close()
            return
        self.config.clients[self._client] += 1
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if getattr(self, "_client", None) is not None:
            self.config.clients[self._client] -= 1
            if self.config.clients[self._client] <= 0:
                del self.config.clients[self._client]
            self._client = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            if self._headers_too_large(data):
                if not self.transport.is_closing():
                    self.transport.write(TOO_LARGE)
                    self.transport.close()
                return
            self._start_deadline()
        super().data_received(data)

    def _headers_too_large(self, data: bytes) -> bool:
        """Whether the request line and headers pass ``max_header_bytes`` with ``data``, counted up to the
        blank line that ends them, before the parser sees it: a whole request in one read is measured too."""
        seen = self._tail + data
        end = seen.find(b"\r\n\r\n")
        self._header_bytes += len(data) if end < 0 else end + 4 - len(self._tail)
        self._tail = seen[-3:]
        return self._header_bytes > self._limits.max_header_bytes

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._tail = b""
        self._stop_deadline()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True  # the next request's deadline starts with its first byte

    def _start_deadline(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self._limits.header_timeout_s, self._headers_too_slow)

    def _stop_deadline(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if self._awaiting_headers and not self.transport.is_closing():
            self.transport.close()


def config(app: Any, settings: Any, **options: Any) -> ServeConfig:
    """The uvicorn configuration of a collector with ``settings`` (limits, keep-alive, no server header)."""
    limits = Limits(settings.header_timeout_s, settings.max_header_bytes, settings.max_connections_per_client)
    defaults = {"log_level": "warning", "timeout_keep_alive": 5, "timeout_graceful_shutdown": 5, "server_header": False}
    return ServeConfig(app, limits, settings.max_connections, **{**defaults, **options})
