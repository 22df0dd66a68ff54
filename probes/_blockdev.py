"""Which disks hold a path: path → mount → block device → its disk, the way the kernel names them in
its log (``sda1`` and ``sda``, ``dm-0`` and what it is built on, ``ata1`` for the port). Local reads
of mountinfo and sysfs, both under the host root; no traffic."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from posdiag.probes._mounts import mount_of, read_mounts

_ATA_PORT = re.compile(r"/(ata\d+)/")


@dataclass(frozen=True)
class Holder:
    """The kernel's names for what holds a path: ``names`` for its log, ``disks`` to ask for SMART."""

    names: tuple[str, ...]
    disks: tuple[str, ...]


def holder_of(path: str, mountinfo: str, sys_root: str) -> Holder:
    """The block devices under ``path`` (empty for tmpfs, overlay and other filesystems without one)."""
    try:
        mount = mount_of(os.path.realpath(path), read_mounts(mountinfo))
    except OSError:
        return Holder((), ())
    if mount is None:
        return Holder((), ())
    start = _sysfs_entry(mount.device, mount.source, sys_root)
    names: list[str] = []
    disks: list[str] = []
    _walk(start, names, disks, depth=4)
    return Holder(tuple(dict.fromkeys(names)), tuple(dict.fromkeys(disks)))


def _sysfs_entry(device: str, source: str, sys_root: str) -> str | None:
    """The device's folder in sysfs: by its number, else (btrfs and others report major 0) by the
    /dev name that was mounted."""
    if device and not device.startswith("0:"):
        entry = os.path.join(sys_root, "dev", "block", device)
        if os.path.exists(entry):
            return os.path.realpath(entry)
    if source.startswith("/dev/"):
        entry = os.path.join(sys_root, "class", "block", os.path.basename(os.path.realpath(source)))
        if os.path.exists(entry):
            return os.path.realpath(entry)
    return None


def _walk(entry: str | None, names: list[str], disks: list[str], depth: int) -> None:
    """Name ``entry``, its disk when it is a partition, and what a dm or md device is built on."""
    if entry is None or depth <= 0:
        return
    names.append(os.path.basename(entry))
    disk = os.path.dirname(entry) if os.path.exists(os.path.join(entry, "partition")) else entry
    if disk != entry:
        names.append(os.path.basename(disk))
    port = _ATA_PORT.search(disk)
    if port:
        names.append(port.group(1))
    try:
        slaves = sorted(os.listdir(os.path.join(disk, "slaves")))
    except OSError:
        slaves = []
    if slaves:
        for slave in slaves:
            _walk(os.path.realpath(os.path.join(disk, "slaves", slave)), names, disks, depth - 1)
    elif os.path.exists(os.path.join(disk, "device")):  # a real disk (not loop, zram, dm): SMART may answer
        disks.append(os.path.basename(disk))
