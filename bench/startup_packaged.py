"""Start-up of ``posdiag diagnose`` on the default config as a till runs it: from the ``.deb``'s
/opt/posdiag (its own venv on Debian's python3.11, byte-code compiled as postinst does), timed in
turns with the working tree's ``python -m posdiag.agent`` that ``bench/run.py`` times.

The two differ in what is not posdiag: the working tree runs on this machine's interpreter with its
site hooks and the editable install's finder, the package on the interpreter a till has. Root only:
the package is unpacked into a temporary folder and mounted at /opt/posdiag in a mount namespace of
this process's own, so nothing is installed on this machine.

    python3 bench/startup_packaged.py [--runs 21] [--deb dist/posdiag_*.deb]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

REPO = harness.REPO


def built_deb() -> Path:
    """The newest .deb in dist/, built by packaging/build-deb when there is none."""
    debs = sorted((REPO / "dist").glob("posdiag_*.deb"), key=lambda p: p.stat().st_mtime)
    if debs:
        return debs[-1]
    out = subprocess.run([str(REPO / "packaging" / "build-deb")], cwd=REPO, check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, capture_output=True, cwd=REPO, env=env, check=False, timeout=60)
    return time.perf_counter() - started


def measure(runs: int) -> None:
    """Inside the mount namespace: the package at /opt/posdiag, both ways timed in turns."""
    env = harness.technician_env()
    subprocess.run(["/opt/posdiag/bin/python", "-m", "compileall", "-q", "/opt/posdiag/lib"], check=True)
    ways = {"package (/opt/posdiag)": ["/opt/posdiag/bin/posdiag", "diagnose"],
            "working tree": [sys.executable, "-m", "posdiag.agent", "diagnose"]}
    for name, argv in ways.items():  # warm the page cache and byte-code of both; each must really diagnose
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, env=env, check=False, timeout=60)
        if proc.returncode not in (0, 1, 2) or "posdiag" not in proc.stdout:
            sys.exit(f"startup_packaged: {name} did not diagnose (exit {proc.returncode}): {proc.stderr[-500:]}")
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(runs):
        for name, argv in ways.items():
            times[name].append(timed(argv, env))
    for name, values in times.items():
        print(f"posdiag diagnose on the default config, {name}: median {statistics.median(values):.3f} s over "
              f"{len(values)} runs (min {min(values):.3f}, max {max(values):.3f})")
    ratio = statistics.median(times["package (/opt/posdiag)"]) / statistics.median(times["working tree"])
    print(f"package / working tree: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--deb", type=Path, help="the package to time (default: the newest in dist/)")
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # the unpacked folder, once in the namespace
    args = parser.parse_args()
    if args.inside:
        measure(args.runs)
        return
    if os.geteuid() != 0:
        sys.exit("startup_packaged: needs root (a mount namespace of its own)")
    deb = args.deb or built_deb()
    with tempfile.TemporaryDirectory(prefix="posdiag-bench-deb-") as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        script = ('mount -t tmpfs posdiag-bench /opt && mkdir /opt/posdiag && mount --bind "$1/opt/posdiag" /opt/posdiag'
                  ' && shift && exec "$@"')
        subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", tmp,
                        sys.executable, __file__, "--inside", tmp, "--runs", str(args.runs)], check=True)
    print(f"({deb.name})")


if __name__ == "__main__":
    main()
