"""USB: the configured reader is present, and nothing new has appeared since the baseline.

Devices are enumerated from sysfs (``<root>/bus/usb/devices``), which shows HID readers and
keyboards as well as USB-serial adapters; where there is no sysfs (Windows), pyserial's port list
gives the USB-serial ones. The first run records the terminal's inventory as a baseline in the
state directory; a keyboard-class device, hub or unknown device that appears later is a tamper
sign (an inline keylogger or skimmer), named with its VID:PID and path.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes.base import Observation, Probe, Status, declare
from posdiag.probes.gates import unconfigured

BASELINE_FILE = "usb-baseline.json"


@dataclass(frozen=True)
class UsbDevice:
    path: str  # sysfs name: bus-port.port…
    vid: str
    pid: str
    serial: str
    product: str
    manufacturer: str
    kind: str  # hub | keyboard | hid | serial | other
    tty: str = ""

    @property
    def ident(self) -> str:
        return f"{self.vid}:{self.pid}"

    @property
    def key(self) -> str:
        """Identity across plug-ins: VID:PID and serial where the device has one, else its port."""
        return f"{self.ident}/{self.serial}" if self.serial else f"{self.ident}@{self.path}"

    def describe(self) -> str:
        """The device as a technician finds it: VID:PID, its name, where it is plugged in (in this process's language)."""
        name = " ".join(x for x in (self.manufacturer, self.product) if x) or tr("unnamed device")
        if self.tty:
            return tr("{ident} {name} at {path} ({tty})", ident=self.ident, name=name, path=self.path, tty=self.tty)
        return tr("{ident} {name} at {path}", ident=self.ident, name=name, path=self.path)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def enumerate_sysfs(sysfs_root: str = "/sys") -> list[UsbDevice] | None:
    """USB devices under ``sysfs_root``; None when that sysfs has no USB bus at all."""
    base = os.path.join(sysfs_root, "bus", "usb", "devices")
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return None
    devices = []
    for name in names:
        if ":" in name or name.startswith("usb"):  # interfaces, root hubs
            continue
        dev = os.path.join(base, name)
        vid, pid = _read(os.path.join(dev, "idVendor")), _read(os.path.join(dev, "idProduct"))
        if not vid:
            continue
        classes, tty = [], ""
        for entry in sorted(os.listdir(dev)) if os.path.isdir(dev) else []:
            if not entry.startswith(name + ":"):
                continue
            iface = os.path.join(dev, entry)
            classes.append((_read(os.path.join(iface, "bInterfaceClass")), _read(os.path.join(iface, "bInterfaceProtocol"))))
            tty = tty or _find_tty(iface)
        devices.append(UsbDevice(name, vid.lower(), pid.lower(), _read(os.path.join(dev, "serial")),
                                 _read(os.path.join(dev, "product")), _read(os.path.join(dev, "manufacturer")),
                                 _kind(_read(os.path.join(dev, "bDeviceClass")), classes, tty), tty))
    return devices


def _find_tty(iface: str) -> str:
    for entry in os.listdir(iface):
        if entry.startswith(("ttyUSB", "ttyACM")):
            return entry
        if entry == "tty":
            inner = os.listdir(os.path.join(iface, "tty"))
            if inner:
                return inner[0]
    return ""


def _kind(device_class: str, interfaces: list[tuple[str, str]], tty: str) -> str:
    if device_class == "09":
        return "hub"
    if ("03", "01") in interfaces:
        return "keyboard"
    if tty:
        return "serial"
    if any(c == "03" for c, _ in interfaces):
        return "hid"
    return "other"


def enumerate_pyserial() -> list[UsbDevice]:
    """USB-serial ports as pyserial sees them: the portable fallback where sysfs is absent."""
    from serial.tools import list_ports

    out = []
    for port in list_ports.comports():
        if port.vid is None:
            continue
        out.append(UsbDevice(port.location or port.device, f"{port.vid:04x}", f"{port.pid:04x}", port.serial_number or "",
                             port.product or "", port.manufacturer or "", "serial", os.path.basename(port.device)))
    return out


class UsbProbe(Probe):
    name = "reader.usb"
    description = N_("USB inventory: the configured reader VID:PID present; new keyboards, hubs or devices since the "
                     "baseline")
    findings = declare(fail=("reader.serial_mismatch", "reader.usb_missing", "reader.usb_new_keyboard"),
                           warn=("reader.usb_baseline_unreadable", "reader.usb_new_device", "reader.usb_new_hub"),
                           info=("reader.usb_baseline_created", "reader.usb_baseline_not_saved", "reader.usb_gone",
                           "reader.usb_present"))

    def skip_reason(self) -> str | None:
        return unconfigured(self.name, self.settings)

    def check(self, obs: Observation) -> None:
        cfg = self.settings.reader
        devices = enumerate_sysfs(cfg.sysfs_root)
        source = "sysfs"
        if devices is None:
            devices, source = enumerate_pyserial(), "pyserial"
        obs.metric("usb_devices", len(devices))
        obs.metric("source", source)
        reader = None
        if cfg.usb:
            vid, pid = cfg.usb.lower().split(":")
            matches = [d for d in devices if d.vid == vid and d.pid == pid]
            if matches:
                reader = matches[0]
                obs.info("reader.usb_present", tr("reader {device}", device=reader.describe()),
                         path=reader.path, serial=reader.serial)
                obs.metric("reader_path", reader.path)
                if cfg.expected_serial and reader.serial and reader.serial != cfg.expected_serial:
                    obs.fail("reader.serial_mismatch", tr("USB reader {ident} reports serial {found}, but {expected} is on "
                                                          "file: this is not the registered reader", ident=reader.ident,
                                                          found=reader.serial, expected=cfg.expected_serial),
                             expected=cfg.expected_serial, found=reader.serial, path=reader.path)
            else:
                obs.fail("reader.usb_missing", tr("no USB device {usb} present", usb=cfg.usb), usb=cfg.usb, devices=len(devices))
        self.compare_baseline(obs, devices, reader)
        if obs.status() is Status.OK:
            summary = ntr("{n} USB device, matching the baseline", "{n} USB devices, matching the baseline", len(devices))
            if cfg.usb:
                summary = tr("{summary}; reader {usb} present", summary=summary, usb=cfg.usb)
            obs.summary = summary

    def compare_baseline(self, obs: Observation, devices: list[UsbDevice], reader: UsbDevice | None) -> None:
        """Devices that were not there when the baseline was recorded, and baseline devices now gone. The
        reader itself is judged by its serial (above); a second device of the reader's model is not the
        reader, and is reported like any other newcomer."""
        state_dir = self.context.state_dir or self.settings.daemon.state_dir
        path = os.path.join(state_dir, BASELINE_FILE)
        try:
            with open(path, encoding="utf-8") as fh:
                baseline = json.load(fh)
            known = {d["key"] for d in baseline["devices"]}
        except FileNotFoundError:
            self.save_baseline(obs, path, devices)
            return
        except (OSError, ValueError, KeyError, TypeError) as exc:
            obs.warn("reader.usb_baseline_unreadable", tr("USB baseline {path} unreadable ({error}); recording a new one",
                                                          path=path, error=exc), path=path)
            self.save_baseline(obs, path, devices)
            return
        obs.metric("baseline_devices", len(known))
        for dev in devices:
            if dev.key in known or dev is reader:
                continue
            data = {"vid": dev.vid, "pid": dev.pid, "path": dev.path, "serial": dev.serial, "product": dev.product,
                    "device_kind": dev.kind}
            if dev.kind == "keyboard":
                obs.fail("reader.usb_new_keyboard", tr("a keyboard-class device appeared since the baseline: {device}",
                                                       device=dev.describe()), **data)
            elif dev.kind == "hub":
                obs.warn("reader.usb_new_hub", tr("a USB hub appeared since the baseline: {device}",
                                                  device=dev.describe()), **data)
            else:
                obs.warn("reader.usb_new_device", tr("an unknown USB device appeared since the baseline: {device}",
                                                     device=dev.describe()), **data)
        present = {d.key for d in devices}
        gone = [d for d in baseline["devices"] if d["key"] not in present]
        for d in gone:
            obs.info("reader.usb_gone", tr("{vid}:{pid} at {path} is no longer present", vid=d["vid"], pid=d["pid"],
                                           path=d["path"]), **d)

    @staticmethod
    def save_baseline(obs: Observation, path: str, devices: list[UsbDevice]) -> None:
        record = {"created_at": time.time(), "devices": [{**asdict(d), "key": d.key} for d in devices]}
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(record, fh, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            obs.info("reader.usb_baseline_not_saved", tr("cannot store the USB baseline at {path}: {error}", path=path,
                                                         error=exc))
            return
        obs.info("reader.usb_baseline_created", ntr("recorded {n} USB device as the baseline in {path} (delete it to "
                                                    "record a new one after a sanctioned hardware change)",
                                                    "recorded {n} USB devices as the baseline in {path} (delete it to "
                                                    "record a new one after a sanctioned hardware change)",
                                                    len(devices), path=path), path=path, devices=len(devices))
