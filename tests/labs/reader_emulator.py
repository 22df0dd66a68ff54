"""A card reader on the far end of a pseudo-terminal, for tests and the bench.

The probe opens the real tty path (``emulator.path``); the emulator answers on the master side
in the chosen preset's framing, in one of the modes: healthy, silent, garbage, nak, bad_lrc, slow,
wrong_serial. Everything the probe wrote is kept in ``received``; when each request came in
(``request_times``, monotonic) and how many answers went out (``answered``) are counted.

Run as a script (``python -m labs.reader_emulator PRESET MODE``) it prints the tty path and serves until killed.
"""

from __future__ import annotations

import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path

from posdiag.probes.reader._framing import ACK, ENQ, NAK, SI, SO, Framing

SERIAL = "PP1000-04711"
OTHER_SERIAL = "PP1000-99999"
GARBAGE = bytes([0x9F, 0xE3, 0x11, 0x7F, 0xC0, 0xFE, 0x81, 0x3C])

FRAMINGS = {"generic": Framing(), "ingenico-rba": Framing(), "verifone-si-so": Framing(begin=SI, end=SO)}


def reply_payload(preset: str, serial: str) -> bytes:
    return {"generic": b"S00", "ingenico-rba": b"11.00", "verifone-si-so": b"SN" + serial.encode()}[preset]


class ReaderEmulator:
    """``transport="tcp"``: the reader listens on ``127.0.0.1:port`` instead, as a reader behind a
    serial-over-IP bridge (``socat pty,link=… tcp:127.0.0.1:port``) does; ``path`` is then empty."""

    def __init__(self, preset: str = "generic", mode: str = "healthy", delay_s: float = 0.8, transport: str = "pty") -> None:
        self.preset, self.mode, self.delay_s = preset, mode, delay_s
        self.listener: socket.socket | None = None
        self.conn: socket.socket | None = None
        if transport == "tcp":
            self.listener = socket.create_server(("127.0.0.1", 0))
            self.port, self.path, self.master = self.listener.getsockname()[1], "", -1
        else:
            self.master, slave = pty.openpty()
            tty.setraw(slave)
            self.path = os.ttyname(slave)
            os.close(slave)  # the probe opens the path; we keep only the master
        self.received = bytearray()
        self.frames = 0
        self.request_times: list[float] = []
        self.answered = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def start(self) -> ReaderEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for sock in (self.conn, self.listener):
            if sock is not None:
                sock.close()
        if self.listener is None:
            os.close(self.master)

    def __enter__(self) -> ReaderEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -----------------------------------------------------------------------------------------
    def _send(self, data: bytes) -> None:
        os.write(self.master, data)

    def _reply_frame(self) -> bytes:
        framing = FRAMINGS[self.preset]
        serial = OTHER_SERIAL if self.mode == "wrong_serial" else SERIAL
        frame = framing.encode(reply_payload(self.preset, serial))
        if self.mode == "bad_lrc":
            frame = frame[:-1] + bytes([frame[-1] ^ 0x5A])
        return frame

    def _accept(self) -> None:
        """TCP transport: wait for the bridge to connect, then talk over that connection."""
        assert self.listener is not None
        ready, _, _ = select.select([self.listener], [], [], 0.05)
        if ready:
            self.conn, _ = self.listener.accept()
            self.master = self.conn.fileno()

    def _serve(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            if self.master < 0:
                self._accept()
                continue
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:  # EIO: nobody has the tty open right now
                time.sleep(0.002)
                continue
            if not data and self.conn is not None:  # the bridge hung up: wait for the next one
                self.conn.close()
                self.conn, self.master = None, -1
                continue
            self.received += data
            buf += data
            buf = self._handle(buf)

    def _handle(self, buf: bytearray) -> bytearray:
        if self.preset == "telium-enq":
            while ENQ in buf:
                buf = buf[buf.index(ENQ) + 1:]
                self.request_times.append(time.monotonic())
                self._answer(lambda: self._send(bytes([ACK])))
            return bytearray()
        framing = FRAMINGS[self.preset]
        while buf:
            if buf[0] == NAK:  # the host asks us to repeat our last frame
                buf = buf[1:]
                if self.mode == "bad_lrc":
                    self._send(self._reply_frame())
                continue
            if buf[0] == ACK:
                buf = buf[1:]
                continue
            if buf[0] != framing.begin:
                buf = buf[1:]
                continue
            if framing.end not in buf or buf.index(framing.end) + 1 >= len(buf):
                return buf  # frame not complete yet
            end = buf.index(framing.end) + 2
            buf = buf[end:]
            self.frames += 1
            self.request_times.append(time.monotonic())
            self._answer(lambda: self._send(bytes([ACK]) + self._reply_frame()))
        return buf

    def _answer(self, healthy) -> None:
        mode = self.mode
        if mode == "silent":
            return
        if mode == "garbage":
            self._send(GARBAGE)
        elif mode == "nak":
            self._send(bytes([NAK]))
        elif mode == "slow":
            time.sleep(self.delay_s)
            healthy()
        else:  # healthy, bad_lrc, wrong_serial
            healthy()
        self.answered += 1


if __name__ == "__main__":
    emu = ReaderEmulator(sys.argv[1], sys.argv[2]).start()
    print(emu.path, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        emu.stop()


def pty_bridge(emu: ReaderEmulator, link: Path | str, **popen: object) -> subprocess.Popen:
    """A virtual serial bridge, ser2net style: socat holds the master of a new pty (``link`` points at
    its slave) and carries the line to ``emu`` listening on TCP on loopback. Returns once the link
    exists and the emulator has its connection."""
    bridge = subprocess.Popen(["socat", f"pty,link={link},raw,echo=0", f"tcp:127.0.0.1:{emu.port}"], **popen)
    deadline = time.monotonic() + 5
    while not (os.path.exists(link) and emu.conn is not None) and time.monotonic() < deadline:
        time.sleep(0.02)
    if not os.path.exists(link):
        bridge.kill()
        raise RuntimeError("socat did not create its pty link")
    return bridge


def hold_port(path: str) -> subprocess.Popen:
    """Another program holding the reader's port open (not the POS, not posdiag); kill it when done."""
    holder = subprocess.Popen([sys.executable, "-c", "import os, sys, time\n"
                               "fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)\nprint('held', flush=True)\n"
                               "time.sleep(60)", path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder
