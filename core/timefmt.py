"""The one time format posdiag writes and reads: UTC to the second, ``2026-11-29T10:15:02Z``.

Reports, history, status, the bundle and the collector's API all carry instants in this form, so a
string compares and sorts as the instant it names. Compact file-name stamps (``20261129T101502Z``)
come from here too.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
COMPACT_FORMAT = "%Y%m%dT%H%M%SZ"
#: ISO_FORMAT as a pattern: read by hand, because ``strptime`` costs its own module and a regex
#: compiled per format on the first call of every process (a diagnosis reads a dozen stored instants)
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)Z", re.ASCII)


def utc_iso(ts: float) -> str:
    """Seconds since the epoch as ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime(ISO_FORMAT)


def utc_now_iso() -> str:
    return utc_iso(time.time())


def parse_utc_iso(text: str) -> float:
    """The inverse of :func:`utc_iso`; ``ValueError`` for anything that is not a real instant in that
    form (``9999-99-99T99:99:99Z`` and ``T25:00:00Z`` included, and fields not written in full)."""
    found = _ISO.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError(f"not an instant in the form YYYY-MM-DDTHH:MM:SSZ: {text!r}"[:120])
    return datetime(*map(int, found.groups()), tzinfo=timezone.utc).timestamp()


def compact_stamp(ts: float | None = None) -> str:
    """``YYYYMMDDTHHMMSSZ`` for file names (a quarantined database, a support bundle)."""
    return time.strftime(COMPACT_FORMAT, time.gmtime(time.time() if ts is None else ts))
