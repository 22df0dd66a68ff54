"""The radio under an interface: what kind it is (Wi-Fi, cellular, none), and its signal — Wi-Fi
from the kernel (/proc/net/wireless, else ``iw dev IF link`` over nl80211), cellular from
ModemManager (``mmcli -J``). Local reads and bounded local commands; no traffic."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

#: the Wi-Fi link quality scale of mac80211 drivers in /proc/net/wireless (quality = level + 110, at most 70)
WIFI_QUALITY_MAX = 70
#: interface names a cellular modem's network port takes
CELL_PREFIXES = ("wwan", "rmnet", "ppp")


@dataclass(frozen=True)
class Signal:
    """One reading: ``dbm`` (Wi-Fi level, or the modem's RSSI) and ``percent`` (link or signal quality)."""

    kind: str  # "wifi" or "cellular"
    dbm: float | None = None
    percent: float | None = None
    technology: str = ""  # cellular: lte, umts, gsm …
    source: str = ""  # where it was read: /proc/net/wireless, iw, mmcli


def kind_of(interface: str, sys_root: str) -> str:
    """``wifi``, ``cellular`` or ``wired``, from the interface's sysfs entry (DEVTYPE, wireless/, phy80211)."""
    base = os.path.join(sys_root, "class", "net", interface)
    devtype = ""
    try:
        with open(os.path.join(base, "uevent")) as f:
            devtype = next((line.split("=", 1)[1].strip() for line in f if line.startswith("DEVTYPE=")), "")
    except OSError:
        pass
    if devtype == "wlan" or os.path.isdir(os.path.join(base, "wireless")) or os.path.exists(os.path.join(base, "phy80211")):
        return "wifi"
    if devtype == "wwan" or interface.startswith(CELL_PREFIXES):
        return "cellular"
    return "wired"


def proc_wireless(interface: str, path: str) -> Signal | None:
    """The interface's line of /proc/net/wireless (wireless extensions):
    ``wlan0: 0000   54.  -56.  -256 …`` — status, link quality, level (dBm), noise."""
    try:
        with open(path) as f:
            lines = f.readlines()[2:]
    except OSError:
        return None
    for line in lines:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if name.strip() != interface or len(fields) < 3:
            continue
        try:
            quality, level = float(fields[1].rstrip(".")), float(fields[2].rstrip("."))
        except ValueError:
            return None
        dbm = level if level < 0 else (level - 256 if level > 63 else None)  # older drivers: unsigned byte
        return Signal("wifi", dbm, round(min(100.0, quality / WIFI_QUALITY_MAX * 100), 1), source="/proc/net/wireless")
    return None


def iw_link(interface: str, timeout_s: float) -> Signal | None:
    """``iw dev IF link`` (nl80211): ``signal: -67 dBm`` while associated."""
    tool = shutil.which("iw")
    if tool is None:
        return None
    try:
        out = subprocess.run([tool, "dev", interface, "link"], capture_output=True, text=True,
                             timeout=max(0.05, timeout_s), errors="replace").stdout
    except (subprocess.TimeoutExpired, OSError):
        return None
    match = re.search(r"signal:\s*(-?\d+)\s*dBm", out)
    return Signal("wifi", float(match.group(1)), source="iw") if match else None


def modem_signal(interface: str, timeout_s: float) -> Signal | None:
    """The signal of the ModemManager modem whose network port is ``interface`` (``mmcli -J``)."""
    tool = shutil.which("mmcli")
    if tool is None:
        return None
    listed = _mmcli(tool, ["-L", "-J"], timeout_s)
    for path in (listed or {}).get("modem-list", []) if isinstance(listed, dict) else []:
        modem = _mmcli(tool, ["-m", str(path).rsplit("/", 1)[-1], "-J"], timeout_s)
        signal = parse_modem(modem, interface) if isinstance(modem, dict) else None
        if signal:
            return signal
    return None


def _mmcli(tool: str, args: list[str], timeout_s: float) -> object:
    try:
        out = subprocess.run([tool, *args], capture_output=True, text=True, timeout=max(0.05, timeout_s),
                             errors="replace").stdout
        return json.loads(out)
    except (subprocess.TimeoutExpired, OSError, ValueError):
        return None


def parse_modem(doc: dict, interface: str) -> Signal | None:
    """A modem's signal from ``mmcli -m N -J``, if its ports include ``interface`` as the network port."""
    generic = (doc.get("modem") or {}).get("generic") or {}
    ports = [str(p) for p in generic.get("ports") or []]
    if not any(p.split(" ", 1)[0] == interface for p in ports):
        return None
    quality = (generic.get("signal-quality") or {}).get("value")
    technologies = generic.get("access-technologies") or []
    try:
        percent = float(quality)
    except (TypeError, ValueError):
        percent = None
    return Signal("cellular", None, percent, ", ".join(str(t) for t in technologies), "mmcli")
