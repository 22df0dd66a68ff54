"""Serial reader: the port exists, we may open it, nobody else holds it, and the reader answers
the configured status request correctly and in time — and is the reader on file."""

from __future__ import annotations

import errno
import os
import time

from posdiag.probes._procs import find_processes
from posdiag.probes.base import Observation, Probe, Status, declare
from posdiag.probes.reader._exchange import Exchange, exchange
from posdiag.probes.reader._holders import holders
from posdiag.probes.reader._protocols import protocol_for


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


class SerialProbe(Probe):
    name = "reader.serial"
    description = "serial reader: port present, permitted, not held by another process; status handshake, identity"
    findings = declare(fail=("reader.bad_lrc", "reader.garbage", "reader.nak", "reader.no_reply", "reader.open_failed",
                           "reader.port_held", "reader.port_locked", "reader.port_missing", "reader.serial_mismatch",
                           "reader.unexpected_reply"), warn=("reader.permission_denied", "reader.slow"),
                           info=("reader.bridged", "reader.holders_unknown", "reader.in_use_by_pos", "reader.serial_unknown"))

    def skip_reason(self) -> str | None:
        return None if self.settings.reader.kind == "serial" else "no serial reader configured ([reader] kind)"

    def deadline_s(self) -> float:
        return self.settings.reader.timeout_s * 2 + 1.0

    def check(self, obs: Observation) -> None:
        cfg = self.settings.reader
        port = cfg.port
        obs.metric("port", port)
        if not os.path.exists(port):
            obs.fail("reader.port_missing", f"{port} does not exist: the reader is unplugged or its adapter is gone",
                     port=port)
            return
        found, hidden = holders(port)
        bridges = [h for h in found if h.device_side or h.name in cfg.bridge_processes]
        busy = [h for h in found if h not in bridges]
        if busy:
            self.report_busy(obs, port, busy)
            return
        if bridges:
            names = ", ".join(f"{h.name} (pid {h.pid})" for h in bridges)
            how = "holds the master side of its pty" if all(h.device_side for h in bridges) else "is a configured bridge"
            obs.info("reader.bridged", f"{port} is reached through {names}, which {how}: the reader's end of the line, "
                     "not a rival; probing through it", port=port, bridges=[{"pid": h.pid, "name": h.name} for h in bridges])
        if hidden:
            obs.info("reader.holders_unknown", f"{hidden} processes of other users could not be checked for {port}")
        import serial  # pyserial: imported only when a serial reader is configured

        try:
            conn = serial.Serial(port, cfg.baudrate, timeout=cfg.timeout_s, write_timeout=cfg.timeout_s,
                                 exclusive=True)
        except serial.SerialException as exc:
            self.report_open_error(obs, port, exc)
            return
        try:
            started = time.monotonic()
            result = exchange(conn, protocol_for(cfg), cfg.timeout_s)
            obs.metric("exchange_ms", round((time.monotonic() - started) * 1000, 2))
        finally:
            conn.close()
        self.judge(obs, port, result)

    def report_busy(self, obs: Observation, port: str, busy: list) -> None:
        names = ", ".join(f"{h.name} (pid {h.pid})" for h in busy)
        pos = self.settings.terminal.pos_process
        data = {"port": port, "holders": [{"pid": h.pid, "name": h.name} for h in busy]}
        pos_pids = {p.pid for p in find_processes(pos)} if pos else set()
        if pos_pids and all(h.pid in pos_pids for h in busy):
            obs.info("reader.in_use_by_pos", f"{port} is in use by the POS application {names}: not probed", **data)
            obs.summary = f"in use by {names}; left alone"
        elif pos:
            obs.fail("reader.port_held", f"{port} is held by {names}, not by the POS application '{pos}': "
                     "the POS cannot reach the reader", **data)
        else:
            obs.warn("reader.port_held", f"{port} is held by {names}; not probed so as not to disturb it", **data)

    def report_open_error(self, obs: Observation, port: str, exc: Exception) -> None:
        err = getattr(exc, "errno", None)
        text = str(exc)
        if err == errno.EACCES or "Permission denied" in text:
            st = os.stat(port)
            group = _group_name(st.st_gid)
            obs.warn("reader.permission_denied", f"the agent may not open {port}: it needs to be in group "
                     f"'{group}' (mode {st.st_mode & 0o777:o})", port=port, group=group, mode=f"{st.st_mode & 0o777:o}")
        elif err in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
            obs.fail("reader.port_locked", f"{port} is locked by another program", port=port, error=text)
        elif err in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            obs.fail("reader.port_missing", f"{port} vanished when opened ({text})", port=port)
        else:
            obs.fail("reader.open_failed", f"cannot open {port}: {text}", port=port, error=text)

    def judge(self, obs: Observation, port: str, ex: Exchange) -> None:
        cfg = self.settings.reader
        data = {"port": port, "protocol": cfg.protocol, "attempts": ex.attempts, "received": ex.shown}
        if ex.latency_ms is not None:
            obs.metric("reply_ms", round(ex.latency_ms, 2))
        obs.metric("attempts", ex.attempts)
        note = f" ({'; '.join(ex.notes)})" if ex.notes else ""
        if ex.outcome == "no_reply":
            obs.fail("reader.no_reply", f"the reader on {port} did not answer within {cfg.timeout_s:g} s "
                     f"({ex.attempts} tries){note}", **data)
        elif ex.outcome == "garbage":
            obs.fail("reader.garbage", f"the reader on {port} answers unintelligibly: {ex.shown!r}{note} — wrong "
                     f"baud rate ({cfg.baudrate}) or protocol?", **data)
        elif ex.outcome == "nak":
            obs.fail("reader.nak", f"the reader on {port} refused the request {ex.naks} times (NAK)", **data)
        elif ex.outcome == "bad_lrc":
            obs.fail("reader.bad_lrc", f"the reader on {port} sent {ex.bad_lrcs} frames with a wrong checksum (LRC): "
                     "line noise or a failing cable", **data)
        elif ex.outcome == "unexpected":
            obs.fail("reader.unexpected_reply", f"the reader on {port} replied {ex.shown!r}, not the expected "
                     f"answer{note}", **data)
        else:
            self.identity(obs, ex)
            if ex.latency_ms is not None and ex.latency_ms > cfg.slow_ms:
                obs.warn("reader.slow", f"the reader on {port} took {ex.latency_ms:.0f} ms to answer "
                         f"(limit {cfg.slow_ms:g} ms)", port=port, reply_ms=round(ex.latency_ms, 1))
            if obs.status() is Status.OK:
                obs.summary = f"{port}: {cfg.protocol} reply in {ex.latency_ms:.0f} ms" + (
                    f", serial {ex.serial}" if ex.serial else "")

    def identity(self, obs: Observation, ex: Exchange) -> None:
        expected = self.settings.reader.expected_serial
        if ex.serial is None:
            if expected:
                obs.info("reader.serial_unknown", "the protocol does not report a serial number: identity not checked")
            return
        obs.metric("serial", ex.serial)
        if expected and ex.serial != expected:
            obs.fail("reader.serial_mismatch", f"the reader reports serial {ex.serial}, but {expected} is on file: "
                     "this is not the registered reader", expected=expected, found=ex.serial)

