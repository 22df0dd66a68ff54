"""Running posdiag as a test does: the CLI in-process with its own streams, or the command in a child."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

from labs import REPO

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run_cli(*args: str) -> tuple[int, str, str]:
    """The real CLI in-process, with its own streams."""
    from posdiag.agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    rc = main(list(args), out, err)
    return rc, out.getvalue(), err.getvalue()


def run_posdiag(*args: str, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
    """The installed command in a child process, as a technician or cron would run it."""
    return subprocess.run([sys.executable, "-m", "posdiag.agent", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, **kw)


def diagnose_json(config: Path, *extra: str) -> tuple[int, dict]:
    rc, out, err = run_cli("diagnose", "--config", str(config), "--json", *extra)
    assert rc != 3, err
    return rc, json.loads(out)


def diagnose_in_namespace(script: str, *argv: str, config: Path, only: str) -> dict:
    """``posdiag diagnose`` in a private mount namespace after ``script`` (sh, its arguments in $1…): what
    it mounts there (a sandbox's folders, a kernel file of the test's own over /proc or /sys) is seen by
    that diagnosis alone, never by the machine's other processes."""
    command = f'{script} && exec "$0" -m posdiag.agent diagnose --json --only {only} --config {config}'
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", command, sys.executable,
                           *argv], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode in (0, 1, 2) and proc.stdout.startswith("{"), proc.stderr
    return json.loads(proc.stdout)
