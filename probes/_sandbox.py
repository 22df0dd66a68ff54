"""Whether systemd's sandbox around this process hides a path, and the drop-in that opens it.

posdiag.service runs with ProtectHome=yes, PrivateTmp=yes and DevicePolicy=closed. A POS log under
/home or /tmp, or a reader on a port the device policy does not list, is then missing or forbidden
to the service while it is there for everyone else, and "the log does not exist" would send the
technician after the wrong thing. What tells the two apart is what the sandbox leaves in this
process's own view, not the unit file (a drop-in may have changed it) nor $INVOCATION_ID (every
service has one, sandboxed or not):

* ProtectHome=yes mounts systemd's empty, inaccessible folder (``…/inaccessible/dir``) over /home,
  /root and /run/user;
* PrivateTmp=yes mounts the unit's own ``…/systemd-private-<boot>-<unit>-<random>/tmp`` over /tmp
  and /var/tmp;
* DevicePolicy= makes the device cgroup refuse to open a device node with EPERM, where file
  permissions answer EACCES.

The drop-in binds the log's folder rather than the log (a rotated log is a new file in that folder,
which a bind of the old file would never show), and the unit is named from this process's cgroup.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from typing import Any

from posdiag.core.i18n import tr
from posdiag.probes._mounts import MOUNTINFO, mount_of, read_mounts

CGROUP = "/proc/self/cgroup"
#: the unit the Debian package installs, named when this process's cgroup names none
DEFAULT_UNIT = "posdiag.service"
HOME_DIRS = ("/home", "/root", "/run/user")
TMP_DIRS = ("/tmp", "/var/tmp")
_INACCESSIBLE = re.compile(r"/inaccessible/dir$")
_PRIVATE_TMP = re.compile(r"/systemd-private-[0-9a-f]+-(?P<unit>[^/]+)-[^-/]+/tmp$")


@dataclass(frozen=True)
class Hidden:
    """A path the sandbox of ``unit`` hides, by which ``setting``, and the drop-in lines that open it."""

    setting: str  # ProtectHome, PrivateTmp or DevicePolicy
    unit: str
    lines: tuple[str, ...]  # under [Service] in `systemctl edit UNIT`

    def data(self) -> dict[str, Any]:
        """The finding's data: what machines (and the help desk) read."""
        return {"setting": self.setting, "unit": self.unit, "dropin": ["[Service]", *self.lines]}

    def advice(self) -> str:
        """How to open the path, in the reader's language."""
        name = self.unit.removesuffix(".service")
        return tr("`systemctl edit {name}`, add under [Service]: {lines}; then `systemctl restart {name}`",
                  name=name, lines=tr("; ").join(self.lines))


def hidden_path(path: str, *, device: bool = False, mountinfo: str = MOUNTINFO, cgroup: str = CGROUP) -> Hidden | None:
    """How the sandbox hides ``path``, which this process cannot see, or None when no sandbox mount does.

    ``device``: the path names a device (a reader's port), which needs a writable bind.
    """
    real = os.path.realpath(path)  # resolves what is visible; the hidden rest stays as written
    try:
        mount = mount_of(real, read_mounts(mountinfo))
    except OSError:
        return None
    if mount is None:
        return None
    folder = os.path.dirname(real)
    bind = "BindPaths" if device else "BindReadOnlyPaths"
    # A file right in /home or /tmp: binding the whole folder would undo the protection.
    opening = f"{bind}={real if folder == mount.point else folder}"
    if mount.point in HOME_DIRS and _INACCESSIBLE.search(mount.root):
        return Hidden("ProtectHome", unit_of(cgroup), ("ProtectHome=tmpfs", opening))
    private = _PRIVATE_TMP.search(mount.root)
    if mount.point in TMP_DIRS and private:
        return Hidden("PrivateTmp", private["unit"], (opening,))
    return None


def refused_device(path: str, error: BaseException, cgroup: str = CGROUP) -> Hidden | None:
    """How the device policy refuses ``path``, a device node whose open failed with ``error``, or None."""
    if getattr(error, "errno", None) != errno.EPERM:
        return None
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if not (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        return None
    return Hidden("DevicePolicy", unit_of(cgroup), (f"DeviceAllow={os.path.realpath(path)} rw",))


def unit_of(cgroup: str = CGROUP) -> str:
    """The service this process runs in, from its cgroup path (``…/posdiag.service``)."""
    try:
        with open(cgroup, encoding="utf-8", errors="replace") as f:
            for line in f:
                name = line.rstrip("\n").rsplit("/", 1)[-1]
                if name.endswith(".service"):
                    return name
    except OSError:
        pass
    return DEFAULT_UNIT
