"""Turning a POST body into a report, or into the reason it is refused.

The body is bounded twice: on the wire (``max_body_bytes``, checked while it streams in) and once
inflated (``max_report_bytes``). gzip is inflated in steps that never produce more than the cap plus
one byte, so a gzip bomb costs at most the cap in memory before it is refused.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from typing import Any

from posdiag.collector import schema
from posdiag.core.timefmt import parse_utc_iso, utc_iso
from posdiag.core.vocabulary import Trigger

CHUNK = 64 * 1024
#: how far ahead of the collector's clock a report may say it started (a terminal's clock may be off)
MAX_AHEAD_S = 86400
#: how far from its report's start a risk may be due: the furthest warning an agent gives is a year
#: (``cert_warn_days`` is at most 365); a time beyond would sort before or after every real risk
MAX_RISK_S = 366 * 86400


class Refused(Exception):
    """A request the server will not store: an HTTP status and a reason for the sender."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class Report:
    """A valid report and the fields the server indexes."""

    data: dict[str, Any]
    text: str
    report_id: str
    terminal_id: str
    site: str
    started_at: str
    verdict: str
    top_cause: str
    agent_version: str
    #: the operator's diagnose request this report answers (a ``remote`` report only), else None
    request_id: str | None = None
    #: the report's risks ahead as JSON text (None: none, or an agent that knows none) and the soonest due
    risks: str | None = None
    risk_due_at: str | None = None


def gunzip_capped(body: bytes, cap: int) -> bytes:
    """Inflate a gzip body, refusing (413) as soon as it would exceed ``cap`` bytes."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = bytearray()
    data = body
    try:
        while data:
            out += inflater.decompress(data, cap + 1 - len(out))
            if len(out) > cap:
                raise Refused(413, f"report too large: more than {cap} bytes once decompressed")
            data = inflater.unconsumed_tail
        out += inflater.flush(cap + 1 - len(out)) if not inflater.eof else b""
    except zlib.error as exc:
        raise Refused(400, f"malformed gzip body: {exc}") from None
    if len(out) > cap:
        raise Refused(413, f"report too large: more than {cap} bytes once decompressed")
    if not inflater.eof:
        raise Refused(400, "malformed gzip body: truncated (no end of stream)")
    if inflater.unused_data:
        raise Refused(400, "malformed gzip body: trailing data after the gzip stream")
    return bytes(out)


def _no_constant(name: str) -> None:
    """NaN and Infinity are not JSON: a report carrying them could not be read back by a browser."""
    raise ValueError(f"{name} is not a JSON number")


def decode(body: bytes, content_encoding: str, cap: int) -> Report:
    """The report in ``body``; raises :class:`Refused` with 400 or 413 and the reason."""
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        raw = gunzip_capped(body, cap)
    elif encoding in ("", "identity"):
        if len(body) > cap:
            raise Refused(413, f"report too large: more than {cap} bytes")
        raw = body
    else:
        raise Refused(415, f"unsupported Content-Encoding {content_encoding!r}: send gzip or plain JSON")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise Refused(400, "malformed JSON: nested too deeply") from None
    reason = schema.problem(data)
    if reason:
        raise Refused(400, f"not a valid {schema.SCHEMA_ID} report: {reason}")
    causes = data["diagnosis"]["causes"]
    risks = data.get("risks") or []
    due = sorted(r["due_at"] for r in risks if isinstance(r.get("due_at"), str))
    return Report(data=data, text=raw.decode("utf-8"), report_id=data["report_id"],
                  terminal_id=data["terminal"]["id"], site=data["terminal"]["site"], started_at=data["started_at"],
                  verdict=data["diagnosis"]["verdict"], top_cause=causes[0]["id"], agent_version=data["agent_version"],
                  request_id=data.get("request_id") if data["trigger"] == Trigger.REMOTE else None,
                  risks=json.dumps(risks, ensure_ascii=False) if risks else None,
                  risk_due_at=due[0] if due else (NEVER if risks else None))




#: the due time of risks that name none (sorts after every real one)
NEVER = "9999-12-31T23:59:59Z"


def check_time(report: Report, now: float, retain_days: float) -> None:
    """Refuse (400) a ``started_at`` that is no real instant, lies more than a day ahead of ``now``, or
    is older than the retention (expired: it would be pruned at once); and a risk's impossible ``due_at``."""
    try:
        started = parse_utc_iso(report.started_at)
    except ValueError:
        raise Refused(400, f"$.started_at: {report.started_at!r} is not a real UTC instant") from None
    if started > now + MAX_AHEAD_S:
        raise Refused(400, f"$.started_at: {report.started_at} is more than a day ahead of the collector's clock "
                           f"({utc_iso(now)}): check the terminal's clock")
    if started < now - retain_days * 86400:
        raise Refused(400, f"$.started_at: {report.started_at} has expired: the collector keeps reports for "
                           f"{retain_days:g} days")
    _check_due(report, started)


def _check_due(report: Report, started: float) -> None:
    """Refuse (400) a risk whose ``due_at`` is no real instant or lies more than a year from the report's
    start: it would show as no time at all, or head the fleet's "at risk" list for ever."""
    for n, risk in enumerate(report.data.get("risks") or []):
        due = risk.get("due_at")
        if not isinstance(due, str):
            continue  # a risk that names no time sorts last, as documented
        try:
            at = parse_utc_iso(due)
        except ValueError:
            raise Refused(400, f"$.risks[{n}].due_at: {due!r} is not a real UTC instant") from None
        if abs(at - started) > MAX_RISK_S:
            raise Refused(400, f"$.risks[{n}].due_at: {due} is more than a year from the report's started_at "
                               f"({report.started_at})")
