"""One status exchange with a reader over an open port: send, then classify what comes back.

Outcomes: ``ok``, ``no_reply``, ``garbage``, ``nak`` (refused every try), ``bad_lrc`` (every frame
corrupt), ``unexpected`` (well-framed but not the expected reply). Retries are bounded: NAK and a
bad LRC are retried up to ``retries`` times, silence once.

Silence: the reader has the configured timeout to start answering, and no longer. The request goes
out once more when three quarters of it have passed in silence, so that a reader that lost the first
request to line noise (it answers a status request in milliseconds) still answers within the last
quarter; a dead reader is reported after one timeout. A late answer to the first request still counts
(its latency from the first send): a reader slower than three quarters of its timeout but within it
passes, and is reported as slow where it is. Should it then answer the repeated request too, that
second answer is read and dropped before the port is closed, so it cannot land in the next exchange
and pass for a fast reply. Once the first byte of an answer has arrived, the reader gets a whole
timeout to finish its frame.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol as Typing

from posdiag.core.i18n import tr
from posdiag.probes.reader._framing import ACK, EOT, NAK, describe
from posdiag.probes.reader._protocols import Protocol


class Port(Typing):
    timeout: float | None

    def write(self, data: bytes) -> int | None: ...
    def read(self, size: int = 1) -> bytes: ...
    def reset_input_buffer(self) -> None: ...


@dataclass
class Exchange:
    outcome: str
    latency_ms: float | None = None
    payload: bytes = b""
    received: bytes = b""
    attempts: int = 0
    naks: int = 0
    bad_lrcs: int = 0
    serial: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def shown(self) -> str:
        return describe(self.received)


class _Reader:
    """Reads from the port against one deadline, keeping everything received for the report."""

    def __init__(self, port: Port, ex: Exchange) -> None:
        self.port, self.ex = port, ex

    def byte(self, deadline: float) -> int | None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.port.timeout = remaining
        data = self.port.read(1)
        if not data:
            return None
        self.ex.received += data
        return data[0]

    def drain(self, quiet_s: float = 0.05) -> None:
        """Collect what else the reader is sending, for the report, until it goes quiet."""
        while self.byte(time.monotonic() + quiet_s) is not None and len(self.ex.received) < 256:
            pass


def discard_duplicate(port: Port, ex: Exchange, resent_at: float, started: float, limit_s: float) -> None:
    """The reader answered the first request after the second went out: it will answer the second
    as well, about as long after the first answer as that took. Read that answer and drop it
    (bounded by ``limit_s``: a reader that takes up to its timeout to answer needs that long again)."""
    latency_s = (ex.latency_ms or 0.0) / 1000
    # A reader answers one request at a time: the second answer follows the first by its latency.
    deadline = min(time.monotonic() + limit_s, max(resent_at, started + latency_s) + latency_s + 0.15)
    dropped = 0
    while (remaining := deadline - time.monotonic()) > 0:
        port.timeout = min(remaining, 0.05) if dropped else remaining
        data = port.read(64)
        if not data and dropped:
            break  # quiet after the duplicate: it is all in
        dropped += len(data)
    if dropped:
        ex.notes.append(tr("the reader also answered the repeated request ({size} bytes, dropped)", size=dropped))


def exchange(port: Port, proto: Protocol, timeout_s: float, retries: int = 3) -> Exchange:
    port.reset_input_buffer()
    return _framed(port, proto, timeout_s, retries) if proto.framing else _raw(port, proto, timeout_s)


def _raw(port: Port, proto: Protocol, timeout_s: float) -> Exchange:
    ex = Exchange("no_reply")
    rd = _Reader(port, ex)
    started = resent_at = time.monotonic()
    for attempt in range(2):  # one retry on silence
        ex.attempts = attempt + 1
        resent_at = time.monotonic()
        port.write(proto.request)
        first = rd.byte(time.monotonic() + _first_byte_wait(timeout_s, ex.attempts))
        if first is None:
            continue
        ex.latency_ms = (time.monotonic() - started) * 1000
        # Read on until the reply matches or the reader falls quiet.
        while not (proto.expect_hex and proto.expect_hex.search(ex.received.hex())):
            if rd.byte(time.monotonic() + 0.05) is None or len(ex.received) >= 256:
                break
        reply = ex.received
        if proto.expect_hex and proto.expect_hex.search(reply.hex()):
            ex.outcome, ex.payload = "ok", reply
        elif reply[:1] == bytes([NAK]):
            ex.outcome = "nak"
        else:
            ex.outcome = "unexpected" if proto.expect_hex else "ok"
            ex.payload = reply
        if ex.attempts > 1 and ex.outcome != "nak":
            discard_duplicate(port, ex, resent_at, started, timeout_s)
        return ex
    return ex


def _framed(port: Port, proto: Protocol, timeout_s: float, retries: int) -> Exchange:
    return _FramedSession(port, proto, timeout_s, retries).run()


#: Share of the timeout the repeated request gets after the first one met silence (the first gets the rest).
RETRY_SHARE = 0.25


def _first_byte_wait(timeout_s: float, attempt: int) -> float:
    return timeout_s * (1 - RETRY_SHARE) if attempt <= 1 else timeout_s * RETRY_SHARE


#: What one reply leaves the framed session to do next.
_DONE, _RESEND, _AWAIT = "done", "resend", "await"


class _FramedSession:
    """STX/ETX (or SI/SO) with an LRC: a NAK asks again, a bad LRC is NAKed so the reader repeats
    its frame, silence is retried once, and everything else ends the exchange with its outcome."""

    def __init__(self, port: Port, proto: Protocol, timeout_s: float, retries: int) -> None:
        assert proto.framing is not None
        self.port, self.proto, self.framing = port, proto, proto.framing
        self.timeout_s, self.retries = timeout_s, retries
        self.ex = Exchange("no_reply")
        self.rd = _Reader(port, self.ex)
        self.silent_tries = 0
        self.started = time.monotonic()
        self.resent_at: float | None = None  # when the request went out again after silence

    def run(self) -> Exchange:
        step = _RESEND
        # a NAKed frame's repeat is always read: judge() bounds those retries itself
        while step == _AWAIT or self.ex.attempts < self.retries + 1:
            if step == _RESEND:
                self.send_request()
            step = self.one_reply(time.monotonic() + _first_byte_wait(self.timeout_s, self.silent_tries + 1))
            if step == _DONE:
                if self.resent_at is not None and self.ex.latency_ms is not None:
                    discard_duplicate(self.port, self.ex, self.resent_at, self.started, self.timeout_s)
                return self.ex
        return self.ex

    def send_request(self) -> None:
        self.ex.attempts += 1
        if self.ex.attempts == 1:
            self.started = time.monotonic()  # a late reply answers the first request: time from there
        self.port.write(self.framing.encode(self.proto.request))

    def end(self, outcome: str, note: str | None = None) -> str:
        self.ex.outcome = outcome
        if note:
            self.ex.notes.append(note)
        return _DONE

    def one_reply(self, first_byte_by: float) -> str:
        ex = self.ex
        first = self.rd.byte(first_byte_by)
        if first is None:
            self.silent_tries += 1
            if self.silent_tries > 1:
                return self.end("no_reply")
            self.resent_at = time.monotonic()
            return _RESEND
        deadline = time.monotonic() + self.timeout_s  # the reader is answering: a whole timeout to finish
        if ex.latency_ms is None:
            ex.latency_ms = (time.monotonic() - self.started) * 1000
        if first == NAK:
            ex.naks += 1
            ex.outcome = "nak"
            return _RESEND
        if first == ACK:
            first = self.rd.byte(deadline)
            if first is None:
                return self.end("no_reply", tr("reader acknowledged the request but sent no reply"))
        if first == EOT:
            return self.end("unexpected", tr("reader ended the session (EOT) instead of replying"))
        if first != self.framing.begin:
            self.rd.drain()
            return self.end("garbage")
        frame = self.read_frame(first, deadline)
        return self.judge(frame) if frame is not None else _DONE

    def read_frame(self, first: int, deadline: float) -> bytes | None:
        """The frame from its begin byte through its LRC byte, or None (outcome set) when cut off."""
        body = bytes([first])
        while True:
            b = self.rd.byte(deadline)
            if b is None:
                self.end("garbage", tr("frame cut off before its end byte"))
                return None
            body += bytes([b])
            if b == self.framing.end:
                break
            if len(body) > 1024:
                self.end("garbage")
                return None
        lrc_byte = self.rd.byte(deadline)
        if lrc_byte is None:
            self.end("garbage", tr("frame without its LRC byte"))
            return None
        return body + bytes([lrc_byte])

    def judge(self, frame: bytes) -> str:
        ex = self.ex
        payload, lrc_ok = self.framing.check(frame)
        if not lrc_ok:
            ex.bad_lrcs += 1
            ex.outcome = "bad_lrc"
            if ex.bad_lrcs > self.retries:
                return _DONE
            self.port.write(bytes([NAK]))  # ask the reader to repeat its frame
            ex.attempts += 1
            return _AWAIT
        if self.proto.ack:
            self.port.write(bytes([ACK]))
        ex.payload = payload
        match = self.proto.reply.search(payload.decode("latin-1")) if self.proto.reply else None
        if self.proto.reply and not match:
            return self.end("unexpected")
        if match and "serial" in match.groupdict():
            ex.serial = match.group("serial")
        return self.end("ok")
