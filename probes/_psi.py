"""Pressure stall information (Linux >= 4.20): the share of the last 10 s in which tasks waited for
memory, a CPU or I/O. The kernel keeps these averages itself, so reading one needs no sampling
window. Where the kernel runs without it (built without PSI, or booted with it off: Debian's kernels
need ``psi=1``) the files are absent and the caller measures another way."""

from __future__ import annotations

MEMORY = "/proc/pressure/memory"
CPU = "/proc/pressure/cpu"


def read_psi(path: str) -> dict[str, float] | None:
    """``avg10`` of each line (``some``, ``full``) of a pressure file, or None where there is none."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, ValueError):
        return None
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, *fields = line.split() or [""]
        for f in fields:
            key, _, value = f.partition("=")
            if key == "avg10":
                try:
                    out[kind] = float(value)
                except ValueError:
                    continue
    return out or None
