"""What the tests build their real peers and faults with: network namespaces, DNS/NTP/TLS servers, a
reader emulator on a pty, daemons, push servers, a throwaway PostgreSQL, the collector's fleet.

Imported as ``labs.*``: pytest puts ``tests/`` (the folder of ``conftest.py``) on the import path, and
the benchmarks add it once. Modules run as their own process (``peers``, ``push_server``,
``reader_emulator``) are started with ``python -m labs.NAME`` and ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process that runs ``python -m labs.NAME``."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), env.get("PYTHONPATH", "")) if p)
    return env
