"""A worker thread of a ``serve`` process: one step at a time, until the process stops.

The webhook sender and the pruner are such workers. Neither may ever stop the process or take it
down with it: a database that is away is logged and tried again later, and a step that fails
unexpectedly is logged with its traceback, then the loop goes on.
"""

from __future__ import annotations

import logging
import threading

from posdiag.collector.storage import StorageError

log = logging.getLogger("posdiag.collector")
#: after a step failed, the next one waits this long
RETRY_S = 5.0


class Worker(threading.Thread):
    """Subclasses implement :meth:`step`, which does one bounded piece of work and says how long to
    wait before the next; :meth:`wake` cuts that wait short."""

    def __init__(self, name: str) -> None:
        super().__init__(name=f"posdiag-{name}", daemon=True)
        self._stop_event = threading.Event()
        self._wake_event = threading.Event()

    def step(self) -> float:
        raise NotImplementedError

    def wake(self) -> None:
        self._wake_event.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        self._wake_event.set()
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                delay = self.step()
            except StorageError as exc:
                log.warning("%s: database unavailable (%s); trying again in %g s", self.name, exc, RETRY_S)
                delay = RETRY_S
            except Exception:
                log.exception("%s: step failed; trying again in %g s", self.name, RETRY_S)
                delay = RETRY_S
            self._wake_event.wait(delay)
            self._wake_event.clear()
