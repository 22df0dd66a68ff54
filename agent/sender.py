"""The uploader: drains the outbox to the central server, oldest first, and exits.

Run as a short-lived process (``python -m posdiag.agent.sender``) that the daemon starts when the
outbox has work and the backoff allows, and in-process by ``posdiag push``. It holds the HTTP client
(``requests``, ~18 MB of RSS) so that the long-lived daemon never does; everything it learns goes to
the store (counters, last result, when to try next), where the daemon and ``status`` read it.

Protocol (``POST {url}/api/v1/reports``): the gzip body queued in the outbox, ``Authorization:
Bearer``, ``Idempotency-Key: <report_id>``, one keep-alive connection. Answers: 201 stored; 200 and
409 already stored (done); 5xx, 429, timeouts and connection errors: stop and retry later with
exponential backoff and full jitter, capped by ``retry_max_s``, never before ``Retry-After``; any
other 4xx: the report is set aside (kept, counted as refused) and the next one goes. One sender at a
time (an flock in the state directory), so a report is never in flight twice from this terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import random
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posdiag.agent import __version__, history, outbox
from posdiag.agent.logs import setup_logging
from posdiag.agent.pushsetup import PushSetupError, read_token, system_ca_bundle
from posdiag.core.locks import lock_within
from posdiag.core.redact import mask_text

log = logging.getLogger("posdiag")

API_PATH = "/api/v1/reports"
LOCK_NAME = "sender.lock"
BACKOFF_BASE_S = 1.0
MAX_RETRY_AFTER_S = 3600.0

# Exit statuses of the sender process (the daemon reads them; ``posdiag push`` maps them to 0/3).
DRAINED, RETRY_LATER, BUSY, SETUP, STORE_ERROR = 0, 75, 76, 3, 74


@dataclass(frozen=True)
class Answer:
    """What became of one report: ``done`` (the server has it), ``refused`` (set aside) or ``retry``."""

    kind: str
    result: str  # for status: "201", "409", "timeout", "tls: …", "503", …
    retry_after_s: float | None = None


@dataclass
class DrainResult:
    sent: int = 0
    refused: int = 0
    remaining: int = 0
    refusals: list[str] = dataclasses.field(default_factory=list)  # the server's answers when it refused
    failures: int = 0  # consecutive failed attempts, this one included
    last_result: str | None = None
    retry_at: float | None = None
    busy: bool = False


def retry_after(value: str | None, now: float) -> float | None:
    """Retry-After in seconds, from delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return min(max(0.0, when - now), MAX_RETRY_AFTER_S)


def classify(status: int, headers: Any, now: float) -> Answer:
    if status in (200, 201, 409):
        return Answer("done", str(status))
    if status in (429, 503) or status >= 500:
        return Answer("retry", str(status), retry_after(headers.get("Retry-After"), now) if status in (429, 503) else None)
    return Answer("refused", str(status))


def backoff_s(failures: int, cap_s: float, not_before_s: float | None = None) -> float:
    """Exponential backoff with full jitter (a fleet that lost its server does not return in step)."""
    delay = random.uniform(0, min(cap_s, BACKOFF_BASE_S * 2 ** max(0, failures - 1)))
    delay = max(0.2, delay)
    return max(delay, not_before_s) if not_before_s is not None else delay


def describe_error(exc: Exception) -> str:
    """A short ``last_result`` for a failed request: timeout, tls: …, connection refused, …"""
    import requests

    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        match = re.search(r"certificate verify failed: ([^(')\]]+)", text)
        return "tls: " + (f"certificate verify failed: {match.group(1).strip()}" if match else text[:160])
    if isinstance(exc, requests.exceptions.Timeout):
        return "timeout"
    if "Connection refused" in text:
        return "connection refused"
    if isinstance(exc, requests.exceptions.ConnectionError):
        reason = re.search(r"(RemoteDisconnected|ConnectionResetError|BrokenPipeError|Name or service not known|"
                           r"No route to host|Network is unreachable)", text)
        return f"connection error: {reason.group(1) if reason else text[:160]}"
    return f"error: {exc.__class__.__name__}"


class Client:
    """One keep-alive HTTPS session to the server, verified against ``ca_file`` or the system store."""

    def __init__(self, server: Any, token: str) -> None:
        import requests

        self.url = server.url.rstrip("/") + API_PATH
        self.timeout = (server.timeout_s, server.timeout_s)
        self.session = requests.Session()
        # No .netrc, no REQUESTS_CA_BUNDLE: the Authorization header and the trust anchors are ours.
        self.session.trust_env = False
        self.session.proxies = requests.utils.get_environ_proxies(self.url)
        self.session.verify = server.ca_file or system_ca_bundle()
        self.session.headers.update({"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                     "Content-Encoding": "gzip", "User-Agent": f"posdiag/{__version__}"})
        # Prepared once and copied per report: preparing a request (URL parsing, merging headers, auth
        # hooks) costs about as much as posting it over a kept-alive loopback connection.
        self.template = self.session.prepare_request(requests.Request("POST", self.url, data=b"-"))

    def post(self, report_id: str, body: bytes) -> Answer:
        import requests

        request = self.template.copy()
        request.body = body
        request.headers["Content-Length"] = str(len(body))
        request.headers["Idempotency-Key"] = report_id
        try:
            resp = self.session.send(request, timeout=self.timeout, verify=self.session.verify,
                                     proxies=self.session.proxies)
            resp.content  # noqa: B018 - read the answer so the connection is reused
        except requests.exceptions.RequestException as exc:
            return Answer("retry", mask_text(describe_error(exc)))  # it may quote the URL, never the token
        return classify(resp.status_code, resp.headers, time.time())

    def close(self) -> None:
        self.session.close()


@contextlib.contextmanager
def sender_lock(state_dir: str | Path, wait_s: float = 0.0) -> Iterator[bool]:
    """Hold the one-sender lock; yields False when another sender holds it past ``wait_s``."""
    os.makedirs(state_dir, mode=0o750, exist_ok=True)
    fd = os.open(Path(state_dir) / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        yield lock_within(fd, wait_s, poll_s=0.1)
    finally:
        os.close(fd)


def drain(server: Any, state_dir: str | Path, *, lock_wait_s: float = 0.0, stop: Any = None) -> DrainResult:
    """Send every unsent report, oldest first, until the outbox is empty or the server fails.
    Raises :class:`PushSetupError` when the token cannot be used."""
    token = read_token(server.token_file)
    result = DrainResult()
    with sender_lock(state_dir, lock_wait_s) as locked:
        if not locked:
            result.busy = True
            return result
        db = sqlite3.connect(Path(state_dir) / history.DB_NAME, timeout=10)
        # NORMAL, not FULL: losing a "sent" mark to a power cut only means the server sees the report
        # again and answers 409; the daemon's own writes stay FULL.
        db.execute("PRAGMA synchronous=NORMAL")
        client = Client(server, token)
        try:
            _drain(db, client, server, result, stop)
            result.remaining = outbox.depth(db)
        finally:
            client.close()
            db.close()
    return result


class _Marks:
    """Reports the server took, marked sent in the store in small batches: one commit per report
    would cost more than the post itself. A crash before a batch is written means those reports are
    posted again, and the server answers 409: still stored once."""

    BATCH, EVERY_S = 50, 0.25

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db, self.seqs, self.since = db, [], time.monotonic()
        self.last: tuple[str, float] | None = None

    def sent(self, seq: int, result: str, now: float) -> None:
        self.seqs.append(seq)
        self.last = (result, now)
        if len(self.seqs) >= self.BATCH or time.monotonic() - self.since >= self.EVERY_S:
            self.flush()

    def flush(self) -> None:
        if self.seqs:
            with self.db:
                outbox.mark_sent_many(self.db, self.seqs)
                if self.last:
                    outbox.record_attempt(self.db, self.last[0], self.last[1], failures=0, next_attempt_at=0)
        self.seqs, self.since = [], time.monotonic()


def _drain(db: sqlite3.Connection, client: Client, server: Any, result: DrainResult, stop: Any) -> None:
    failures = int(outbox.get_meta(db, "push.failures", "0") or 0)
    marks = _Marks(db)
    after = 0
    try:
        while page := outbox.pending_page(db, after):
            for seq, report_id, body in page:
                if stop is not None and stop():
                    return
                after = seq
                answer = client.post(report_id, body)
                now = time.time()
                result.last_result = answer.result
                if answer.kind == "done":
                    marks.sent(seq, answer.result, now)
                    result.sent += 1
                    failures = 0
                    continue
                marks.flush()
                with db:
                    if answer.kind == "refused":
                        outbox.mark_refused(db, seq, answer.result, now)
                        outbox.record_attempt(db, answer.result, now, failures=0, next_attempt_at=0)
                        result.refused += 1
                        result.refusals.append(answer.result)
                        log.warning("push: the server refused report %s (%s): set aside", report_id, answer.result)
                        failures = 0
                        continue
                    failures += 1
                    result.failures = failures
                    result.retry_at = now + backoff_s(failures, server.retry_max_s, answer.retry_after_s)
                    outbox.record_attempt(db, answer.result, now, failures=failures, next_attempt_at=result.retry_at)
                return
    finally:
        marks.flush()


# --- the process the daemon starts ------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import types

    parser = argparse.ArgumentParser(prog="python -m posdiag.agent.sender", description=__doc__.split("\n")[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--server", required=True, help="the [server] settings as JSON")
    args = parser.parse_args(argv)
    setup_logging()
    # The daemon's validated [server] settings, as plain values: the sender starts without the config
    # machinery (it starts once per push, so its start-up is most of its CPU).
    server = types.SimpleNamespace(**json.loads(args.server))
    stopping: list[int] = []
    # The daemon stopping: finish the report in flight and record what was sent, then exit.
    signal.signal(signal.SIGTERM, lambda signum, _frame: stopping.append(signum))
    try:
        result = drain(server, args.state_dir, stop=lambda: bool(stopping))
    except PushSetupError as exc:
        log.error("push: %s", exc)
        _record(args.state_dir, mask_text(f"setup: {exc}"))
        return SETUP
    except sqlite3.Error as exc:  # a full disk or a damaged store: what was sent and not marked goes again (409)
        log.error("push: cannot read or update the outbox: %s", exc)
        return STORE_ERROR
    if result.busy:
        return BUSY
    if result.retry_at is not None:
        # A long outage logs at the 1st, 2nd, 4th, 8th, … failed attempt, not once a minute.
        if result.failures & (result.failures - 1) == 0:
            log.warning("push: server unavailable (%s, attempt %d): %d report(s) sent, %d waiting; next try in %.1f s",
                        result.last_result, result.failures, result.sent, result.remaining,
                        result.retry_at - time.time())
        return RETRY_LATER
    if result.sent or result.refused:
        log.info("push: %d report(s) sent, %d refused; outbox empty", result.sent, result.refused)
    return DRAINED


def _record(state_dir: str, result: str) -> None:
    """What stopped the sender before it could post, for ``status`` (never the token: the message
    names the token file, not its content)."""
    path = Path(state_dir) / history.DB_NAME
    with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(path)) as db, db:
        outbox.record_attempt(db, result, time.time())


def argv_for(server: Any, state_dir: str) -> list[str]:
    """How the daemon starts a sender for these settings."""
    return [sys.executable, "-m", "posdiag.agent.sender", "--state-dir", state_dir,
            "--server", json.dumps(dataclasses.asdict(server))]


if __name__ == "__main__":
    sys.exit(main())
