"""The help desk and its tills for the remote-request tests: a real ``posdiag-collector serve`` over
HTTPS on loopback, operators calling its API, and terminals each running a real ``posdiag run``
daemon that pushes to it and polls it with its own token.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import requests

from labs.collectorlab import ServeProcess
from labs.daemonlab import DaemonProcess
from labs.helpers import wait_for, write_config

FINAL = ("done", "failed", "expired")


class HelpDesk:
    """A collector (its own process, HTTPS) and an operator signed up on it."""

    def __init__(self, folder: Path, certs: dict, *serve_args: str, db_url: str | None = None) -> None:
        from posdiag.collector.storage import open_storage
        from posdiag.collector.tokens import new_token, token_hash

        self.folder, self.certs = folder, certs
        self.db_url = db_url or f"sqlite:///{folder / 'collector.db'}"
        cert, key = certs["good"]
        self.server = ServeProcess(self.db_url, "--cert", cert, "--key", key, *serve_args)
        self.url = self.server.url
        self.storage = open_storage(self.db_url)
        self.operator = new_token()
        self.storage.add_operator("alice", token_hash(self.operator))
        self.http = requests.Session()
        self.http.trust_env = False  # the collector's CA is ours: no REQUESTS_CA_BUNDLE, no proxy
        self.http.verify = certs["ca"]
        self.http.headers["Authorization"] = f"Bearer {self.operator}"
        self.tills: list[DaemonProcess] = []

    def serve_again(self, *serve_args: str) -> None:
        """The same collector (its database, its port, so the tills' URL holds) started anew with
        ``serve_args``; a server still running is stopped first."""
        port = self.url.rsplit(":", 1)[1]
        if self.server.proc.poll() is None:
            self.server.stop()
        cert, key = self.certs["good"]
        self.server = ServeProcess(self.db_url, "--cert", cert, "--key", key, "--listen", f"127.0.0.1:{port}",
                                   *serve_args)

    def register(self, terminal_id: str, site: str = "store-42") -> Path:
        """A terminal known to the collector; its token in a file of its own folder (mode 0600)."""
        from posdiag.collector.tokens import new_token, token_hash

        token = new_token()
        self.storage.add_terminal(terminal_id, site, token_hash(token))
        home = self.folder / terminal_id
        home.mkdir()
        (home / "token").write_text(token + "\n")
        (home / "token").chmod(0o600)
        return home

    def config(self, terminal_id: str, site: str = "store-42", **sections: Any) -> Path:
        """The till's posdiag.toml: pushes to and polls this collector; every folder inside its own."""
        home = self.folder / terminal_id
        server = {"url": self.url, "token_file": str(home / "token"), "ca_file": self.certs["ca"], "retry_max_s": 1.0,
                  "timeout_s": 5.0, "poll_s": 5.0, **sections.pop("server", {})}
        (home / "pos.log").touch()
        base = {"terminal": {"id": terminal_id, "site": site}, "server": server,
                "daemon": {"state_dir": str(home / "state"), "control_socket": str(home / "control.sock"),
                           "interval_s": 3600},
                "disk": {"paths": [str(home)], "min_free_mb": 1}, "system": {"max_load_per_cpu": 1000},
                "txlog": {"path": str(home / "pos.log")}}
        for name, values in sections.items():
            base[name] = {**base.get(name, {}), **values}
        return write_config(home / "posdiag.toml", base)

    def till(self, terminal_id: str, site: str = "store-42", **sections: Any) -> DaemonProcess:
        """A registered terminal running its daemon; returns once its boot report is at the collector."""
        self.register(terminal_id, site)
        config = self.config(terminal_id, site, **sections)
        daemon = DaemonProcess(config, config.parent / "state", start_timeout_s=20)
        self.tills.append(daemon)
        assert wait_for(lambda: self.reports(terminal_id), 30), daemon.output()
        return daemon

    @staticmethod
    def reload(daemon: DaemonProcess) -> None:
        daemon.proc.send_signal(signal.SIGHUP)

    # --- the operator's calls ------------------------------------------------------------------------
    def ask(self, terminal_id: str, kind: str) -> dict:
        answer = self.http.post(f"{self.url}/api/v1/terminals/{terminal_id}/requests", json={"kind": kind}, timeout=30)
        assert answer.status_code == 202, answer.text
        return answer.json()

    def request(self, request_id: str) -> dict:
        answer = self.http.get(f"{self.url}/api/v1/requests/{request_id}", timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def settled(self, request_id: str, timeout: float = 60) -> dict:
        """The request once it is done, failed or expired (the test fails if it is not in ``timeout``)."""
        assert wait_for(lambda: self.request(request_id)["state"] in FINAL, timeout, interval=0.25), \
            self.request(request_id)
        return self.request(request_id)

    def reports(self, terminal_id: str) -> list[dict]:
        answer = self.http.get(f"{self.url}/api/v1/reports", params={"terminal": terminal_id}, timeout=30)
        return answer.json()["reports"]

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.url + path, timeout=30)

    def stop(self) -> None:
        for daemon in self.tills:
            daemon.stop()
        self.http.close()  # an idle keep-alive connection would hold the server's shutdown for its 5 s grace
        self.server.stop()
        self.storage.close()
