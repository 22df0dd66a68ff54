"""The one way posdiag opens a file it did not create: bounded, non-blocking, checked on the descriptor.

A till's files are not always what their names promise. A POS log path may be a FIFO (an open would
wait for a writer forever), a device such as ``/dev/zero`` (a read never ends), a directory, or a
symlink an attacker planted next to a token. So every file is opened ``O_NONBLOCK`` (a FIFO answers at
once), ``O_NOCTTY`` and ``O_CLOEXEC``, optionally ``O_NOFOLLOW``, and judged by ``fstat`` on the open
descriptor, not by the name (which can change between a check and the open). Only then is a bounded
number of bytes read. The configuration, the POS log, the followed log and the push token all go
through here.
"""

from __future__ import annotations

import os
import stat

from posdiag.core.i18n import N_
from posdiag.core.message import Message

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a directory or a socket: something that must not be read.

    ``kind`` says which, as a :class:`Message` in the reader's language."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.path, self.kind = path, kind


class FileTooLarge(OSError):
    """The file holds more than ``limit`` bytes; nothing past ``limit`` + 1 bytes was read."""

    def __init__(self, path: str, limit: int) -> None:
        super().__init__(f"{path} is larger than {limit} bytes")
        self.path, self.limit = path, limit


def file_kind(mode: int) -> str:
    """'a regular file', 'a FIFO', 'a character device', … for an ``st_mode`` (a translatable Message)."""
    for test, name in ((stat.S_ISREG, N_("a regular file")), (stat.S_ISDIR, N_("a directory")),
                       (stat.S_ISFIFO, N_("a FIFO")), (stat.S_ISCHR, N_("a character device")),
                       (stat.S_ISBLK, N_("a block device")), (stat.S_ISSOCK, N_("a socket")),
                       (stat.S_ISLNK, N_("a symbolic link"))):
        if test(mode):
            return Message(name)
    return Message(N_("a special file"))


def open_regular(path: str, *, follow_symlinks: bool = True) -> tuple[int, os.stat_result]:
    """An open descriptor on ``path`` and its ``fstat``, or :class:`NotRegularFile` (nothing left open).

    ``follow_symlinks=False`` refuses a symlink in the last component (``ELOOP``), for files whose
    owner matters, such as a bearer token. Other ``OSError``\\ s (missing, permission) pass through.
    """
    flags = _FLAGS if follow_symlinks else _FLAGS | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(path, file_kind(st.st_mode))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bounded(path: str, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """All bytes of a regular file of at most ``limit`` bytes; :class:`FileTooLarge` past that.

    Reads until end of file rather than trusting ``st_size`` (procfs and growing files lie about it),
    and never more than ``limit`` + 1 bytes.
    """
    fd, _ = open_regular(path, follow_symlinks=follow_symlinks)
    try:
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileTooLarge(path, limit)
    return b"".join(chunks)


def read_tail(path: str, max_bytes: int) -> tuple[bytes, bool]:
    """The last ``max_bytes`` of a regular file, and whether the file was longer (the first line is cut)."""
    fd, st = open_regular(path)
    try:
        start = max(0, st.st_size - max_bytes)
        return os.pread(fd, st.st_size - start, start), start > 0
    finally:
        os.close(fd)
