"""Remote requests over HTTP: operators ask a terminal for a diagnosis or a support bundle, the
terminal (behind NAT, so it asks) fetches its open requests and answers them.

Operators (bearer token or the page's session): ``POST /api/v1/terminals/{id}/requests``,
``GET /api/v1/terminals/{id}/requests``, ``GET /api/v1/requests/{request_id}`` and the bundle's
download. The ask must be JSON (``Content-Type: application/json``): a form another site posts with
the operator's cookie cannot be one. Terminals (their own token only): ``GET
/api/v1/requests/pending``, ``PUT /api/v1/requests/{request_id}/bundle`` and ``POST
/api/v1/requests/{request_id}/failure``; a diagnosis is answered by the report itself, pushed as usual
with ``"request_id"`` in it. A terminal never learns whether another terminal's request exists: it
is told 404, as for one that does not.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from posdiag.collector.auth import bearer, identify_token
from posdiag.collector.ingest import read_capped, refusal
from posdiag.collector.intake import Refused
from posdiag.collector.read_api import _number, operator_only
from posdiag.collector.storage import Overloaded
from posdiag.collector.storage.requests import KINDS, visible_state
from posdiag.core.timefmt import compact_stamp, parse_utc_iso, utc_iso
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = logging.getLogger("posdiag.collector")

MAX_SMALL_BODY = 4096
MAX_ERROR_CHARS = 500
GZIP_MAGIC = b"\x1f\x8b"
#: what an answer to a terminal's bundle or failure means: (HTTP status, what it is told)
ANSWERS = {"done": (201, "done"), "failed": (200, "failed"), "already-done": (200, "done"),
           "already-failed": (200, "failed"), "unknown": (404, "no such request for this terminal"),
           "wrong-kind": (409, "this request asks for something else"), "expired": (410, "this request has expired")}


def request_json(row: dict[str, Any], now: str) -> dict[str, Any]:
    """A request as the API shows it; ``report_id``, ``bundle_url`` and ``error`` only when there is one."""
    state = visible_state(row, now)
    out = {key: row[key] for key in ("request_id", "terminal_id", "kind", "created_at", "requested_by", "expires_at",
                                     "delivered_at", "finished_at")}
    out["state"] = state
    if row["report_id"]:
        out["report_id"] = row["report_id"]
    if row["kind"] == "bundle" and state == "done":
        out["bundle_url"] = f"/api/v1/requests/{row['request_id']}/bundle"
    if row["error"]:
        out["error"] = row["error"]
    return out


async def _small_json(request: Request) -> dict[str, Any]:
    """A small JSON object body, or :class:`Refused` saying what is wrong with it."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        raise Refused(415, "send the request as JSON (Content-Type: application/json)")
    body = await read_capped(request, MAX_SMALL_BODY)
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed JSON") from None
    if not isinstance(data, dict):
        raise Refused(400, "expected a JSON object")
    return data


# --- operators ------------------------------------------------------------------------------------------
@operator_only
async def ask(request: Request) -> Response:
    """``POST /api/v1/terminals/{id}/requests`` ``{"kind": "diagnose"|"bundle"}`` → 202 and the request."""
    collector = request.app.state.collector
    terminal_id = request.path_params["terminal_id"]
    try:
        kind = (await _small_json(request)).get("kind")
        if kind not in KINDS:
            raise Refused(400, f"kind must be one of {', '.join(KINDS)}")
        expires = utc_iso(time.time() + collector.settings.request_expiry_min * 60)
        outcome, row = await run_in_threadpool(collector.storage.create_request, terminal_id, kind,
                                               request.state.operator, expires)
    except Refused as exc:
        return refusal(exc)
    except Overloaded as exc:
        return refusal(Refused(503, f"overloaded: {exc}; retry later", retry_after=1))
    if outcome == "no-terminal":
        return JSONResponse({"error": "no such terminal"}, status_code=404)
    if outcome == "revoked":
        return JSONResponse({"error": "this terminal's token is revoked: it cannot fetch requests"}, status_code=409)
    assert row is not None
    log.info("remote request %s (%s) for %s asked by %s%s", row["request_id"], kind, terminal_id, request.state.operator,
             "" if outcome == "created" else " (already open: the same request)")
    return JSONResponse(request_json(row, utc_iso(time.time())), status_code=202)


@operator_only
async def terminal_requests(request: Request) -> Response:
    """``GET /api/v1/terminals/{id}/requests``: newest first, ``?limit=`` up to 500 [50]."""
    collector = request.app.state.collector
    try:
        limit = int(_number(request, "limit", 50, 1, 500))  # type: ignore[arg-type] - a default is given
    except Refused as exc:
        return refusal(exc)
    rows = await run_in_threadpool(collector.storage.list_requests, request.path_params["terminal_id"], limit=limit)
    now = utc_iso(time.time())
    return JSONResponse({"requests": [request_json(row, now) for row in rows], "now": now})


def _one(storage: Any, request_id: str) -> dict[str, Any] | None:
    row = storage.get_request(request_id)
    if row is None:
        return None
    out = request_json(row, utc_iso(time.time()))
    bundle = storage.bundle_info(request_id) if "bundle_url" in out else None
    if bundle:
        out["bundle_bytes"] = bundle["size"]
        out["bundle_sha256"] = bundle["sha256"]
    out["events"] = storage.request_events(request_id)
    return out


@operator_only
async def one_request(request: Request) -> Response:
    """``GET /api/v1/requests/{request_id}``: the request, its bundle's size and its audit trail."""
    found = await run_in_threadpool(_one, request.app.state.collector.storage, request.path_params["request_id"])
    if found is None:
        return JSONResponse({"error": "no such request"}, status_code=404)
    return JSONResponse(found)


@operator_only
async def download_bundle(request: Request) -> Response:
    """``GET /api/v1/requests/{request_id}/bundle``: the terminal's bundle as it uploaded it (audited)."""
    bundle = await run_in_threadpool(request.app.state.collector.storage.fetch_bundle, request.path_params["request_id"],
                                     request.state.operator)
    if bundle is None:
        return JSONResponse({"error": "no bundle for this request"}, status_code=404)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", bundle["terminal_id"])
    filename = f"posdiag-bundle-{name}-{compact_stamp(parse_utc_iso(bundle['received_at']))}.tar.gz"
    return Response(bundle["body"], media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


# --- terminals ------------------------------------------------------------------------------------------
async def _terminal(request: Request) -> str:
    """The terminal whose token this is, or :class:`Refused` (401 unknown or revoked, 403 an operator's)."""
    token = bearer(request.headers)
    if token is None:
        raise Refused(401, "missing Authorization: Bearer <terminal token>")
    caller = await run_in_threadpool(identify_token, request.app.state.collector.storage, token, True)
    if caller.kind == "operator":
        raise Refused(403, "an operator token cannot fetch or answer a terminal's requests")
    if caller.kind == "revoked":
        raise Refused(401, "this terminal's token has been revoked")
    if caller.kind != "terminal":
        raise Refused(401, "unknown token")
    return caller.name


async def pending(request: Request) -> Response:
    """``GET /api/v1/requests/pending``: this terminal's open requests, oldest first (now delivered)."""
    try:
        terminal_id = await _terminal(request)
        rows = await run_in_threadpool(request.app.state.collector.storage.deliver_requests, terminal_id)
    except Refused as exc:
        return refusal(exc)
    except Overloaded as exc:
        return refusal(Refused(503, f"overloaded: {exc}; retry later", retry_after=5))
    return JSONResponse({"requests": rows})


async def _answer(request: Request, kind: str | None, **answer: Any) -> Response:
    terminal_id = request.state.terminal
    request_id = request.path_params["request_id"]
    try:
        outcome = await run_in_threadpool(request.app.state.collector.storage.answer_request, request_id, terminal_id,
                                          kind, **answer)
    except Overloaded as exc:
        return refusal(Refused(503, f"overloaded: {exc}; retry later", retry_after=5))
    status, said = ANSWERS[outcome]
    if status >= 400:
        return JSONResponse({"error": said}, status_code=status)
    if outcome in ("done", "failed"):
        log.info("remote request %s of %s: %s%s", request_id, terminal_id, outcome,
                 f" ({answer['error']})" if outcome == "failed" else "")
    return JSONResponse({"request_id": request_id, "state": said}, status_code=status)


async def upload_bundle(request: Request) -> Response:
    """``PUT /api/v1/requests/{request_id}/bundle``: the bundle (gzip tar), at most ``--max-bundle-bytes``."""
    try:
        request.state.terminal = await _terminal(request)
        body = await read_capped(request, request.app.state.collector.settings.max_bundle_bytes)
        if not body.startswith(GZIP_MAGIC):
            raise Refused(400, "a bundle is a gzip tar archive: this body is not gzip")
    except Refused as exc:
        return refusal(exc)
    return await _answer(request, "bundle", bundle=body)


async def failure(request: Request) -> Response:
    """``POST /api/v1/requests/{request_id}/failure`` ``{"error": "…"}``: the terminal could not do it."""
    try:
        request.state.terminal = await _terminal(request)
        error = (await _small_json(request)).get("error")
        if not isinstance(error, str) or not error.strip():
            raise Refused(400, "expected {\"error\": \"what went wrong\"}")
    except Refused as exc:
        return refusal(exc)
    return await _answer(request, None, error=" ".join(error.split())[:MAX_ERROR_CHARS])
