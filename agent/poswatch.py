"""The daemon's watch on the POS application between sweeps: its start time, every ``[daemon]
pos_watch_s``, so that a crash loop is counted whatever ``interval_s`` is.

Sweeps every five minutes would see at most one restart each, never three in ten minutes. A look
costs one ``/proc/<pid>/stat`` read while the POS process lives (all processes are scanned only when
it has gone); each new start time goes into the store, where the crash probe counts the restarts
within ``[system] restart_window_min``. When the restarts seen reach ``restart_limit``, the next
scheduled sweep is brought forward once a window, so the crash loop is reported (and pushed) now.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Protocol

from posdiag.core.settings import Settings
from posdiag.core.timefmt import utc_iso
from posdiag.probes._restarts import SAME_START_S, StartWatch, restarts_seen

log = logging.getLogger("posdiag")
#: start times remembered between looks: ``[system] restart_limit`` goes up to this many, so that every
#: limit the configuration takes can be reached
STARTS_KEPT = 100


class StartStore(Protocol):
    def add_pos_start(self, start_s: float) -> None: ...
    def pos_starts(self) -> list[float]: ...


class PosWatch:
    """Looks at the POS's start time when due; :meth:`look` says when a crash loop wants a sweep now."""

    def __init__(self, settings: Settings, store: StartStore | None) -> None:
        self.store = store
        self.watch: StartWatch | None = None
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """(Re)read the settings: a new process name starts a new watch."""
        name = settings.terminal.pos_process
        if self.watch is None or self.watch.name != name:
            self.watch = StartWatch(name) if name else None
            self.starts = self._stored()
            self.swept_at = 0.0  # when a crash loop last brought a sweep forward (time.time())
        self.every_s = settings.daemon.pos_watch_s
        self.window_s = settings.system.restart_window_min * 60
        self.limit = settings.system.restart_limit
        self.next_at = time.monotonic()

    def look(self) -> bool:
        """Look when due; True when the restarts seen just reached the limit (once a window)."""
        if self.watch is None or time.monotonic() < self.next_at:
            return False
        self.next_at = time.monotonic() + self.every_s
        start = self.watch.look()
        if start is None or (self.starts and start <= self.starts[-1] + SAME_START_S):
            return False  # not running, the same process, or an older one outliving a younger
        if self.starts:
            log.info("POS application %r restarted: a process started at %s", self.watch.name, utc_iso(start))
        self.starts = (self.starts + [start])[-STARTS_KEPT:]
        self._store(start)
        now = time.time()
        looping = len(restarts_seen(self.starts, now - self.window_s)) >= self.limit
        if looping and now - self.swept_at > self.window_s:
            self.swept_at = now
            log.warning("POS application %r restarted %d times or more within %g min: diagnosing now",
                        self.watch.name, self.limit, self.window_s / 60)
            return True
        return False

    def _stored(self) -> list[float]:
        try:
            return self.store.pos_starts() if self.store is not None else []
        except sqlite3.Error as exc:
            log.warning("the POS application's stored start times cannot be read: %s", exc)
            return []

    def _store(self, start: float) -> None:
        try:
            if self.store is not None:
                self.store.add_pos_start(start)
        except (sqlite3.Error, OSError) as exc:  # counted in memory all the same
            log.warning("could not store the POS application's start time: %s", exc)
