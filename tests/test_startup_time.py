"""The command's deadline covers its own start-up: the start-up it subtracts must be measured to the
tens of milliseconds, not to the second (boot time in /proc/stat is whole seconds, so a process
start time built on it can be off by up to a second and cut the probes' share of the deadline short)."""

from __future__ import annotations

import subprocess
import sys
import time


def test_startup_is_measured_to_the_tens_of_milliseconds():
    code = "import time; time.sleep(0.6); from posdiag.agent.cli import _startup_s; print(_startup_s())"
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    assert 0.6 <= float(out) <= elapsed + 0.05, (out, elapsed)
