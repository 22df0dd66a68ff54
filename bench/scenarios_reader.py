"""Card reader scenarios: a reader emulator on a real pseudo-terminal in each mode, a port held by
another process, a sysfs-shaped USB tree that changes after its baseline, kernel-log flapping."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from harness import Setup, scenario, unsure
from labs.reader_emulator import SERIAL, ReaderEmulator, pty_bridge
from labs.usbtree import KEYBOARD, READER, add_device, remove_device, terminal_tree


def _emulator(stack: ExitStack, preset: str, mode: str) -> ReaderEmulator:
    emu = ReaderEmulator(preset, mode, delay_s=0.7).start()
    stack.callback(emu.stop)
    return emu


def _serial(tmp: Path, emu: ReaderEmulator | None, port: str = "", **extra) -> dict:
    return {"reader": {"kind": "serial", "port": port or emu.path, "protocol": emu.preset if emu else "generic",
                       "timeout_s": 1.0, "sysfs_root": str(tmp / "no-sysfs"), **extra}}


def serial_mode(name: str, expect: str, preset: str, mode: str, **extra) -> None:
    def build(tmp: Path, stack: ExitStack) -> Setup:
        return Setup(_serial(tmp, _emulator(stack, preset, mode), **extra))

    scenario(name, expect, group="reader")(build)


serial_mode("reader-healthy", "none", "ingenico-rba", "healthy")
serial_mode("reader-silent", "reader.unresponsive", "ingenico-rba", "silent")
serial_mode("reader-garbage", "reader.unresponsive", "generic", "garbage")
serial_mode("reader-nak-forever", "reader.unresponsive", "generic", "nak")
serial_mode("reader-bad-lrc", "reader.unresponsive", "verifone-si-so", "bad_lrc")
serial_mode("reader-slow", "reader.unresponsive", "ingenico-rba", "slow")
serial_mode("reader-wrong-serial", "reader.substituted", "verifone-si-so", "wrong_serial", expected_serial=SERIAL)


@scenario("reader-port-missing", "reader.disconnected", group="reader")
def port_missing(tmp: Path, stack: ExitStack) -> Setup:
    return Setup(_serial(tmp, None, port=str(tmp / "ttyUSB9")))


@scenario("reader-port-held", "none", group="reader", check=unsure(0.6))
def port_held(tmp: Path, stack: ExitStack) -> Setup:
    """Another process holds the port and no POS process is configured: the reader was not asked,
    so it is not blamed — the holder is named and the reader counts as not checked."""
    emu = _emulator(stack, "ingenico-rba", "healthy")
    holder = subprocess.Popen([sys.executable, "-c", "import os, sys, time\nos.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY)"
                               "\nprint('held', flush=True)\ntime.sleep(600)", emu.path], stdout=subprocess.PIPE, text=True)
    stack.callback(holder.wait)
    stack.callback(holder.kill)
    holder.stdout.readline()
    return Setup(_serial(tmp, emu))


@scenario("reader-socat-pty-bridge", "none", group="reader", repeat=5)
def socat_bridge(tmp: Path, stack: ExitStack) -> Setup:
    """A reader reached through a virtual serial bridge: socat holds the pty master and carries the
    line to the reader (the emulator on TCP, loopback). The bridge is the reader's end, not a rival."""
    emu = ReaderEmulator("ingenico-rba", "healthy", transport="tcp").start()
    stack.callback(emu.stop)
    link = tmp / "ttyVR0"
    socat = pty_bridge(emu, link)
    stack.callback(socat.wait)
    stack.callback(socat.kill)
    return Setup(_serial(tmp, emu, port=str(link)))


def _usb(tmp: Path, change) -> Setup:
    root = terminal_tree(tmp / "sys")
    reader = {"kind": "usb", "usb": f"{READER['vid']}:{READER['pid']}", "sysfs_root": str(root)}
    # Record the baseline as the terminal was, then change the hardware.
    subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--only", "reader.usb", "--config",
                    str(_write(tmp, reader))], capture_output=True, cwd=Path(__file__).resolve().parent.parent)
    change(root)
    return Setup({"reader": reader})


def _write(tmp: Path, reader: dict) -> Path:
    from harness import base_sections, merge, write_config

    return write_config(tmp / "baseline.toml", merge(base_sections(tmp), {"reader": reader}))


@scenario("usb-reader-unplugged", "reader.disconnected", group="reader")
def usb_missing(tmp: Path, stack: ExitStack) -> Setup:
    return _usb(tmp, lambda root: remove_device(root, READER["name"]))


@scenario("usb-new-keyboard", "reader.substituted", group="reader")
def usb_keyboard(tmp: Path, stack: ExitStack) -> Setup:
    return _usb(tmp, lambda root: add_device(root, KEYBOARD))


@scenario("reader-flapping", "reader.disconnected", group="reader", needs_root=True)
def flapping(tmp: Path, stack: ExitStack) -> Setup:
    name = f"9-{uuid.uuid4().int % 9000 + 1000}"
    root = terminal_tree(tmp / "sys")
    add_device(root, {**READER, "name": name, "pid": "0085"})
    with open("/dev/kmsg", "w") as kmsg:
        for n in range(3):
            kmsg.write(f"<6>usb {name}: USB disconnect, device number {10 + n}\n")
            kmsg.flush()
    return Setup({"reader": {"kind": "usb", "usb": "0b00:0085", "sysfs_root": str(root)}})


def handshake_latency(runs: int = 50) -> dict[str, float]:
    """Median time of one status exchange with the emulator, per preset, through pyserial."""
    import serial
    from posdiag.core.settings import ReaderSettings
    from posdiag.probes.reader._exchange import exchange
    from posdiag.probes.reader._protocols import protocol_for

    out = {}
    for preset in ("generic", "ingenico-rba", "telium-enq", "verifone-si-so"):
        with ReaderEmulator(preset, "healthy") as emu:
            proto = protocol_for(ReaderSettings(kind="serial", port=emu.path, protocol=preset))
            times = []
            for _ in range(runs):
                with serial.Serial(emu.path, 9600, timeout=1.0, exclusive=True) as conn:
                    started = time.perf_counter()
                    result = exchange(conn, proto, 1.0)
                    times.append((time.perf_counter() - started) * 1000)
                    assert result.outcome == "ok", result
            out[preset] = statistics.median(times)
    return out
