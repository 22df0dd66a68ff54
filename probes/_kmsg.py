"""The kernel's record log (``/dev/kmsg``), read once without blocking: the one reader every probe
that looks at kernel messages shares (reader disconnects, crashes, disk errors, heat).

Each record is ``prio,seq,usec,flags;message``; ``usec`` is CLOCK_MONOTONIC, the clock of
``time.monotonic()`` here. Records are recognised by their text, never by their facility: the kernel
writes with facility 0, but a record written to /dev/kmsg from user space (root only) always carries
another, and it reads the same to a person.
"""

from __future__ import annotations

import contextlib
import os
import time

#: (seconds since boot, message)
Record = tuple[float, str]


def kernel_records(path: str = "/dev/kmsg", *, since_clear: bool = False) -> list[Record]:
    """(seconds since boot, first line of the message) of every record in the kernel's ring buffer.

    ``since_clear``: only the records after the last ``dmesg --clear``, as ``dmesg`` shows them — the
    way a technician marks a crash or a disk error as dealt with (SEEK_DATA on /dev/kmsg).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    records = []
    try:
        if since_clear:  # not /dev/kmsg (an empty file has no data to seek to): read it from the start
            with contextlib.suppress(OSError):
                os.lseek(fd, 0, os.SEEK_DATA)
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except BrokenPipeError:  # overwritten while reading: continue from the next record
                continue
            if not raw:
                break
            head, _, message = raw.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            if len(fields) >= 3 and fields[2].isdigit():
                records.append((int(fields[2]) / 1e6, message.split("\n", 1)[0]))
    finally:
        os.close(fd)
    return records


def within(records: list[Record], window_s: float) -> list[Record]:
    """The records of the last ``window_s`` seconds (the records' clock is ``time.monotonic()``)."""
    since = time.monotonic() - window_s
    return [r for r in records if r[0] >= since]
