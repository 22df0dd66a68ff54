"""Pushing reports, from the daemon's side: when to start a sender, and what ``status`` says.

The daemon never imports an HTTP client (``requests`` alone is ~18 MB of RSS, more than half the
idle daemon's budget). A :class:`Pusher` thread sleeps until there is work — a report was queued
(:meth:`Pusher.kick`) or the backoff recorded by the last sender has run out — then starts a
short-lived sender process (``sender.py``) that drains the outbox and exits. With an empty outbox it
sleeps without a timeout: an idle daemon with push configured costs no CPU for it.

Event and on-demand reports are urgent: they go out at once, without waiting out the backoff of a
schedule report that failed, unless a send was tried in the last few seconds.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

from posdiag.agent import outbox, sender
from posdiag.agent.exits import Exit
from posdiag.agent.pushsetup import require
from posdiag.agent.store import Store, open_readonly
from posdiag.core.i18n import N_, tr

log = logging.getLogger("posdiag")

#: An urgent report skips the backoff, but does not make the daemon hammer a dead server.
URGENT_MIN_GAP_S = 3.0
#: When a sender crashed or another holds the lock: look again after this long.
RECHECK_S = 1.0


class Pusher(threading.Thread):
    def __init__(self, settings: Any) -> None:
        super().__init__(name="pusher", daemon=True)
        require(settings.server)  # raises PushSetupError: run refuses to start (exit 3)
        self.server = settings.server
        self.state_dir = settings.daemon.state_dir
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.urgent = False
        self.last_start = 0.0
        self.not_before = 0.0  # local backoff after a crashed sender
        self.proc: subprocess.Popen | None = None
        #: called when a sender has emptied the outbox (the daemon asks for remote requests then)
        self.on_sent: Callable[[], None] | None = None

    @classmethod
    def create(cls, settings: Any) -> Pusher | None:
        """A pusher when a server is configured, else None."""
        return cls(settings) if settings.server.url else None

    def configure(self, settings: Any) -> None:
        """A reloaded configuration: the next sender uses it. Without a URL nothing is sent (reports
        still queue, and go when a URL is back); a token problem is logged, and the sender says it."""
        from posdiag.agent.pushsetup import check

        self.server = settings.server
        if not settings.server.url:
            log.warning("push: [server] url removed: reports are queued, not sent")
        for problem in check(settings.server):
            log.error("push: %s", problem)
        self.kick()

    def kick(self, urgent: bool = False) -> None:
        """A report was queued: send it (at once if ``urgent``, else when the backoff allows)."""
        self.urgent = self.urgent or urgent
        self.wake.set()

    def sending(self) -> bool:
        """A sender process runs now."""
        return self.proc is not None

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # it finishes the report in flight and records what it sent
        self.join(5)

    # --- the thread ---------------------------------------------------------------------------------
    def run(self) -> None:
        """Look at the outbox once per wake-up: send when due, else sleep until it will be (or a kick)."""
        while not self.stopping.is_set():
            depth, next_at = self._outbox_state()
            if depth and self.server.url and self._due(next_at):
                try:
                    self._send()
                except Exception:
                    log.exception("push: cannot start a sender")
                    self.not_before = time.time() + self.server.retry_max_s
                continue
            if not depth or not self.server.url:
                self.urgent = False
            self.wake.wait(max(0.0, max(next_at, self.not_before) - time.time()) if depth and self.server.url else None)
            self.wake.clear()

    def _outbox_state(self) -> tuple[int, float]:
        store = open_readonly(self.state_dir)
        if store is None:
            return 0, 0.0
        try:
            with store:
                return outbox.depth(store.db), outbox.next_attempt_at(store.db)
        except Exception:  # noqa: BLE001 - a damaged store is healed by the writer; look again later
            return 1, time.time() + self.server.retry_max_s

    def _due(self, next_at: float) -> bool:
        now = time.time()
        if self.urgent and now - self.last_start >= URGENT_MIN_GAP_S:
            return True
        return now >= max(next_at, self.not_before)

    def _send(self) -> None:
        self.urgent = False
        self.last_start = time.time()
        self.proc = subprocess.Popen(sender.argv_for(self.server, self.state_dir), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)
        code = self.proc.wait()
        self.proc = None
        if code == sender.BUSY or code < 0:
            self.not_before = time.time() + RECHECK_S
        elif code not in (sender.DRAINED, sender.RETRY_LATER):
            self.not_before = time.time() + self.server.retry_max_s
            log.error("push: the sender exited with status %d; next try in %g s", code, self.server.retry_max_s)
        else:
            self.not_before = 0.0
        if code == sender.DRAINED and self.on_sent is not None:
            self.on_sent()


# --- what status says ---------------------------------------------------------------------------------
def read_status(settings: Any, store: Store | None = None) -> tuple[int | str, dict[str, Any], dict[str, Any]]:
    """What ``posdiag status`` says about the state directory, from one read-only look at it: the
    number of stored reports, ``push`` (the keys docs/push.md documents) and ``store`` (the last healing,
    reports not stored since the daemon started)."""
    history: int | str = 0
    summary = outbox.empty_summary()
    health: dict[str, Any] = {"healed": None, "unstored": store.unstored if store is not None else None}
    try:
        reader = open_readonly(settings.daemon.state_dir)
        if reader is not None:
            with reader:
                history, summary, health["healed"] = reader.count(), reader.push_summary(), reader.healed()
    except Exception as exc:  # noqa: BLE001 - status answers even with a damaged store; the damage is the news
        history = f"unavailable: {exc}"
        summary["last_result"] = f"store unreadable: {exc}"
        health["error"] = str(exc)
    return history, {"configured": bool(settings.server.url), **summary}, health


#: The labels of ``posdiag status``'s lines, every one of them: the column is as wide whichever are shown.
STATUS_LABELS = (N_("config:"), N_("sweeps:"), N_("last:"), N_("txlog:"), N_("push:"), N_("store:"), N_("problem:"))


def labelled(rows: list[tuple[str, str]]) -> list[str]:
    """``status`` lines: each N_-marked label in the reader's language, then its text in one column
    (measured in terminal cells, so Chinese labels line up too), a long text continued under its
    column within 80 cells. An empty label continues the line above."""
    from posdiag.agent.columns import SCREEN, display_width, pad, wrap

    width = max(display_width(tr(label)) for label in STATUS_LABELS) + 2
    lines = []
    for label, text in rows:
        first, *more = wrap(text, SCREEN - 2 - width) or [""]
        lines += ["  " + pad(tr(label) if label else "", width) + first] + [" " * (2 + width) + m for m in more]
    return lines


def status_rows(push: dict[str, Any], store: dict[str, Any] | None) -> list[tuple[str, str]]:
    """What ``posdiag status`` says about pushing and the store's health, as (label, text) rows."""
    if not push["configured"]:
        rows = [(N_("push:"), tr("not configured ([server] url)"))]
    else:
        rows = [(N_("push:"), _outbox_text(push)),
                ("", tr("sent {sent}, refused {refused}, dropped {dropped}", sent=push["sent"], refused=push["refused"],
                        dropped=push["dropped"]))]
    if store and store.get("healed"):
        h = store["healed"]
        rows.append((N_("store:"), tr("healed at {at} ({reason}): moved to {moved_to}, {recovered} unsent report(s) "
                                      "recovered, {unreadable} unreadable", at=h["at"], reason=h["reason"],
                                      moved_to=h["moved_to"], recovered=h["recovered_unsent"],
                                      unreadable=h["unreadable_unsent"])))
    if store and store.get("unstored"):
        u = store["unstored"]
        rows.append((N_("store:"), tr("{count} report(s) could not be stored since {since}: {error}", count=u["count"],
                                      since=u["first_at"], error=u["error"])))
    return rows


def _outbox_text(push: dict[str, Any]) -> str:
    """The outbox's depth, the age of its oldest report, and the last attempt, in one sentence."""
    fields = {"outbox": push["outbox"], "age": push["oldest_unsent_s"], "at": push["last_attempt_at"],
              "result": push["last_result"]}
    if push["oldest_unsent_s"] is not None:
        if push["last_attempt_at"]:
            return tr("outbox {outbox}, oldest {age:.0f} s; last attempt {at}: {result}", **fields)
        return tr("outbox {outbox}, oldest {age:.0f} s; no attempt yet", **fields)
    if push["last_attempt_at"]:
        return tr("outbox {outbox}; last attempt {at}: {result}", **fields)
    return tr("outbox {outbox}; no attempt yet", **fields)


# --- the technician's side: diagnose --push and posdiag push --------------------------------------------
def queue(settings: Any, report: dict[str, Any], err: Any) -> bool:
    """Store and queue a report from ``diagnose --push``, then ask a running daemon to send it."""
    from posdiag.agent.control import DaemonBusy, DaemonNotRunning, request
    from posdiag.core.message import translated

    d = settings.daemon
    try:
        with Store.for_settings(settings) as store:
            store.add(report, push=True)
    except Exception as exc:  # noqa: BLE001 - full disk, damaged store, permissions: the report is printed all the same
        err.write("posdiag: " + tr("could not queue the report for the central server: {error}",
                                   error=translated(exc)) + "\n")
        return False
    try:
        request(d.control_socket, {"cmd": "push"}, timeout_s=5)
        err.write("posdiag: " + tr("report queued; the daemon sends it") + "\n")
    except DaemonNotRunning:
        err.write("posdiag: " + tr("report queued; no daemon is running: 'posdiag push' sends it") + "\n")
    except (DaemonBusy, OSError, ValueError) as exc:  # busy: it accepted and did not answer in time
        err.write("posdiag: " + tr("report queued; the daemon did not answer ({error}): 'posdiag push' sends it",
                                   error=translated(exc)) + "\n")
    return True


def push_now(settings: Any, out: Any, err: Any, requeue_refused: bool = False) -> Exit:
    """``posdiag push``: drain the outbox here and now. Exit.OK when all is sent, Exit.UNKNOWN when it cannot be."""
    from posdiag.agent.pushsetup import PushSetupError
    from posdiag.core.message import translated

    if not settings.server.url:
        err.write("posdiag: " + tr("no central server configured ([server] url): nothing to push to") + "\n")
        return Exit.UNKNOWN
    if requeue_refused:
        with Store.for_settings(settings) as store, store.db:
            n = outbox.requeue_refused(store.db)
        out.write(tr("{n} report(s) set aside earlier put back in the outbox", n=n) + "\n")
    else:
        Store.for_settings(settings).close()  # heals a damaged store before reading it
    try:
        result = sender.drain(settings.server, settings.daemon.state_dir, lock_wait_s=60)
    except PushSetupError as exc:
        err.write("posdiag: " + tr("cannot push: {problem}", problem="; ".join(translated(p) for p in exc.problems)) + "\n")
        return Exit.UNKNOWN
    if result.busy:
        err.write("posdiag: " + tr("another sender has been draining the outbox for 60 s; try again later") + "\n")
        return Exit.UNKNOWN
    out.write(tr("sent {sent} report(s); {remaining} still in the outbox", sent=result.sent,
                 remaining=result.remaining) + "\n")
    if result.refused:
        err.write("posdiag: " + tr("the server refused {refused} report(s) (HTTP {answers}); they are set aside: see "
                                   "'posdiag status', fix the cause, then 'posdiag push --requeue-refused'",
                                   refused=result.refused, answers=", ".join(sorted(set(result.refusals)))) + "\n")
        return Exit.UNKNOWN
    if result.remaining:
        err.write("posdiag: " + tr("the server did not take every report (last result: {result}); {remaining} still "
                                   "queued: try again later (a running daemon retries by itself)",
                                   result=result.last_result, remaining=result.remaining) + "\n")
        return Exit.UNKNOWN
    return Exit.OK
