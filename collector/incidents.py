"""Incidents: one cause failing several terminals at once, found from the reports' own ``started_at``.

Reports of one cause are chained while each starts within ``window`` of the previous one; a chain is
an incident when it spans enough terminals of one site (``site`` scope: the store's uplink, its
router) or enough sites (``fleet`` scope: the acquirer's host, a certificate). Because the chain uses
the time a diagnosis ran, not the time the report arrived, reports delivered an hour late after an
outage land in the window they describe.

An incident is **open** while at least one of its terminals has reported nothing newer than its part
in it: that terminal's latest report still names the cause (and is not healthy). The first newer
report with another verdict or cause closes the terminal's part; the incident closes with its last one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from posdiag.core.timefmt import parse_utc_iso
from posdiag.core.vocabulary import Verdict


def _seconds(stamp: str) -> float:
    return parse_utc_iso(stamp)


def _chains(rows: list[dict[str, Any]], window_s: float) -> list[list[dict[str, Any]]]:
    """Split rows (sorted by started_at) where the gap to the previous row exceeds the window."""
    chains: list[list[dict[str, Any]]] = []
    last = None
    for row in rows:
        t = _seconds(row["started_at"])
        if last is None or t - last > window_s:
            chains.append([])
        chains[-1].append(row)
        last = t
    return chains


def _incident(scope: str, cause: str, chain: list[dict[str, Any]], states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    first, last = chain[0]["started_at"], chain[-1]["started_at"]
    terminals = sorted({row["terminal_id"] for row in chain})
    sites = sorted({row["site"] for row in chain})
    still = [t for t in terminals if _still_failing(states.get(t), cause, first, last)]
    return {"id": f"{scope}:{cause}:{sites[0] if scope == 'site' else '*'}:{first}", "scope": scope, "cause": cause,
            "site": sites[0] if scope == "site" else None, "sites": sites, "terminals": terminals,
            "terminal_count": len(terminals), "reports": len(chain), "first_seen_at": first, "last_seen_at": last,
            "open": bool(still), "still_failing": still}


def _still_failing(state: dict[str, Any] | None, cause: str, first: str, last: str) -> bool:
    if not state or state.get("verdict") in (None, Verdict.HEALTHY) or state.get("top_cause") != cause:
        return False
    return first <= (state.get("last_started_at") or "") <= last


def find(rows: Iterable[dict[str, Any]], states: dict[str, dict[str, Any]], *, window_min: float = 10.0,
         site_min_terminals: int = 2, fleet_min_sites: int = 3) -> list[dict[str, Any]]:
    """Incidents among fault ``rows`` (terminal_id, site, top_cause, started_at; sorted by started_at).

    ``states`` maps terminal id to its latest verdict, cause and ``last_started_at``. Open incidents
    come first, then the most recent. A site incident inside a fleet incident of the same cause is
    not repeated: the fleet one names its sites.
    """
    window_s = window_min * 60
    by_cause: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_cause[row["top_cause"]].append(row)
    found: list[dict[str, Any]] = []
    for cause, cause_rows in by_cause.items():
        fleet = [c for c in _chains(cause_rows, window_s) if len({r["site"] for r in c}) >= fleet_min_sites]
        fleet_incidents = [_incident("fleet", cause, chain, states) for chain in fleet]
        found += fleet_incidents
        by_site: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in cause_rows:
            by_site[row["site"]].append(row)
        for site, site_rows in by_site.items():
            for chain in _chains(site_rows, window_s):
                if len({r["terminal_id"] for r in chain}) < site_min_terminals:
                    continue
                if any(site in f["sites"] and chain[0]["started_at"] <= f["last_seen_at"]
                       and chain[-1]["started_at"] >= f["first_seen_at"] for f in fleet_incidents):
                    continue
                found.append(_incident("site", cause, chain, states))
    found.sort(key=lambda i: (i["open"], i["last_seen_at"]), reverse=True)
    return found
