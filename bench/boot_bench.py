#!/usr/bin/env python3
"""Boot figures: the package booted with systemd as PID 1 (tests/labs/bootlab.py), then worked.

    python3 bench/boot_bench.py [--deb dist/posdiag_*.deb] [--triggers N]      (root)

Boot: seconds from starting the container to systemd's "running", to the boot sweep's stored
report, systemd's own "Startup finished", and the unit's start to READY. Memory of posdiag.service
from its cgroup (the limit MemoryMax= enforces): current after boot, peak after N on-demand sweeps
each pushed over HTTPS, with the main process's own peak RSS (VmHWM) beside it.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs.bootlab import booted_site  # noqa: E402
from labs.debian import build_deb  # noqa: E402
from labs.helpers import wait_for  # noqa: E402

MIB = 1024 * 1024
CGROUP = "/sys/fs/cgroup/memory/system.slice/posdiag.service"


def unit_ms(till, start: str, end: str) -> float:
    """Milliseconds between two of the unit's monotonic timestamps (systemctl show)."""
    props = dict(line.split("=", 1) for line in till.ok(f"systemctl show -p {start} -p {end} posdiag").split())
    return (int(props[end]) - int(props[start])) / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deb", type=Path, help="the package (default: built from this checkout)")
    parser.add_argument("--triggers", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="posdiag-boot-bench-") as d:
        folder = Path(d)
        deb = args.deb or build_deb(folder / "dist")
        started = time.monotonic()
        with booted_site(deb, folder / "site") as site:
            till = site.till
            stored_s = time.monotonic() - started
            startup = re.search(r"Startup finished in (.*)\.", till.ok("journalctl -b -o cat --no-pager"))
            ready_ms = unit_ms(till, "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic")
            after_boot = int(till.ok(f"cat {CGROUP}/memory.usage_in_bytes"))
            sent = till.status()["push"]["sent"]
            for _ in range(args.triggers):
                till.report("posdiag trigger --json")
            wait_for(lambda: till.status()["push"]["sent"] >= sent + args.triggers, timeout=60, interval=0.2)
            pushed = till.status()["push"]["sent"] - sent
            peak = int(till.ok(f"cat {CGROUP}/memory.max_usage_in_bytes"))
            limit = int(till.ok("systemctl show -p MemoryMax --value posdiag"))
            pid = till.ok("systemctl show -p MainPID --value posdiag").strip()
            hwm = re.search(r"VmHWM:\s+(\d+) kB", till.ok(f"cat /proc/{pid}/status"))
    print(f"container start to the boot sweep's stored report: {stored_s:.1f} s "
          f"(systemd: startup finished in {startup[1] if startup else '?'}; posdiag start to READY {ready_ms:.0f} ms)")
    print(f"posdiag.service memory after boot: {after_boot / MIB:.1f} MiB; peak after {args.triggers} sweeps "
          f"({pushed} pushed): {peak / MIB:.1f} MiB of MemoryMax {limit / MIB:.0f} MiB; "
          f"main process peak RSS {int(hwm[1]) / 1024 if hwm else 0:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
