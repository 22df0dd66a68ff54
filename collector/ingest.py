"""``POST /api/v1/reports``: authenticate, bound, decode, validate and store once.

Every refusal says why in a JSON ``{"error": …}`` body and stores nothing. The order of checks is the
cheapest first: credentials present, declared size, streamed size, then (in a worker thread, with
the database) the token, the body, the terminal it speaks for, the time it says it ran, and the insert.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from posdiag.collector import intake
from posdiag.collector.auth import bearer, identify_token
from posdiag.collector.intake import Refused
from posdiag.collector.storage import Overloaded
from posdiag.core.timefmt import utc_iso
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

log = logging.getLogger("posdiag.collector")


def refusal(exc: Refused) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return JSONResponse({"error": exc.reason}, status_code=exc.status, headers=headers)


async def read_capped(request: Request, cap: int) -> bytes:
    """The body, refused with 413 as soon as more than ``cap`` bytes arrive (whatever Content-Length said)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        raise Refused(413, f"body too large: {declared} bytes, the limit is {cap}")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > cap:
            raise Refused(413, f"body too large: more than {cap} bytes, the limit is {cap}")
    return bytes(chunks)


def accept(collector: Any, token: str, body: bytes, encoding: str) -> tuple[int, dict[str, Any]]:
    """The blocking part, run in a worker thread: the status and JSON answer for one report."""
    caller = identify_token(collector.storage, token, terminal_first=True)
    if caller.kind == "operator":
        raise Refused(403, "an operator token cannot post reports: use the terminal's own token")
    if caller.kind == "revoked":
        raise Refused(401, "this terminal's token has been revoked")
    if caller.kind != "terminal":
        raise Refused(401, "unknown token")
    report = intake.decode(body, encoding, collector.settings.max_report_bytes)
    if report.terminal_id != caller.name:
        raise Refused(403, f"this token belongs to terminal {caller.name!r}, the report is of {report.terminal_id!r}")
    now = time.time()
    intake.check_time(report, now, collector.settings.retain_days)
    result, _ = collector.storage.store_report(report, received=utc_iso(now))
    if result == "stored":
        return 201, {"status": "stored", "report_id": report.report_id}
    if result == "duplicate":
        return 200, {"status": "duplicate", "report_id": report.report_id}
    raise Refused(409, f"report_id {report.report_id} is already used by another terminal's report")


async def post_report(request: Request) -> JSONResponse:
    collector = request.app.state.collector
    try:
        if collector.inflight >= collector.settings.max_inflight:
            raise Refused(429, "too many reports at once: retry later", retry_after=2)
        collector.inflight += 1
        try:
            token = bearer(request.headers)
            if token is None:
                raise Refused(401, "missing Authorization: Bearer <terminal token>")
            body = await read_capped(request, collector.settings.max_body_bytes)
            status, answer = await run_in_threadpool(accept, collector, token, body,
                                                     request.headers.get("content-encoding", ""))
        finally:
            collector.inflight -= 1
    except Refused as exc:
        collector.received.count(exc.status)
        if exc.status not in (401, 429):
            log.info("report refused (%d): %s", exc.status, exc.reason)
        return refusal(exc)
    except Overloaded as exc:
        collector.received.count(503)
        return refusal(Refused(503, f"overloaded: {exc}; retry later", retry_after=1))
    collector.received.count(status)
    return JSONResponse(answer, status_code=status)
