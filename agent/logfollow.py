"""Follow a growing log file like ``tail -F``, and read nothing it should not.

Polling ``stat`` is cheap and portable (no inotify). What a till's log can do, and what is done:

* **Not a file.** The path must name a regular file: it is ``stat``-ed before it is opened, opened
  ``O_NONBLOCK`` (a FIFO never blocks the open) and checked again with ``fstat``. A FIFO, a device
  (a symlink to /dev/zero) or a directory is never read; :attr:`LogFollower.problem` says what it is.
* **Floods.** At most :data:`MAX_POLL_BYTES` are read per poll, and a line is kept to
  :data:`MAX_LINE` bytes (the rest of a longer one is skipped): memory stays bounded whatever
  is written.
* **Rotation, followed by inode.** When the path names another file, the old one (still open) is
  read to its end before the new one; files rotated in between two polls (``pos.log.1``,
  ``pos.log-20261130``: new inodes beside the log) are read too, oldest first, so that a storm of
  renames loses no complete line. A finished file is watched for :data:`LINGER_S` more for lines
  its writer adds late. Compressed rotations (``.gz`` …) are left alone.
* **Truncation**, also when the file grows past the old offset again before the next poll: the
  last bytes read are compared with what the file now holds there; if they differ, the file was
  rewritten and is read again from its start.
* A partial last line is kept until its newline arrives; undecodable bytes become U+FFFD.
"""

from __future__ import annotations

import os
import stat
import time

from posdiag.core.files import NotRegularFile, file_kind, open_regular

MAX_LINE = 64 * 1024  # a line longer than this is cut, and the rest of it skipped
MAX_POLL_BYTES = 1024 * 1024  # read at most this much per poll; the rest waits for the next one
#: a rotated file is still read this long after it was finished: a writer that had it open (or
#: that renames-then-reopens) may add its last lines after the follower moved on
LINGER_S = 2.0
_CHUNK = 256 * 1024
_TAIL = 32  # bytes kept from the end of what was read, to notice a rewritten file
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z", ".zip")

Key = tuple[int, int]  # (st_dev, st_ino)


class _Source:
    """One open file being read: its descriptor, offset and the line being assembled."""

    def __init__(self, fd: int, key: Key, offset: int) -> None:
        self.fd, self.key, self.offset = fd, key, offset
        self.partial = b""
        self.skipping = False  # inside a line longer than MAX_LINE
        self.tail = b""

    def close(self) -> None:
        os.close(self.fd)

    def rewritten(self, size: int) -> bool:
        """True when the file no longer holds what was read from it (truncated, maybe regrown)."""
        if size < self.offset:
            return True
        if not self.tail:
            return False
        return os.pread(self.fd, len(self.tail), self.offset - len(self.tail)) != self.tail

    def rewind(self) -> None:
        self.offset, self.partial, self.skipping, self.tail = 0, b"", False, b""

    def read(self, budget: int) -> tuple[list[str], int, bool]:
        """(complete lines, bytes read, reached the end) reading at most ``budget`` bytes."""
        lines: list[str] = []
        used = 0
        while used < budget:
            data = os.pread(self.fd, min(_CHUNK, budget - used), self.offset)
            if not data:
                return lines, used, True
            self.offset += len(data)
            used += len(data)
            self.tail = (self.tail + data)[-_TAIL:]
            lines += self._feed(data)
        return lines, used, False

    def _feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        start = 0
        while (nl := data.find(b"\n", start)) >= 0:
            if self.skipping:
                self.skipping = False  # the end of an overlong line: already cut and emitted
            else:
                lines += _decoded(self.partial + data[start:nl])
            self.partial = b""
            start = nl + 1
        if not self.skipping:
            self.partial += data[start:]
            if len(self.partial) > MAX_LINE:
                lines += _decoded(self.partial[:MAX_LINE])
                self.partial, self.skipping = b"", True
        return lines

    def leftover(self) -> list[str]:
        """The unterminated last line of a file that will not grow any more (it was rotated)."""
        rest, self.partial = self.partial, b""
        return [] if self.skipping else _decoded(rest)


def _decoded(raw: bytes) -> list[str]:
    if not raw.strip():
        return []
    return [raw[:MAX_LINE].decode("utf-8", "replace").rstrip("\r")]


class LogFollower:
    def __init__(self, path: str, from_end: bool = True) -> None:
        self.path = path
        self.from_end = from_end
        self.current: _Source | None = None
        self.finishing: list[_Source] = []  # rotated files still to be read to their end, oldest first
        self.lingering: list[tuple[float, _Source]] = []  # (until, rotated file already read to its end)
        self.seen: set[Key] = set()  # inodes of rotated siblings already read or there before us
        #: why the path is not being read (it is a FIFO, a device, a directory), or None
        self.problem: str | None = None
        self.opened = False  # a file was opened once: from then on every new file is read from its start

    def close(self) -> None:
        for src in [*self.finishing, *(src for _, src in self.lingering), *([self.current] if self.current else [])]:
            src.close()
        self.finishing, self.lingering, self.current = [], [], None

    def poll(self) -> list[str]:
        """Complete lines written since the last poll (at most :data:`MAX_POLL_BYTES` of them)."""
        st = self._stat()
        key = (st.st_dev, st.st_ino) if st else None
        if self.current is None and not self.opened:
            if st is None:
                self.from_end = False  # whatever appears later is new
            else:
                self._first_open(at_end=self.from_end)
        elif key is not None and (self.current is None or key != self.current.key):
            self._rotated()
        elif st is not None and self.current.rewritten(st.st_size):
            self.current.rewind()
        return self._read()

    def _stat(self) -> os.stat_result | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None  # rotated away, the new file is not there yet
        if not stat.S_ISREG(st.st_mode):
            self.problem = f"{self.path} is {file_kind(st.st_mode)}, not a regular file"
            return None
        self.problem = None
        return st

    def _open(self, at_end: bool) -> _Source | None:
        try:
            fd, st = open_regular(self.path)
        except NotRegularFile as exc:  # swapped between stat and open
            self.problem = f"{self.path} is {exc.kind}, not a regular file"
            return None
        except OSError:
            return None
        offset = st.st_size if at_end else 0
        self.current = _Source(fd, (st.st_dev, st.st_ino), offset)
        self.current.tail = os.pread(fd, min(_TAIL, offset), offset - min(_TAIL, offset)) if offset else b""
        return self.current

    def _first_open(self, at_end: bool) -> None:
        """Open the log for the first time; rotated copies already beside it are history, not news."""
        if self._open(at_end) is not None:
            self.opened = True
            self.seen = set(self._siblings())

    def _rotated(self) -> None:
        """The path names another file (or names one again): finish the old one, then any rotated in
        between, then the new.

        The new file is opened first and the folder listed after: whatever was renamed away before
        that open is beside the log by then. A file is marked seen only once it is open for reading,
        so one renamed again meanwhile stays unseen and is found, under its new name, next time.
        """
        if self.current is not None:
            self.finishing.append(self.current)
            self.current = None
        self._open(at_end=False)
        siblings = self._siblings()
        reading = {src.key for src in self.finishing} | ({self.current.key} if self.current else set())
        between = [(found, key) for key, found in siblings.items() if key not in self.seen | reading]
        for (_mtime, name), key in sorted(between):
            src = self._open_sibling(name, key)
            if src is not None:
                self.finishing.append(src)
                reading.add(key)
        self.seen = (self.seen & set(siblings)) | reading  # forget files that are gone: bounded memory

    def _siblings(self) -> dict[Key, tuple[int, str]]:
        """Rotated copies beside the log (``pos.log.1``, ``pos.log-2026…``): inode → (mtime in ns, path)."""
        folder, base = os.path.split(self.path)
        found: dict[Key, tuple[int, str]] = {}
        try:
            names = [n for n in os.listdir(folder or ".") if n.startswith((base + ".", base + "-"))]
        except OSError:
            return found
        for name in names:
            if name.endswith(_COMPRESSED):
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found[(st.st_dev, st.st_ino)] = (st.st_mtime_ns, path)
        return found

    @staticmethod
    def _open_sibling(path: str, key: Key) -> _Source | None:
        try:
            fd, st = open_regular(path)
        except OSError:  # NotRegularFile among them
            return None  # rotated on again, or removed: nothing left to read
        if (st.st_dev, st.st_ino) != key:
            os.close(fd)
            return None
        return _Source(fd, key, 0)

    def _linger(self) -> list[str]:
        """Late lines of rotated files; a file's unterminated last line once its time is up."""
        lines: list[str] = []
        now = time.monotonic()
        for until, src in list(self.lingering):
            lines += src.read(_CHUNK)[0]
            if now >= until:
                lines += src.leftover()
                src.close()
                self.lingering.remove((until, src))
        return lines

    def _read(self) -> list[str]:
        lines: list[str] = []
        budget = MAX_POLL_BYTES
        while self.finishing:
            src = self.finishing[0]
            got, used, done = src.read(budget)
            lines += got
            budget -= used
            if not done:
                return lines  # the old file first: the current one waits for the next poll
            self.seen.add(src.key)
            self.lingering.append((time.monotonic() + LINGER_S, self.finishing.pop(0)))
        lines += self._linger()
        if self.current is not None and budget > 0:
            lines += self.current.read(budget)[0]
        return lines
