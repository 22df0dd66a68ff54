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
