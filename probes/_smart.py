"""A drive's own health as ``smartctl --json -H -A`` reports it (smartmontools 7+): the overall
self-assessment, the sector counters that grow as a disk dies, and NVMe's health log. One bounded
run per disk; a terminal without smartmontools, or a disk without SMART, says so instead."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

#: ATA attributes whose raw value counts damaged sectors: reallocated, pending, offline uncorrectable
SECTOR_ATTRIBUTES = {5: "reallocated", 197: "pending", 198: "uncorrectable"}
#: smartctl's exit status bit 3: "SMART status check returned DISK FAILING"
DISK_FAILING_BIT = 8


@dataclass(frozen=True)
class Health:
    """``passed`` None when the drive gave no verdict; ``why`` says why nothing could be read."""

    device: str
    passed: bool | None = None
    model: str = ""
    #: reallocated / pending / uncorrectable sectors (ATA), media_errors (NVMe), where non-zero
    sectors: dict[str, int] = field(default_factory=dict)
    #: NVMe critical warning bits (spare, temperature, reliability, read-only, backup)
    critical_warning: int = 0
    why: str = ""


def smartctl() -> str | None:
    """The smartctl command here, or None when smartmontools is not installed."""
    return shutil.which("smartctl")


def read_health(tool: str, device: str, timeout_s: float) -> Health:
    """Run smartctl (``tool``) on ``device`` (``/dev/sda``) within ``timeout_s``."""
    try:
        run = subprocess.run([tool, "--json", "-H", "-A", device], capture_output=True, text=True,
                             timeout=max(0.05, timeout_s), errors="replace")
    except subprocess.TimeoutExpired:
        return Health(device, why=f"smartctl did not answer within {timeout_s:.1f} s")
    except OSError as exc:
        return Health(device, why=f"smartctl: {exc.strerror or exc}")
    return parse(device, run.stdout)


def parse(device: str, text: str) -> Health:
    """The health in smartctl's JSON output (whatever its exit status: a failing disk sets bits)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return Health(device, why="smartctl printed no JSON")
    if not isinstance(doc, dict):
        return Health(device, why="smartctl printed no JSON")
    status = doc.get("smart_status")
    passed = status.get("passed") if isinstance(status, dict) else None
    exit_status = (doc.get("smartctl") or {}).get("exit_status", 0)
    if passed is None and isinstance(exit_status, int) and exit_status & DISK_FAILING_BIT:
        passed = False
    nvme = doc.get("nvme_smart_health_information_log") or {}
    sectors = {**_ata_sectors(doc), **({"media_errors": nvme["media_errors"]} if nvme.get("media_errors") else {})}
    why = "" if passed is not None or sectors else _message(doc)
    return Health(device, passed if isinstance(passed, bool) else None, str(doc.get("model_name", "")), sectors,
                  int(nvme.get("critical_warning") or 0), why)


def _ata_sectors(doc: dict[str, Any]) -> dict[str, int]:
    table = (doc.get("ata_smart_attributes") or {}).get("table") or []
    out = {}
    for row in table:
        name = SECTOR_ATTRIBUTES.get(row.get("id")) if isinstance(row, dict) else None
        raw = (row.get("raw") or {}).get("value") if name else None
        if name and isinstance(raw, int) and raw > 0:
            out[name] = raw
    return out


def _message(doc: dict[str, Any]) -> str:
    """smartctl's own words for why it gave no health (no SMART, cannot open, permission)."""
    messages = (doc.get("smartctl") or {}).get("messages") or []
    said = [m.get("string", "") for m in messages if isinstance(m, dict)]
    return (said[0] if said else "no SMART data")[:200]
