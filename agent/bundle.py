"""``posdiag bundle``: everything the help desk needs about this terminal, in one archive.

A technician at the till cannot describe a terminal well; one file can. The bundle holds the
configuration, the last stored reports and — when no daemon runs, so that nothing has diagnosed
lately — a fresh diagnosis made for it, within the usual deadline; the daemon's status; what the
token file is (there or not, its mode, never the token); versions (posdiag, Python, kernel, OS); the
kernel log and POS log lines that matter; and the USB inventory. ``summary.txt`` says which
diagnosis it holds.

Nothing in it may carry card data or a secret (:mod:`posdiag.core.redact`): the configuration's
secret keys are replaced, the POS log's tail is masked line by line, every text member is masked
and every JSON member value by value, and the secrets this process knows — the token and the
configuration's passwords and secret query values, remembered when the configuration was loaded
(:func:`posdiag.core.settings.load`) — are masked wherever they appear. Every part is collected on
its own: a part that cannot be read says why in ``errors.txt`` instead of failing the bundle.
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
from posdiag.core.redact import mask_config, mask_data, mask_text
from posdiag.core.settings import Settings
from posdiag.core.timefmt import utc_iso
from posdiag.core.vocabulary import Trigger

#: Kernel log lines worth a help desk's time: readers, USB, serial, storage, memory, network links.
KERNEL_LINE = re.compile(r"usb|tty|serial|cdc_acm|ftdi|pl2303|ch341|I/O error|EXT4-fs error|remount|read-only|"
                         r"oom|Out of memory|segfault|link is (up|down)|NIC Link|thermal|throttl|"
                         r"BUG:|Oops|panic|blocked for more than|failed command|temperature", re.I)
REPORTS_IN_BUNDLE = 20
KERNEL_LINES = 500
POS_LOG_LINES = 500
TAIL_BYTES = 1024 * 1024
SUMMARY = "summary.txt"


class Bundle:
    """Collects named members — text, or data written as JSON — then writes them, masked, as one gzip tar."""

    def __init__(self) -> None:
        self.members: dict[str, Any] = {}
        self.errors: list[str] = []

    def add(self, name: str, collect: Callable[[], Any]) -> Any:
        """Collect one member and return it; None when it could not be (``errors.txt`` says why)."""
        try:
            self.members[name] = collect()
        except Exception as exc:  # noqa: BLE001 - one unreadable part must not cost the whole bundle
            self.errors.append(f"{name}: {exc.__class__.__name__}: {exc}")
            return None
        return self.members[name]

    def write(self, path: Path) -> int:
        if self.errors:
            self.members["errors.txt"] = "\n".join(self.errors) + "\n"
        stamp = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            for name in sorted(self.members, key=lambda n: n != SUMMARY):  # the cover note first
                data = masked(self.members[name]).encode("utf-8")
                info = tarfile.TarInfo(f"posdiag-bundle/{name}")
                info.size, info.mtime, info.mode = len(data), int(stamp), 0o600
                tar.addfile(info, io.BytesIO(data))
        return path.stat().st_size


def masked(member: Any) -> str:
    """A member as written: text masked, data masked value by value and written as JSON."""
    if isinstance(member, str):
        return mask_text(member)
    return json.dumps(mask_data(member), indent=2) + "\n"


def make_bundle(settings: Settings, config_path: str, output: Path, *,
                deadline_s: float | None = None) -> tuple[Path, int]:
    """Write the bundle for this terminal to ``output``; returns its path and size in bytes. With no
    daemon running, a fresh diagnosis is made for it within ``deadline_s`` (default: the configured deadline)."""
    raw = _read_raw_config(config_path)
    bundle = Bundle()
    token = None
    if settings.server.token_file:
        token = bundle.add("token.json", lambda: _token(settings))
    status = bundle.add("status.json", lambda: _status(settings))
    fresh = None
    if status is not None and status["running"] is False:  # a running daemon owns the probes: never beside it
        fresh = bundle.add("diagnosis.json", lambda: _diagnose(settings, deadline_s))
    if fresh is not None:
        bundle.add("diagnosis.txt", lambda: _render(fresh))
    bundle.add("config.toml.json", lambda: mask_config(raw))
    bundle.add("versions.txt", _versions)
    stored = bundle.add("reports.json", lambda: _reports(settings))
    bundle.add("kernel.log", lambda: _kernel_lines(settings.reader.kernel_log))
    if settings.txlog.path:
        bundle.add("pos.log", lambda: _tail(settings.txlog.path, POS_LOG_LINES))
    bundle.add("usb.json", lambda: _usb(settings))
    bundle.add(SUMMARY, lambda: _summary(settings, config_path, status, fresh, stored, token))
    size = bundle.write(output)
    return output, size


def _read_raw_config(config_path: str) -> dict[str, Any]:
    """The configuration as written (the settings have defaults filled in), read as ``load`` reads it."""
    from posdiag.core import settings as config

    return config.tomllib.loads(config.read_config_bytes(config_path).decode("utf-8"))


def _summary(settings: Settings, config_path: str, status: dict[str, Any] | None, fresh: dict[str, Any] | None,
             stored: list[dict[str, Any]] | None, token: dict[str, Any] | None) -> str:
    """The bundle's cover note, in the language of the technician who made it (the member names and
    the other members stay as they are: the help desk's tools read those): which diagnosis it holds."""
    from posdiag.core.i18n import tr

    lines = [tr("posdiag support bundle"), tr("terminal: {terminal}", terminal=settings.terminal_id),
             tr("site: {site}", site=settings.terminal.site or "-"), tr("made at: {time}", time=utc_iso(time.time())),
             tr("config: {path}", path=config_path), f"posdiag: {__version__}",
             _diagnosis_line(status, fresh),
             tr("stored reports: {n} in reports.json, newest first", n=len(stored) if stored is not None else 0)]
    if token is not None:
        lines.append(_token_line(token))
    return "\n".join(lines) + "\n"


def _diagnosis_line(status: dict[str, Any] | None, fresh: dict[str, Any] | None) -> str:
    """Which diagnosis the bundle holds: a fresh one made for it, or none (and why)."""
    from posdiag.core.i18n import tr

    if fresh is not None:
        from posdiag.agent.report import VERDICT_WORDS

        verdict = fresh["diagnosis"]["verdict"]
        return tr("diagnosis: no daemon runs, so a fresh one was made for this bundle (diagnosis.json, diagnosis.txt): "
                  "{verdict}, most likely {cause}", verdict=tr(VERDICT_WORDS[verdict]) if verdict in VERDICT_WORDS
                  else verdict, cause=fresh["diagnosis"]["causes"][0]["id"])
    if status is not None and status["running"] is False:
        return tr("diagnosis: no daemon runs, and a fresh one could not be made (see errors.txt)")
    if status is not None and status["running"]:
        return tr("diagnosis: the daemon runs and diagnoses by itself: its last reports are in reports.json "
                  "(none made beside it)")
    return tr("diagnosis: none made for this bundle: it cannot tell whether a daemon runs (see status.json, errors.txt)")


def _token_line(token: dict[str, Any]) -> str:
    """What the token file is: there or not, its mode, whether push can use it — never the token."""
    from posdiag.core.i18n import tr

    if not token["present"]:
        return tr("token file: {path}: not there", path=token["path"])
    if token["problem"]:
        return tr("token file: {path}: mode {mode}, not usable for push (see token.json)", path=token["path"],
                  mode=token["mode"])
    return tr("token file: {path}: mode {mode}, usable for push", path=token["path"], mode=token["mode"])


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
    """The daemon's status; ``running`` is False when none answers, None when that cannot be told."""
    from posdiag.agent.access import AccessDenied
    from posdiag.agent.control import DaemonBusy, DaemonNotRunning, request

    try:
        return {"running": True, **request(settings.daemon.control_socket, {"cmd": "status"}, timeout_s=5)["status"]}
    except DaemonNotRunning as exc:
        return {"running": False, "error": str(exc)}
    except DaemonBusy as exc:
        return {"running": True, "error": str(exc)}
    except AccessDenied as exc:
        return {"running": None, "error": str(exc)}


def _diagnose(settings: Settings, deadline_s: float | None) -> dict[str, Any]:
    """A fresh diagnosis for the bundle, as ``posdiag diagnose`` makes it (not stored, not pushed)."""
    from posdiag.agent.sweep import run_sweep

    return run_sweep(settings, trigger=Trigger.ON_DEMAND.value, deadline_s=deadline_s)


def _render(report: dict[str, Any]) -> str:
    from posdiag.agent.report import render_text

    return render_text(report)


def _token(settings: Settings) -> dict[str, Any]:
    from posdiag.agent.pushsetup import token_state

    return token_state(settings.server.token_file)


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
    """The last lines of the POS log, read as the txlog probe reads it (a FIFO or a device never, at
    most :data:`TAIL_BYTES`), each line masked."""
    from posdiag.probes.txlog import read_tail

    return "\n".join(mask_text(line) for line in read_tail(path, TAIL_BYTES)[-count:]) + "\n"


def _usb(settings: Settings) -> list[dict[str, Any]]:
    from dataclasses import asdict

    from posdiag.probes.reader.usb import enumerate_pyserial, enumerate_sysfs

    devices = enumerate_sysfs(settings.reader.sysfs_root)
    if devices is None:
        devices = enumerate_pyserial()
    return [asdict(d) for d in devices]
