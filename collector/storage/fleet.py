"""The fleet as the page reads it: terminals filtered and ordered in SQL, and sites as summary rows.

A fleet of thousands is never sent whole: the page asks for the terminals that need attention, the
sites as counts, and one site's terminals when it is opened. Every filter (site, cause, state,
search) is a term of one WHERE clause, written once here for both back ends.

A terminal's **state** is one of ``fault``, ``degraded``, ``healthy`` (its newest report's verdict,
while it is heard from), ``silent`` (not heard from recently, or never) or ``revoked``: exactly one
each, so a site's counts add up to its terminals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from posdiag.core.vocabulary import Verdict

SILENT, REVOKED = "silent", "revoked"
#: in attention order: faults first, then silent terminals, then the rest
STATES = (Verdict.FAULT.value, SILENT, Verdict.DEGRADED.value, Verdict.HEALTHY.value, REVOKED)
#: the state of a terminal in SQL; its one placeholder is the moment before which a terminal is silent
STATE = (f"(CASE WHEN revoked_at IS NOT NULL THEN '{REVOKED}' WHEN last_seen_at IS NULL OR last_seen_at < ? "
         f"THEN '{SILENT}' ELSE coalesce(verdict, '{SILENT}') END)")
#: a state's place in STATES, in SQL
RANK = "(CASE {state} " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(STATES)) + f" ELSE {len(STATES)} END)"
COLUMNS = "id, site, last_seen_at, verdict, top_cause, agent_version, last_started_at, revoked_at, risk_due_at"


@dataclass(frozen=True)
class TerminalQuery:
    """Which terminals: each field given narrows the set (None or empty: not filtered)."""

    #: terminals not heard from since this UTC time stamp are silent ('' : only those never heard from)
    silent_before: str = ""
    site: str | None = None
    cause: str | None = None
    states: tuple[str, ...] = ()
    #: a piece of a terminal id or site name, any case
    search: str | None = None
    #: not heard from since this time stamp (or never): ``?silent_min=``
    silent_since: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """The WHERE clause ('' when nothing filters) and its arguments, in order."""
        terms, args = self.terms()
        return (" WHERE " + " AND ".join(terms) if terms else ""), args

    def terms(self) -> tuple[list[str], list[Any]]:
        """The conditions, each a SQL term, and their arguments in order."""
        terms: list[str] = []
        args: list[Any] = []
        if self.site is not None:
            terms.append("coalesce(site, '') = ?")
            args.append(self.site)
        if self.cause is not None:
            terms.append("top_cause = ?")
            args.append(self.cause)
        if self.silent_since is not None:
            terms.append("(last_seen_at IS NULL OR last_seen_at < ?)")
            args.append(self.silent_since)
        if self.states:
            terms.append(f"{STATE} IN ({', '.join('?' for _ in self.states)})")
            args += [self.silent_before, *self.states]
        if self.search:
            terms.append("(lower(id) LIKE ? ESCAPE '\\' OR lower(coalesce(site, '')) LIKE ? ESCAPE '\\')")
            pattern = "%" + like_escape(self.search.lower()) + "%"
            args += [pattern, pattern]
        return terms, args


def like_escape(text: str) -> str:
    """``text`` matched literally by LIKE: its ``%``, ``_`` and ``\\`` escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def terminals_by_state(query: TerminalQuery, offset: int, limit: int) -> tuple[str, list[Any]]:
    """Terminals in attention order (fault, silent, degraded, healthy, revoked), then by site and id."""
    where, args = query.where()
    rank = RANK.format(state=STATE)
    return (f"SELECT {COLUMNS} FROM terminals{where} ORDER BY {rank}, coalesce(site, ''), id LIMIT ? OFFSET ?",
            [*args, query.silent_before, limit, offset])


def site_summaries(query: TerminalQuery, offset: int, limit: int) -> tuple[str, list[Any]]:
    """One row per site: its terminals by state; sites with faults first, then silent ones, then degraded."""
    where, args = query.where()
    counts = ", ".join(f"sum(CASE WHEN st = '{state}' THEN 1 ELSE 0 END) AS {state}" for state in STATES)
    return (f"SELECT site, count(*) AS terminals, {counts} FROM (SELECT coalesce(site, '') AS site, {STATE} AS st "
            f"FROM terminals{where}) t GROUP BY site ORDER BY fault DESC, silent DESC, degraded DESC, site LIMIT ? OFFSET ?",
            [query.silent_before, *args, limit, offset])


def state_totals(query: TerminalQuery) -> tuple[str, list[Any]]:
    """Matching terminals by state."""
    where, args = query.where()
    sql = f"SELECT st, count(*) AS n FROM (SELECT {STATE} AS st FROM terminals{where}) t GROUP BY st"
    return sql, [query.silent_before, *args]


def site_count(query: TerminalQuery) -> tuple[str, list[Any]]:
    """How many sites the matching terminals are in (terminals without a site count as one)."""
    where, args = query.where()
    return f"SELECT count(DISTINCT coalesce(site, '')) AS n FROM terminals{where}", args


def cause_counts(query: TerminalQuery) -> tuple[str, list[Any]]:
    """Matching terminals by the cause of their newest report (``none`` for a healthy one); revoked
    terminals and those never heard from are left out."""
    where, args = query.where()
    extra = "revoked_at IS NULL AND top_cause IS NOT NULL"
    where = f"{where} AND {extra}" if where else f" WHERE {extra}"
    cause = f"CASE WHEN verdict = '{Verdict.HEALTHY.value}' THEN 'none' ELSE top_cause END"
    return f"SELECT {cause} AS cause, count(*) AS n FROM terminals{where} GROUP BY {cause} ORDER BY n DESC, cause", args
