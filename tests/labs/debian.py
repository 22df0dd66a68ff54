"""The Debian package and the real Debian roots the packaging tests put it in.

The package is built by packaging/build-deb (or taken from $POSDIAG_DEB when .ci/run built it). The
roots are made once by packaging/test-root with mmdebstrap and cached outside the repository; a test
sees one through an overlay, so that the cached root never changes and the overlay's upper layer is
exactly what the test (and the package) left. Tests download nothing: .ci/run makes the roots.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from labs import REPO
from labs.commands import IN_CI

#: packaging/test-root's flag → the variable .ci/run passes that root in
ROOT_VARIABLES = {"": "POSDIAG_TEST_ROOT", "--boot": "POSDIAG_BOOT_ROOT"}


def unavailable(message: str) -> None:
    """Skip a test that cannot run here; under CI, where everything must run, fail it."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"missing {', '.join(missing)} (.ci/run installs them)")


def build_deb(dist: Path) -> Path:
    """$POSDIAG_DEB, or the package built from this checkout into ``dist`` (about 15 s with pip's cache)."""
    given = os.environ.get("POSDIAG_DEB")
    if given:
        return Path(given)
    need("dpkg-deb", "strip")
    proc = subprocess.run([str(REPO / "packaging" / "build-deb")], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "POSDIAG_DIST": str(dist)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Path(proc.stdout.strip().splitlines()[-1])


def cached_root(deb: Path, flag: str = "") -> Path:
    """The root packaging/test-root made for this package (``flag``: "" or "--boot"), from .ci/run's
    variable or the cache; a test without one skips (fails under CI)."""
    lower = os.environ.get(ROOT_VARIABLES[flag]) or subprocess.run(
        [str(REPO / "packaging" / "test-root"), "--cached", *([flag] if flag else []), str(deb)],
        capture_output=True, text=True).stdout.strip()
    if not lower or not Path(lower, "var/lib/dpkg/status").is_file():
        unavailable(f"no Debian root: run `packaging/test-root {flag + ' ' if flag else ''}{deb}` (.ci/run does)")
    return Path(lower)


def depends_of(deb: Path) -> list[str]:
    """The package names in the .deb's Depends, versions left out."""
    field = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True).stdout
    return [re.sub(r"\(.*?\)", "", dep).strip() for dep in field.split(",")]


class DebianRoot:
    """A cached Debian root behind an overlay: ``lower`` is never written, ``upper`` holds every change."""

    ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

    def __init__(self, lower: Path, base: Path, packages: Path) -> None:
        self.lower, self.packages = lower, packages
        self.upper, self.work, self.merged = base / "upper", base / "work", base / "merged"
        for d in (self.upper, self.work, self.merged):
            d.mkdir(parents=True)

    def argv(self, command: str, before_chroot: str = "true", after: str | None = None) -> list[str]:
        """``command`` by /bin/sh chrooted into the root, with /proc, and the packages at /mnt.

        ``before_chroot`` runs first in the same mount namespace, with the root's path in $4. ``after``,
        when given, runs once the chroot command is done (its /proc and /mnt unmounted again) instead of
        the shell ending with it: a command that takes over the process, such as a container."""
        setup = ('mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && '
                 'mount -t proc proc "$4/proc" && mount --bind "$5" "$4/mnt" && '
                 f'{before_chroot} && ')
        if after is None:
            setup += 'exec chroot "$4" /bin/sh -c "$6"'
        else:
            setup += f'chroot "$4" /bin/sh -c "$6" && umount "$4/proc" "$4/mnt" && {after}'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, "sh", str(self.lower),
                str(self.upper), str(self.work), str(self.merged), str(self.packages), command]

    def sh(self, command: str, before_chroot: str = "true") -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(command, before_chroot), capture_output=True, text=True, env=self.ENV,
                              timeout=300)

    def ok(self, command: str) -> str:
        proc = self.sh(command)
        assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def left_behind(self) -> list[str]:
        """What the upper layer holds beyond dpkg's bookkeeping and files equal to the lower's."""
        left = []
        for path in sorted(self.upper.rglob("*")):
            rel = str(path.relative_to(self.upper))
            below = self.lower / rel
            if path.is_char_device():
                left.append(f"{rel} (removed)")
            elif path.is_dir() and not path.is_symlink():
                if not below.is_dir():
                    left.append(f"{rel}/")
            elif rel.startswith("var/lib/dpkg/") or rel == "var/log/dpkg.log":
                continue  # dpkg's database and log
            elif re.fullmatch(r"etc/(passwd|group|shadow|gshadow)-", rel):
                continue  # the one-generation backups that useradd and userdel keep
            elif not (below.is_file() and below.read_bytes() == path.read_bytes()):
                left.append(rel)
        return left
