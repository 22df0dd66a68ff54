"""A sysfs-shaped USB tree, laid out as Linux shows a real terminal's bus:

    bus/usb/devices/usb1            root hub 1d6b:0002
    bus/usb/devices/1-1             the reader, 0b00:0084 (Ingenico), CDC ACM → tty/ttyACM0
    bus/usb/devices/1-1:1.0         its communication interface (class 02)
    bus/usb/devices/1-1:1.1         its data interface (class 0a) holding tty/ttyACM0
    bus/usb/devices/1-2             the receipt printer 04b8:0e15 (class 07)

Device directories carry the attribute files the probe reads (idVendor, idProduct, serial,
product, manufacturer, bDeviceClass) and interface directories bInterfaceClass/Protocol.
"""

from __future__ import annotations

from pathlib import Path

READER = {"name": "1-1", "vid": "0b00", "pid": "0084", "serial": "PP1000-04711", "product": "iPP350",
          "manufacturer": "Ingenico", "class": "02", "interfaces": [("02", "01", None), ("0a", "00", "ttyACM0")]}
PRINTER = {"name": "1-2", "vid": "04b8", "pid": "0e15", "serial": "X5E4012345", "product": "TM-T88V",
           "manufacturer": "EPSON", "class": "00", "interfaces": [("07", "02", None)]}
KEYBOARD = {"name": "1-3", "vid": "1a2c", "pid": "0e24", "serial": "", "product": "USB Keyboard",
            "manufacturer": "SEMICO", "class": "00", "interfaces": [("03", "01", None)]}
HUB = {"name": "1-4", "vid": "05e3", "pid": "0608", "serial": "", "product": "USB2.0 Hub", "manufacturer": "",
       "class": "09", "interfaces": [("09", "00", None)]}


def add_device(root: Path, dev: dict) -> None:
    base = root / "bus" / "usb" / "devices"
    d = base / dev["name"]
    d.mkdir(parents=True, exist_ok=True)
    for attr, key in (("idVendor", "vid"), ("idProduct", "pid"), ("product", "product"),
                      ("manufacturer", "manufacturer"), ("bDeviceClass", "class")):
        (d / attr).write_text(dev[key] + "\n")
    if dev["serial"]:
        (d / "serial").write_text(dev["serial"] + "\n")
    (d / "busnum").write_text("1\n")
    for i, (cls, proto, tty) in enumerate(dev["interfaces"]):
        iface = d / f"{dev['name']}:1.{i}"
        iface.mkdir(exist_ok=True)
        (iface / "bInterfaceClass").write_text(cls + "\n")
        (iface / "bInterfaceProtocol").write_text(proto + "\n")
        if tty:
            (iface / "tty" / tty).mkdir(parents=True, exist_ok=True)


def device_with_tty(root: Path, dev: dict) -> tuple[Path, str]:
    """``dev`` where /sys/devices nests it (``usb1/1-1/1-1:1.1``), as ``/sys/class/tty/<tty>/device``
    leads to it: the interface holding the tty, with a ``subsystem`` link to the usb bus, inside its
    device folder. Returns that interface and the tty's name (pyserial's port list reads this)."""
    device = root / "devices" / "usb1" / dev["name"]
    device.mkdir(parents=True)
    (root / "bus" / "usb").mkdir(parents=True, exist_ok=True)
    for attr, key in (("idVendor", "vid"), ("idProduct", "pid"), ("serial", "serial"), ("product", "product"),
                      ("manufacturer", "manufacturer")):
        (device / attr).write_text(dev[key] + "\n")
    (device / "bNumInterfaces").write_text(f" {len(dev['interfaces'])}\n")
    for i, (cls, _proto, tty) in enumerate(dev["interfaces"]):
        iface = device / f"{dev['name']}:1.{i}"
        iface.mkdir()
        (iface / "bInterfaceClass").write_text(cls + "\n")
        (iface / "subsystem").symlink_to(root / "bus" / "usb")
        if tty:
            return iface, tty
    raise ValueError(f"{dev['name']} has no tty")


def remove_device(root: Path, name: str) -> None:
    import shutil

    shutil.rmtree(root / "bus" / "usb" / "devices" / name)


def terminal_tree(root: Path, *devices: dict) -> Path:
    """The usual till: root hub, reader and printer (plus ``devices``)."""
    hub = root / "bus" / "usb" / "devices" / "usb1"
    hub.mkdir(parents=True, exist_ok=True)
    for attr, value in (("idVendor", "1d6b"), ("idProduct", "0002"), ("bDeviceClass", "09")):
        (hub / attr).write_text(value + "\n")
    for dev in (READER, PRINTER, *devices):
        add_device(root, dev)
    return root
