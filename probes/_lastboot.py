"""How the previous boot ended and what its kernel said: the journal's last records of that boot and
its kernel messages, the kernel's crash records kept across the reboot (pstore), and kdump's dumps.
Local reads and two bounded ``journalctl`` calls, each asked once per boot; no traffic.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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


#: (this boot's id, question) → what the journal said of the previous boot: it does not change while this
#: boot runs, so the daemon asks journalctl once per boot, not once per sweep
_asked: dict[tuple[str, str], Any] = {}
BOOT_ID = "/proc/sys/kernel/random/boot_id"
#: the previous boot's kernel messages looked through, its last ones (a crash is near the end of a boot)
KERNEL_TAIL = 5000


def journal_end(timeout_s: float, boot_id_path: str = BOOT_ID) -> PreviousBoot:
    """The previous boot's end, from ``journalctl -b -1`` (bounded by ``timeout_s``), asked once per boot."""
    return _once(boot_id_path, "end", lambda: _ask_journal(timeout_s))


def _once(boot_id_path: str, question: str, ask: Callable[[], Any]) -> Any:
    try:
        with open(boot_id_path) as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    if (boot, question) in _asked:
        return _asked[boot, question]
    answer = ask()
    if boot and answer.why != "timeout":  # a slow journal is asked again next time
        _asked[boot, question] = answer
    return answer


def _journal(args: list[str], timeout_s: float) -> str | PreviousBoot:
    """journalctl's output for the previous boot (``-b -1`` and ``args``), or why there is none."""
    tool = shutil.which("journalctl")
    if tool is None:
        return PreviousBoot(False, why="no-journalctl")
    try:
        run = subprocess.run([tool, "-b", "-1", *args, "-o", "json", "--no-pager", "-q"], capture_output=True,
                             text=True, timeout=max(0.05, timeout_s), errors="replace")
    except subprocess.TimeoutExpired:
        return PreviousBoot(False, why="timeout")
    except OSError as exc:
        return PreviousBoot(False, why="error", detail=str(exc.strerror or exc))
    if run.returncode != 0 or not run.stdout.strip():
        said = (run.stderr.strip().splitlines() or [""])[-1]
        return PreviousBoot(False, why="no-previous-boot", detail=said[:200])
    return run.stdout


def _ask_journal(timeout_s: float) -> PreviousBoot:
    out = _journal(["-n", str(TAIL)], timeout_s)
    return out if isinstance(out, PreviousBoot) else parse_journal_tail(out)


@dataclass(frozen=True)
class PreviousKernel:
    """The previous boot's kernel messages that may tell of a crash (``keep`` picked them), each with
    its time in seconds since the epoch; ``known`` False with ``why`` as :class:`PreviousBoot`'s."""

    known: bool
    records: tuple[tuple[float, str], ...] = ()
    why: str = ""
    detail: str = ""


def kernel_messages(timeout_s: float, keep: Callable[[str], bool], boot_id_path: str = BOOT_ID) -> PreviousKernel:
    """The previous boot's kernel messages (``journalctl -b -1 -k``) that ``keep`` picks, asked once per
    boot: only those are held, not the thousands of ordinary lines of a boot."""

    def ask() -> PreviousKernel:
        out = _journal(["-k", "-n", str(KERNEL_TAIL), "--output-fields=MESSAGE,__REALTIME_TIMESTAMP"], timeout_s)
        if isinstance(out, PreviousBoot):
            return PreviousKernel(False, why=out.why, detail=out.detail)
        return PreviousKernel(True, tuple((t, m) for t, m in _records(out) if keep(m)))

    return _once(boot_id_path, "kernel", ask)


def _entries(text: str) -> Iterator[dict[str, Any]]:
    """The records of ``journalctl -o json`` output (one object a line); a line that is not one is skipped."""
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            yield entry


def _records(text: str) -> list[tuple[float, str]]:
    """(time, message) of each ``journalctl -o json`` record that has both."""
    found = []
    for entry in _entries(text):
        message, stamp = entry.get("MESSAGE"), str(entry.get("__REALTIME_TIMESTAMP", ""))
        if isinstance(message, str) and stamp.isdigit():
            found.append((int(stamp) / 1e6, message.split("\n", 1)[0]))
    return found


def parse_journal_tail(text: str) -> PreviousBoot:
    """The end of a boot from its last journal records (``journalctl -o json``, one object a line)."""
    clean, last = False, None
    for entry in _entries(text):
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
