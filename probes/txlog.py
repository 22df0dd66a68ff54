"""The POS transaction log: 2824 events in a recent window, and what the host's ISO 8583 field-39
response codes say about *whose* fault failed payments are.

Account and issuer outcomes (declines) are not terminal faults, input errors are the operator's,
format errors are the software's, and host/network codes point past the terminal. The probe only
counts and classifies; the diagnosis engine weighs the counts against the other probes.

A POS log can hold card numbers, track data and secrets. The lines of the window are masked
(:mod:`posdiag.core.redact`) before the probe reads them for what it counts and quotes: nothing
unmasked reaches the report, and the codes are counted from the masked lines.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from posdiag.core import files
from posdiag.core.i18n import N_, N_plural, ntr, tr
from posdiag.core.redact import mask_text
from posdiag.probes._sandbox import hidden_path
from posdiag.probes.base import Observation, Probe, Status, declare
from posdiag.probes.gates import unconfigured

ERROR_2824 = "2824"
#: ISO 8583 field 39 response codes by whose outcome they are
RESPONSE_CLASSES = {
    "account": {"05", "14", "41", "43", "51", "54", "57", "61", "62", "65"},
    "input": {"13", "17", "19", "55", "75"},
    "format": {"12", "30"},
    "host": {"68", "91", "92", "96"},
}
#: response class → (finding code, its message for n responses with these codes in this window)
CLASS_FINDINGS = {
    "account": ("txlog.declines", N_plural(
        "the issuer declined {n} transaction for account reasons (codes {codes}) {window}",
        "the issuer declined {n} transactions for account reasons (codes {codes}) {window}")),
    "input": ("txlog.input_errors", N_plural(
        "{n} transaction failed on operator/cardholder input (codes {codes}) {window}",
        "{n} transactions failed on operator/cardholder input (codes {codes}) {window}")),
    "format": ("txlog.format_errors", N_plural(
        "the host rejected {n} message as malformed (codes {codes}) {window}",
        "the host rejected {n} messages as malformed (codes {codes}) {window}")),
    "host": ("txlog.host_errors", N_plural(
        "the host or network failed {n} transaction (codes {codes}) {window}",
        "the host or network failed {n} transactions (codes {codes}) {window}")),
}
TAIL_BYTES = 4 * 1024 * 1024  # never read more than the last 4 MiB of a log
REPEAT_WINDOW_S = 10.0
_TS_FORMATS = ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
               "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z", "%d.%m.%Y %H:%M:%S", "%d/%m/%Y %H:%M:%S")


@dataclass(frozen=True)
class TxEvent:
    ts: float | None  # seconds since the epoch; None when the stamp could not be read
    code: str
    response: str
    rest: str  # the line without its timestamp: identical attempts have identical rests
    line: str = ""  # the whole line (masked, for the events that are counted: see masked_events)


def parse_ts(text: str) -> float | None:
    text = text.strip().replace("Z", "+00:00") if text.endswith("Z") else text.strip()
    for fmt in _TS_FORMATS:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.timestamp() if parsed.tzinfo else parsed.astimezone().timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def parse_line(pattern: re.Pattern[str], line: str) -> TxEvent | None:
    match = pattern.search(line)
    if not match:
        return None
    groups = match.groupdict()
    ts_text = groups.get("ts") or ""
    rest = line.replace(ts_text, "", 1).strip() if ts_text else line.strip()
    return TxEvent(parse_ts(ts_text) if ts_text else None, (groups.get("code") or "").strip(),
                   (groups.get("response") or "").strip(), rest, line)


def masked_events(pattern: re.Pattern[str], lines: list[str], parsed: list[TxEvent | None],
                  since: float) -> list[TxEvent]:
    """The transactions of the window, read again from their masked lines: only those are counted and
    quoted. (Masking every line of a 4 MiB tail would cost far more than the few lines the window holds.)"""
    events = []
    for line, event in zip(lines, parsed, strict=True):
        if event is not None and (event.ts is None or event.ts >= since):
            masked = parse_line(pattern, mask_text(line))
            if masked is not None:
                events.append(masked)
    return events


def read_tail(path: str, max_bytes: int = TAIL_BYTES) -> list[str]:
    """Complete lines from the last ``max_bytes`` of a file; undecodable bytes become U+FFFD.

    A FIFO (which would block the open or the read) and a device such as /dev/zero (which never
    ends) raise :class:`~posdiag.core.files.NotRegularFile` unread.
    """
    data, cut = files.read_tail(path, max_bytes)
    lines = data.decode("utf-8", "replace").split("\n")
    if cut:
        lines = lines[1:]  # the first one is cut
    return [line for line in lines if line.strip()]


def classify(events: list[TxEvent]) -> dict[str, Counter]:
    out: dict[str, Counter] = {name: Counter() for name in RESPONSE_CLASSES}
    for ev in events:
        for name, codes in RESPONSE_CLASSES.items():
            if ev.response in codes:
                out[name][ev.response] += 1
    return out


def repeated_attempts(events: list[TxEvent], window_s: float = REPEAT_WINDOW_S) -> int:
    """Consecutive identical attempts within seconds of each other: a card swiped again and again."""
    repeats = 0
    for prev, cur in zip(events, events[1:], strict=False):
        if prev.ts is not None and cur.ts is not None and cur.rest == prev.rest and 0 <= cur.ts - prev.ts <= window_s:
            repeats += 1
    return repeats


class TxlogProbe(Probe):
    name = "txlog"
    description = N_("POS transaction log: 2824 events in the window; ISO 8583 response codes by kind (declines, input, "
                     "format, host)")
    findings = declare(warn=("txlog.declines", "txlog.errors_2824", "txlog.format_errors", "txlog.hidden_by_sandbox",
                             "txlog.host_errors", "txlog.input_errors", "txlog.missing", "txlog.not_regular",
                             "txlog.repeated_attempts", "txlog.unparsed"),
                       info=("txlog.undated",))

    def skip_reason(self) -> str | None:
        return unconfigured(self.name, self.settings)

    def check(self, obs: Observation) -> None:
        cfg = self.settings.txlog
        if not os.path.exists(cfg.path):
            self.report_missing(obs, cfg.path)
            return
        pattern = re.compile(cfg.pattern)
        since = time.time() - cfg.window_min * 60
        try:
            lines = read_tail(cfg.path)
        except files.NotRegularFile as exc:
            problem = tr("{path} is {kind}, not a regular file", path=cfg.path, kind=tr(exc.kind))
            obs.warn("txlog.not_regular", tr("transaction log {problem}: it is not read", problem=problem), path=cfg.path)
            return
        parsed = [parse_line(pattern, line) for line in lines]
        events = masked_events(pattern, lines, parsed, since)
        undated = sum(1 for e in events if e.ts is None)
        obs.metric("lines_read", len(lines))
        obs.metric("events_in_window", len(events))
        if undated:
            obs.info("txlog.undated", ntr("{n} line without a readable timestamp was counted as recent",
                                          "{n} lines without a readable timestamp were counted as recent", undated))
        if lines and not any(parsed):
            obs.warn("txlog.unparsed", tr("no line of {path} matches [txlog] pattern", path=cfg.path), path=cfg.path)
        failed = [e for e in events if e.code == ERROR_2824]
        n2824 = len(failed)
        obs.metric("errors_2824", n2824)
        window = tr("in the last {minutes:g} min", minutes=cfg.window_min)
        if n2824:  # payments are failing: whatever else is found, the terminal is not healthy
            obs.warn("txlog.errors_2824", ntr("{n} transaction failed with 2824 {window}",
                                              "{n} transactions failed with 2824 {window}", n2824, window=window),
                     count=n2824, last_line=failed[-1].line[:500])
        self.responses(obs, classify(events), window)
        repeats = repeated_attempts(events)
        obs.metric("repeated_attempts", repeats)
        if repeats >= 2:
            obs.warn("txlog.repeated_attempts", tr("{count} identical attempts repeated within {seconds:g} s {window}: "
                                                   "repeated swipes or retries", count=repeats, seconds=REPEAT_WINDOW_S,
                                                   window=window), count=repeats)
        if obs.status() is Status.OK:
            obs.summary = ntr("{n} transaction line {window}, {errors} with 2824",
                              "{n} transaction lines {window}, {errors} with 2824", len(events), window=window, errors=n2824)

    @staticmethod
    def report_missing(obs: Observation, path: str) -> None:
        """A log this process cannot see: hidden by the service's sandbox (and how to open it), or absent."""
        hidden = hidden_path(path)
        if hidden:
            obs.warn("txlog.hidden_by_sandbox", tr("transaction log {path} is hidden from this service by its sandbox "
                                                   "({setting}): {advice}", path=path, setting=hidden.setting,
                                                   advice=hidden.advice()), path=path, **hidden.data())
        else:
            obs.warn("txlog.missing", tr("transaction log {path} does not exist", path=path), path=path)

    @staticmethod
    def responses(obs: Observation, classes: dict[str, Counter], window: str) -> None:
        """One finding per class of response codes seen, each with its ``count`` out of all the
        ``classified`` codes: three host errors and one format error are three quarters the host's."""
        classified = sum(sum(counts.values()) for counts in classes.values())
        for name, counts in classes.items():
            n = sum(counts.values())
            obs.metric(f"responses_{name}", n)
            if n:
                code, words = CLASS_FINDINGS[name]
                codes = ", ".join(f"{c}×{k}" for k, c in sorted(counts.items()))
                obs.warn(code, ntr(*words, n, codes=codes, window=window), count=n, classified=classified,
                         codes=dict(counts))
