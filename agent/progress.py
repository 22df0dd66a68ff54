"""What a slow sweep is waiting for, on a terminal: the probes still running, after the first second.

A sweep that ends within a second says nothing while it runs. One that takes longer — a dead payment
host, a reader that does not answer — shows which probes it still waits for, so that a technician at
the till knows it is not hung and what it is waiting on. Nothing at all when the stream is not a
terminal: cron mail and logs get no carriage returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from posdiag.core.i18n import tr

#: a sweep shorter than this shows no progress at all
QUIET_S = 1.0
#: how often the line is redrawn once shown
TICK_S = 0.25


class Progress:
    """Usable as ``on_result`` and ``on_running`` hooks of one sweep; ``with`` starts and ends it."""

    def __init__(self, stream: TextIO, draw: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.enabled = is_terminal(stream)
        self.draw = draw or self._draw_line
        self.running: tuple[str, ...] = ()
        self.done = self.total = 0
        self.started = time.monotonic()
        self.shown = False
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        self.started = time.monotonic()
        if self.enabled:
            self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self.ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        if self.ticker is not None:
            self.ticker.join(1)
        with self.lock:
            if self.shown:
                self.draw("")

    def on_result(self, result: Any, done: int, total: int) -> None:
        self.done, self.total = done, total

    def on_running(self, names: tuple[str, ...], done: int, total: int) -> None:
        """The probes running now, told from the sweep's start: the count is right before any has ended."""
        self.running, self.done, self.total = names, done, total

    def line(self) -> str:
        """"probing… 7/12 done, waiting 1.4 s for: reader.serial, network.tcp" in the reader's language."""
        return tr("probing… {done}/{total} done, waiting {seconds:.1f} s for: {probes}", done=self.done,
                  total=self.total, seconds=time.monotonic() - self.started, probes=", ".join(self.running))

    def _tick(self) -> None:
        if self.stopping.wait(QUIET_S):
            return
        while True:
            with self.lock:
                if self.stopping.is_set():
                    return
                if self.running:
                    self.draw(self.line())
                    self.shown = True
            if self.stopping.wait(TICK_S):
                return

    def _draw_line(self, text: str) -> None:
        from posdiag.agent.columns import clip
        from posdiag.agent.screen import terminal_size

        try:
            self.stream.write("\r\033[K" + clip(text, terminal_size(self.stream)[0] - 1))
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False  # the terminal went away: the diagnosis goes on without it


def is_terminal(stream: Any) -> bool:
    """True for a stream on a terminal; False for a pipe, a file, a closed or odd stream."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False
