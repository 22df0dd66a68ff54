"""The server's tunables in one frozen value, so every module reads the same limits."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """What ``posdiag-collector serve`` was started with (defaults are the documented ones)."""

    db_url: str
    #: A report may be this large once decompressed; a bigger one is refused with 413.
    max_report_bytes: int = MIB
    #: The body on the wire may be this large (gzip or not); checked before it is read in full.
    max_body_bytes: int = MIB
    #: Reports whose ``started_at`` lie this close together chain into one incident.
    incident_window_min: float = 10.0
    #: A site incident needs this many distinct terminals of one site with one cause.
    site_min_terminals: int = 2
    #: A fleet incident needs terminals of this many distinct sites with one cause.
    fleet_min_sites: int = 3
    #: Incidents are looked for among reports that started this many hours back (unless ``?since=``).
    incident_lookback_h: float = 24.0
    #: A terminal not heard from for this long is "silent" on the page and in the API.
    silent_after_min: float = 15.0
    #: Requests being handled at once by one process before new reports get 429 + Retry-After.
    max_inflight: int = 1000
    #: Database connections per process (PostgreSQL); a request waiting longer than
    #: ``db_timeout_s`` for one gets 503 + Retry-After.
    db_pool_size: int = 8
    db_timeout_s: float = 5.0
    #: Lifetime of a page session after sign-in.
    session_hours: float = 12.0
    #: A remote request (diagnose, bundle) not answered this long after it was asked reads as expired.
    request_expiry_min: float = 15.0
    #: A support bundle a terminal uploads may be this large; a bigger one is refused with 413.
    max_bundle_bytes: int = 8 * MIB
