"""Host-resource fault scenarios: real full filesystems, read-only remounts, wrong clocks, memory."""

from __future__ import annotations

import subprocess
from contextlib import ExitStack
from pathlib import Path

from harness import Setup, scenario, unsure
from labs.helpers import NtpResponder, exhaust_inodes, fill_filesystem, remount_read_only


def _tmpfs(tmp: Path, stack: ExitStack, opts: str) -> Path:
    target = tmp / "fs"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "posdiag-bench", str(target)], check=True)
    stack.callback(subprocess.run, ["umount", "-l", str(target)], check=False)
    return target


def _ntp(stack: ExitStack, offset_s: float) -> NtpResponder:
    srv = NtpResponder(offset_s)
    srv.start()
    stack.callback(srv.stop)
    return srv


@scenario("healthy", "none")
def healthy(tmp: Path, stack: ExitStack) -> Setup:
    return Setup({"clock": {"ntp_server": _ntp(stack, 0.02).address}})


@scenario("nothing-configured", "none", group="coverage", check=unsure(0.6))
def nothing_configured(tmp: Path, stack: ExitStack) -> Setup:
    """No payment host, no reader: what was never checked must not read as "every check passed"."""
    return Setup({})


@scenario("disk-full", "disk.full", needs_root=True)
def disk_full(tmp: Path, stack: ExitStack) -> Setup:
    fs = _tmpfs(tmp, stack, "size=1m")
    fill_filesystem(fs)
    return Setup({"disk": {"paths": [str(fs)]}})


@scenario("disk-no-inodes", "disk.full", needs_root=True)
def disk_inodes(tmp: Path, stack: ExitStack) -> Setup:
    fs = _tmpfs(tmp, stack, "size=8m,nr_inodes=64")
    exhaust_inodes(fs)
    return Setup({"disk": {"paths": [str(fs)]}})


@scenario("disk-read-only", "disk.failing", needs_root=True)
def disk_read_only(tmp: Path, stack: ExitStack) -> Setup:
    fs = _tmpfs(tmp, stack, "size=4m")
    remount_read_only(fs)
    return Setup({"disk": {"paths": [str(fs)]}})


@scenario("memory-threshold", "memory.exhausted")
def memory_threshold(tmp: Path, stack: ExitStack) -> Setup:
    return Setup({"memory": {"min_available_mb": 1_000_000}})


@scenario("clock-hour-off", "clock.skew")
def clock_hour_off(tmp: Path, stack: ExitStack) -> Setup:
    return Setup({"clock": {"ntp_server": _ntp(stack, 3600).address}})


@scenario("pos-app-down", "system.overload")
def pos_app_down(tmp: Path, stack: ExitStack) -> Setup:
    return Setup({"terminal": {"pos_process": "posapp-not-running"}})
