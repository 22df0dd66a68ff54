"""Disk: space, inodes, read-only remounts and a real write + fsync + read-back per configured path.

The write test uses a hidden scratch file created next to the path's root and removed at once; it
is small (4 KiB) so it cannot itself fill a nearly-full disk, and it never touches the POS's files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time

import psutil
from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._mounts import MOUNTINFO, mount_of, read_mounts
from posdiag.probes.base import Observation, Probe, Status, declare

MB = 1024 * 1024
SCRATCH_BYTES = 4096


class DiskProbe(Probe):
    name = "disk"
    description = N_("free space and inodes, read-only mounts, write+fsync+read-back latency per configured path")
    findings = declare(fail=("disk.inodes_low", "disk.io_error", "disk.read_only", "disk.readback_mismatch",
                           "disk.space_low", "disk.write_no_space"), warn=("disk.path_missing", "disk.write_slow"),
                           info=("disk.write_not_permitted",))

    def skip_reason(self) -> str | None:
        return None if self.settings.disk.paths else tr("no disk paths configured ([disk] paths)")

    def check(self, obs: Observation) -> None:
        for path in self.settings.disk.paths:
            self._check_path(obs, path)
        if obs.status() is Status.OK:
            skipped = {f.data["path"] for f in obs.findings if f.code == "disk.write_not_permitted"}
            written = len(self.settings.disk.paths) - len(skipped)
            summary = ntr("{n} path writable with space to spare", "{n} paths writable with space to spare", written)
            if skipped:
                summary = tr("{summary}; not writable by the agent, write test skipped: {paths}", summary=summary,
                             paths=", ".join(sorted(skipped)))
            obs.summary = summary

    def _check_path(self, obs: Observation, path: str) -> None:
        cfg = self.settings.disk
        if not os.path.isdir(path):
            said = tr("{path} is not a folder", path=path) if os.path.exists(path) else tr("{path} does not exist", path=path)
            obs.warn("disk.path_missing", said, path=path)
            return
        usage = psutil.disk_usage(path)
        free_mb = usage.free / MB
        obs.metric(f"free_mb[{path}]", round(free_mb, 1))
        obs.metric(f"used_percent[{path}]", usage.percent)
        if free_mb < cfg.min_free_mb:
            obs.fail("disk.space_low", tr("{path}: only {free_mb:.1f} MB free (minimum {min_mb} MB, {used:.0f}% used)",
                                          path=path, free_mb=free_mb, min_mb=cfg.min_free_mb, used=usage.percent),
                     path=path, free_mb=round(free_mb, 1),
                     min_free_mb=cfg.min_free_mb, used_percent=usage.percent)

        read_only = False
        if hasattr(os, "statvfs"):  # not on Windows
            st = os.statvfs(path)
            if st.f_files:  # filesystems without inode accounting report 0
                inodes_pct = st.f_favail / st.f_files * 100
                obs.metric(f"free_inodes_percent[{path}]", round(inodes_pct, 2))
                if inodes_pct < cfg.min_free_inodes_percent:
                    obs.fail("disk.inodes_low", tr("{path}: only {free} inodes free ({percent:.1f}%, minimum {minimum:g}%)",
                                                   path=path, free=st.f_favail, percent=inodes_pct,
                                                   minimum=cfg.min_free_inodes_percent), path=path, free_inodes=st.f_favail,
                             free_inodes_percent=round(inodes_pct, 2))
            read_only = bool(st.f_flag & os.ST_RDONLY)
            if read_only and filesystem_read_only(path) is False:
                # Only this view of it is read-only: a sandbox (systemd's ProtectSystem=strict makes /
                # read-only for the service) or a read-only bind mount. The disk itself is fine.
                obs.info("disk.write_not_permitted", tr("{path}: read-only for this process only (a sandbox or "
                                                        "read-only bind mount), the filesystem itself is writable; "
                                                        "write test skipped", path=path),
                         path=path, mount=_mount_point(path))
            elif read_only:
                obs.fail("disk.read_only", tr("{path} is mounted read-only", path=path), path=path, mount=_mount_point(path))
        if cfg.write_test and not read_only:
            self._write_test(obs, path)

    def _write_test(self, obs: Observation, path: str) -> None:
        payload = os.urandom(SCRATCH_BYTES)
        started = time.monotonic()
        name = None
        try:
            fd, name = tempfile.mkstemp(prefix=".posdiag-probe-", dir=path)
            try:
                os.write(fd, payload)
                os.fsync(fd)
                os.lseek(fd, 0, os.SEEK_SET)
                back = os.read(fd, SCRATCH_BYTES)
            finally:
                os.close(fd)
        except OSError as exc:
            self._write_error(obs, path, exc)
            return
        finally:
            if name:
                with contextlib.suppress(OSError):
                    os.unlink(name)
        elapsed_ms = (time.monotonic() - started) * 1000
        obs.metric(f"write_fsync_ms[{path}]", round(elapsed_ms, 2))
        if back != payload:
            obs.fail("disk.readback_mismatch", tr("{path}: data read back differs from what was written", path=path),
                     path=path)
        elif elapsed_ms > self.settings.disk.slow_write_ms:
            obs.warn("disk.write_slow", tr("{path}: a 4 KiB write+fsync took {ms:.0f} ms", path=path, ms=elapsed_ms),
                     path=path,
                     write_fsync_ms=round(elapsed_ms, 1))

    @staticmethod
    def _write_error(obs: Observation, path: str, exc: OSError) -> None:
        detail = dict(path=path, errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)), error=str(exc))
        if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
            obs.fail("disk.write_no_space", tr("{path}: cannot write, no space or inodes left ({error})", path=path,
                                               error=exc.strerror), **detail)
        elif exc.errno == errno.EROFS:
            obs.fail("disk.read_only", tr("{path}: write refused, filesystem is read-only", path=path), **detail)
        elif exc.errno in (errno.EACCES, errno.EPERM):
            obs.info("disk.write_not_permitted", tr("{path}: the agent may not write here, write test skipped", path=path),
                     **detail)
        else:
            obs.fail("disk.io_error", tr("{path}: write test failed: {error}", path=path, error=exc.strerror or exc),
                     **detail)


def filesystem_read_only(path: str, mountinfo: str = MOUNTINFO) -> bool | None:
    """Whether the filesystem under ``path`` is itself read-only (its superblock), else None if unknown.

    ``statvfs`` says read-only for a read-only *mount*, which may be only this process's view (a
    bind mount, a service sandbox). The kernel's remount after I/O errors marks the superblock, whose
    options are the last field of the mount's line in mountinfo.
    """
    try:
        mount = mount_of(os.path.realpath(path), read_mounts(mountinfo))
    except OSError:
        return None
    return None if mount is None else "ro" in mount.super_options


def _mount_point(path: str) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path
