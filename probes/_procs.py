"""Find the POS application's processes by name, tolerating processes that vanish mid-scan."""

from __future__ import annotations

import psutil


def find_processes(name: str) -> list[psutil.Process]:
    """Processes whose name, executable basename or first argument basename is ``name``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            info = proc.info
            argv0 = (info.get("cmdline") or [""])[0].rsplit("/", 1)[-1]
            args = [a.rsplit("/", 1)[-1] for a in (info.get("cmdline") or [])[:2]]
            if info.get("name") == name or argv0 == name or name in args:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found
