"""``posdiag bundle``: everything the help desk needs about this terminal, in one archive.

A technician at the till cannot describe a terminal well; one file can. The bundle holds the
configuration with its secrets redacted, the last stored reports, the daemon's status, versions
(posdiag, Python, kernel, OS), the kernel log and POS log lines that matter, and the USB inventory.

Secrets never leave the terminal: keys that name a secret are redacted, passwords in URLs are cut
out, the token file is never read into the archive, and as a last guard every member is scanned for
the token itself (and any other secret value found in the configuration) before it is written.
Every part is collected on its own: a part that cannot be read says why in ``errors.txt`` instead of
failing the bundle.
"""

from __future__ import annotations

import io
import json
import os
import platform
import re
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

from posdiag.agent import __version__
from posdiag.core.settings import Settings
from posdiag.core.timefmt import utc_iso

REDACTED = "<redacted>"
#: Config keys whose value is a secret (matched on the key's last part, case-insensitive).
SECRET_KEY = re.compile(r"(token|password|passwd|secret|api_?key|private_?key|credential)s?$", re.I)
#: ``scheme://user:password@host`` and ``?token=…`` in any string value.
URL_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.I)
URL_SECRET_PARAM = re.compile(r"(?P<key>[?&](?:token|password|secret|key|access_token|auth)=)[^&#\s]*", re.I)
#: Kernel log lines worth a help desk's time: readers, USB, serial, storage, memory, network links.
KERNEL_LINE = re.compile(r"usb|tty|serial|cdc_acm|ftdi|pl2303|ch341|I/O error|EXT4-fs error|remount|read-only|"
                         r"oom|Out of memory|segfault|link is (up|down)|NIC Link|thermal|throttl|"
                         r"BUG:|Oops|panic|blocked for more than|failed command|temperature", re.I)
REPORTS_IN_BUNDLE = 20
KERNEL_LINES = 500
POS_LOG_LINES = 500
TAIL_BYTES = 1024 * 1024


def redact(value: Any, key: str = "") -> Any:
    """The configuration with secret values replaced; structure and harmless values kept."""
    if isinstance(value, dict):
        return {k: redact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if isinstance(value, str):
        if key and SECRET_KEY.search(key) and not key.endswith("_file"):
            return REDACTED if value else value
        return URL_SECRET_PARAM.sub(rf"\g<key>{REDACTED}", URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", value))
    return value


def secret_values(raw: dict[str, Any], settings: Settings) -> set[str]:
    """Every secret this terminal knows, to scan the archive for: the token and redacted values."""
    found: set[str] = set()

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value:
            if key and SECRET_KEY.search(key) and not key.endswith("_file"):
                found.add(value)
            for m in re.finditer(r"://([^/@\s]+)@", value):
                found.add(m.group(1))
                found.update(part for part in m.group(1).split(":") if len(part) >= 4)

    walk(raw)
    token_file = settings.server.token_file
    if token_file:
        try:
            token = Path(token_file).read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            token = ""
        if token:
            found.add(token)
    return {s for s in found if len(s) >= 4}


class Bundle:
    """Collects named text members, then writes them as one gzip tar with secrets scrubbed."""

    def __init__(self) -> None:
        self.members: dict[str, str] = {}
        self.errors: list[str] = []

    def add(self, name: str, collect: Callable[[], str]) -> None:
        try:
            self.members[name] = collect()
        except Exception as exc:  # noqa: BLE001 - one unreadable part must not cost the whole bundle
            self.errors.append(f"{name}: {exc.__class__.__name__}: {exc}")

    def write(self, path: Path, secrets: set[str]) -> int:
        if self.errors:
            self.members["errors.txt"] = "\n".join(self.errors) + "\n"
        stamp = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name, text in self.members.items():
                data = scrub(text, secrets).encode("utf-8")
                info = tarfile.TarInfo(f"posdiag-bundle/{name}")
                info.size, info.mtime, info.mode = len(data), int(stamp), 0o600
                tar.addfile(info, io.BytesIO(data))
        return path.stat().st_size


def scrub(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def make_bundle(settings: Settings, config_path: str, output: Path) -> tuple[Path, int]:
    """Write the bundle for this terminal to ``output``; returns its path and size in bytes."""
    raw = _read_raw_config(config_path)
    bundle = Bundle()
    bundle.add("summary.txt", lambda: _summary(settings, config_path))
    bundle.add("config.toml.json", lambda: json.dumps(redact(raw), indent=2) + "\n")
    bundle.add("versions.txt", _versions)
    bundle.add("status.json", lambda: json.dumps(_status(settings), indent=2) + "\n")
    bundle.add("reports.json", lambda: json.dumps(_reports(settings), indent=2) + "\n")
    bundle.add("kernel.log", lambda: _kernel_lines(settings.reader.kernel_log))
    if settings.txlog.path:
        bundle.add("pos.log", lambda: _tail(settings.txlog.path, POS_LOG_LINES))
    bundle.add("usb.json", lambda: json.dumps(_usb(settings), indent=2) + "\n")
    size = bundle.write(output, secret_values(raw, settings))
    return output, size


def _read_raw_config(config_path: str) -> dict[str, Any]:
    """The configuration as written (the settings have defaults filled in), read as ``load`` reads it."""
    from posdiag.core import settings as config

    return config.tomllib.loads(config.read_config_bytes(config_path).decode("utf-8"))


def _summary(settings: Settings, config_path: str) -> str:
    """The bundle's cover note, in the language of the technician who made it (the member names and
    the other members stay as they are: the help desk's tools read those)."""
    from posdiag.core.i18n import tr

    lines = [tr("posdiag support bundle"), tr("terminal: {terminal}", terminal=settings.terminal_id),
             tr("site: {site}", site=settings.terminal.site or "-"), tr("made at: {time}", time=utc_iso(time.time())),
             tr("config: {path}", path=config_path), f"posdiag: {__version__}"]
    return "\n".join(lines) + "\n"


def _versions() -> str:
    os_release = ""
    for candidate in ("/etc/os-release", "/usr/lib/os-release"):
        if os.path.isfile(candidate):
            os_release = Path(candidate).read_text(encoding="utf-8", errors="replace")
            break
    return (f"posdiag {__version__}\npython {sys.version.split()[0]} ({sys.executable})\n"
            f"kernel {platform.system()} {platform.release()} {platform.version()} {platform.machine()}\n\n"
            f"{os_release}")


def _status(settings: Settings) -> dict[str, Any]:
    from posdiag.agent.control import DaemonNotRunning, request

    try:
        return {"running": True, **request(settings.daemon.control_socket, {"cmd": "status"}, timeout_s=5)["status"]}
    except DaemonNotRunning as exc:
        return {"running": False, "error": str(exc)}


def _reports(settings: Settings) -> list[dict[str, Any]]:
    from posdiag.agent.store import open_readonly

    store = open_readonly(settings.daemon.state_dir)
    if store is None:
        return []
    with store:
        return list(store.recent_bodies(REPORTS_IN_BUNDLE))[::-1]  # newest first, in one query


def _kernel_lines(kernel_log: str) -> str:
    """The kernel log records that matter to a help desk (the probes' own reader of it)."""
    from posdiag.probes._kmsg import kernel_records

    lines = [message for _, message in kernel_records(kernel_log) if KERNEL_LINE.search(message)]
    return "\n".join(lines[-KERNEL_LINES:]) + "\n"


def _tail(path: str, count: int) -> str:
    """The last lines of the POS log, read as the txlog probe reads it: a FIFO or a device never."""
    from posdiag.probes.txlog import read_tail

    return "\n".join(read_tail(path, TAIL_BYTES)[-count:]) + "\n"


def _usb(settings: Settings) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from posdiag.probes.reader.usb import enumerate_pyserial, enumerate_sysfs

    devices = enumerate_sysfs(settings.reader.sysfs_root)
    if devices is None:
        devices = enumerate_pyserial()
    return [asdict(d) for d in devices]
