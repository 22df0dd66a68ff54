"""The read API (operators only): terminals, reports, one report, incidents, risks ahead; plus health
and metrics.

Every list is newest first. ``?limit=`` bounds a page; ``?before=`` takes the ``next_before`` cursor of
the previous page (or a plain time stamp).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from posdiag.collector import incidents, intake, metrics
from posdiag.collector.auth import identify_reader
from posdiag.collector.ingest import refusal
from posdiag.collector.intake import Refused
from posdiag.collector.storage import StorageError
from posdiag.core.timefmt import utc_iso
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
Handler = Callable[[Request], Awaitable[Response]]


def iso(epoch: float) -> str:
    return utc_iso(epoch)


def _stamp(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    if value is not None and not STAMP.match(value):
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
    if stamp and not STAMP.match(stamp):
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


def _terminal(row: dict[str, Any], silent_before: str) -> dict[str, Any]:
    return {"id": row["id"], "site": row["site"], "last_seen_at": row["last_seen_at"], "verdict": row["verdict"],
            "top_cause": row["top_cause"], "agent_version": row["agent_version"],
            "last_report_started_at": row["last_started_at"], "soonest_risk_at": _due(row.get("risk_due_at")),
            "silent": row["revoked_at"] is None and (row["last_seen_at"] is None or row["last_seen_at"] < silent_before),
            "revoked": row["revoked_at"] is not None}


@operator_only
async def terminals(request: Request) -> Response:
    collector = request.app.state.collector
    silent_min = _number(request, "silent_min", None, 0, 10**7)
    limit = int(_number(request, "limit", 1000, 1, 10000))  # type: ignore[arg-type] - a default is given
    now = time.time()
    rows = await run_in_threadpool(
        collector.storage.list_terminals, site=request.query_params.get("site"), cause=request.query_params.get("cause"),
        silent_since=iso(now - silent_min * 60) if silent_min is not None else None, before=_before(request), limit=limit)
    silent_before = iso(now - collector.settings.silent_after_min * 60)
    out = [_terminal(r, silent_before) for r in rows]
    cursor = f"{rows[-1]['last_seen_at'] or ''}|{rows[-1]['id']}" if len(rows) == limit else None
    return JSONResponse({"terminals": out, "silent_after_min": collector.settings.silent_after_min, "next_before": cursor,
                         "now": iso(now)})


@operator_only
async def one_terminal(request: Request) -> Response:
    """One terminal, as the list shows it, with the server's clock (for "seen 2 min ago")."""
    collector = request.app.state.collector
    row = await run_in_threadpool(collector.storage.get_terminal, request.path_params["terminal_id"])
    if row is None:
        return JSONResponse({"error": "no such terminal"}, status_code=404)
    now = time.time()
    return JSONResponse({**_terminal(row, iso(now - collector.settings.silent_after_min * 60)),
                         "silent_after_min": collector.settings.silent_after_min, "now": iso(now)})


@operator_only
async def reports(request: Request) -> Response:
    collector = request.app.state.collector
    q = request.query_params
    limit = int(_number(request, "limit", 100, 1, 1000))  # type: ignore[arg-type] - a default is given
    rows = await run_in_threadpool(
        collector.storage.list_reports, terminal=q.get("terminal"), site=q.get("site"), cause=q.get("cause"),
        since=_stamp(request, "since"), until=_stamp(request, "until"), before=_before(request), limit=limit)
    cursor = f"{rows[-1]['started_at']}|{rows[-1]['report_id']}" if len(rows) == limit else None
    return JSONResponse({"reports": rows, "next_before": cursor})


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
    operations act on before it becomes a 2824."""
    collector = request.app.state.collector
    limit = int(_number(request, "limit", 1000, 1, 10000))  # type: ignore[arg-type] - a default is given
    rows = await run_in_threadpool(collector.storage.at_risk, site=request.query_params.get("site"),
                                   terminal=request.query_params.get("terminal"), limit=limit)
    out = []
    for row in rows:
        for risk in json.loads(row["risks"] or "[]"):
            out.append({"terminal": row["id"], "site": row["site"], "report_started_at": row["last_started_at"],
                        **{k: risk.get(k) for k in RISK_KEYS}})
    out.sort(key=lambda r: (r["due_at"] or intake.NEVER, r["terminal"], r["code"] or ""))
    return JSONResponse({"risks": out[:limit], "terminals": len(rows), "now": iso(time.time())})


#: what the fleet's list says of each risk (the report's own words, in the terminal's language)
RISK_KEYS = ("code", "title", "subject", "message", "hours_left", "due_at", "rate", "rate_unit")


def current_incidents(collector: Any, since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    """Incidents among reports started since ``since`` (default: the configured look-back)."""
    settings = collector.settings
    since = since or iso(time.time() - settings.incident_lookback_h * 3600)
    rows = collector.storage.faults(since, until)
    return incidents.find(rows, collector.storage.terminal_states(), window_min=settings.incident_window_min,
                          site_min_terminals=settings.site_min_terminals, fleet_min_sites=settings.fleet_min_sites)


@operator_only
async def incidents_list(request: Request) -> Response:
    collector = request.app.state.collector
    limit = int(_number(request, "limit", 100, 1, 1000))  # type: ignore[arg-type] - a default is given
    found = await run_in_threadpool(current_incidents, collector, _stamp(request, "since"), _stamp(request, "until"))
    wanted = request.query_params.get("open")
    if wanted in ("true", "false"):
        found = [i for i in found if i["open"] == (wanted == "true")]
    s = collector.settings
    return JSONResponse({"incidents": found[:limit], "window_min": s.incident_window_min,
                         "site_min_terminals": s.site_min_terminals, "fleet_min_sites": s.fleet_min_sites})


async def healthz(request: Request) -> Response:
    collector = request.app.state.collector
    try:
        version = await run_in_threadpool(collector.storage.schema_version)
    except StorageError as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    return JSONResponse({"status": "ok", "backend": collector.storage.backend, "schema_version": version})


def _metrics_text(collector: Any) -> str:
    silent_since = iso(time.time() - collector.settings.silent_after_min * 60)
    return metrics.render(collector.received.snapshot(), collector.storage.verdict_counts(silent_since),
                          current_incidents(collector))


async def metrics_text(request: Request) -> Response:
    text = await run_in_threadpool(_metrics_text, request.app.state.collector)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
