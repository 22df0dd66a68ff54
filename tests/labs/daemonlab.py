"""``posdiag run`` as a real process for the tests: started on a config, asked through the real CLI,
stopped with SIGTERM (killed if it does not stop)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from posdiag.agent.store import Store

from labs.commands import REPO, run_cli
from labs.helpers import wait_for


class DaemonProcess:
    def __init__(self, config: Path, state: Path, env: dict | None = None, start_timeout_s: float = 10,
                 socket: Path | None = None) -> None:
        self.config, self.state = config, state
        self.log = open(config.parent / "daemon.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "posdiag.agent", "run", "--config", str(config)], cwd=REPO,
                                     stdout=self.log, stderr=self.log, env={**os.environ, **(env or {})})
        self.socket = str(socket or config.parent / "control.sock")
        assert wait_for(lambda: os.path.exists(self.socket) or self.proc.poll() is not None, start_timeout_s), \
            self.output()
        assert self.proc.poll() is None, self.output()

    def output(self) -> str:
        return (self.config.parent / "daemon.log").read_text(errors="replace")

    def cli(self, *args: str) -> tuple[int, str, str]:
        return run_cli(*args, "--config", str(self.config))

    def senders(self) -> list[int]:
        """The processes it started (the push senders, children of its pusher thread)."""
        return [int(pid) for children in Path(f"/proc/{self.proc.pid}/task").glob("*/children")
                for pid in children.read_text().split()]

    def reports(self) -> list:
        if not (self.state / "history.sqlite3").exists():
            return []
        with Store(self.state) as store:
            return store.list()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
