"""The terminal's side of remote requests on the wire, as a short-lived process the daemon starts.

    python -m posdiag.agent.remote_client --server JSON poll
    python -m posdiag.agent.remote_client --server JSON bundle REQUEST_ID --config PATH
    python -m posdiag.agent.remote_client --server JSON fail REQUEST_ID ERROR

``poll`` asks the central server for this terminal's open requests (``GET /api/v1/requests/pending``
with its own token); ``bundle`` makes the support bundle exactly as ``posdiag bundle`` does (secrets
masked on the till) and uploads it (``PUT /api/v1/requests/{id}/bundle``); ``fail`` tells the server
that a request could not be done (``POST /api/v1/requests/{id}/failure``). Each prints one JSON line,
an :class:`Outcome`, for the daemon to read.

The standard library's ``http.client`` carries these, not ``requests`` as the sender does: a till asks
every ``poll_s`` (30 s), and a process that loads ``requests`` costs about 0.2 s of CPU to start
(0.7 % of a core at that rate), one with ``http.client`` and ``ssl`` about 0.05 s. It runs apart from
the daemon because ``ssl`` alone would add some 6 MB to the daemon's resident memory for good. The
server's certificate is checked as the sender checks it (``ca_file``, else the system's store), the
environment's HTTPS proxy is used as the sender uses it, and the token never leaves the
``Authorization`` header: what this process prints or tells the server is masked as every output of
posdiag is (``core/redact``: card data, secrets, the token).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from posdiag.agent.pushsetup import PushSetupError, read_token, system_ca_bundle
from posdiag.core.redact import mask_text

PENDING_PATH = "/api/v1/requests/pending"
#: an answer larger than this is not the collector's: it is cut off and refused
MAX_ANSWER_BYTES = 256 * 1024
#: the largest bundle the till sends (the collector's own limit is 8 MiB by default)
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
MAX_REQUESTS = 20
SETUP = 3  # exit status when the token cannot be used (the message says why)


@dataclass
class Outcome:
    """What one call came to. ``result`` is the HTTP status or what failed ("timeout", "tls: …");
    ``settled``: the request needs nothing more from this till (answered, or refused for good);
    ``retry_after_s``: the server's Retry-After, when it sent one."""

    ok: bool
    result: str
    requests: list[dict[str, Any]] | None = None
    settled: bool = False
    retry_after_s: float | None = None
    error: str | None = None


class Client:
    """One HTTPS exchange at a time with the central server, as this terminal (its own token)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.token = read_token(server.token_file)
        parts = urlsplit(server.url)
        self.https = parts.scheme == "https"
        self.host, self.port = parts.hostname or "", parts.port or (443 if self.https else 80)
        self.base = parts.path.rstrip("/")
        self.context = None
        if self.https:
            import ssl

            self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the name
            trust = server.ca_file or system_ca_bundle()
            if isinstance(trust, str) and os.path.isdir(trust):
                self.context.load_verify_locations(capath=trust)
            elif isinstance(trust, str):
                self.context.load_verify_locations(cafile=trust)
            else:
                self.context.load_default_certs()

    def _connection(self) -> tuple[Any, str]:
        """A connection to the server, through the environment's proxy when one is set for it (as the
        sender's requests would), and what goes before a path in the request line."""
        import http.client
        import urllib.request

        proxy = None if urllib.request.proxy_bypass_environment(self.host) else \
            urllib.request.getproxies_environment().get("https" if self.https else "http")
        if not proxy:
            if self.https:
                return http.client.HTTPSConnection(self.host, self.port, timeout=self.server.timeout_s,
                                                   context=self.context), ""
            return http.client.HTTPConnection(self.host, self.port, timeout=self.server.timeout_s), ""
        via = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        if not self.https:  # a plain proxy takes the whole URL in the request line
            return (http.client.HTTPConnection(via.hostname or "", via.port or 3128, timeout=self.server.timeout_s),
                    f"http://{self.host}:{self.port}")
        conn = http.client.HTTPSConnection(via.hostname or "", via.port or 3128, timeout=self.server.timeout_s,
                                           context=self.context)
        conn.set_tunnel(self.host, self.port)  # CONNECT: TLS runs end to end with the server, the proxy sees bytes
        return conn, ""

    def call(self, method: str, path: str, body: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, dict[str, str], bytes]:
        """Status, headers (lower-case names) and body of one request; raises OSError and friends."""
        conn, prefix = self._connection()
        try:
            headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json",
                       "User-Agent": "posdiag-remote"}
            if body is not None:
                headers["Content-Type"] = content_type
            conn.request(method, prefix + self.base + path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(MAX_ANSWER_BYTES + 1)
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()

    def exchange(self, method: str, path: str, body: bytes | None = None,
                 content_type: str = "application/json") -> Outcome | tuple[int, dict[str, str], bytes]:
        """:meth:`call`, with a failure to reach the server turned into an :class:`Outcome`."""
        try:
            return self.call(method, path, body, content_type)
        except Exception as exc:  # noqa: BLE001 - any failure of the exchange is a result to report, never a crash
            return Outcome(False, mask_text(describe_error(exc)))  # it may quote the URL, never the token


def describe_error(exc: BaseException) -> str:
    """A short result for a failed exchange, in the words ``posdiag status`` uses for pushes."""
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"tls: certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError):
        return f"connection error: {exc.strerror or exc.__class__.__name__}"
    return f"error: {exc.__class__.__name__}"


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after", "").strip()
    return min(float(value), 3600.0) if value.isdigit() else None


def poll(client: Client) -> Outcome:
    """This terminal's open requests, oldest first."""
    answer = client.exchange("GET", PENDING_PATH)
    if isinstance(answer, Outcome):
        return answer
    status, headers, body = answer
    if status != 200:
        return Outcome(False, str(status), retry_after_s=_retry_after(headers) if status in (429, 503) else None)
    try:
        found = json.loads(body)["requests"] if len(body) <= MAX_ANSWER_BYTES else None
    except (ValueError, KeyError, TypeError):
        found = None
    if not isinstance(found, list):
        return Outcome(False, "200: not a list of requests")
    wanted = [{"request_id": str(r["request_id"]), "kind": str(r["kind"])} for r in found[:MAX_REQUESTS]
              if isinstance(r, dict) and "request_id" in r and "kind" in r]
    return Outcome(True, "200", requests=wanted)


def _settled(status: int, headers: dict[str, str]) -> Outcome:
    """What the server's answer to an upload or a failure means for the till."""
    if status in (200, 201):
        return Outcome(True, str(status), settled=True)
    if status in (429, 503) or status >= 500:
        return Outcome(False, str(status), retry_after_s=_retry_after(headers))
    return Outcome(False, str(status), settled=True)  # 404, 409, 410, 413: nothing more to do for it


def fail(client: Client, request_id: str, error: str) -> Outcome:
    body = json.dumps({"error": mask_text(error)[:500]}).encode()  # card data, secrets: masked as every output
    answer = client.exchange("POST", f"/api/v1/requests/{quote(request_id, safe='')}/failure", body)
    return answer if isinstance(answer, Outcome) else _settled(answer[0], answer[1])


def bundle(client: Client, request_id: str, config_path: str | None, state_dir: str) -> Outcome:
    """Make the bundle as ``posdiag bundle`` does, upload it, and remove the file; a bundle that cannot
    be made, or is too large to send, is a failure the server is told about."""
    from posdiag.agent.bundle import make_bundle
    from posdiag.core import settings as config

    output = Path(state_dir) / f"remote-bundle-{request_id}.tar.gz"
    try:
        settings = config.load(config_path)
        _, size = make_bundle(settings, settings.source, output)
        if size > MAX_BUNDLE_BYTES:
            outcome = fail(client, request_id, f"the bundle is {size} bytes, more than the {MAX_BUNDLE_BYTES} a till sends")
            return Outcome(False, outcome.result, settled=outcome.settled, error="bundle too large")
        body = output.read_bytes()
    except Exception as exc:  # noqa: BLE001 - whatever stops the bundle is told to the operator who asked
        outcome = fail(client, request_id, f"the bundle could not be made: {exc}")
        return Outcome(False, outcome.result, settled=outcome.settled, error=f"bundle not made: {exc}")
    finally:
        output.unlink(missing_ok=True)
    answer = client.exchange("PUT", f"/api/v1/requests/{quote(request_id, safe='')}/bundle", body, "application/gzip")
    return answer if isinstance(answer, Outcome) else _settled(answer[0], answer[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posdiag.agent.remote_client", description=__doc__.split("\n")[0])
    parser.add_argument("--server", required=True, help="the [server] settings as JSON")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("poll")
    making = sub.add_parser("bundle")
    making.add_argument("request_id")
    making.add_argument("--config")
    making.add_argument("--state-dir", required=True)
    failing = sub.add_parser("fail")
    failing.add_argument("request_id")
    failing.add_argument("error")
    args = parser.parse_args(argv)
    server = types.SimpleNamespace(**json.loads(args.server))
    try:
        client = Client(server)
    except (PushSetupError, OSError) as exc:  # the token file, or a CA file ssl cannot read
        print(json.dumps(asdict(Outcome(False, mask_text(f"setup: {exc}")))), flush=True)
        return SETUP
    if args.command == "poll":
        outcome = poll(client)
    elif args.command == "bundle":
        outcome = bundle(client, args.request_id, args.config, args.state_dir)
    else:
        outcome = fail(client, args.request_id, args.error)
    print(json.dumps(asdict(outcome)), flush=True)
    return 0


def argv_for(server: Any, command: str, *args: str) -> list[str]:
    """How the daemon starts this for its ``[server]`` settings."""
    return [sys.executable, "-m", "posdiag.agent.remote_client", "--server", json.dumps(asdict(server)), command, *args]


if __name__ == "__main__":
    sys.exit(main())
