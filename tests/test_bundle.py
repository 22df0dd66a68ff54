"""``posdiag bundle``: one archive with what the help desk needs, and no secret in it."""

from __future__ import annotations

import json
import tarfile
import time
import uuid
from pathlib import Path

import pytest
from posdiag.agent.bundle import make_bundle
from posdiag.agent.store import Store
from posdiag.core import settings as config
from posdiag.core.redact import mask_config
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
        server={"url": "https://collector.example/api", "token_file": str(token_file)},
        payment_hosts=[{"name": "primary", "host": "127.0.0.1", "health_path": f"/health?password={URL_PASSWORD}"}],
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
    assert cfg["payment_hosts"][0]["health_path"] == "/health?password=<redacted>"
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
    with tarfile.open(out) as tar:  # the cover note first, where a help desk opening the archive looks
        assert tar.getnames()[0] == "posdiag-bundle/summary.txt" and len(tar.getnames()) == len(files)
        assert {m.mode for m in tar.getmembers()} == {0o600}


def test_bundle_versions_name_the_operating_system_as_its_os_release_says(config_file, tmp_path):
    """The help desk reads which OS release a till runs from versions.txt: the os-release file
    (``/etc/os-release``, else ``/usr/lib/os-release``, as os-release(5) says), beside posdiag's version."""
    import sys

    from posdiag.agent import __version__

    path = config_file()
    versions = members(make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz")[0])["versions.txt"]
    os_release = next(Path(p) for p in ("/etc/os-release", "/usr/lib/os-release") if Path(p).is_file())
    assert "PRETTY_NAME=" in os_release.read_text() and os_release.read_text() in versions
    assert versions.startswith(f"posdiag {__version__}\npython {sys.version.split()[0]} ")


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
             "&access_token=<redacted>&auth=<redacted>&page=<redacted>"}),  # every query value is held back
], ids=["password", "api-key", "token-file-path-kept", "url-userinfo", "harmless", "every-secret-key",
        "every-query-value"])
def test_the_configuration_shown_has_its_secrets_replaced_and_the_rest_kept(value, expected):
    assert mask_config(value) == expected


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


# --- a diagnosis on any till ----------------------------------------------------------------------------

def test_with_no_daemon_the_bundle_holds_a_fresh_diagnosis_beside_the_stored_reports(config_file, tmp_path):
    from labs.commands import run_cli
    from posdiag.agent.store import Store

    path = config_file(terminal={"id": "lane-03"}, reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    _, earlier = run_cli("diagnose", "--json", "--config", str(path))[:2]
    with Store(tmp_path / "state") as store:
        store.add(json.loads(earlier))
    rc, _, err = run_cli("bundle", "--config", str(path), "-o", str(tmp_path / "b.tar.gz"))
    assert rc == 0, err
    files = members(tmp_path / "b.tar.gz")
    fresh = json.loads(files["diagnosis.json"])
    assert fresh["schema"] == "posdiag.report/1" and fresh["terminal"]["id"] == "lane-03"
    assert fresh["report_id"] != json.loads(earlier)["report_id"]
    assert fresh["duration_s"] <= config.load(str(path)).diagnosis.deadline_s
    phone, _, heading = files["diagnosis.txt"].splitlines()[:3]  # the line to read out, then the report
    assert " · report " in phone and heading.startswith("posdiag ") and "Verdict:" in files["diagnosis.txt"]
    assert [r["report_id"] for r in json.loads(files["reports.json"])] == [json.loads(earlier)["report_id"]]
    summary = files["summary.txt"]
    assert "diagnosis: no daemon runs, so a fresh one was made for this bundle (diagnosis.json, diagnosis.txt)" in summary
    assert "stored reports: 1 in reports.json" in summary
    assert "token.json" not in files and "token file" not in summary  # no server: nothing to say about a token


def test_beside_a_running_daemon_the_bundle_makes_no_diagnosis_and_says_whose_reports_it_holds(config_file, tmp_path):
    from labs.daemonlab import DaemonProcess
    from labs.helpers import wait_for

    (tmp_path / "pos.log").touch()
    path = config_file(daemon={"interval_s": 3600}, txlog={"path": str(tmp_path / "pos.log")},
                       reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    daemon = DaemonProcess(path, tmp_path / "state")
    try:
        assert wait_for(lambda: len(daemon.reports()) == 1, 15), daemon.output()
        out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz")
    finally:
        daemon.stop()
    files = members(out)
    assert "diagnosis.json" not in files
    assert json.loads(files["status.json"])["running"] is True
    assert len(json.loads(files["reports.json"])) == 1
    assert "diagnosis: the daemon runs and diagnoses by itself: its last reports are in reports.json" in files["summary.txt"]


# --- the token file: only as push reads it, and never its value ------------------------------------------

def _token_file(kind: str, folder: Path) -> Path:
    """A token file that is not what it should be: a symlink, a FIFO, a file far too big."""
    path = folder / "token"
    if kind == "symlink":
        target = folder / "elsewhere"
        target.write_text("tok_behind_a_symlink_0011223344\n")
        target.chmod(0o600)
        path.symlink_to(target)
    elif kind == "fifo":
        import os

        os.mkfifo(path, 0o600)
    else:
        path.write_bytes(b"x" * (8 * 1024 * 1024))
        path.chmod(0o600)
    return path


@pytest.mark.parametrize("kind, problem", [("symlink", "a symlink is not followed"), ("fifo", "is not a regular file"),
                                           ("huge", "does not hold one token")])
def test_the_bundle_opens_the_token_file_only_as_push_does(config_file, tmp_path, kind, problem):
    import time

    token = _token_file(kind, tmp_path)
    path = config_file(server={"url": "https://127.0.0.1:1", "token_file": str(token)},
                       reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    started = time.monotonic()
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz", deadline_s=1)
    assert time.monotonic() - started < 30  # a FIFO never blocks it
    files = members(out)
    state = json.loads(files["token.json"])
    assert state["present"] is True and problem in state["problem"]
    assert "token file: " in files["summary.txt"] and "not usable for push" in files["summary.txt"]
    assert "tok_behind_a_symlink" not in "".join(files.values())


@pytest.mark.root
def test_the_bundle_says_the_token_is_there_and_its_mode_never_what_it_is(secret_terminal, tmp_path):
    out, _ = make_bundle(config.load(str(secret_terminal)), str(secret_terminal), tmp_path / "b.tar.gz", deadline_s=1)
    files = members(out)
    state = json.loads(files["token.json"])
    assert state["present"] is True and state["mode"] == "0600" and state["problem"] is None
    assert f"token file: {tmp_path / 'token'}: mode 0600, usable for push" in files["summary.txt"]
    assert TOKEN not in "".join(files.values())


def test_a_missing_token_file_is_said_to_be_missing(config_file, tmp_path):
    path = config_file(server={"url": "https://127.0.0.1:1", "token_file": str(tmp_path / "no-token")},
                       reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz", deadline_s=1)
    files = members(out)
    assert json.loads(files["token.json"])["present"] is False
    assert f"token file: {tmp_path / 'no-token'}: not there" in files["summary.txt"]


def test_the_pos_log_in_the_bundle_is_its_bounded_tail_masked_line_by_line(config_file, tmp_path):
    pos_log = tmp_path / "pos.log"
    pos_log.write_text("".join(f"2026-11-30 10:00:00 txn={i} pan=4111111111111111 cvv=7351 code=2824 rc=91\n"
                               for i in range(800)))
    path = config_file(txlog={"path": str(pos_log)}, reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz", deadline_s=1)
    lines = members(out)["pos.log"].splitlines()
    assert len(lines) == 500 and lines[-1].startswith("2026-11-30 10:00:00 txn=799 ")
    assert all(line.endswith("pan=411111******1111 cvv=<redacted> code=2824 rc=91") for line in lines)


@pytest.mark.parametrize(("width", "kept"), [(1500, 500), (3000, 1024 * 1024 // 3000)],
                         ids=["500-lines-under-1-MiB", "500-lines-over-1-MiB"])
def test_the_pos_log_in_the_bundle_keeps_the_last_500_whole_lines_within_1_mib(config_file, tmp_path, width, kept):
    """A POS that logs its payloads writes long lines: 600 lines of 1.5 KB (the last 500 are 750 KB) give
    the last 500 whole; lines of 3 KB give as many whole last lines as 1 MiB holds, none cut."""
    written = [f"2026-11-30 10:00:00 txn={i:04d} code=2824 payload=".ljust(width - 1, "x") for i in range(600)]
    pos_log = tmp_path / "pos.log"
    pos_log.write_text("".join(line + "\n" for line in written))
    path = config_file(txlog={"path": str(pos_log)}, reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz", deadline_s=1)
    lines = members(out)["pos.log"].splitlines()
    assert len(lines) == kept and lines == written[-kept:], len(lines)



@pytest.mark.root
def test_the_kernel_log_in_the_bundle_keeps_the_last_500_lines_that_matter(config_file, tmp_path):
    """501 reader lines written to the real kernel log: the bundle keeps the newest 500 of the lines a help
    desk needs (the oldest is left out) and none of the others."""
    run = uuid.uuid4().hex[:8]
    for i in range(501):
        with open("/dev/kmsg", "w") as kmsg:  # one open a line: the kernel limits the lines of one writer
            kmsg.write(f"<6>tty posdiag-bundle-{run}: record {i}\n")
            if i == 250:
                kmsg.write(f"<6>posdiag-bundle-{run}: other\n")
    path = config_file(reader={"kernel_log": "/dev/kmsg", "sysfs_root": str(tmp_path / "nosys")})
    out, _ = make_bundle(config.load(str(path)), str(path), tmp_path / "b.tar.gz", deadline_s=1)
    lines = members(out)["kernel.log"].splitlines()
    ours = [line for line in lines if f"posdiag-bundle-{run}" in line]
    assert len(lines) == 500, len(lines)
    assert ours[-1] == f"tty posdiag-bundle-{run}: record 500" and f"posdiag-bundle-{run}: other" not in lines
    assert f"tty posdiag-bundle-{run}: record 0" not in ours  # the 501st line back, even had nothing come after


def test_the_cover_note_says_why_a_bundle_holds_no_fresh_diagnosis():
    from posdiag.agent.bundle import _diagnosis_line

    assert _diagnosis_line({"running": False}, None) == ("diagnosis: no daemon runs, and a fresh one could not be made "
                                                         "(see errors.txt)")
    assert _diagnosis_line({"running": True}, None).startswith("diagnosis: the daemon runs and diagnoses by itself")
    for unknown in ({"running": None}, None):  # who runs cannot be told (no access), or status itself failed
        assert _diagnosis_line(unknown, None).startswith("diagnosis: none made for this bundle: it cannot tell")


def test_a_bundle_is_written_into_folders_made_for_it_and_over_an_old_one(tmp_path):
    """``-o`` may name folders not there yet (a USB stick's fresh folder); a second bundle replaces the first."""
    from posdiag.agent.bundle import Bundle

    target = tmp_path / "stick" / "lane-03" / "bundle.tar.gz"
    for note in ("first", "second"):
        bundle = Bundle()
        bundle.add("summary.txt", lambda note=note: f"{note}\n")
        bundle.add("broken.json", lambda: {}["missing"])
        bundle.add("data.json", lambda: {"terminal": "lane-03"})
        assert bundle.write(target) == target.stat().st_size
    files = members(target)
    assert files == {"summary.txt": "second\n", "errors.txt": "broken.json: KeyError: 'missing'\n",
                     "data.json": '{\n  "terminal": "lane-03"\n}\n'}  # JSON for a person to read: two-space indents
    assert target.stat().st_mode & 0o777 == 0o600


def test_a_daemon_that_does_not_answer_its_socket_is_given_five_seconds_and_taken_for_a_busy_one(config_file, tmp_path):
    """Something listens on the control socket but never answers: the bundle waits 5 s for the status,
    then says the daemon is busy, and makes no diagnosis beside it."""
    import socket

    path = config_file(reader={"kernel_log": str(tmp_path / "missing-kmsg")})
    settings = config.load(str(path))
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    Path(settings.daemon.control_socket).parent.mkdir(parents=True, exist_ok=True)
    silent.bind(settings.daemon.control_socket)
    silent.listen(8)
    try:
        started = time.monotonic()
        out, _ = make_bundle(settings, str(path), tmp_path / "b.tar.gz")
        took = time.monotonic() - started
    finally:
        silent.close()
    files = members(out)
    status = json.loads(files["status.json"])
    assert status["running"] is True and "did not answer within 5 s" in status["error"], status
    assert "diagnosis.json" not in files and 4.9 <= took < 40
