"""One status exchange with a reader over an open port: send, then classify what comes back.

Outcomes: ``ok``, ``no_reply``, ``garbage``, ``nak`` (refused every try), ``bad_lrc`` (every frame
corrupt), ``unexpected`` (well-framed but not the expected reply). Retries are bounded: NAK and a
bad LRC are retried up to ``retries`` times, silence once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol as Typing

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


def exchange(port: Port, proto: Protocol, timeout_s: float, retries: int = 3) -> Exchange:
    port.reset_input_buffer()
    return _framed(port, proto, timeout_s, retries) if proto.framing else _raw(port, proto, timeout_s)


def _raw(port: Port, proto: Protocol, timeout_s: float) -> Exchange:
    ex = Exchange("no_reply")
    rd = _Reader(port, ex)
    started = time.monotonic()
    for attempt in range(2):  # one retry on silence
        ex.attempts = attempt + 1
        port.write(proto.request)
        first = rd.byte(time.monotonic() + timeout_s)
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
        return ex
    return ex


def _framed(port: Port, proto: Protocol, timeout_s: float, retries: int) -> Exchange:
    framing = proto.framing
    assert framing is not None
    ex = Exchange("no_reply")
    rd = _Reader(port, ex)
    frame = framing.encode(proto.request)
    silent_tries = 0
    send = True
    started = time.monotonic()
    while ex.attempts < retries + 1:
        if send:
            ex.attempts += 1
            if ex.attempts == 1:
                started = time.monotonic()  # a late reply answers the first request: time from there
            port.write(frame)
        deadline = time.monotonic() + timeout_s
        first = rd.byte(deadline)
        if first is None:
            silent_tries += 1
            if silent_tries > 1:
                ex.outcome = "no_reply"
                return ex
            send = True
            continue
        if ex.latency_ms is None:
            ex.latency_ms = (time.monotonic() - started) * 1000
        if first == NAK:
            ex.naks += 1
            ex.outcome = "nak"
            send = True
            continue
        if first == ACK:
            first = rd.byte(deadline)
            if first is None:
                ex.outcome = "no_reply"
                ex.notes.append("reader acknowledged the request but sent no reply")
                return ex
        if first == EOT:
            ex.outcome = "unexpected"
            ex.notes.append("reader ended the session (EOT) instead of replying")
            return ex
        if first != framing.begin:
            rd.drain()
            ex.outcome = "garbage"
            return ex
        body = bytes([first])
        while True:
            b = rd.byte(deadline)
            if b is None:
                ex.outcome = "garbage"
                ex.notes.append("frame cut off before its end byte")
                return ex
            body += bytes([b])
            if b == framing.end:
                break
            if len(body) > 1024:
                ex.outcome = "garbage"
                return ex
        lrc_byte = rd.byte(deadline)
        if lrc_byte is None:
            ex.outcome = "garbage"
            ex.notes.append("frame without its LRC byte")
            return ex
        payload, lrc_ok = framing.check(body + bytes([lrc_byte]))
        if not lrc_ok:
            ex.bad_lrcs += 1
            ex.outcome = "bad_lrc"
            port.write(bytes([NAK]))  # ask the reader to repeat its frame
            send = False
            if ex.bad_lrcs > retries:
                return ex
            ex.attempts += 1
            continue
        if proto.ack:
            port.write(bytes([ACK]))
        ex.payload = payload
        text = payload.decode("latin-1")
        match = proto.reply.search(text) if proto.reply else None
        if proto.reply and not match:
            ex.outcome = "unexpected"
            return ex
        ex.outcome = "ok"
        if match and "serial" in match.groupdict():
            ex.serial = match.group("serial")
        return ex
    return ex
