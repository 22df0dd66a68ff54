"""How the previous boot ended: the journal's last records of it, the kernel's crash records kept
across the reboot (pstore), and kdump's dumps. Local reads and one bounded ``journalctl``; no traffic.

A clean shutdown leaves its mark at the end of the previous boot's journal (systemd's "System is
powering down" message, the shutdown targets, journald stopping); a crash, a hang or a power cut
ends the journal in the middle of ordinary work.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

#: systemd's catalogue id of "System is powering down" / "Shutting down." (SD_MESSAGE_SHUTDOWN)
SHUTDOWN_MESSAGE_ID = "98268866d1d54a499c4e98921d93bc40"
_SHUTDOWN_TEXT = re.compile(r"Reached target .*(Shutdown|Power-?Off|Reboot|Halt|Kexec|Final Step)|"
                            r"System is (powering down|rebooting|halting)|Shutting down\.|Journal stopped|"
                            r"systemd-shutdown", re.I)
#: the records of the previous boot's end that are looked at
TAIL = 60
#: the header of a record the kernel saved in pstore ("Panic#1 Part1", "Oops#2 Part1")
_PSTORE_HEAD = re.compile(r"^(?P<reason>Panic|Oops|Emergency|Restart|Halt|Poweroff|Unknown)#\d+ Part\d+", re.M)


@dataclass(frozen=True)
class PreviousBoot:
    """The end of the previous boot as the journal tells it; ``known`` False when it cannot, with
    ``why`` (``no-journalctl``, ``no-previous-boot``, ``timeout``, ``error``) and the tool's own words."""

    known: bool
    clean: bool = False
    ended_at: float | None = None  # seconds since the epoch of its last record
    why: str = ""
    detail: str = ""


#: this boot's id → what the journal said of the previous boot: it does not change while this boot runs,
#: so the daemon asks journalctl once per boot, not once per sweep
_asked: dict[str, PreviousBoot] = {}
BOOT_ID = "/proc/sys/kernel/random/boot_id"


def journal_end(timeout_s: float, boot_id_path: str = BOOT_ID) -> PreviousBoot:
    """The previous boot's end, from ``journalctl -b -1`` (bounded by ``timeout_s``), asked once per boot."""
    try:
        with open(boot_id_path) as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    if boot in _asked:
        return _asked[boot]
    end = _ask_journal(timeout_s)
    if boot and end.why != "timeout":  # a slow journal is asked again next time
        _asked[boot] = end
    return end


def _ask_journal(timeout_s: float) -> PreviousBoot:
    tool = shutil.which("journalctl")
    if tool is None:
        return PreviousBoot(False, why="no-journalctl")
    try:
        run = subprocess.run([tool, "-b", "-1", "-n", str(TAIL), "-o", "json", "--no-pager", "-q"], capture_output=True,
                             text=True, timeout=max(0.05, timeout_s), errors="replace")
    except subprocess.TimeoutExpired:
        return PreviousBoot(False, why="timeout")
    except OSError as exc:
        return PreviousBoot(False, why="error", detail=str(exc.strerror or exc))
    if run.returncode != 0 or not run.stdout.strip():
        said = (run.stderr.strip().splitlines() or [""])[-1]
        return PreviousBoot(False, why="no-previous-boot", detail=said[:200])
    return parse_journal_tail(run.stdout)


def parse_journal_tail(text: str) -> PreviousBoot:
    """The end of a boot from its last journal records (``journalctl -o json``, one object a line)."""
    clean, last = False, None
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        message = entry.get("MESSAGE")
        message = message if isinstance(message, str) else ""  # binary messages come as lists of bytes
        if entry.get("MESSAGE_ID") == SHUTDOWN_MESSAGE_ID or _SHUTDOWN_TEXT.search(message):
            clean = True
        stamp = str(entry.get("__REALTIME_TIMESTAMP", ""))
        if stamp.isdigit():
            last = max(last or 0.0, int(stamp) / 1e6)
    if last is None:
        return PreviousBoot(False, why="no-previous-boot")
    return PreviousBoot(True, clean, last)


@dataclass(frozen=True)
class SavedCrash:
    """A crash record kept across a reboot: a pstore file or a kdump dump."""

    path: str
    at: float  # its time (the file's), seconds since the epoch
    reason: str  # Panic, Oops, … for pstore; "dump" for kdump


def pstore_records(folders: list[str]) -> list[SavedCrash]:
    """The kernel's crash records under the pstore file system and systemd-pstore's archive of it.
    Unreadable files still count: their name and time say enough."""
    found = []
    for folder in folders:
        for path in _files(folder):
            name = os.path.basename(path)
            if not name.startswith(("dmesg-", "console-")):
                continue
            found.append(SavedCrash(path, _mtime(path), _pstore_reason(path)))
    return found


def _pstore_reason(path: str) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(256).decode("utf-8", "replace")
    except OSError:
        return "Unknown"
    match = _PSTORE_HEAD.search(head)
    return match["reason"] if match else "Unknown"


def kdump_dumps(folder: str) -> list[SavedCrash]:
    """kdump's dumps: a folder per crash under /var/crash holding ``dmesg.*``, ``dump.*`` or ``vmcore*``."""
    found = []
    for path in _files(folder):
        name = os.path.basename(path)
        if name.startswith(("dmesg.", "dump.", "vmcore")):
            found.append(SavedCrash(os.path.dirname(path), _mtime(path), "dump"))
    return list({c.path: c for c in found}.values())


def _files(folder: str, depth: int = 2) -> list[str]:
    """Files under ``folder``, at most ``depth`` levels down (pstore and kdump nest one level)."""
    out: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return out
    for entry in entries[:1000]:
        try:
            if entry.is_dir(follow_symlinks=False) and depth > 1:
                out += _files(entry.path, depth - 1)
            elif entry.is_file(follow_symlinks=False):
                out.append(entry.path)
        except OSError:
            continue
    return out


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
