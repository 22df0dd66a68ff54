"""Real kernel-log records for the tests: lines written to /dev/kmsg as the kernel writes them (root
only), marked as dealt with afterwards (``dmesg --clear``) so that no later diagnosis on this machine
counts them — the way a technician acknowledges a crash. /dev/kmsg readers that read the whole ring
buffer (the reader's flap check, the bundle) still see them; they look for other lines."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator


def write(*lines: str, level: int = 3) -> None:
    """Each line as one kernel-log record (``<3>`` is KERN_ERR)."""
    with open("/dev/kmsg", "w") as kmsg:
        for line in lines:
            kmsg.write(f"<{level}>{line}\n")
            kmsg.flush()


@contextlib.contextmanager
def records(*lines: str, level: int = 3) -> Iterator[None]:
    """The lines in the kernel log for the block, cleared (as ``dmesg --clear`` does) after it."""
    clear()  # what earlier runs or the machine itself left is not this test's
    write(*lines, level=level)
    try:
        yield
    finally:
        clear()


def clear() -> None:
    subprocess.run(["dmesg", "--clear"], check=True)
