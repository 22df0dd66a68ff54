"""``posdiag bundle``: one archive with what the help desk needs, and no secret in it."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest
from posdiag.agent.bundle import make_bundle, redact
from posdiag.agent.store import Store
from posdiag.core import settings as config
from test_history import fake_report

TOKEN = "tok_5f1d2c3b4a59687766554433221100ff"
URL_PASSWORD = "s3cr3t-Passw0rd"


@pytest.fixture
def secret_terminal(config_file, tmp_path):
    """A terminal whose configuration carries every kind of secret we know of."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    pos_log = tmp_path / "pos.log"
    pos_log.write_text("2026-11-30 10:00:00 ERR 2824 txn 1 failed\n" * 3 + f"debug: auth header Bearer {TOKEN}\n")
    with open("/dev/kmsg", "w") as kmsg:  # the real kernel log, as the kernel writes these lines
        for line in ("usb 1-1: new full-speed USB device number 3 (posdiag bundle test)",
                     "eth0: link is down (posdiag bundle test)", "unrelated line (posdiag bundle test)"):
            kmsg.write(f"<6>{line}\n")
            kmsg.flush()
    path = config_file(
        terminal={"id": "lane-03", "site": "store-042"},
        server={"url": f"https://ops:{URL_PASSWORD}@collector.example/api", "token_file": str(token_file)},
        txlog={"path": str(pos_log)},
        reader={"kernel_log": "/dev/kmsg", "sysfs_root": str(tmp_path / "nosys")},
    )
    return path


def members(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}


@pytest.mark.root
def test_bundle_holds_config_versions_logs_and_no_secret(secret_terminal, tmp_path):
    settings = config.load(str(secret_terminal))
    out, size = make_bundle(settings, str(secret_terminal), tmp_path / "out" / "bundle.tar.gz")
    assert out.stat().st_size == size > 0
    assert out.stat().st_mode & 0o077 == 0  # the archive itself is private to its owner
    files = members(out)
    assert {"summary.txt", "config.toml.json", "versions.txt", "status.json", "reports.json", "kernel.log",
            "pos.log", "usb.json"} <= set(files)
    everything = "\n".join(files.values()) + "\n".join(files)
    assert TOKEN not in everything
    assert URL_PASSWORD not in everything
    cfg = json.loads(files["config.toml.json"])
    assert cfg["terminal"]["id"] == "lane-03"
    assert cfg["server"]["token_file"].endswith("token")  # where the token is, not what it is
    assert "<redacted>@collector.example" in cfg["server"]["url"]
    assert "2824" in files["pos.log"] and "Bearer <redacted>" in files["pos.log"]
    assert "usb 1-1: new full-speed USB device number 3 (posdiag bundle test)" in files["kernel.log"]
    assert "eth0: link is down (posdiag bundle test)" in files["kernel.log"]
    assert "unrelated line (posdiag bundle test)" not in files["kernel.log"]
    assert json.loads(files["status.json"])["running"] is False
    assert "lane-03" in files["summary.txt"]


def test_bundle_says_what_it_could_not_collect(config_file, tmp_path):
    path = config_file(reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    settings = config.load(str(path))
    out, _ = make_bundle(settings, str(path), tmp_path / "b.tar.gz")
    files = members(out)
    assert "kernel.log" not in files
    assert "kernel.log: FileNotFoundError" in files["errors.txt"]


def test_bundle_never_reads_a_fifo_as_the_pos_log(config_file, tmp_path):
    import os

    fifo = tmp_path / "pos.fifo"
    os.mkfifo(fifo)
    path = config_file(txlog={"path": str(fifo)})
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz")
    assert "pos.log: NotRegularFile" in members(out)["errors.txt"]


@pytest.mark.parametrize("value, expected", [
    ({"password": "hunter22"}, {"password": "<redacted>"}),
    ({"api_key": "abcd1234"}, {"api_key": "<redacted>"}),
    ({"token_file": "/etc/posdiag/token"}, {"token_file": "/etc/posdiag/token"}),
    ({"url": "postgresql://user:pw1234@db/x"}, {"url": "postgresql://<redacted>@db/x"}),
    ({"hosts": [{"host": "pay.example", "port": 443}]}, {"hosts": [{"host": "pay.example", "port": 443}]}),
    ({"db_passwd": "x", "Secret": "x", "private_key": "x", "privatekey": "x", "apikey": "x", "credentials": "x",
      "tokens": ["a", "b"]},
     {"db_passwd": "<redacted>", "Secret": "<redacted>", "private_key": "<redacted>", "privatekey": "<redacted>",
      "apikey": "<redacted>", "credentials": "<redacted>", "tokens": ["<redacted>", "<redacted>"]}),
    ({"url": "https://h/p?token=a&password=b&secret=c&key=d&access_token=e&auth=f&page=2"},
     {"url": "https://h/p?token=<redacted>&password=<redacted>&secret=<redacted>&key=<redacted>"
             "&access_token=<redacted>&auth=<redacted>&page=2"}),
], ids=["password", "api-key", "token-file-path-kept", "url-userinfo", "harmless", "every-secret-key",
        "every-secret-query-parameter"])
def test_redact(value, expected):
    assert redact(value) == expected


def test_a_refused_url_is_shown_without_its_password_or_query(config_file, tmp_path):
    from posdiag.core.settings import ConfigError

    path = config_file(server={"url": f"https://ops:{URL_PASSWORD}@collector.example/api?token={TOKEN}",
                               "token_file": str(tmp_path / "token")})
    with pytest.raises(ConfigError) as refused:
        config.load(str(path))
    message = refused.value.render()
    assert "server.url" in message and "collector.example" in message
    assert URL_PASSWORD not in message and TOKEN not in message


def test_bundle_summary_reads_in_chinese_and_keeps_its_member_names(config_file, tmp_path, speak_chinese):
    from labs.commands import run_cli

    path = config_file(terminal={"id": "lane-03", "site": "store-042", "language": "zh_CN"},
                       reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    rc, out, _ = run_cli("bundle", "--config", str(path), "-o", str(tmp_path / "b.tar.gz"))
    assert rc == 0 and out.startswith(f"支持包已写入 {tmp_path / 'b.tar.gz'}（") and out.endswith("KiB），请随工单一起发送\n")
    files = members(tmp_path / "b.tar.gz")
    assert {"summary.txt", "config.toml.json", "versions.txt", "status.json"} <= set(files)
    assert files["summary.txt"].splitlines()[:3] == ["posdiag 支持包", "终端：lane-03", "门店：store-042"]


def test_bundle_carries_the_newest_twenty_reports_newest_first(config_file, tmp_path):
    path = config_file()
    with Store(tmp_path / "state") as store:
        reports = [fake_report(time.time() - 3600 + i * 60) for i in range(25)]
        for report in reports:
            store.add(report)
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz")
    carried = [r["report_id"] for r in json.loads(members(out)["reports.json"])]
    assert carried == [r["report_id"] for r in reversed(reports)][:20]
