"""The whole way: a technician's diagnosis on the terminal, pushed by the agent's own sender over
HTTPS to a running ``posdiag-collector serve``, stored once, and read back by operations."""

from __future__ import annotations

import json
import subprocess
import sys

import requests
from labs.collectorlab import ServeProcess
from labs.commands import REPO, run_cli


def collector_command(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "posdiag.collector", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_a_full_disk_diagnosed_on_a_till_reaches_the_fleet_once(push_certs, config_file, tmp_path):
    db = f"sqlite:///{tmp_path / 'fleet.sqlite3'}"
    collector_command("serve", "--help")  # the console entry point answers before any data exists
    cert, key = push_certs["good"]
    server = ServeProcess(db, "--cert", cert, "--key", key)
    try:
        token = collector_command("add-terminal", "lane-07", "--db", db, "--site", "store-9")
        operator = collector_command("add-operator", "ops", "--db", db)
        token_file = tmp_path / "token"
        token_file.write_text(token + "\n")
        token_file.chmod(0o600)
        config = config_file(terminal={"id": "lane-07", "site": "store-9"},
                             disk={"paths": [str(tmp_path)], "min_free_mb": 10_000_000},
                             server={"url": server.url, "token_file": str(token_file), "ca_file": push_certs["ca"]})
        rc, out, err = run_cli("diagnose", "--push", "--json", "--only", "disk", "--config", str(config))
        assert rc == 2, err
        report = json.loads(out)
        rc, out, err = run_cli("push", "--config", str(config))
        assert rc == 0 and "sent 1 report" in out, err
        rc, out, err = run_cli("push", "--config", str(config))  # nothing left: nothing sent twice
        assert rc == 0, err

        def api(path: str, bearer: str = operator, **params: str) -> requests.Response:
            return requests.get(f"{server.url}{path}", params=params, headers={"Authorization": f"Bearer {bearer}"},
                                verify=push_certs["ca"], timeout=10)

        stored = api(f"/api/v1/reports/{report['report_id']}")
        assert stored.status_code == 200 and stored.json()["diagnosis"]["causes"][0]["id"] == "disk.full"
        listed = api("/api/v1/reports", terminal="lane-07").json()
        rows = listed["reports"] if isinstance(listed, dict) else listed
        assert [r["report_id"] for r in rows] == [report["report_id"]]
        terminals = api("/api/v1/terminals").json()
        rows = terminals["terminals"] if isinstance(terminals, dict) else terminals
        lane = next(t for t in rows if t["id"] == "lane-07")
        assert lane["site"] == "store-9" and lane["verdict"] == "fault" and lane["top_cause"] == "disk.full"
        # The terminal's own token may post, never read.
        assert api("/api/v1/reports", bearer=token).status_code == 403
    finally:
        server.stop()
