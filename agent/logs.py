"""Logging of the long-running parts (the daemon and the sender it starts), one way for both.

Under systemd each line carries its syslog priority as a ``<N>`` prefix, which journald reads
(SyslogLevelPrefix); on a terminal, a time stamp and the level instead. Either way every line, its
traceback included, is masked (:mod:`posdiag.core.redact`) before it is written: a log line quotes
POS log lines, errors and URLs, and the journal is shipped off the till. Standard library only: the
sender must stay light.
"""

from __future__ import annotations

import logging
import sys
import threading

from posdiag.core.redact import mask_text


class MaskedFormatter(logging.Formatter):
    """A formatter whose lines carry no card data and no secret, whatever the message quoted."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


class JournalFormatter(MaskedFormatter):
    """``<priority>message``: journald reads the syslog level from the prefix (SyslogLevelPrefix)."""

    LEVELS = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return "\n".join(f"<{self.LEVELS.get(record.levelno, 6)}>{line}" for line in text.splitlines())


def setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    if sys.stderr.isatty():
        handler.setFormatter(MaskedFormatter("%(asctime)s %(levelname)s %(message)s"))
    else:
        handler.setFormatter(JournalFormatter("%(message)s"))
    root = logging.getLogger("posdiag")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    # An exception nobody caught is printed by Python itself, past the formatter: log it through it.
    sys.excepthook = lambda kind, exc, tb: _uncaught(root, "", (kind, exc, tb))
    threading.excepthook = lambda a: _uncaught(root, f" in thread {a.thread.name if a.thread else '?'}",
                                               (a.exc_type, a.exc_value, a.exc_traceback))


def _uncaught(log: logging.Logger, where: str, exc_info: tuple) -> None:
    if issubclass(exc_info[0], (KeyboardInterrupt, SystemExit)):
        sys.__excepthook__(*exc_info)
        return
    log.critical("uncaught %s%s", exc_info[0].__name__, where, exc_info=exc_info)
