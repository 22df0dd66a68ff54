"""Incidents as the API and the page show them: one cause failing several terminals at once.

They are kept as reports arrive (:mod:`posdiag.collector.storage.chains` says how a chain of fault
reports becomes an incident, and when it opens and closes); this module turns a stored incident into
its JSON. An incident of a whole fleet can span thousands of terminals: its lists name the first
:data:`LISTED` (by id) and its counts say how many there are.
"""

from __future__ import annotations

from typing import Any

#: how many terminals, failing terminals and sites an incident's lists name at most
LISTED = 100


def to_api(row: dict[str, Any]) -> dict[str, Any]:
    """The JSON of one stored incident (a row of ``chains.listing``)."""
    return {"id": str(row["id"]), "scope": row["scope"], "cause": row["cause"], "site": row["site"] or None,
            "sites": row["sites"][:LISTED], "site_count": int(row["site_count"]),
            "terminals": row["terminals"][:LISTED], "terminal_count": int(row["terminal_count"]),
            "reports": int(row["report_count"]), "first_seen_at": row["first_at"], "last_seen_at": row["last_at"],
            "opened_at": row["qualified_at"], "closed_at": row["closed_at"], "open": row["closed_at"] is None,
            "still_failing": row["failing_terminals"][:LISTED], "still_failing_count": int(row["failing"])}
