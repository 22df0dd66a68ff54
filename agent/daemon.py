"""``posdiag run``: the agent as a service.

One main loop owns the sweeps, so two diagnoses never run at once; everything else only asks it:

* at start a ``boot`` sweep, then a ``schedule`` sweep every ``interval_s`` (±5 % jitter, so a fleet
  booted together does not probe in lockstep);
* the transaction-log watcher asks for an ``event`` sweep the moment a 2824 line is written; a storm
  of them is coalesced (``event_min_gap_s``, see :mod:`posdiag.agent.storm`) and logged once a window;
* the control socket asks for ``on-demand`` sweeps (concurrent requests share one) and answers
  ``status``; a pending event always goes before on-demand requests;
* an operator's request at the central server, fetched by the remote-requests thread
  (``remote.py``), asks for a ``remote`` sweep, which goes after on-demand ones and is pushed at once;
* between sweeps, every ``pos_watch_s``, the POS application's start time is looked at
  (``poswatch.py``): its restarts are stored, and a crash loop brings the next sweep forward;
* SIGTERM stops cleanly, SIGHUP reloads the configuration (a bad one is refused and the old kept).

What fails before the boot sweep — a refused token file or socket path, another daemon on the
socket, a thread or socket the system will not give — fails to start: logged as such with the
reason, exit 3, and what had started is stopped. A failure of the loop itself is a bug: logged with
its traceback, exit 3 (systemd restarts the unit); it is never taken for a refusal to start.

Every report goes to the history and, with a server configured, to the outbox; the pusher
(``push.py``) starts a short-lived sender process to deliver it. With ``NOTIFY_SOCKET`` set
(systemd ``Type=notify``) the daemon says READY, STATUS and STOPPING, and pings WATCHDOG at half of ``WATCHDOG_USEC``.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import random
import re
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from posdiag.agent import __version__
from posdiag.agent.control import release, serve
from posdiag.agent.diagnosis import KnowledgeBase, load_knowledge
from posdiag.agent.exits import Exit
from posdiag.agent.logfollow import LogFollower
from posdiag.agent.logs import setup_logging
from posdiag.agent.poswatch import PosWatch
from posdiag.agent.push import Pusher, read_status
from posdiag.agent.pushsetup import PushSetupError
from posdiag.agent.remote import RemoteRequests
from posdiag.agent.store import Store, StoreFull
from posdiag.agent.storm import EventWindow, Waiters
from posdiag.agent.sweep import run_sweep
from posdiag.core import i18n
from posdiag.core import settings as config
from posdiag.core.message import Refusal
from posdiag.core.paths import causes_path
from posdiag.core.redact import mask_text
from posdiag.core.timefmt import utc_now_iso
from posdiag.core.vocabulary import Trigger, Verdict

log = logging.getLogger("posdiag")
TXLOG_POLL_S = 0.2
#: the main loop never sleeps longer than this: a signal delivered to another thread only sets a
#: flag that the main thread must come round to, so SIGTERM and SIGHUP are obeyed within it
SIGNAL_LATENCY_S = 0.5


class Notifier:
    """systemd's notify protocol over the datagram socket in $NOTIFY_SOCKET (no libsystemd needed)."""

    def __init__(self) -> None:
        addr = os.environ.get("NOTIFY_SOCKET", "")
        self.addr = "\0" + addr[1:] if addr.startswith("@") else addr
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.watchdog_s = int(usec) / 1e6 / 2 if usec.isdigit() and int(usec) > 0 else None

    def send(self, message: str) -> None:
        if not self.addr:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message.encode(), self.addr)
        except OSError as exc:
            log.warning("cannot notify systemd on %s: %s", self.addr, exc)


@dataclass
class State:
    started: float = field(default_factory=time.time)
    sweeps: int = 0
    last: dict[str, Any] | None = None
    last_error: str | None = None
    reloads: int = 0


class TxlogWatcher(threading.Thread):
    """Follows the POS transaction log and asks for an event sweep when a 2824 line appears. The line
    is handed on masked (card data, secrets): the daemon quotes it in its log."""

    def __init__(self, settings: config.Settings, on_2824: Callable[[str], None]) -> None:
        super().__init__(name="txlog-watcher", daemon=True)
        self.path = settings.txlog.path
        self.pattern = re.compile(settings.txlog.pattern)
        self.on_2824 = on_2824
        self.stopping = threading.Event()
        # Take the log's current end now, in the caller's thread: whatever is written from here on,
        # however soon, counts as new.
        self.follower = LogFollower(self.path, from_end=True)
        self.follower.poll()

    def run(self) -> None:
        from posdiag.probes.txlog import ERROR_2824, parse_line

        follower = self.follower
        problem = None
        while not self.stopping.wait(TXLOG_POLL_S):
            try:
                for line in follower.poll():
                    event = parse_line(self.pattern, line)
                    if event and event.code == ERROR_2824:
                        self.on_2824(mask_text(line))
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any odd file state
                log.error("transaction-log watcher: error while following %s: %r", self.path, exc)
            if follower.problem != problem:  # said once when it starts and once when it ends, not every poll
                problem = follower.problem
                if problem:
                    log.warning("transaction log not read: %s", problem)
                else:
                    log.info("transaction log %s is a regular file again: following it", self.path)
        follower.close()


class Daemon:
    def __init__(self, settings: config.Settings, config_path: str | None, lang: str | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        #: ``posdiag run --lang``: outranks ``[terminal] language`` across reloads, as it did at start
        self.lang = lang
        i18n.use(i18n.choose(lang, settings.terminal.language))
        self.kb: KnowledgeBase = load_knowledge(causes_path())
        self.wake = threading.Event()  # set by other threads when there may be work for the loop
        self.state = State()
        self.stopping = threading.Event()
        self.reload_wanted = False
        self.events = EventWindow(settings.daemon.event_min_gap_s)
        self.waiters = Waiters()
        self.notify = Notifier()
        self.watcher: TxlogWatcher | None = None
        self.store: Store | None = None
        self.pusher: Pusher | None = None
        self.remote: RemoteRequests | None = None
        self.poswatch: PosWatch | None = None
        self.remote_wanted: collections.deque[str] = collections.deque()  # request ids to diagnose for

    # --- signals and requests from other threads ------------------------------------------------
    def on_signal(self, signum: int, _frame: Any) -> None:
        """Only set flags: a handler that took a lock the interrupted main thread holds (a queue's)
        would deadlock the daemon, and then not even SIGTERM would stop it."""
        if signum == signal.SIGHUP:
            self.reload_wanted = True
        else:
            self.stopping.set()

    def on_2824(self, line: str) -> None:
        """Count the line; the first of a window wakes the loop. Only a 2824 that starts a sweep at once
        is logged here: the rest of a storm is told by the sweep that covers it (one line a window)."""
        if not self.events.add():
            return
        if self.events.due_in() == 0:
            log.warning("2824 in %s: %s (event sweep now)", self.settings.txlog.path, line[:200])
        self.wake.set()

    def on_remote_diagnose(self, request_id: str) -> None:
        """An operator asked for a diagnosis through the central server (the remote-requests thread)."""
        self.remote_wanted.append(request_id)
        self.wake.set()

    def handle_control(self, message: dict[str, Any]) -> dict[str, Any]:
        cmd = message.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            return {"ok": True, "status": self.status()}
        if cmd == "push":  # diagnose --push queued a report: send it now
            if self.pusher is not None:
                self.pusher.kick(urgent=True)
            return {"ok": True}
        if cmd == "trigger":
            reply = self.waiters.join()
            self.wake.set()
            try:
                return reply.get(timeout=self.settings.diagnosis.deadline_s + 30)
            except queue.Empty:
                return {"ok": False, "error": "the daemon did not finish the diagnosis in time"}
        return {"ok": False, "error": f"unknown command {cmd!r}"}

    def status(self) -> dict[str, Any]:
        s = self.state
        history, push, store = read_status(self.settings, self.store)
        return {"pid": os.getpid(), "version": __version__, "started_at": s.started,
                "uptime_s": round(time.time() - s.started, 1), "sweeps": s.sweeps, "last": s.last,
                "last_error": s.last_error, "history_reports": history, "config": self.settings.source,
                "interval_s": self.settings.daemon.interval_s, "txlog": self.settings.txlog.path or None,
                "reloads": s.reloads, "push": push, "store": store,
                "remote": self.remote.status() if self.remote else {"enabled": False}}

    # --- the loop ---------------------------------------------------------------------------------
    def next_interval(self) -> float:
        interval = self.settings.daemon.interval_s
        return interval * random.uniform(0.95, 1.05)

    def sweep(self, trigger: str, event: dict[str, Any] | None = None,
              request_id: str | None = None) -> dict[str, Any] | None:
        try:
            report = run_sweep(self.settings, trigger=trigger, knowledge=self.kb)
            if event is not None:
                report["event"] = event  # which 2824s this event sweep covers
            if request_id is not None:
                report["request_id"] = request_id  # the operator's request this report answers
        except Exception as exc:  # one bad sweep never stops the loop (logged with its traceback)
            self.state.last_error = f"{utc_now_iso()} sweep failed: {exc!r}"
            log.exception("%s sweep failed", trigger)
            self._remote_failed(request_id, f"the diagnosis failed: {exc!r}")
            return None
        self.state.sweeps += 1
        top = report["diagnosis"]["causes"][0]
        self.state.last = {"report_id": report["report_id"], "trigger": trigger, "started_at": report["started_at"],
                           "verdict": report["diagnosis"]["verdict"], "top_cause": top["id"],
                           "confidence": top["confidence"], "duration_s": report["duration_s"],
                           "risks": len(report.get("risks") or []),
                           "soonest_risk": (report.get("risks") or [{}])[0].get("due_at")}
        store = self.store
        if store is None:  # start() opens it before the boot sweep: a sweep without it is a bug
            raise RuntimeError("a sweep ran before the report store was opened")
        try:
            store.add(report, push=self.pusher is not None)
        except (StoreFull, sqlite3.Error, OSError) as exc:  # a full or failing disk must not kill the daemon
            self.state.last_error = f"could not store report {report['report_id']}: {exc}"
            log.error("could not store report %s: %s", report["report_id"], exc)
            self._remote_failed(request_id, f"the report could not be stored: {exc}")
        else:
            if self.pusher is not None:
                self.pusher.kick(urgent=trigger in (Trigger.EVENT, Trigger.ON_DEMAND, Trigger.REMOTE))
        level = logging.INFO if report["diagnosis"]["verdict"] == Verdict.HEALTHY else logging.WARNING
        covers = f", covering {event['count_2824']} 2824 line(s) since {event['first_at']}" if event else ""
        log.log(level, "%s sweep: %s, top cause %s (%.0f%%) in %.2f s [%s]%s", trigger, report["diagnosis"]["verdict"],
                top["id"], top["confidence"] * 100, report["duration_s"], report["report_id"], covers)
        self.notify.send(f"STATUS={report['diagnosis']['verdict']}: {top['id']} ({trigger}, {report['started_at']})")
        return report

    def _remote_failed(self, request_id: str | None, error: str) -> None:
        if request_id is not None and self.remote is not None:
            self.remote.failed_sweep(request_id, error)

    def reload(self) -> None:
        try:
            new = config.load(self.config_path)
            lang = i18n.choose(self.lang, new.terminal.language)
            kb = load_knowledge(causes_path(), lang)
        except config.ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", str(exc).replace("\n", " "))
            self.state.last_error = f"reload refused: {'; '.join(exc.problems)}"
            return
        self.notify.send("RELOADING=1")
        self.stop_watcher()
        self.settings, self.kb = new, kb
        if lang != i18n.active():
            log.info("reports are now written in %s", i18n.use(lang).lang)
        self.events.gap_s = new.daemon.event_min_gap_s
        self.state.reloads += 1
        self.start_watcher()
        if self.pusher is not None:
            self.pusher.configure(new)
        if self.remote is not None:
            self.remote.configure(new)
        if self.poswatch is not None:
            self.poswatch.configure(new)
        log.info("configuration reloaded from %s", new.source)
        self.notify.send("READY=1")

    def start_watcher(self) -> None:
        if self.settings.txlog.path:
            watcher = TxlogWatcher(self.settings, self.on_2824)
            watcher.start()
            self.watcher = watcher  # only a started one is ever stopped (joined)

    def stop_watcher(self) -> None:
        if self.watcher:
            self.watcher.stopping.set()
            self.watcher.join(2)
            self.watcher = None

    def run(self) -> int:
        """Start, sweep until SIGTERM, stop what was started. Exit 3 when it could not start; the loop's
        own exceptions propagate (see :func:`run`)."""
        with contextlib.ExitStack() as started:
            started.callback(log.info, "posdiag stopped")  # the last word, also after a failed start
            try:
                self.start(started)
            except (Refusal, PushSetupError) as exc:  # refused on what it found: the reason is the message
                log.error("posdiag could not start: %s", exc)
                return Exit.UNKNOWN
            except Exception as exc:  # a thread or socket the system would not give, or a bug: with its traceback
                log.error("posdiag could not start: %r", exc, exc_info=True)
                return Exit.UNKNOWN
            log.info("posdiag %s started (pid %d, config %s, every %g s)", __version__, os.getpid(),
                     self.settings.source, self.settings.daemon.interval_s)
            self.notify.send(f"READY=1\nMAINPID={os.getpid()}")
            started.callback(self.notify.send, "STOPPING=1")  # the first word of stopping
            self.loop()
        return Exit.OK

    def start(self, started: contextlib.ExitStack) -> None:
        """Everything the loop needs, each part's stop put on ``started`` as soon as it runs, so that
        a later part that fails to start leaves nothing behind (the stops run in reverse)."""
        self.pusher = Pusher.create(self.settings)  # a token file others can read: refused (exit 3)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self.on_signal)
        self.store = Store.for_daemon(self.settings)
        started.callback(self.store.close)
        self.poswatch = PosWatch(self.settings, self.store)
        self.poswatch.look()  # the POS as it runs now: a restart is a start later than this one
        server = serve(self.settings.daemon.control_socket, self.handle_control)
        started.callback(release, self.settings.daemon.control_socket)
        started.callback(server.server_close)
        started.callback(server.shutdown)
        if self.pusher is not None:
            self.remote = RemoteRequests(self.settings, self.config_path, self.on_remote_diagnose, self.pusher.sending)
            self.pusher.on_sent = self.remote.kick  # every push is also a poll
            self.pusher.start()
            started.callback(self.pusher.stop)
            self.remote.start()
            started.callback(self.remote.stop)
        started.callback(self.stop_watcher)
        self.start_watcher()

    def loop(self) -> None:
        self.sweep(Trigger.BOOT.value)
        next_sweep = time.monotonic() + self.next_interval()
        next_ping = time.monotonic()
        while not self.stopping.is_set():
            if self.notify.watchdog_s and time.monotonic() >= next_ping:
                self.notify.send("WATCHDOG=1")
                next_ping = time.monotonic() + self.notify.watchdog_s
            if self.reload_wanted:
                self.reload_wanted = False
                self.reload()
            ran = self.run_due_work(next_sweep)
            if ran == Trigger.SCHEDULE:
                next_sweep = time.monotonic() + self.next_interval()
            if ran:
                continue
            now = time.monotonic()
            event_in = self.events.due_in(now)
            wake = min(next_sweep, next_ping if self.notify.watchdog_s else next_sweep,
                       now + event_in if event_in is not None else next_sweep, now + SIGNAL_LATENCY_S)
            self.wake.wait(max(0.0, wake - now))
            self.wake.clear()  # whatever set it is found by run_due_work, which reads the state itself

    def run_due_work(self, next_sweep: float) -> str | None:
        """Run the one sweep that is most urgent — a 2824 event, on-demand requests, an operator's remote
        request, the schedule (brought forward when the POS watch sees a crash loop) — and return its
        trigger, or None when nothing is due."""
        if self.events.due_in() == 0:
            self.sweep(Trigger.EVENT.value, event=self.events.take())
            return Trigger.EVENT.value
        if self.waiters.start():
            report = self.sweep(Trigger.ON_DEMAND.value)
            self.waiters.finish({"ok": True, "report": report} if report else
                                {"ok": False, "error": self.state.last_error or "sweep failed"})
            return Trigger.ON_DEMAND.value
        if self.remote_wanted:
            self.sweep(Trigger.REMOTE.value, request_id=self.remote_wanted.popleft())
            return Trigger.REMOTE.value
        if time.monotonic() >= next_sweep or (self.poswatch is not None and self.poswatch.look()):
            self.sweep(Trigger.SCHEDULE.value)  # due, or brought forward by a crash loop of the POS seen between sweeps
            return Trigger.SCHEDULE.value
        return None


def run(config_path: str | None, lang: str | None = None) -> int:
    setup_logging()
    settings = config.load(config_path)
    unusable = [p for p in config.check_paths(settings) if p.startswith("daemon.state_dir")]
    if unusable:
        log.error("refusing to start: %s", "; ".join(unusable))
        return Exit.UNKNOWN
    daemon = Daemon(settings, config_path, lang)
    try:
        return daemon.run()
    except Exception:  # the loop's own failure is a bug: its traceback goes to the journal
        log.critical("posdiag stopped on an internal error", exc_info=True)
        return Exit.UNKNOWN
