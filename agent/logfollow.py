"""Follow a growing log file like ``tail -F``: across rotation (the file is renamed or replaced),
truncation (copytruncate), a partial last line (kept until its newline arrives) and undecodable
bytes (replaced, never fatal). Polling ``stat`` is cheap and portable; no inotify needed."""

from __future__ import annotations

import os
from typing import BinaryIO

MAX_LINE = 64 * 1024  # a line longer than this is cut rather than buffered forever


class LogFollower:
    def __init__(self, path: str, from_end: bool = True) -> None:
        self.path = path
        self.from_end = from_end
        self.fh: BinaryIO | None = None
        self.ino: tuple[int, int] | None = None
        self.partial = b""

    def close(self) -> None:
        if self.fh:
            self.fh.close()
            self.fh = None

    def _open(self, at_end: bool) -> None:
        self.close()
        try:
            self.fh = open(self.path, "rb")  # noqa: SIM115 - held open across polls on purpose
        except OSError:
            self.fh, self.ino = None, None
            return
        st = os.fstat(self.fh.fileno())
        self.ino = (st.st_dev, st.st_ino)
        if at_end:
            self.fh.seek(0, os.SEEK_END)
        self.partial = b""

    def poll(self) -> list[str]:
        """Complete lines written since the last poll."""
        lines: list[str] = []
        try:
            st = os.stat(self.path)
            current = (st.st_dev, st.st_ino)
        except OSError:
            current = None  # rotated away, the new file is not there yet
        if self.fh is None:
            if current is None:
                self.from_end = False  # whatever appears later is new
                return lines
            self._open(at_end=self.from_end)
            self.from_end = False  # after the first open, a new file is read from its start
        elif current is not None and current != self.ino:
            lines += self._read()  # what was written to the old file before it was rotated
            if self.partial:
                lines.append(self.partial.decode("utf-8", "replace"))
            self._open(at_end=False)
        elif current is not None and self.fh is not None and st.st_size < self.fh.tell():
            self.fh.seek(0)  # truncated in place
            self.partial = b""
        return lines + self._read()

    def _read(self) -> list[str]:
        if self.fh is None:
            return []
        data = self.fh.read()
        if not data:
            return []
        chunks = (self.partial + data).split(b"\n")
        self.partial = chunks.pop()
        if len(self.partial) > MAX_LINE:
            chunks.append(self.partial)
            self.partial = b""
        return [c.decode("utf-8", "replace").rstrip("\r") for c in chunks if c.strip()]
