"""Real collectors for the tests: in-process on an ephemeral loopback port, or ``serve`` as a child.

``Fleet`` wraps one running collector with the calls tests make of it: register terminals and
operators, post reports (gzip or plain), read the API, count what was stored.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from labs.helpers import wait_for

REPO = Path(__file__).resolve().parent.parent.parent


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def make_report(terminal: str, site: str = "store-1", *, started: float | None = None, verdict: str = "fault",
                cause: str = "network.wan", evidence: list[str] | None = None, remediation: list[str] | None = None,
                report_id: str | None = None, padding: int = 0, certainty: float | None = None) -> dict[str, Any]:
    """A valid ``posdiag.report/1`` report naming ``cause`` first; without ``certainty`` as an agent
    before it wrote one."""
    causes = [{"id": cause, "title": f"title of {cause}", "confidence": 0.8 if verdict != "healthy" else 0.95,
               "evidence": evidence if evidence is not None else [f"evidence for {cause} at {terminal}"],
               "remediation": remediation or [f"fix {cause} step one", "then step two"]}]
    if certainty is not None:
        causes[0]["certainty"] = certainty
    probes = [{"name": "network.tcp", "status": "fail" if verdict == "fault" else "ok", "duration_s": 0.03,
               "summary": "tcp to payment host", "findings": [], "metrics": {"connect_ms": 12.5, "pad": "x" * padding}}]
    return {"schema": "posdiag.report/1", "report_id": report_id or str(uuid.uuid4()),
            "terminal": {"id": terminal, "site": site, "hostname": f"host-{terminal}"}, "agent_version": "0.1.0",
            "trigger": "schedule", "started_at": iso(started if started is not None else time.time()), "duration_s": 1.2,
            "probes": probes, "diagnosis": {"verdict": verdict, "causes": causes}}


def listening_socket() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0))


def run_sql(storage: Any, statement: str, args: tuple = ()) -> None:
    """One statement of the test's own on a collector's database (``?`` placeholders on both back ends)."""
    with storage._connection(write=True) as conn:
        storage._execute(conn, statement, args)


class InProcessServer:
    """The collector's ASGI app under uvicorn in a thread of the test process."""

    def __init__(self, settings: Any) -> None:
        import uvicorn
        from posdiag.collector import served
        from posdiag.collector.app import create_app

        self.app = create_app(settings)
        sock = listening_socket()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.server = uvicorn.Server(served.config(self.app, settings, access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)
        self.thread.start()
        if not wait_for(lambda: self.server.started or not self.thread.is_alive(), 10, interval=0.01) \
                or not self.server.started:
            raise RuntimeError("collector did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class ServeProcess:
    """``posdiag-collector serve`` as its own process, as an operator would run it."""

    def __init__(self, db_url: str, *extra: str, scheme: str = "http") -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "posdiag.collector", "serve", "--db", db_url,
                                      "--listen", "127.0.0.1:0", *extra], stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.lines: list[str] = []
        deadline = time.monotonic() + 30
        while True:
            line = self.proc.stderr.readline()
            if not line:
                raise RuntimeError("serve exited: " + "".join(self.lines))
            self.lines.append(line)
            match = re.search(r"listening on (\S+)", line)
            if match:
                self.url = match.group(1)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start: " + "".join(self.lines))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


class Fleet:
    """One running collector and a storage handle on its database, for arranging and checking."""

    def __init__(self, url: str, storage: Any, server: InProcessServer | None = None) -> None:
        self.url = url
        self.storage = storage
        self.server = server
        self.http = requests.Session()

    def terminal(self, terminal_id: str, site: str | None = None) -> str:
        from posdiag.collector.tokens import new_token, token_hash

        token = new_token()
        self.storage.add_terminal(terminal_id, site, token_hash(token))
        return token

    def operator(self, name: str = "ops") -> str:
        from posdiag.collector.tokens import new_token, token_hash

        token = new_token()
        self.storage.add_operator(name, token_hash(token))
        return token

    def post(self, token: str | None, report: dict[str, Any] | bytes | Iterable[bytes], *, gzipped: bool = True,
             url: str | None = None, headers: dict[str, str] | None = None) -> requests.Response:
        """Post a report (gzipped unless told not to), or a body as it is: bytes, or chunks sent chunked."""
        body = report if not isinstance(report, dict) else json.dumps(report).encode()
        sent = dict(headers or {})
        if gzipped and isinstance(report, dict):
            body = gzip.compress(body)
            sent["Content-Encoding"] = "gzip"
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return requests.post((url or self.url) + "/api/v1/reports", data=body, headers=sent, timeout=30)

    def get(self, path: str, token: str | None = None, **params: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.http.get(self.url + path, headers=headers, params=params, timeout=30, allow_redirects=False)

    def stored(self) -> int:
        return len(self.storage.list_reports(limit=1000))

    def sql(self, statement: str, args: tuple = ()) -> None:
        run_sql(self.storage, statement, args)

    @contextmanager
    def tracing(self, statements: list[str]) -> Iterator[None]:
        """Every SQL statement the in-process server runs meanwhile, appended to ``statements`` (SQLite)."""
        storage = self.server.app.state.collector.storage
        opened = storage._open

        def traced() -> Any:
            conn = opened()
            conn.set_trace_callback(statements.append)
            return conn

        storage._open = traced
        try:
            yield
        finally:
            del storage._open
            for conn in list(storage._all):
                conn.set_trace_callback(None)
