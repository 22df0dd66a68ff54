"""Coalescing for the daemon's main loop: storms of 2824 lines and crowds of ``trigger`` requests.

A till in trouble writes a 2824 line per failed payment, ten a second when a queue of customers
retries; a monitoring script may fire hundreds of ``trigger`` requests at once. Each sweep costs a
core for a second or more, so neither may map one-to-one onto sweeps:

* :class:`EventWindow` — the first 2824 after a quiet spell starts an event sweep at once; every
  2824 seen within ``event_min_gap_s`` of that sweep's start folds into the next event sweep, which
  says how many it covers and when the first and last were seen.
* :class:`Waiters` — every ``trigger`` waiting when an on-demand sweep starts, or arriving while it
  runs, gets that sweep's report: one sweep for a crowd.

Both are filled by other threads and drained by the main loop only, which checks events before
on-demand requests, so no queue of requests can starve an event.
"""

from __future__ import annotations

import math
import queue
import threading
import time
from typing import Any

from posdiag.core.timefmt import utc_iso


class EventWindow:
    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self._lock = threading.Lock()
        self.count = 0
        self.first_at: float | None = None  # wall clock of the first 2824 not yet covered by a sweep
        self.last_at: float | None = None
        self.last_sweep = -math.inf  # monotonic start of the last event sweep

    def add(self) -> bool:
        """Count one 2824 line; True when it opens a new window (the caller logs it and wakes the loop)."""
        now = time.time()
        with self._lock:
            self.count += 1
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
            return self.count == 1

    def due_in(self, now: float | None = None) -> float | None:
        """Seconds until the pending event sweep may start (0: now), or None when nothing is pending."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if not self.count:
                return None
            return max(0.0, self.last_sweep + self.gap_s - now)

    def take(self) -> dict[str, Any]:
        """What the event sweep starting now covers; the next window opens empty."""
        now = time.monotonic()
        with self._lock:
            covered = {"count_2824": self.count, "first_at": utc_iso(self.first_at or time.time()),
                       "last_at": utc_iso(self.last_at or time.time())}
            self.count, self.first_at, self.last_at = 0, None, None
            self.last_sweep = now
        return covered


class Waiters:
    """``trigger`` requests waiting for an on-demand sweep; each gets the reply of the one it joined."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[queue.Queue] = []
        self._running: list[queue.Queue] | None = None

    def join(self) -> queue.Queue:
        """A queue the reply will be put on: of the sweep running now, or else of the next one."""
        box: queue.Queue = queue.Queue(maxsize=1)
        with self._lock:
            (self._running if self._running is not None else self._pending).append(box)
        return box

    def start(self) -> bool:
        """Begin a sweep for everyone waiting; False when nobody is."""
        with self._lock:
            if not self._pending:
                return False
            self._running, self._pending = self._pending, []
            return True

    def finish(self, reply: dict[str, Any]) -> None:
        """Hand the sweep's reply to everyone who joined it."""
        with self._lock:
            boxes, self._running = self._running or [], None
        for box in boxes:
            box.put(reply)
