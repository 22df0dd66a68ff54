"""The read API (operators only): terminals, sites, reports, one report, incidents, risks ahead; plus
health and metrics.

Lists are newest first unless they say otherwise. ``?limit=`` bounds a page; ``?before=`` takes the
``next_before`` cursor of the previous page (or a plain time stamp), ``?offset=`` the ``next_offset``
of a list in attention order. Every filter runs in the database: a fleet of thousands is never sent
whole to find the few terminals that fail.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from posdiag.collector import incidents, intake, metrics
from posdiag.collector.auth import identify_reader
from posdiag.collector.ingest import refusal
from posdiag.collector.intake import Refused
from posdiag.collector.storage import StorageError
from posdiag.collector.storage.fleet import STATES, TerminalQuery
from posdiag.core.timefmt import parse_utc_iso, utc_iso
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

Handler = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("posdiag.collector")
#: a search longer than this is no terminal id or site name
MAX_SEARCH = 128


def _is_instant(text: str) -> bool:
    """A stamp is compared as text in SQL, so it must be one the time format reads, naming a real
    instant (not month 13 nor hour 25), or its window would be whatever the text comparison gives."""
    try:
        parse_utc_iso(text)
    except ValueError:
        return False
    return True


def _stamp(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and not _is_instant(value):
        raise Refused(400, f"?{name}= must be a UTC time stamp like 2026-11-29T10:15:02Z")
    return value


def _number(request: Request, name: str, default: float | None, low: float, high: float) -> float | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise Refused(400, f"?{name}= must be a number") from None
    if not low <= number <= high:
        raise Refused(400, f"?{name}= must lie between {low:g} and {high:g}")
    return number


def _before(request: Request) -> str | None:
    value = request.query_params.get("before")
    stamp = (value or "").partition("|")[0]
    if stamp and not _is_instant(stamp):
        raise Refused(400, "?before= takes a time stamp or the next_before cursor of the previous page")
    return value


def operator_only(handler: Handler) -> Handler:
    """Wrap a read so only operators get through: 401 without credentials, 403 for a terminal's."""

    async def guarded(request: Request) -> Response:
        collector = request.app.state.collector
        try:
            caller = await run_in_threadpool(identify_reader, collector.storage, collector.session_key,
                                             request.headers, request.cookies)
            if caller.kind in ("terminal", "revoked"):
                raise Refused(403, "a terminal token cannot read: use an operator token or sign in")
            if caller.kind != "operator":
                raise Refused(401, "sign in, or send Authorization: Bearer <operator token>")
            request.state.operator = caller.name  # who asks, for what is audited
            return await handler(request)
        except Refused as exc:
            return refusal(exc)

    guarded.__name__ = handler.__name__
    return guarded


def _query(request: Request, collector: Any, now: float) -> TerminalQuery:
    """The terminals a list or a summary is about: ``?site=``, ``?cause=``, ``?state=`` (comma-separated),
    ``?q=`` (a piece of a terminal id or site name), ``?silent_min=``."""
    q = request.query_params
    states = tuple(s for s in (q.get("state") or "").split(",") if s)
    unknown = [s for s in states if s not in STATES]
    if unknown:
        raise Refused(400, f"?state= takes {', '.join(STATES)} (comma-separated), not {unknown[0]!r}")
    search = (q.get("q") or "").strip()
    if len(search) > MAX_SEARCH:
        raise Refused(400, f"?q= is at most {MAX_SEARCH} characters")
    silent_min = _number(request, "silent_min", None, 0, 10**7)
    return TerminalQuery(silent_before=utc_iso(now - collector.settings.silent_after_min * 60), site=q.get("site"),
                         cause=q.get("cause") or None, states=states, search=search or None,
                         silent_since=utc_iso(now - silent_min * 60) if silent_min is not None else None)


def _terminal(row: dict[str, Any], silent_before: str) -> dict[str, Any]:
    """A terminal as the API shows it (one terminal's answer adds ``last_report_id``)."""
    return {"id": row["id"], "site": row["site"], "last_seen_at": row["last_seen_at"], "verdict": row["verdict"],
            "top_cause": row["top_cause"], "agent_version": row["agent_version"],
            "last_report_started_at": row["last_started_at"], "soonest_risk_at": _due(row.get("risk_due_at")),
            "silent": row["revoked_at"] is None and (row["last_seen_at"] is None or row["last_seen_at"] < silent_before),
            "revoked": row["revoked_at"] is not None}


@operator_only
async def terminals(request: Request) -> Response:
    collector = request.app.state.collector
    now = time.time()
    query = _query(request, collector, now)
    limit = int(_number(request, "limit", 1000, 1, 10000))  # type: ignore[arg-type] - a default is given
    order = request.query_params.get("order", "seen")
    if order not in ("seen", "state"):
        raise Refused(400, "?order= is seen (most recently heard from first) or state (faults, then silent terminals, …)")
    offset = int(_number(request, "offset", 0, 0, 10**7)) if order == "state" else None  # type: ignore[arg-type]
    rows = await run_in_threadpool(collector.storage.list_terminals, query, before=_before(request), limit=limit,
                                   offset=offset)
    answer: dict[str, Any] = {"terminals": [_terminal(r, query.silent_before) for r in rows],
                              "silent_after_min": collector.settings.silent_after_min, "now": utc_iso(now)}
    full = len(rows) == limit
    if offset is None:
        answer["next_before"] = f"{rows[-1]['last_seen_at'] or ''}|{rows[-1]['id']}" if full else None
    else:
        answer["next_offset"] = offset + limit if full else None
    return JSONResponse(answer)


@operator_only
async def sites(request: Request) -> Response:
    """Sites as summary rows (their matching terminals by state), sites with faults first; with the
    totals of the whole matching fleet and its terminals by cause."""
    collector = request.app.state.collector
    now = time.time()
    query = _query(request, collector, now)
    limit = int(_number(request, "limit", 100, 1, 1000))  # type: ignore[arg-type] - a default is given
    offset = int(_number(request, "offset", 0, 0, 10**7))  # type: ignore[arg-type] - a default is given

    def read() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return collector.storage.site_summaries(query, offset, limit), collector.storage.fleet_totals(query)

    rows, totals = await run_in_threadpool(read)
    return JSONResponse({"sites": rows, "totals": totals["terminals"], "site_count": totals["sites"],
                         "causes": totals["causes"], "next_offset": offset + limit if len(rows) == limit else None,
                         "silent_after_min": collector.settings.silent_after_min, "now": utc_iso(now)})


@operator_only
async def one_terminal(request: Request) -> Response:
    """One terminal, as the list shows it, with the report its state follows (the page's "latest
    diagnosis") and the server's clock (for "seen 2 min ago")."""
    collector = request.app.state.collector
    row = await run_in_threadpool(collector.storage.get_terminal, request.path_params["terminal_id"])
    if row is None:
        return JSONResponse({"error": "no such terminal"}, status_code=404)
    now = time.time()
    return JSONResponse({**_terminal(row, utc_iso(now - collector.settings.silent_after_min * 60)),
                         "last_report_id": row["last_report_id"], "silent_after_min": collector.settings.silent_after_min,
                         "now": utc_iso(now)})


@operator_only
async def reports(request: Request) -> Response:
    """Reports in the order that sets a terminal's state (see ``list_reports``): a terminal's first is
    the one its state follows, its ``last_report_id``."""
    collector = request.app.state.collector
    q = request.query_params
    limit = int(_number(request, "limit", 100, 1, 1000))  # type: ignore[arg-type] - a default is given
    before = _before(request)
    _, bar, key = (before or "").partition("|")
    if bar and not key.isdigit():
        raise Refused(400, "?before= takes a time stamp or the next_before cursor of the previous page")
    rows = await run_in_threadpool(
        collector.storage.list_reports, terminal=q.get("terminal"), site=q.get("site"), cause=q.get("cause"),
        since=_stamp(request, "since"), until=_stamp(request, "until"), before=before, limit=limit)
    cursor = f"{rows[-1]['state_at']}|{rows[-1]['seq']}" if len(rows) == limit else None
    return JSONResponse({"reports": [{k: v for k, v in row.items() if k != "seq"} for row in rows], "next_before": cursor})


@operator_only
async def report(request: Request) -> Response:
    body = await run_in_threadpool(request.app.state.collector.storage.get_report, request.path_params["report_id"])
    if body is None:
        return JSONResponse({"error": "no such report"}, status_code=404)
    return Response(body, media_type="application/json")


def _due(stamp: str | None) -> str | None:
    """A stored due time as the API shows it: None for none (and for a risk that names no time)."""
    return None if stamp is None or stamp == intake.NEVER else stamp


@operator_only
async def risks(request: Request) -> Response:
    """Every risk ahead of each terminal's newest report, fleet-wide, the soonest due first: what
    operations act on before it becomes a 2824. ``terminals`` counts every terminal at risk, also those
    past the limit, and ``risk_count`` the risks of the terminals listed before the list was cut, so
    that a page showing the first ones can say how many more there are."""
    collector = request.app.state.collector
    limit = int(_number(request, "limit", 1000, 1, 10000))  # type: ignore[arg-type] - a default is given
    site, terminal = request.query_params.get("site"), request.query_params.get("terminal")
    rows = await run_in_threadpool(collector.storage.at_risk, site=site, terminal=terminal, limit=limit)
    total = len(rows) if len(rows) < limit else await run_in_threadpool(collector.storage.at_risk_count, site=site,
                                                                            terminal=terminal)
    out = []
    for row in rows:
        for risk in json.loads(row["risks"] or "[]"):
            out.append({"terminal": row["id"], "site": row["site"], "report_started_at": row["last_started_at"],
                        **{k: risk.get(k) for k in RISK_KEYS}})
    out.sort(key=lambda r: (r["due_at"] or intake.NEVER, r["terminal"], r["code"] or ""))
    return JSONResponse({"risks": out[:limit], "risk_count": len(out), "terminals": total, "now": utc_iso(time.time())})


#: what the fleet's list says of each risk (the report's own words, in the terminal's language)
RISK_KEYS = ("code", "title", "subject", "message", "hours_left", "due_at", "rate", "rate_unit")


@operator_only
async def incidents_list(request: Request) -> Response:
    collector = request.app.state.collector
    s = collector.settings
    limit = int(_number(request, "limit", 100, 1, 1000))  # type: ignore[arg-type] - a default is given
    wanted = request.query_params.get("open")
    since, until = _stamp(request, "since"), _stamp(request, "until")

    def read() -> list[dict[str, Any]]:
        collector.keeper.catch_up()
        return collector.storage.incidents(since=since or utc_iso(time.time() - s.incident_lookback_h * 3600), until=until,
                                           state={"true": True, "false": False}.get(wanted or ""), limit=limit,
                                           recent=since is None)

    found = await run_in_threadpool(read)
    return JSONResponse({"incidents": [incidents.to_api(row) for row in found], "window_min": s.incident_window_min,
                         "site_min_terminals": s.site_min_terminals, "fleet_min_sites": s.fleet_min_sites})


async def healthz(request: Request) -> Response:
    """For load balancers: no credentials, so nothing about the database beyond whether it answers."""
    collector = request.app.state.collector
    try:
        version = await run_in_threadpool(collector.storage.schema_version)
    except StorageError as exc:
        log.warning("health check: the database does not answer: %s", exc)
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok", "backend": collector.storage.backend, "schema_version": version})


def _metrics_text(collector: Any) -> str:
    collector.keeper.catch_up()
    silent_since = utc_iso(time.time() - collector.settings.silent_after_min * 60)
    workers = {"pruned": collector.pruner.pruned, "alerts": collector.alerter.results if collector.alerter else None}
    return metrics.render(collector.received.snapshot(), collector.storage.verdict_counts(silent_since),
                          collector.storage.open_incident_counts(), workers)


async def metrics_text(request: Request) -> Response:
    """Prometheus text. Cheap at any fleet size: counts of terminals and open incidents, no report read."""
    try:
        text = await run_in_threadpool(_metrics_text, request.app.state.collector)
    except StorageError as exc:
        log.warning("metrics: the database does not answer: %s", exc)
        return PlainTextResponse("database unavailable\n", status_code=503)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
