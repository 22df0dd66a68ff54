"""A real terminal for tests: a command run in tmux, its screen read back as a person sees it."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

from labs import REPO


class Tmux:
    """One tmux server of this test's own (``-L``), one window of ``columns``×``rows``."""

    def __init__(self, command: str, columns: int = 100, rows: int = 40, env: dict[str, str] | None = None) -> None:
        self.socket = f"posdiag-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        pairs = [f"{k}={v}" for k, v in (env or {}).items()]
        # the shell stays after the command so that what it printed last can still be read
        self.run("new-session", "-d", "-x", str(columns), "-y", str(rows), "-c", str(REPO),
                 f"env {' '.join(pairs)} {command}; sleep 60")

    @staticmethod
    def available() -> bool:
        return shutil.which("tmux") is not None

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-u", "-L", self.socket, *args], capture_output=True, text=True,
                              timeout=10).stdout

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", *keys)

    def close(self) -> None:
        self.run("kill-server")

    def __enter__(self) -> Tmux:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
