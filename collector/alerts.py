"""The alert webhook: each incident's opening and closing posted once, signed, retried with backoff.

A message is written in the very transaction that opens or closes the incident (see
:mod:`posdiag.collector.storage.chains`), so intake never waits for the receiver. This worker posts
the messages that are due; a message is leased to one process at a time, so several ``serve``
processes on one database post each message once. A receiver that fails is tried again after an
exponential, jittered backoff (honouring its ``Retry-After``) for a day, then given up with an error
in the log. Should a process die between the receiver's answer and marking the message sent, the
message is posted again after the lease: the ``X-Posdiag-Delivery`` header lets a receiver see that.

The body is signed: ``X-Posdiag-Signature: sha256=<hex HMAC-SHA256 of the body with the secret>``.
Neither the secret nor the webhook's URL (it may carry credentials) is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from typing import Any

import requests
from posdiag.collector.background import Worker
from posdiag.collector.storage import Storage
from posdiag.core.files import read_bounded
from posdiag.core.timefmt import parse_utc_iso, utc_iso

log = logging.getLogger("posdiag.collector")
#: a claimed message is this process's for this long (longer than one attempt can take)
LEASE_S = 60.0
TIMEOUT_S = (5.0, 10.0)
#: between polls for messages another process wrote
POLL_S = 2.0
BACKOFF_FIRST_S, BACKOFF_MAX_S = 1.0, 300.0
GIVE_UP_S = 86400.0
CLAIM = 10
#: a key longer than this is not a key file
SECRET_MAX_BYTES = 4096


class SecretError(Exception):
    """The webhook's key file cannot be used: why, without its content."""


def read_secret(path: str) -> bytes:
    """The webhook's key: the file's bytes, surrounding white space removed (a newline an editor added)."""
    try:
        secret = read_bounded(path, SECRET_MAX_BYTES).strip()
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(secret) < 16:
        raise SecretError(f"{path} holds fewer than 16 bytes: not a key")
    return secret


def signature(secret: bytes, body: bytes) -> str:
    """The ``X-Posdiag-Signature`` header's value for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def backoff(attempts: int, retry_after: str | None = None) -> float:
    """Seconds before the next attempt: full-jitter exponential, capped; at least what ``Retry-After`` asks."""
    delay = random.uniform(0.5, 1.0) * min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** max(0, attempts - 1))
    if retry_after and retry_after.strip().isdigit():
        delay = max(delay, min(BACKOFF_MAX_S, float(retry_after)))
    return delay


class Alerter(Worker):
    """Posts due webhook messages to ``url``."""

    def __init__(self, storage: Storage, url: str, secret: bytes) -> None:
        super().__init__("alerts")
        self.storage = storage
        self.url = url
        self.secret = secret
        self.http = requests.Session()
        self.results = {"sent": 0, "failed": 0, "given_up": 0}  # by this process, for /metrics

    def step(self) -> float:
        now = time.time()
        claimed = self.storage.claim_alerts(utc_iso(now), utc_iso(now + LEASE_S), CLAIM)
        for message in claimed:
            self._deliver(message)
        return 0.0 if len(claimed) == CLAIM else POLL_S

    def _post(self, message: dict[str, Any]) -> tuple[bool, str, str | None]:
        """(delivered, what happened, the receiver's Retry-After)."""
        body = message["body"].encode()
        headers = {"Content-Type": "application/json", "User-Agent": "posdiag-collector",
                   "X-Posdiag-Event": f"incident.{message['event']}", "X-Posdiag-Delivery": str(message["id"]),
                   "X-Posdiag-Signature": signature(self.secret, body)}
        try:
            answer = self.http.post(self.url, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False)
        except requests.RequestException as exc:  # its text names the URL: only its kind is kept
            return False, type(exc).__name__, None
        answer.close()
        return 200 <= answer.status_code < 300, f"HTTP {answer.status_code}", answer.headers.get("Retry-After")

    def _deliver(self, message: dict[str, Any]) -> None:
        delivered, outcome, retry_after = self._post(message)
        now = time.time()
        what = f"message {message['id']} (incident {message['incident_id']} {message['event']})"
        if delivered:
            self.storage.alert_sent(message["id"], utc_iso(now))
            self.results["sent"] += 1
            return
        attempts = int(message["attempts"]) + 1
        if now - parse_utc_iso(message["created_at"]) > GIVE_UP_S:
            self.storage.alert_failed(message["id"], outcome, None, utc_iso(now))
            self.results["given_up"] += 1
            log.error("alert webhook: %s not delivered after %d attempts (%s): given up", what, attempts, outcome)
            return
        delay = backoff(attempts, retry_after)
        self.storage.alert_failed(message["id"], outcome, utc_iso(now + delay), utc_iso(now))
        self.results["failed"] += 1
        log.warning("alert webhook: %s attempt %d failed (%s); next in %.0f s", what, attempts, outcome, delay)
