"""Remote requests, from the daemon's side: when to ask the central server for work, and what to do
with what it asks.

An operator at the help desk asks for a diagnosis or a support bundle; the till sits behind NAT, so
it asks. The :class:`RemoteRequests` thread asks at least every ``[server] poll_s`` seconds (with a
little jitter, so a fleet does not ask in step) and at once after every push, each time by starting
a short-lived ``remote_client`` process (see there why the daemon holds no HTTP client). Then:

* a **diagnose** request goes to the daemon's main loop, which runs a sweep with trigger ``remote``
  between its other sweeps and pushes the report at once, carrying ``request_id``;
* a **bundle** request is made and uploaded by a ``remote_client`` process while this thread waits.

Neither blocks a sweep or a push: the thread only ever waits on its own processes, and a poll that
falls due while a push sender runs waits for it to finish (one process at a time beside the daemon). When the server
cannot be reached, the next poll waits twice as long each time (up to ten times ``poll_s``, with
jitter, never before the server's Retry-After); a push that gets through asks again at once. A
request is acted on once per daemon: a poll that returns it again (it stays open until answered) is
not a second ask. No log line carries the token: the token never reaches this process's memory.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from posdiag.agent import remote_client
from posdiag.core.timefmt import utc_iso

log = logging.getLogger("posdiag")

#: polls asked for by pushes come no closer together than this
MIN_GAP_S = 2.0
#: after failed polls the wait doubles, up to this many times poll_s
BACKOFF_FACTOR_CAP = 10
#: while a push sender runs, a due poll looks again this often
SENDER_RECHECK_S = 1.0
#: request ids remembered as acted on (more than a till is ever asked for in a request's lifetime)
REMEMBERED = 256


def next_wait_s(poll_s: float, failures: int, retry_after_s: float | None = None) -> float:
    """Seconds to the next poll: a little under ``poll_s`` while the server answers; after failures,
    doubling with jitter up to ``BACKOFF_FACTOR_CAP`` × ``poll_s``, and never before Retry-After."""
    if failures <= 0:
        return poll_s * random.uniform(0.9, 1.0)
    ceiling = poll_s * min(2 ** failures, BACKOFF_FACTOR_CAP)
    return max(random.uniform(ceiling / 2, ceiling), retry_after_s or 0.0)


class RemoteRequests(threading.Thread):
    """The daemon's poller. ``on_diagnose(request_id)`` asks the main loop for a remote sweep."""

    def __init__(self, settings: Any, config_path: str | None, on_diagnose: Callable[[str], None],
                 sending: Callable[[], bool] = lambda: False) -> None:
        super().__init__(name="remote-requests", daemon=True)
        self.server, self.state_dir, self.config_path = settings.server, settings.daemon.state_dir, config_path
        self.on_diagnose = on_diagnose
        #: whether a push sender runs now: a poll waits for it (the service's memory limit is shared by the
        #: daemon and its processes, and the sender's end asks for requests anyway)
        self.sending = sending
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.kicked = False
        self.failures = 0
        self.last_poll = 0.0  # monotonic; 0: never
        self.next_after = 0.0  # seconds after the last poll that the next is due
        self.handled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.failed: collections.deque[tuple[str, str]] = collections.deque()  # remote sweeps that went wrong
        self.proc: subprocess.Popen | None = None
        self.summary: dict[str, Any] = {"polls": 0, "last_poll_at": None, "last_result": None, "failures": 0,
                                        "diagnoses": 0, "bundles": 0, "failed": 0}

    def enabled(self) -> bool:
        return bool(self.server.url) and self.server.poll_s > 0

    def configure(self, settings: Any) -> None:
        """A reloaded configuration: the next poll uses it (poll_s = 0 stops polling, a value again resumes)."""
        self.server, self.state_dir = settings.server, settings.daemon.state_dir
        self.wake.set()

    def kick(self) -> None:
        """A push went through: ask now (the server answers, and an operator may be waiting)."""
        self.kicked = True
        self.wake.set()

    def failed_sweep(self, request_id: str, error: str) -> None:
        """The main loop could not diagnose (or store the report) for a request: tell the server."""
        self.failed.append((request_id, error))
        self.wake.set()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self.join(5)

    def status(self) -> dict[str, Any]:
        """What ``posdiag status --json`` says under ``"remote"``."""
        return {"enabled": self.enabled(), "poll_s": self.server.poll_s, **self.summary}

    # --- the thread ---------------------------------------------------------------------------------
    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self._step()
            except Exception:  # no process could be started (out of memory, say): try again later
                log.exception("remote requests: cannot poll")
                self.last_poll, self.next_after = time.monotonic(), BACKOFF_FACTOR_CAP * self.server.poll_s

    def _step(self) -> None:
        """Tell the server what could not be done, then poll when due (or sleep until it is)."""
        while self.failed and not self.stopping.is_set():
            self._tell_failure(*self.failed.popleft())
        if not self.enabled():
            self._sleep(None)
            return
        wait = self._due_in()
        if wait <= 0 and self.sending():
            wait = SENDER_RECHECK_S
        if wait > 0:
            self._sleep(wait)
            return
        self.kicked = False
        self._poll()

    def _sleep(self, seconds: float | None) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def _due_in(self) -> float:
        since = time.monotonic() - self.last_poll
        if self.kicked:
            return max(0.0, MIN_GAP_S - since)
        return self.next_after - since if self.last_poll else 0.0

    def _run_client(self, command: str, *args: str, timeout_s: float) -> remote_client.Outcome:
        """Start a remote_client process, wait for its one line of JSON (stop() may cut it short)."""
        self.proc = subprocess.Popen(remote_client.argv_for(self.server, command, *args), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE)
        try:
            out, _ = self.proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return remote_client.Outcome(False, f"no answer within {timeout_s:g} s")
        finally:
            code, self.proc = self.proc.returncode, None
        try:
            return remote_client.Outcome(**json.loads(out.decode("utf-8").splitlines()[-1]))
        except (ValueError, IndexError, TypeError, UnicodeDecodeError):
            return remote_client.Outcome(False, f"remote_client exited with status {code}")

    def _poll(self) -> None:
        outcome = self._run_client("poll", timeout_s=2 * self.server.timeout_s + 10)
        self.last_poll = time.monotonic()
        if self.stopping.is_set():  # cut short by stop(): not a failure of the server
            return
        self.summary.update(polls=self.summary["polls"] + 1, last_poll_at=utc_iso(time.time()), last_result=outcome.result)
        if outcome.ok and self.failures:
            log.info("remote requests: the central server answers again (after %d failed poll(s))", self.failures)
        self.failures = 0 if outcome.ok else self.failures + 1
        self.summary["failures"] = self.failures
        self.next_after = next_wait_s(self.server.poll_s, self.failures, outcome.retry_after_s)
        if self.failures & (self.failures - 1) == 0 and self.failures:  # the 1st, 2nd, 4th, … failure: an outage logs little
            log.warning("remote requests: cannot ask the central server (%s, attempt %d); next try in %.0f s",
                        outcome.result, self.failures, self.next_after)
        for request in outcome.requests or []:
            if not self.stopping.is_set():
                self._act(request["request_id"], request["kind"])

    def _act(self, request_id: str, kind: str) -> None:
        if request_id in self.handled:
            return
        if kind == "diagnose":
            log.info("remote request %s: a diagnosis, asked for at the central server", request_id)
            self._remember(request_id)
            self.summary["diagnoses"] += 1
            self.on_diagnose(request_id)
        elif kind == "bundle":
            log.info("remote request %s: a support bundle, asked for at the central server", request_id)
            args = [request_id, "--state-dir", self.state_dir] + (["--config", self.config_path] if self.config_path else [])
            outcome = self._run_client("bundle", *args, timeout_s=4 * self.server.timeout_s + 120)
            if outcome.settled:
                self._remember(request_id)
            if outcome.ok:
                self.summary["bundles"] += 1
                log.info("remote request %s: bundle uploaded (%s)", request_id, outcome.result)
            else:
                log.warning("remote request %s: bundle not delivered (%s%s)%s", request_id, outcome.result,
                            f": {outcome.error}" if outcome.error else "", "" if outcome.settled else "; tried again later")
        else:
            log.warning("remote request %s: unknown kind %r, ignored", request_id, kind)
            self._remember(request_id)

    def _remember(self, request_id: str) -> None:
        self.handled[request_id] = None
        while len(self.handled) > REMEMBERED:
            self.handled.popitem(last=False)

    def _tell_failure(self, request_id: str, error: str) -> None:
        self.summary["failed"] += 1
        outcome = self._run_client("fail", request_id, error, timeout_s=2 * self.server.timeout_s + 10)
        log.warning("remote request %s could not be done (%s); the server was told (%s)", request_id, error,
                    outcome.result)
