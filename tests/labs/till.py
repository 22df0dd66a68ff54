"""A till as the guides show it: terminal lane-03 of store-042 whose card reader (a pty) stops
answering and comes back; the same till with a full disk, and with a full disk, a silent reader and
an untrusted certificate on its payment host (a TLS server on loopback) at once. Runs the commands
the guides quote and returns what they printed, so that a test can hold every quoted line to the
real output (tests/test_guides.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from labs import REPO
from labs.helpers import wait_for, write_config
from labs.reader_emulator import ReaderEmulator
from labs.terminal import Tmux


def _env(lang: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("LC_")}, "LANG": "C.UTF-8", "COLUMNS": "80",
            "POSDIAG_TEST_LANG": lang}


def _posdiag(lang: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "--lang", lang, *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, env=_env(lang))
    return proc.stdout


def _watch_log(lang: str, config: Path, emu: ReaderEmulator) -> str:
    """``posdiag watch`` into a file while the reader goes silent and comes back, ended by Ctrl-C."""
    log = config.parent / f"watch-{lang}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "--lang", lang, "watch", "--config",
                                 str(config)], stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=_env(lang))
        start = emu.frames
        wait_for(lambda: emu.frames >= start + 2, timeout=30)
        emu.mode = "silent"
        wait_for(lambda: log.read_text().count("→") >= 1, timeout=30)
        emu.mode = "healthy"
        wait_for(lambda: log.read_text().count("→") >= 2, timeout=30)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    return log.read_text()


#: the reader's row on the watch screen, as it reads when it answers and when it does not (the name
#: column is as wide as the longest name shown, which depends on which probes are folded)
SERIAL_ROWS = {"en": (re.compile(r"  reader\.serial +ok "), re.compile(r"  reader\.serial +FAIL ")),
               "zh_CN": (re.compile(r"  reader\.serial +正常 "), re.compile(r"  reader\.serial +故障 "))}


def _watch_screen(lang: str, config: Path, emu: ReaderEmulator) -> str:
    """The screen of ``posdiag watch`` on an 80×24 terminal while the reader does not answer."""
    command = f"{sys.executable} -m posdiag.agent --lang {lang} watch --config {config}"
    answering, silent = SERIAL_ROWS[lang]
    with Tmux(command, columns=80, rows=24) as term:
        wait_for(lambda: answering.search(term.screen()), timeout=30)
        start = emu.frames
        wait_for(lambda: emu.frames >= start + 2, timeout=30)  # two sweeps that found it answering
        emu.mode = "silent"
        wait_for(lambda: silent.search(term.screen()), timeout=30)
        screen = term.screen()
        emu.mode = "healthy"
        term.keys("C-c")
        wait_for(lambda: "posdiag show" in term.screen(), timeout=30)
    return screen


def _faulty(folder: Path, lang: str, emu: ReaderEmulator, port: int, ca: str) -> dict[str, str]:
    """``diagnose`` with a full disk alone, then with a full disk, a reader that does not answer and a
    payment host whose certificate the terminal does not trust."""
    (folder / "kmsg").touch()  # not this machine's kernel log: what other tests wrote there is not this till's
    base = {"terminal": {"id": "lane-03", "site": "store-042"},
            "daemon": {"state_dir": str(folder / "state"), "control_socket": str(folder / "control.sock")},
            "disk": {"paths": [str(folder)], "min_free_mb": 9_000_000},
            "system": {"max_load_per_cpu": 1000, "kernel_log": str(folder / "kmsg")}}
    disk = write_config(folder / "disk.toml", base)
    several = write_config(folder / "several.toml", {
        **base, "payment_hosts": [{"name": "acquirer", "host": "127.0.0.1", "port": port, "ca_file": ca}],
        "network": {"timeout_s": 0.5},
        "reader": {"kind": "serial", "port": emu.path, "protocol": "generic", "timeout_s": 0.5,
                   "sysfs_root": str(folder / "no-sysfs")}})
    return {"diagnose-disk": _posdiag(lang, "diagnose", "--config", str(disk)),
            "several-faults": _posdiag(lang, "diagnose", "--config", str(several))}


def several_faults(folder: Path, lang: str) -> dict[str, str]:
    """What the guides' examples of a full disk, and of several faults at once, are held to."""
    import trustme

    from labs.tlsserver import LoopbackTlsServer

    (folder / "state").mkdir()
    trusted, rogue = trustme.CA(), trustme.CA()
    trusted.cert_pem.write_to_path(str(folder / "ca.pem"))
    server = LoopbackTlsServer(rogue.issue_cert("127.0.0.1"))
    try:
        with ReaderEmulator("generic", "silent") as emu:
            return _faulty(folder, lang, emu, server.port, str(folder / "ca.pem"))
    finally:
        server.close()


def outputs(folder: Path, lang: str) -> dict[str, str]:
    """What each command the guides quote printed, by the name the guide marks its block with."""
    (folder / "state").mkdir()
    said: dict[str, str] = {}
    with ReaderEmulator("generic", "silent") as emu:
        config = write_config(folder / "posdiag.toml", {
            "terminal": {"id": "lane-03", "site": "store-042"},
            "reader": {"kind": "serial", "port": emu.path, "protocol": "generic", "timeout_s": 0.5,
                       "sysfs_root": str(folder / "no-sysfs")},
            "daemon": {"state_dir": str(folder / "state"), "control_socket": str(folder / "control.sock")},
            "disk": {"paths": [str(folder)], "min_free_mb": 1}, "system": {"max_load_per_cpu": 1000}})
        said["diagnose"] = _posdiag(lang, "diagnose", "--config", str(config))
        emu.mode = "healthy"
        said["diagnose-healthy"] = _posdiag(lang, "diagnose", "--config", str(config))
        said["watch"] = _watch_log(lang, config, emu)
        said["watch-screen"] = _watch_screen(lang, config, emu)
    said["history"] = _posdiag(lang, "history", "--config", str(config))
    first = re.search(r"[0-9a-f]{8,}", said["diagnose"]).group(0)  # the short id its phone line gave
    said["show"] = _posdiag(lang, "show", first, "--config", str(config))
    (folder / "faults").mkdir()
    return {**said, **several_faults(folder / "faults", lang)}
