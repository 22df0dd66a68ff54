"""Disk hardware: the kernel's I/O and filesystem errors on the disks that hold the configured paths
(and the root filesystem), and each such disk's own SMART health through smartctl.

An error counts against the disk only when it names a device that holds one of those paths — a
partition, its disk, the ATA port it hangs on, or what a device-mapper volume is built on — so a
dying USB stick in the back of the till is not blamed on the POS's disk. Kernel-log records are
those of the last ``[system] kernel_log_window_h`` after the last ``dmesg --clear``.
"""

from __future__ import annotations

import re
import time

from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes import _smart
from posdiag.probes._blockdev import Holder, holder_of
from posdiag.probes.base import Observation, Probe, Status, declare

#: the kernel's words for a failed block or filesystem operation, each naming its device
ERRORS = tuple(re.compile(p) for p in (
    r"\berror,? dev (?P<dev>[\w.-]+)",  # "I/O error, dev sda, sector …", "critical medium error, dev sda"
    r"Buffer I/O error on dev(?:ice)? (?P<dev>[\w.-]+)",
    r"(?:EXT[234]|F2FS)-fs error \(device (?P<dev>[\w.-]+)\)",
    r"BTRFS (?:error|critical) \(device (?P<dev>[\w.-]+)",
    r"XFS \((?P<dev>[\w.-]+)\): .*(?:error|[Cc]orrupt)",
    r"\b(?P<dev>ata\d+)(?:\.\d+)?: (?:failed command|exception Emask|error: )",
    r"\[(?P<dev>sd[a-z]+)\] .*(?:Medium Error|Unrecovered read error|FAILED Result)",
    r"\b(?P<dev>mmcblk\d+): error -\d+",
))
#: smartctl is given at most this share of the time left, shared between the disks
SMART_SHARE = 0.6


def device_in(message: str, names: set[str]) -> str | None:
    """The device of ``names`` that a kernel error record names, or None (not an error, or another device)."""
    for pattern in ERRORS:
        match = pattern.search(message)
        if match and match["dev"] in names:
            return match["dev"]
    return None


class DiskHealthProbe(Probe):
    name = "disk.health"
    description = N_("kernel I/O and filesystem errors on the disks holding the configured paths; SMART health "
                     "(smartctl)")
    findings = declare(fail=("disk.kernel_errors", "disk.smart_failing"), warn=("disk.smart_sectors",),
                       info=("disk.kernel_log_unreadable", "disk.no_block_device", "disk.smart_unavailable"))

    def check(self, obs: Observation) -> None:
        holders = self.holders()
        if not any(h.names for h in holders.values()):
            obs.info("disk.no_block_device", tr("no block device holds {paths} (tmpfs, overlay or a container): "
                                                "nothing to check", paths=", ".join(holders)), paths=list(holders))
            obs.summary = tr("no block device to check")
            return
        self.kernel_errors(obs, holders)
        self.smart(obs, holders)
        if obs.status() is Status.OK:
            disks = sorted({d for h in holders.values() for d in h.names})
            obs.summary = tr("no kernel I/O error on {disks}", disks=", ".join(disks))

    def holders(self) -> dict[str, Holder]:
        """Each configured path (and /) → what holds it."""
        paths = list(dict.fromkeys(["/", *self.settings.disk.paths]))
        mountinfo, sys_root = self.host_path("/proc/self/mountinfo"), self.host_path("/sys")
        return {path: holder_of(path, mountinfo, sys_root) for path in paths}

    def kernel_errors(self, obs: Observation, holders: dict[str, Holder]) -> None:
        cfg = self.settings.system
        try:
            records = self.context.kernel_log(cfg.kernel_log, since_clear=True)
        except OSError as exc:
            obs.info("disk.kernel_log_unreadable", tr("the kernel log {path} cannot be read ({error}): disk errors not "
                                                      "checked", path=cfg.kernel_log, error=exc.strerror or exc))
            return
        names = {n for h in holders.values() for n in h.names}
        since = time.monotonic() - cfg.kernel_log_window_h * 3600
        by_device: dict[str, list[str]] = {}
        for stamp, message in records:
            device = device_in(message, names) if stamp >= since else None
            if device:
                by_device.setdefault(device, []).append(message)
        obs.metric("kernel_disk_errors", sum(len(v) for v in by_device.values()))
        for device, messages in sorted(by_device.items()):
            paths = [p for p, h in holders.items() if device in h.names]
            obs.fail("disk.kernel_errors", ntr("{device} (holding {paths}): the kernel logged {n} I/O or filesystem error "
                                               "in the last {hours:g} h: {first}",
                                               "{device} (holding {paths}): the kernel logged {n} I/O or filesystem errors "
                                               "in the last {hours:g} h: {first}", len(messages), device=device,
                                               paths=", ".join(paths), hours=cfg.kernel_log_window_h,
                                               first=messages[0][:160]),
                     device=device, paths=paths, count=len(messages), first=messages[0][:300])

    def smart(self, obs: Observation, holders: dict[str, Holder]) -> None:
        disks = sorted({d for h in holders.values() for d in h.disks})
        if not self.settings.disk.smart or not disks:
            return
        tool = _smart.smartctl()
        if tool is None:
            obs.info("disk.smart_unavailable", tr("smartctl is not installed (smartmontools): the health of {disks} "
                                                  "was not read", disks=", ".join(disks)), disks=disks)
            return
        for disk in disks:
            budget = self.remaining_s() * SMART_SHARE / len(disks)
            self.judge(obs, _smart.read_health(tool, f"/dev/{disk}", budget), holders)

    def judge(self, obs: Observation, health: _smart.Health, holders: dict[str, Holder]) -> None:
        disk = health.device.removeprefix("/dev/")
        paths = [p for p, h in holders.items() if disk in h.disks]
        if health.passed is None and not health.sectors:
            obs.info("disk.smart_unavailable", tr("{device}: no SMART health ({why})", device=health.device,
                                                  why=health.why), disks=[disk])
            return
        obs.metric(f"smart_passed[{disk}]", None if health.passed is None else int(health.passed))
        sectors = tr(", ").join(tr("{count} {what}", count=n, what=tr(_SECTOR_WORDS.get(k, k)))
                                for k, n in sorted(health.sectors.items()))
        if health.passed is False or health.critical_warning:
            message = tr("{device} ({model}, holding {paths}): the drive reports its own health as FAILING",
                         device=health.device, model=health.model or "?", paths=", ".join(paths))
            if sectors:
                message = tr("{message} ({sectors})", message=message, sectors=sectors)
            obs.fail("disk.smart_failing", message,
                     device=health.device, model=health.model, paths=paths, critical_warning=health.critical_warning,
                     **health.sectors)
        elif health.sectors:
            obs.warn("disk.smart_sectors", tr("{device} ({model}, holding {paths}): damaged sectors ({sectors}); the "
                                              "drive still passes its own check", device=health.device,
                                              model=health.model or "?", paths=", ".join(paths), sectors=sectors),
                     device=health.device, model=health.model, paths=paths, **health.sectors)


#: the SMART counters as a finding words them
_SECTOR_WORDS = {"reallocated": N_("reallocated sectors"), "pending": N_("pending sectors"),
                 "uncorrectable": N_("uncorrectable sectors"), "media_errors": N_("media errors")}
