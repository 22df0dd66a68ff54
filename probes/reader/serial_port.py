"""Serial reader: the port exists, we may open it, nobody else holds it, and the reader answers
the configured status request correctly and in time — and is the reader on file."""

from __future__ import annotations

import errno
import os
import time
from typing import TYPE_CHECKING

from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._procs import find_processes
from posdiag.probes._sandbox import Hidden, hidden_path, refused_device
from posdiag.probes.base import CouldNotCheck, Observation, Probe, Status, declare
from posdiag.probes.gates import unconfigured

if TYPE_CHECKING:  # pragma: no cover - typing only
    from posdiag.probes.reader._exchange import Exchange


def _group_name(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (ImportError, KeyError):
        return str(gid)


def _holder_names(holders: list) -> str:
    return ", ".join(tr("{name} (pid {pid})", name=h.name, pid=h.pid) for h in holders)


class SerialProbe(Probe):
    name = "reader.serial"
    description = N_("serial reader: port present, permitted, not held by another process; status handshake, identity")
    findings = declare(fail=("reader.bad_lrc", "reader.garbage", "reader.nak", "reader.no_reply", "reader.open_failed",
                           "reader.port_held", "reader.port_locked", "reader.port_missing", "reader.serial_mismatch",
                           "reader.unexpected_reply"),
                       warn=("reader.hidden_by_sandbox", "reader.permission_denied", "reader.slow"),
                       info=("reader.bridged", "reader.holders_unknown", "reader.in_use_by_pos", "reader.serial_unknown"))

    def skip_reason(self) -> str | None:
        return unconfigured(self.name, self.settings)

    def deadline_s(self) -> float:
        return self.settings.reader.timeout_s * 2 + 1.0

    def check(self, obs: Observation) -> None:
        cfg = self.settings.reader
        port = cfg.port
        obs.metric("port", port)
        if not os.path.exists(port):
            sandboxed = hidden_path(port, device=True)
            if sandboxed:
                self.report_hidden(obs, port, sandboxed)
            else:
                obs.fail("reader.port_missing", tr("{port} does not exist", port=port), port=port)
            return
        # loaded where a serial reader is configured, not on every diagnose
        from posdiag.probes.reader._turn import ReaderBusy, reader_turn

        try:
            with reader_turn(self.context.state_dir or self.settings.daemon.state_dir, port, self.turn_wait_s()):
                self.probe_port(obs, port)
        except ReaderBusy:
            raise CouldNotCheck(tr("another posdiag process is talking to the reader on {port} at this moment: "
                                   "it was not asked twice at once", port=port), port=port) from None

    def turn_wait_s(self) -> float:
        """How long to wait for another posdiag's exchange with the reader: what is left of this probe's
        deadline once its own exchange (a timeout, and a little) is paid for."""
        return max(0.0, self.remaining_s() - self.settings.reader.timeout_s - 0.5)

    def probe_port(self, obs: Observation, port: str) -> None:
        """Who else holds the port, then one exchange with the reader: in this posdiag's turn."""
        from posdiag.probes.reader._exchange import exchange
        from posdiag.probes.reader._holders import holders
        from posdiag.probes.reader._protocols import protocol_for

        cfg = self.settings.reader
        found, hidden = holders(port)
        bridges = [h for h in found if h.device_side or h.name in cfg.bridge_processes]
        busy = [h for h in found if h not in bridges]
        if busy:
            self.report_busy(obs, port, busy)
            return
        if bridges:
            names = _holder_names(bridges)
            if all(h.device_side for h in bridges):
                message = tr("{port} is reached through {names}, which holds the master side of its pty: the reader's "
                             "end of the line, not a rival; probing through it", port=port, names=names)
            else:
                message = tr("{port} is reached through {names}, which is a configured bridge: the reader's end of the "
                             "line, not a rival; probing through it", port=port, names=names)
            obs.info("reader.bridged", message, port=port, bridges=[{"pid": h.pid, "name": h.name} for h in bridges])
        if hidden:
            obs.info("reader.holders_unknown", ntr("{n} process of another user could not be checked for {port}",
                                                   "{n} processes of other users could not be checked for {port}",
                                                   hidden, port=port))
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
        names = _holder_names(busy)
        pos = self.settings.terminal.pos_process
        data = {"port": port, "holders": [{"pid": h.pid, "name": h.name} for h in busy]}
        pos_pids = {p.pid for p in find_processes(pos)} if pos else set()
        if pos_pids and all(h.pid in pos_pids for h in busy):
            obs.info("reader.in_use_by_pos", tr("{port} is in use by the POS application {names}: not probed", port=port,
                                                names=names), **data)
            obs.summary = tr("in use by {names}; left alone", names=names)
        elif pos:
            obs.fail("reader.port_held", tr("{port} is held by {names}, not by the POS application '{process}': the POS "
                                            "cannot reach the reader", port=port, names=names, process=pos), **data)
        else:  # it could be the POS itself: the reader was not asked, so nothing is said about it
            raise CouldNotCheck(tr("{port} is held by {names}; [terminal] pos_process is not set to tell whether "
                                  "that is the POS application: the reader was not asked, so as not to disturb it",
                                  port=port, names=names), **data)

    @staticmethod
    def report_hidden(obs: Observation, port: str, hidden: Hidden) -> None:
        obs.warn("reader.hidden_by_sandbox", tr("{port} is hidden from this service by its sandbox ({setting}): the "
                                                "reader was not checked; {advice}", port=port, setting=hidden.setting,
                                                advice=hidden.advice()), port=port, **hidden.data())

    def report_open_error(self, obs: Observation, port: str, exc: Exception) -> None:
        err = getattr(exc, "errno", None)
        text = str(exc)
        refused = refused_device(port, exc)
        if refused:
            self.report_hidden(obs, port, refused)
        elif err == errno.EACCES or "Permission denied" in text:
            st = os.stat(port)
            group = _group_name(st.st_gid)
            obs.warn("reader.permission_denied", tr("the agent may not open {port}: it needs to be in group '{group}' "
                                                    "(mode {mode:o})", port=port, group=group, mode=st.st_mode & 0o777),
                     port=port, group=group, mode=f"{st.st_mode & 0o777:o}")
        elif err in (errno.EBUSY, errno.EAGAIN) or "exclusively lock" in text:
            obs.fail("reader.port_locked", tr("{port} is locked by another program", port=port), port=port, error=text)
        elif err in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
            obs.fail("reader.port_missing", tr("{port} vanished when opened ({error})", port=port, error=text), port=port)
        else:
            obs.fail("reader.open_failed", tr("cannot open {port}: {error}", port=port, error=text), port=port, error=text)

    def judge(self, obs: Observation, port: str, ex: Exchange) -> None:
        cfg = self.settings.reader
        data = {"port": port, "protocol": cfg.protocol, "attempts": ex.attempts, "received": ex.shown}
        if ex.latency_ms is not None:
            obs.metric("reply_ms", round(ex.latency_ms, 2))
        obs.metric("attempts", ex.attempts)
        # TRANSLATORS: separates the notes of one reader exchange, e.g. "frame cut off; reader ended the session"
        note = tr(" ({notes})", notes=tr("; ").join(ex.notes)) if ex.notes else ""
        if ex.outcome == "no_reply":
            obs.fail("reader.no_reply", ntr("the reader on {port} did not answer within {timeout_s:g} s ({n} try){note}",
                                            "the reader on {port} did not answer within {timeout_s:g} s ({n} tries){note}",
                                            ex.attempts, port=port, timeout_s=cfg.timeout_s, note=note), **data)
        elif ex.outcome == "garbage":
            obs.fail("reader.garbage", tr("the reader on {port} answers unintelligibly at {baudrate} baud: "
                                          "{received!r}{note}", port=port, received=ex.shown, note=note,
                                          baudrate=cfg.baudrate), **data)
        elif ex.outcome == "nak":
            obs.fail("reader.nak", ntr("the reader on {port} refused the request {n} time (NAK)",
                                       "the reader on {port} refused the request {n} times (NAK)", ex.naks, port=port),
                     **data)
        elif ex.outcome == "bad_lrc":
            obs.fail("reader.bad_lrc", ntr("the reader on {port} sent {n} frame with a wrong checksum (LRC)",
                                           "the reader on {port} sent {n} frames with a wrong checksum (LRC)", ex.bad_lrcs,
                                           port=port), **data)
        elif ex.outcome == "unexpected":
            obs.fail("reader.unexpected_reply", tr("the reader on {port} replied {received!r}, not the expected "
                                                   "answer{note}", port=port, received=ex.shown, note=note), **data)
        else:
            self.identity(obs, ex)
            if ex.latency_ms is not None and ex.latency_ms > cfg.slow_ms:
                obs.warn("reader.slow", tr("the reader on {port} took {ms:.0f} ms to answer (limit {limit:g} ms)",
                                           port=port, ms=ex.latency_ms, limit=cfg.slow_ms),
                         port=port, reply_ms=round(ex.latency_ms, 1))
            if obs.status() is Status.OK:
                if ex.serial:
                    obs.summary = tr("{port}: {protocol} reply in {ms:.0f} ms, serial {serial}", port=port,
                                     protocol=cfg.protocol, ms=ex.latency_ms, serial=ex.serial)
                else:
                    obs.summary = tr("{port}: {protocol} reply in {ms:.0f} ms", port=port, protocol=cfg.protocol,
                                     ms=ex.latency_ms)

    def identity(self, obs: Observation, ex: Exchange) -> None:
        expected = self.settings.reader.expected_serial
        if ex.serial is None:
            if expected:
                obs.info("reader.serial_unknown", tr("the protocol does not report a serial number: identity not checked"))
            return
        obs.metric("serial", ex.serial)
        if expected and ex.serial != expected:
            obs.fail("reader.serial_mismatch", tr("the reader reports serial {found}, but {expected} is on file: this is "
                                                  "not the registered reader", found=ex.serial, expected=expected),
                     expected=expected, found=ex.serial)

