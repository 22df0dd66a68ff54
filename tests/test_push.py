"""Pushing reports to a real HTTPS server on loopback: delivery, answers, outages, security.

The server (``push_server.py``) stores by report_id and counts every post, so each case asserts
zero loss and zero duplicates at the server: every report stored once, in order.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labs.commands import REPO, run_cli, run_posdiag
from labs.daemonlab import DaemonProcess
from labs.helpers import hung_control_socket, wait_for
from labs.push_server import PushServer
from posdiag.agent import outbox
from posdiag.agent.store import Store
from test_history import fake_report

TOKEN = "tok-" + "7f3a9c" * 6


@pytest.fixture
def server(push_certs):
    started: list[PushServer] = []

    def make(kind: str = "good", port: int = 0, start: bool = True) -> PushServer:
        srv = PushServer(*push_certs[kind], TOKEN, port)
        if start:
            srv.start()
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.release.set()
        srv.stop()


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def push_config(config_file, token_file, push_certs, tmp_path):
    """A config pushing to ``url``; state and control socket inside tmp_path."""

    def make(url: str, **server) -> Path:
        (tmp_path / "pos.log").touch()
        return config_file(server={"url": url, "token_file": str(token_file), "ca_file": push_certs["ca"],
                                   "retry_max_s": 1.0, "timeout_s": 2.0, **server},
                           daemon={"interval_s": 3600}, txlog={"path": str(tmp_path / "pos.log")})

    return make


def queue_reports(state: Path, n: int, start: float | None = None) -> list[str]:
    start = start or time.time() - n
    ids = []
    with Store(state) as store:
        for i in range(n):
            report = fake_report(start + i)
            store.add(report, push=True)
            ids.append(report["report_id"])
    return ids


def push_state(state: Path) -> dict:
    with Store(state, readonly=True) as store:
        return store.push_summary()


@pytest.fixture
def daemon():
    started: list[DaemonProcess] = []

    def start(config: Path) -> DaemonProcess:
        d = DaemonProcess(config, config.parent / "state", start_timeout_s=15)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def trigger(config: Path) -> dict:
    """An on-demand report from the daemon itself (the CLI would diagnose locally if the socket were
    momentarily busy on a loaded box; here the report must be the daemon's)."""
    from posdiag.agent.control import DaemonNotRunning, request

    for _ in range(50):
        try:
            reply = request(str(config.parent / "control.sock"), {"cmd": "trigger"}, timeout_s=60)
        except DaemonNotRunning:
            time.sleep(0.1)
            continue
        assert reply["ok"], reply
        return reply["report"]
    raise AssertionError("the daemon never answered")


def stored_ids(state: Path) -> list[str]:
    """Every report in the history, oldest first."""
    with Store(state, readonly=True) as store:
        return [r.report_id for r in reversed(store.list())]


def assert_exactly_once_in_order(srv: PushServer, ids: list[str]) -> None:
    got = srv.received()
    assert got == ids, f"missing {set(ids) - set(got)}, unexpected {set(got) - set(ids)}"
    assert srv.duplicates() == 0, srv.posts  # stored once, and never even posted twice


# --- delivery -----------------------------------------------------------------------------------------------
def test_daemon_pushes_boot_and_on_demand_reports_with_gzip_and_bearer(server, push_config, daemon, tmp_path):
    srv = server()
    d = daemon(push_config(srv.url))
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    report = trigger(d.config)
    assert wait_for(lambda: report["report_id"] in srv.received(), 5), d.output()  # on-demand goes out at once
    assert_exactly_once_in_order(srv, stored_ids(tmp_path / "state"))
    assert srv.stored[report["report_id"]]["trigger"] == "on-demand"
    assert set(srv.auth_seen) == {f"Bearer {TOKEN}"}
    assert wait_for(lambda: push_state(tmp_path / "state")["outbox"] == 0, 5)  # the sender's commit follows the 201
    status = json.loads(d.cli("status", "--json")[1])["push"]
    assert set(status) == {"configured", "outbox", "oldest_unsent_s", "last_attempt_at", "last_result", "sent",
                           "refused", "dropped"}
    assert status["configured"] is True and status["outbox"] == 0 and status["sent"] == 2
    assert status["last_result"] == "201" and status["oldest_unsent_s"] is None


def test_server_down_for_a_while_then_back_gets_everything_in_order_once(server, push_config, daemon, tmp_path):
    srv = server(start=False)
    srv.start()
    port = srv.port
    srv.stop()  # the port now refuses connections
    d = daemon(push_config(f"https://127.0.0.1:{port}"))
    for _ in range(3):
        trigger(d.config)
    assert wait_for(lambda: push_state(tmp_path / "state")["last_result"] == "connection refused", 10), d.output()
    made = len(stored_ids(tmp_path / "state"))
    assert made == 4
    status = json.loads(d.cli("status", "--json")[1])["push"]
    assert status["outbox"] == made and status["oldest_unsent_s"] >= 0
    rc, out, _ = d.cli("status")
    said = " ".join(out.split())  # a long status line continues under its column
    assert f"outbox {made}" in said and "connection refused" in said
    back = server(port=port)  # same port, after a while
    assert wait_for(lambda: len(back.received()) == made, 15), d.output()
    assert_exactly_once_in_order(back, stored_ids(tmp_path / "state"))
    assert wait_for(lambda: push_state(tmp_path / "state")["outbox"] == 0, 5)


def test_a_2824_event_report_goes_out_at_once(server, push_config, daemon, tmp_path):
    srv = server()
    d = daemon(push_config(srv.url))
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    started = time.monotonic()
    with open(tmp_path / "pos.log", "a") as fh:
        fh.write("2026-11-30 10:00:01 txn=10 code=2824\n")
    assert wait_for(lambda: len(srv.received()) == 2, 10), d.output()
    assert time.monotonic() - started < 8
    assert srv.stored[srv.received()[1]]["trigger"] == "event"


# --- the server's answers -------------------------------------------------------------------------------------
def test_409_means_already_stored_and_leaves_the_outbox(server, push_config, tmp_path):
    srv = server()
    config = push_config(srv.url)
    ids = queue_reports(tmp_path / "state", 3)
    srv.script.extend([("status", 409, None)])
    rc, out, err = run_cli("push", "--config", str(config))
    assert rc == 0, err
    state = push_state(tmp_path / "state")
    assert state["outbox"] == 0 and state["sent"] == 3 and state["refused"] == 0
    assert srv.received() == ids[1:]  # the first was "already there"


@pytest.mark.parametrize("status", [401, 413, 400])
def test_other_4xx_sets_the_report_aside_counts_it_and_moves_on(server, push_config, tmp_path, status):
    srv = server()
    config = push_config(srv.url)
    ids = queue_reports(tmp_path / "state", 3)
    srv.script.extend([("status", status, None)])
    rc, out, err = run_cli("push", "--config", str(config))
    assert rc == 3 and "refused 1 report" in err and str(status) in err
    state = push_state(tmp_path / "state")
    assert state["outbox"] == 0 and state["refused"] == 1 and state["sent"] == 2
    assert srv.received() == ids[1:]
    requests_before = srv.requests
    assert run_cli("push", "--config", str(config))[0] == 0  # never retried by itself
    assert srv.requests == requests_before
    rc, out, _ = run_cli("push", "--requeue-refused", "--config", str(config))
    assert rc == 0 and srv.received() == ids[1:] + ids[:1]


@pytest.mark.parametrize("status", [500, 503])
def test_5xx_keeps_the_reports_for_a_retry(server, push_config, tmp_path, status):
    srv = server()
    config = push_config(srv.url)
    ids = queue_reports(tmp_path / "state", 2)
    srv.answer(status)
    rc, out, err = run_cli("push", "--config", str(config))
    assert rc == 3 and "2 still queued" in err and str(status) in err
    state = push_state(tmp_path / "state")
    assert state["outbox"] == 2 and state["last_result"] == str(status) and state["refused"] == 0
    srv.answer(None)
    assert run_cli("push", "--config", str(config))[0] == 0
    assert srv.received() == ids and srv.duplicates() == 0


def test_429_retry_after_is_honoured_by_the_daemon(server, push_config, daemon, tmp_path):
    srv = server()
    srv.script.append(("status", 429, 2))
    d = daemon(push_config(srv.url, retry_max_s=1.0))
    assert wait_for(lambda: srv.requests >= 1, 15), d.output()
    refused_at = time.monotonic()
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    assert time.monotonic() - refused_at >= 1.7  # not before Retry-After, though retry_max_s is 1
    assert srv.requests == 2


def test_stalled_server_times_out_and_a_dropped_connection_is_retried(server, push_config, tmp_path):
    srv = server()
    config = push_config(srv.url, timeout_s=1.0)
    ids = queue_reports(tmp_path / "state", 2)
    srv.script.extend([("stall",)])
    srv.release.clear()
    rc, _, err = run_cli("push", "--config", str(config))
    assert rc == 3 and push_state(tmp_path / "state")["last_result"] == "timeout"
    srv.release.set()
    srv.script.extend([("drop",)])
    rc, _, err = run_cli("push", "--config", str(config))
    assert rc == 3 and push_state(tmp_path / "state")["last_result"].startswith("connection error")
    assert run_cli("push", "--config", str(config))[0] == 0
    assert srv.received() == ids  # the stalled post may have landed late: stored once all the same


def test_backlog_is_sent_over_one_keep_alive_connection(server, push_config, tmp_path):
    srv = server()
    config = push_config(srv.url)
    ids = queue_reports(tmp_path / "state", 250)  # more than one page of the outbox
    assert run_cli("push", "--config", str(config))[0] == 0
    assert srv.received() == ids
    assert srv.connections == 1


def test_a_second_sender_while_one_is_draining_posts_nothing_and_exits_busy(server, push_config, tmp_path):
    """One sender at a time, so a report is never in flight twice from this terminal: while another
    sender holds the lock, the one the daemon starts exits BUSY without a post; once the lock is free,
    the same sender drains the outbox."""
    import fcntl

    from posdiag.agent import sender
    from posdiag.core.settings import load

    srv = server()
    settings = load(str(push_config(srv.url)))
    ids = queue_reports(Path(settings.daemon.state_dir), 2)
    argv = sender.argv_for(settings.server, settings.daemon.state_dir)
    held = os.open(Path(settings.daemon.state_dir) / sender.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # the sender already draining
        second = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    finally:
        os.close(held)
    assert second.returncode == sender.BUSY, second.stderr
    assert srv.requests == 0 and push_state(Path(settings.daemon.state_dir))["outbox"] == 2
    alone = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert alone.returncode == sender.DRAINED, alone.stderr
    assert srv.received() == ids


def test_a_lock_is_waited_for_until_its_holder_lets_go_and_given_up_on_when_held_all_the_wait(tmp_path):
    """What keeps senders (and reader probes) taking turns: a process waits for the lock, asking again,
    and answers False rather than hang when the other holds it throughout."""
    import fcntl
    import threading

    from posdiag.core.locks import lock_within

    path = tmp_path / "lock"
    held = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(held, fcntl.LOCK_EX)
    waiter = os.open(path, os.O_RDWR)
    try:
        assert lock_within(waiter, 0.2, 0.05) is False  # held all that time
        threading.Timer(0.3, os.close, [held]).start()  # the holder lets go while the next one waits
        assert lock_within(waiter, 60, 0.05) is True
    finally:
        os.close(waiter)


# --- kill -9 ----------------------------------------------------------------------------------------------
def test_kill_9_of_the_daemon_and_its_sender_during_an_upload_loses_nothing(server, push_config, daemon, tmp_path):
    srv = server()
    srv.release.clear()
    srv.mode = ("stall",)
    config = push_config(srv.url, timeout_s=30.0)
    d = daemon(config)
    assert wait_for(srv.stalled.is_set, 15), d.output()  # the boot report is in flight
    senders = d.senders()
    assert senders, "no sender process while uploading"
    d.proc.kill()
    for pid in senders:
        os.kill(pid, signal.SIGKILL)
    d.proc.wait()
    srv.mode = ("store",)
    srv.release.set()  # the stalled post now lands (or not): the terminal cannot know
    again = daemon(config)
    assert wait_for(lambda: len(stored_ids(tmp_path / "state")) == 2, 15), again.output()
    ids = stored_ids(tmp_path / "state")
    assert wait_for(lambda: len(srv.received()) == 2, 15), again.output()
    assert srv.received() == ids  # the boot report of each run, stored once each, in order


def test_kill_9_during_store_writes_then_restart_loses_nothing(server, push_config, daemon, tmp_path):
    srv = server()
    config = push_config(srv.url)
    d = daemon(config)
    answered = []
    proc = subprocess.Popen([sys.executable, "-c", f"""
from posdiag.agent.control import request
for _ in range(30):
    try:
        reply = request({str(config.parent / 'control.sock')!r}, {{"cmd": "trigger"}}, timeout_s=60)
    except Exception:
        break
    print(reply["report"]["report_id"], flush=True)
"""], stdout=subprocess.PIPE, text=True, cwd=REPO)
    for _ in range(4):
        answered.append(proc.stdout.readline().strip())
    d.proc.kill()  # in the middle of sweeps and their store writes
    d.proc.wait()
    proc.kill()
    proc.wait()
    import sqlite3

    with sqlite3.connect(tmp_path / "state" / "history.sqlite3") as db:  # recovers the WAL the kill left
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    again = daemon(config)
    assert wait_for(lambda: set(srv.received()) == set(stored_ids(tmp_path / "state")), 20), again.output()
    ids = stored_ids(tmp_path / "state")
    assert set(answered) <= set(ids)  # every report the daemon answered with was stored and pushed
    assert srv.received() == ids and srv.duplicates() == 0


@pytest.mark.root
def test_state_dir_on_a_filesystem_that_fills_keeps_pushing_every_report(server, push_config, daemon, tmpfs, tmp_path):
    from labs.helpers import fill_filesystem

    state = tmpfs("2m") / "state"
    old = [fake_report(time.time() - 5000 + i) for i in range(60)]
    with Store(state) as store:
        for report in old:
            report["probes"][0]["metrics"]["padding"] = os.urandom(4000).hex()
            store.add(report)  # history only: already sent long ago
    fill_filesystem(state.parent)
    srv = server()
    d = daemon(_config_with_state(push_config, srv.url, state))
    triggered = []
    for _ in range(5):
        triggered.append(trigger(d.config)["report_id"])
    assert wait_for(lambda: len(srv.received()) == 6, 15), d.output()
    assert srv.received()[1:] == triggered and srv.duplicates() == 0
    assert srv.stored[srv.received()[0]]["trigger"] == "boot"
    kept = set(stored_ids(state))
    left = [r["report_id"] in kept for r in old]
    assert not all(left) and left == sorted(left)  # room was made from the oldest history, and only as needed
    assert "could not store" not in d.output() and "pruned the" in d.output()


def _config_with_state(push_config, url: str, state: Path) -> Path:
    config = push_config(url)
    config.write_text(config.read_text().replace(f"state_dir = '{config.parent / 'state'}'", f"state_dir = '{state}'"))
    return config


# --- security -------------------------------------------------------------------------------------------------
def test_token_file_readable_by_others_is_refused_by_check_run_and_push(push_config, token_file, tmp_path):
    config = push_config("https://127.0.0.1:9")
    token_file.chmod(0o644)
    for command in (["config", "check"], ["push"], ["diagnose", "--push"]):
        rc, out, err = run_cli(*command, "--config", str(config))
        assert rc == 3, command
        assert "server.token_file" in err and "0644" in err and "chmod 600" in err
        assert TOKEN not in out + err
    proc = run_posdiag("run", "--config", str(config), timeout=20)
    assert proc.returncode == 3 and "chmod 600" in proc.stderr and TOKEN not in proc.stderr
    token_file.chmod(0o600)
    assert run_cli("config", "check", "--config", str(config))[0] == 0


def test_plain_http_is_refused_unless_allowed(push_config):
    rc, _, err = run_cli("config", "check", "--config", str(push_config("http://127.0.0.1:9")))
    assert rc == 3 and "server.url" in err and "allow_insecure" in err
    rc, _, err = run_cli("config", "check", "--config", str(push_config("http://127.0.0.1:9", allow_insecure=True)))
    assert rc == 0, err


def test_server_certificate_from_an_unknown_ca_is_not_trusted(server, push_config, tmp_path):
    srv = server("rogue")
    config = push_config(srv.url)
    queue_reports(tmp_path / "state", 2)
    rc, out, err = run_cli("push", "--config", str(config))
    assert rc == 3 and "tls: certificate verify failed" in err
    assert srv.received() == [] and srv.requests == 0
    assert push_state(tmp_path / "state")["outbox"] == 2


def test_the_token_never_appears_in_logs_reports_status_or_errors(server, push_config, daemon, tmp_path):
    srv = server()
    config = push_config(srv.url)
    d = daemon(config)
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    srv.answer(500)
    trigger(d.config)
    assert wait_for(lambda: push_state(tmp_path / "state")["last_result"] == "500", 10)
    texts = [d.output()]
    for command in (["status"], ["status", "--json"], ["history", "--json"], ["push"], ["config", "check"],
                    ["diagnose", "--push", "--json"]):
        rc, out, err = d.cli(*command)
        texts += [out, err]
    d.stop()
    texts.append(d.output())
    texts.append((tmp_path / "state" / "history.sqlite3").read_bytes().decode("latin-1"))
    assert not [t for t in texts if TOKEN in t]
    assert srv.auth_seen and all(a == f"Bearer {TOKEN}" for a in srv.auth_seen)


# --- the technician's commands --------------------------------------------------------------------------------
def test_diagnose_push_queues_and_push_drains_when_no_daemon_runs(server, push_config, tmp_path):
    srv = server()
    config = push_config(srv.url)
    rc, out, err = run_cli("diagnose", "--push", "--json", "--config", str(config))
    report = json.loads(out)
    assert rc in (0, 1, 2) and "queued" in err and "posdiag push" in err
    assert push_state(tmp_path / "state")["outbox"] == 1
    rc, out, _ = run_cli("status", "--config", str(config))
    assert rc == 3 and "not running" in out and "outbox 1" in out  # what waits, even with no daemon
    rc, out, err = run_cli("push", "--config", str(config))
    assert rc == 0 and "sent 1 report" in out, err
    assert srv.received() == [report["report_id"]]


def test_push_and_status_speak_chinese_to_the_technician(server, push_config, tmp_path, speak_chinese):
    srv = server()
    config = push_config(srv.url)
    rc, out, err = run_cli("--lang", "zh_CN", "diagnose", "--push", "--json", "--config", str(config))
    assert "posdiag: 报告已放入待发送队列；守护进程未运行：请用 'posdiag push' 发送" in err
    rc, out, _ = run_cli("--lang", "zh_CN", "status", "--config", str(config))
    head, *lines = out.splitlines()
    assert rc == 3 and head == "posdiag 守护进程：未运行" and lines[0].startswith("  问题：")
    assert "上没有 posdiag 守护进程应答" in "".join(lines)
    push = lines.index(next(line for line in lines if line.startswith("  推送：")))
    # labels in one column measured in terminal cells: "推送：" takes 6 of the 12
    assert lines[push].startswith("  推送：      待发送队列 1 份，最早的已等待 ") and lines[push].endswith("；尚未尝试发送")
    assert lines[push + 1] == " " * 14 + "已发送 0，被拒收 0，已丢弃 0"
    rc, out, err = run_cli("--lang", "zh_CN", "push", "--config", str(config))
    assert rc == 0 and out == "已发送 1 份报告；待发送队列中还有 0 份\n", err


def test_token_refusal_is_chinese_on_the_terminal_and_english_in_the_daemon_log(push_config, token_file, speak_chinese):
    config = push_config("https://127.0.0.1:9")
    token_file.chmod(0o644)
    rc, _, err = run_cli("--lang", "zh_CN", "push", "--config", str(config))
    assert rc == 3 and f"server.token_file：{token_file} 可被同组或其他用户读取（权限 0644）" in err
    proc = run_posdiag("--lang", "zh_CN", "run", "--config", str(config), timeout=20)
    assert proc.returncode == 3 and "is readable by group or others (mode 0644)" in proc.stderr  # operators grep this


def test_diagnose_push_is_sent_by_a_running_daemon(server, push_config, daemon, tmp_path):
    srv = server()
    d = daemon(push_config(srv.url))
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    rc, out, err = d.cli("diagnose", "--push", "--json")
    assert "the daemon sends it" in err
    report_id = json.loads(out)["report_id"]
    assert wait_for(lambda: report_id in srv.received(), 10), d.output()


def test_push_with_the_server_down_exits_3_and_says_why(push_config, tmp_path):
    config = push_config("https://127.0.0.1:9")
    queue_reports(tmp_path / "state", 1)
    rc, out, err = run_cli("push", "--config", str(config))
    assert rc == 3 and "connection refused" in err and "1 still queued" in err


def test_status_without_a_server_says_push_not_configured(config_file, daemon):
    d = daemon(config_file(daemon={"interval_s": 3600}))
    push = json.loads(d.cli("status", "--json")[1])["push"]
    assert push["configured"] is False and push["outbox"] == 0
    assert "not configured" in d.cli("status")[1]


# --- the outbox itself ------------------------------------------------------------------------------------------
def test_history_retention_never_deletes_an_unsent_report(tmp_path):
    now = time.time()
    with Store(tmp_path, max_age_days=1) as store:
        old = fake_report(now - 3 * 86400)
        store.add(old, push=True)
        store.add(fake_report(now), push=True)
        assert store.count() == 1  # the old one left the history...
        assert [r[1] for r in outbox.pending_page(store.db, 0)][0] == old["report_id"]  # ...not the outbox


def test_full_spool_drops_the_oldest_unsent_and_counts_them(tmp_path):
    with Store(tmp_path, spool_max_mb=0.05) as store:  # ~52 kB of compressed reports
        ids = []
        for i in range(12):
            report = fake_report(time.time() + i)
            report["probes"][0]["metrics"]["padding"] = os.urandom(5000).hex()  # incompressible
            store.add(report, push=True)
            ids.append(report["report_id"])
        queued = [r[1] for r in outbox.pending_page(store.db, 0)]
        summary = store.push_summary()
    assert queued == ids[-len(queued):] and len(queued) < 12  # the newest are kept, in order
    assert summary["dropped"] == 12 - len(queued) and summary["outbox"] == len(queued)


def _queue_three(store: Store) -> list[str]:
    """Three reports stored and queued for the server, oldest first; their ids."""
    reports = [fake_report(time.time() + i) for i in range(3)]
    for report in reports:
        store.add(report, push=True)
    return [r["report_id"] for r in reports]


def test_a_spool_exactly_at_its_limit_keeps_everything_and_one_byte_less_drops_the_oldest(tmp_path):
    with Store(tmp_path) as store:
        ids = _queue_three(store)
        with store.db:
            total = store.db.execute("SELECT SUM(size) FROM outbox").fetchone()[0]
            assert outbox.enforce_spool(store.db, total) == 0
        assert [r[1] for r in outbox.pending_page(store.db, 0)] == ids
        with store.db:
            assert outbox.enforce_spool(store.db, total - 1) == 1
        assert [r[1] for r in outbox.pending_page(store.db, 0)] == ids[1:]


def test_a_spool_over_by_exactly_its_oldest_report_drops_that_one_only(tmp_path):
    with Store(tmp_path) as store:
        ids = _queue_three(store)
        with store.db:
            sizes = [row[0] for row in store.db.execute("SELECT size FROM outbox ORDER BY seq")]
            assert outbox.enforce_spool(store.db, sum(sizes) - sizes[0]) == 1
        assert [r[1] for r in outbox.pending_page(store.db, 0)] == ids[1:]


def test_a_full_spool_evicts_reports_set_aside_before_any_unsent_one(tmp_path):
    """A report the server refused (4xx) is kept for the technician, but it goes first when space runs out."""
    with Store(tmp_path) as store:
        ids = _queue_three(store)
        with store.db:
            seqs = [row[0] for row in store.db.execute("SELECT seq FROM outbox ORDER BY seq")]
            outbox.mark_refused(store.db, seqs[-1], "HTTP 422", time.time())  # the newest was refused
            total = store.db.execute("SELECT SUM(size) FROM outbox").fetchone()[0]
            assert outbox.enforce_spool(store.db, total - 1) == 0  # no unsent report was dropped
        assert [r[1] for r in outbox.pending_page(store.db, 0)] == ids[:2]
        assert store.db.execute("SELECT COUNT(*) FROM outbox WHERE refused_at IS NOT NULL").fetchone()[0] == 0


def test_a_token_file_opened_up_while_the_daemon_runs_stops_pushing_and_status_says_why(server, push_config, daemon,
                                                                                        token_file, tmp_path):
    srv = server()
    d = daemon(push_config(srv.url))
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    token_file.chmod(0o644)
    trigger(d.config)
    assert wait_for(lambda: (push_state(tmp_path / "state")["last_result"] or "").startswith("setup:"), 10), d.output()
    state = push_state(tmp_path / "state")
    assert "0644" in state["last_result"] and TOKEN not in state["last_result"]
    assert len(srv.received()) == 1 and state["outbox"] == 1  # kept until the token file is fixed


# --- backoff ------------------------------------------------------------------------------------------------------
def test_backoff_is_jittered_exponential_capped_and_never_before_retry_after():
    from posdiag.agent.sender import backoff_s, classify, retry_after

    waits = [backoff_s(failures, cap_s=60) for failures in range(1, 12) for _ in range(50)]
    assert max(waits) <= 60 and min(waits) >= 0.2
    assert max(backoff_s(2, cap_s=60) for _ in range(200)) <= 2  # 2nd failure: up to 2 s
    assert len({round(w, 3) for w in waits}) > 100  # jittered, not in step
    assert all(backoff_s(1, cap_s=5, not_before_s=30) >= 30 for _ in range(20))  # Retry-After beats the cap
    now = time.time()
    assert retry_after("7", now) == 7
    assert 58 <= retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 60)), now) <= 60
    assert retry_after("soon", now) is None
    assert classify(429, {"Retry-After": "3"}, now).retry_after_s == 3
    answers = {200: "done", 201: "done", 409: "done", 400: "refused", 401: "refused", 403: "refused", 404: "refused",
               413: "refused", 415: "refused", 429: "retry", 499: "refused", 500: "retry", 502: "retry", 503: "retry",
               599: "retry"}  # every answer docs/push.md names, and the edges of the 4xx and 5xx ranges
    assert {status: classify(status, {}, now).kind for status in answers} == answers


def test_sighup_with_the_server_url_removed_queues_without_sending_and_restoring_it_sends(server, push_config, daemon,
                                                                                          tmp_path):
    srv = server()
    d = daemon(push_config(srv.url))
    assert wait_for(lambda: len(srv.received()) == 1, 15), d.output()
    text = d.config.read_text()
    d.config.write_text(text.replace(f"url = '{srv.url}'", "url = ''"))
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "url removed" in d.output(), 5), d.output()
    report = trigger(d.config)
    time.sleep(1.0)
    assert len(srv.received()) == 1 and push_state(tmp_path / "state")["outbox"] == 1
    d.config.write_text(text)
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: report["report_id"] in srv.received(), 10), d.output()


def test_the_pusher_waits_for_its_own_backoff_and_an_urgent_report_for_its_gap(push_config, tmp_path):
    from posdiag.agent.push import URGENT_MIN_GAP_S, Pusher
    from posdiag.core import settings as config

    pusher = Pusher(config.load(str(push_config("https://127.0.0.1:9"))))
    now = time.time()
    assert pusher._due(now - 1)  # the outbox's next attempt is due
    pusher.not_before = now + 60  # a sender crashed: the pusher's own backoff
    assert not pusher._due(now - 1)
    pusher.urgent, pusher.last_start = True, now - URGENT_MIN_GAP_S - 1  # an event report outranks the backoff
    assert pusher._due(now + 600)
    pusher.last_start = now  # ... but not twice within the gap
    assert not pusher._due(now + 600)


@pytest.mark.parametrize(("mode", "content", "problem"), [
    (0o600, "t" * 4096, None), (0o400, "tok\n", None), (0o640, "tok", "readable by group or others"),
    (0o604, "tok", "readable by group or others"), (0o600, "t" * 4097, "does not hold one token"),
    (0o600, "two tokens", "does not hold one token"), (0o600, "\n", "is empty"),
    (0o600, "tok\x07en", "does not hold one token"), (0o600, "t\u00f6k", "does not hold one token")],
    ids=["4096-bytes", "read-only-for-the-owner", "group-readable", "world-readable", "4097-bytes", "two-words", "empty",
         "a-control-character", "not-ascii"])
def test_the_token_file_is_taken_owner_only_and_one_token_long(tmp_path, mode, content, problem):
    from posdiag.agent.pushsetup import PushSetupError, read_token

    path = tmp_path / "token"
    path.write_text(content)
    path.chmod(mode)
    if problem is None:
        assert read_token(str(path)) == content.strip()
    else:
        with pytest.raises(PushSetupError) as refused:
            read_token(str(path))
        assert problem in str(refused.value) and "t" * 100 not in str(refused.value)


def test_retry_after_is_capped_at_an_hour_a_past_date_is_now_and_only_busy_answers_carry_it():
    from posdiag.agent.sender import backoff_s, classify, retry_after

    now = time.time()
    assert retry_after("3600", now) == 3600 and retry_after("3601", now) == 3600 and retry_after("86400", now) == 3600
    assert retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 7200)), now) == 3600
    assert retry_after(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now - 60)), now) == 0
    assert retry_after("", now) is None and retry_after(None, now) is None and retry_after(" 5 ", now) == 5
    assert classify(503, {"Retry-After": "9"}, now).retry_after_s == 9
    assert classify(500, {"Retry-After": "9"}, now).retry_after_s is None
    first = [backoff_s(1, cap_s=60) for _ in range(300)]  # the first failure: 0.2 to 1 s
    assert min(first) >= 0.2 and max(first) <= 1.0 and max(first) > 0.6
    third = [backoff_s(3, cap_s=60) for _ in range(300)]  # the third: up to 4 s
    assert max(third) <= 4.0 and max(third) > 2.0
    assert max(backoff_s(10, cap_s=3) for _ in range(200)) <= 3


def test_a_netrc_in_the_environment_never_replaces_the_terminals_token(server, push_config, tmp_path, monkeypatch):
    """A ~/.netrc (or $NETRC) with credentials for the collector's host is the user's, not the
    terminal's: pushes carry the token file's Bearer token all the same."""
    srv = server()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login pos password planted-netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    config = push_config(srv.url)
    ids = queue_reports(tmp_path / "state", 2)
    rc, _, err = run_cli("push", "--config", str(config))
    assert rc == 0, err
    assert srv.received() == ids and set(srv.auth_seen) == {f"Bearer {TOKEN}"}


def test_without_a_ca_file_the_servers_certificate_is_checked_against_the_systems_existing_bundle(tmp_path,
                                                                                                  monkeypatch):
    from posdiag.agent.pushsetup import system_ca_bundle

    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # where OpenSSL is told the system's bundle is
    assert system_ca_bundle() == str(bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "gone.pem"))  # named, but not there: the next that is
    found = system_ca_bundle()
    assert found != str(tmp_path / "gone.pem") and (found is True or os.path.exists(found))


def test_failed_pushes_are_counted_across_runs_so_the_backoff_keeps_growing(server, push_config, tmp_path):
    """Each drain carries on the count of failures in a row that the last one left: a collector that keeps
    failing is asked ever more rarely, not at the first step's pace at every start of the sender."""
    srv = server()
    srv.answer(503)
    config = push_config(srv.url)
    queue_reports(tmp_path / "state", 1)
    counts = []
    for _ in range(3):
        run_cli("push", "--config", str(config))
        with Store(tmp_path / "state", readonly=True) as store:
            counts.append(int(outbox.get_meta(store.db, "push.failures", "0")))
    assert counts == [1, 2, 3], counts
    srv.answer()
    assert run_cli("push", "--config", str(config))[0] == 0
    with Store(tmp_path / "state", readonly=True) as store:
        assert int(outbox.get_meta(store.db, "push.failures", "0") or 0) == 0


def test_a_sender_that_finds_another_busy_is_started_again_a_second_later_not_at_once(push_config, tmp_path,
                                                                                      monkeypatch):
    """While another sender holds the outbox (a technician's ``posdiag push``), each sender the daemon
    starts exits busy: the daemon looks again a second later, never in a loop of new processes."""
    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    starts = tmp_path / "starts"
    monkeypatch.setattr(sender, "argv_for", lambda server, state_dir: [
        "/bin/sh", "-c", f"echo started >> {starts}; exit {sender.BUSY}"])
    queue_reports(tmp_path / "state", 1)
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9"))))
    pusher.start()
    time.sleep(2.5)
    pusher.stop()
    assert 1 <= len(starts.read_text().splitlines()) <= 4  # at 0, 1 and 2 s (one more on a slow machine)


def _outbox_db() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.executescript(outbox.SCHEMA)
    return db


def test_the_outbox_is_read_a_hundred_reports_at_a_time_oldest_first():
    db = _outbox_db()
    for i in range(150):
        outbox.enqueue(db, f"r{i:03d}", 1_800_000_000.0 + i, b"x" * 10, 1_800_000_000.0 + i)
    first = outbox.pending_page(db, 0)
    assert [r[1] for r in first] == [f"r{i:03d}" for i in range(100)]
    assert [r[1] for r in outbox.pending_page(db, first[-1][0])] == [f"r{i:03d}" for i in range(100, 150)]


def test_a_full_spool_never_drops_the_report_it_was_asked_to_keep_nor_any_newer():
    db = _outbox_db()
    for i in range(4):
        outbox.enqueue(db, f"r{i}", 1_800_000_000.0 + i, b"x" * 100, 1_800_000_000.0 + i)
    seqs = [row[0] for row in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert outbox.enforce_spool(db, 0, keep_seq=seqs[2]) == 2  # the two before it go; it and the newest stay
    assert [r[1] for r in outbox.pending_page(db, 0)] == ["r2", "r3"]
    assert outbox.summary(db)["dropped"] == 2


def test_push_status_says_how_long_the_oldest_report_waits_to_the_tenth_and_only_what_was_recorded():
    db = _outbox_db()
    now = time.time()
    assert outbox.summary(db, now) == outbox.empty_summary()
    outbox.enqueue(db, "old", now - 100, b"x", now - 12.345)
    outbox.enqueue(db, "new", now, b"x", now)
    outbox.record_attempt(db, "timeout", now - 5)
    assert outbox.get_meta(db, "push.failures") is None and outbox.next_attempt_at(db) == 0.0
    outbox.record_attempt(db, "503", now - 1, failures=3, next_attempt_at=now + 60)
    assert outbox.get_meta(db, "push.failures") == "3" and outbox.next_attempt_at(db) == now + 60
    summary = outbox.summary(db, now)
    assert summary["oldest_unsent_s"] == 12.3 and summary["outbox"] == 2 and summary["last_result"] == "503"
    from posdiag.core.timefmt import utc_iso

    assert summary["last_attempt_at"] == utc_iso(now - 1)
    assert outbox.summary(db, now - 20)["oldest_unsent_s"] == 0.0  # a clock set back: never a negative wait
    assert 12.3 <= outbox.summary(db)["oldest_unsent_s"] < 1000  # without a time given: now


@pytest.mark.root
@pytest.mark.parametrize("folder_there", [True, False])
def test_without_any_ca_bundle_file_the_systems_ca_folder_is_used_and_without_it_the_default_trust(tmp_path,
                                                                                                    folder_there):
    """A till whose CA bundle file is gone (here hidden under an empty tmpfs, in a mount namespace of
    its own) checks the server against the system's CA folder; with none either, against the default trust."""
    folder = tmp_path / "certs"
    if folder_there:
        folder.mkdir()
    code = "from posdiag.agent.pushsetup import system_ca_bundle; print(repr(system_ca_bundle()))"
    script = 'mount -t tmpfs none /etc/ssl/certs && exec "$0" -c "$1"'
    env = {**os.environ, "SSL_CERT_FILE": str(tmp_path / "gone.pem"), "SSL_CERT_DIR": str(folder)}
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, sys.executable, code],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (repr(str(folder)) if folder_there else "True")


def test_the_sender_process_logs_an_outage_at_its_1st_2nd_and_4th_attempt_and_says_what_it_sent(server, push_config,
                                                                                                tmp_path):
    """The sender the daemon starts logs a long outage at the 1st, 2nd, 4th, 8th … failed attempt, not at
    every one, with a next try within ``retry_max_s``; exits RETRY_LATER meanwhile; once the server is
    back it drains, exits DRAINED and says how many reports it sent."""
    import re

    from posdiag.agent import sender
    from posdiag.core.settings import load

    srv = server()
    srv.answer(503)
    settings = load(str(push_config(srv.url, retry_max_s=30.0)))
    queue_reports(Path(settings.daemon.state_dir), 1)
    argv = sender.argv_for(settings.server, settings.daemon.state_dir)
    logged, waits = [], []
    for _ in range(4):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == sender.RETRY_LATER, proc.stderr
        said = re.search(r"server unavailable \(503, attempt (\d+)\).*next try in (-?[\d.]+) s", proc.stderr)
        logged.append(int(said[1]) if said else None)
        waits += [float(said[2])] if said else []
    assert logged == [1, 2, None, 4]
    assert all(0 <= wait <= 30.0 for wait in waits), waits
    srv.answer()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == sender.DRAINED and "1 report(s) sent, 0 refused; outbox empty" in proc.stderr


def test_the_sender_process_needs_its_state_directory_and_server():
    from posdiag.agent import sender

    for argv in (["--server", "{}"], ["--state-dir", "/nonexistent/posdiag"]):
        with pytest.raises(SystemExit) as refused:
            sender.main(argv)
        assert refused.value.code == 2


def test_reports_the_server_took_are_marked_sent_fifty_at_a_time_or_after_a_quarter_second(tmp_path):
    """One commit per report would cost more than the post: the sender marks reports sent in batches of
    50, or as soon as a quarter second has passed since the last batch."""
    from posdiag.agent.sender import _Marks

    queue_reports(tmp_path, 52)
    with Store(tmp_path) as store:
        seqs = [seq for seq, _, _ in outbox.pending_page(store.db, 0)]
        marks = _Marks(store.db)
        marks.since = time.monotonic() + 3600  # no quarter second passes in this test: batches by count only
        for seq in seqs[:49]:
            marks.sent(seq, "201", time.time())
        assert outbox.depth(store.db) == 52 and len(marks.seqs) == 49
        marks.sent(seqs[49], "201", time.time())  # the 50th: the batch is written
        assert outbox.depth(store.db) == 2 and marks.seqs == []
        marks.since = time.monotonic() - 0.3  # a quarter second since the last batch: the next one is written alone
        marks.sent(seqs[50], "201", time.time())
        assert outbox.depth(store.db) == 1 and marks.seqs == []


@pytest.mark.parametrize(("code", "wait_s", "sent"), [
    ("exit 0", 0.0, True),  # DRAINED: whatever the outbox says next
    ("exit 75", 0.0, False),  # RETRY_LATER: the sender wrote its backoff into the outbox
    ("exit 76", 1.0, False),  # BUSY: another sender holds the outbox, look again in a second
    ("kill -9 $$", 1.0, False),  # killed by a signal: as busy
    ("exit 3", 30.0, False), ("exit 74", 30.0, False),  # SETUP, STORE_ERROR: after retry_max_s
], ids=["drained", "retry-later", "busy", "killed", "setup", "store-error"])
def test_the_pusher_waits_after_a_sender_by_how_it_ended(push_config, tmp_path, monkeypatch, code, wait_s, sent):
    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    monkeypatch.setattr(sender, "argv_for", lambda server, state_dir: ["/bin/sh", "-c", code])
    told: list[bool] = []
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9", retry_max_s=30.0))))
    pusher.on_sent = lambda: told.append(True)
    before = time.time()
    pusher._send()
    if wait_s:
        assert before + wait_s <= pusher.not_before <= time.time() + wait_s
    else:
        assert pusher.not_before == 0.0
    assert told == ([True] if sent else []) and pusher.proc is None and not pusher.urgent


def test_a_store_the_pusher_cannot_read_is_looked_at_again_after_retry_max_s(push_config, tmp_path):
    from posdiag.agent import push
    from posdiag.agent.store import DB_NAME
    from posdiag.core import settings as config

    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9", retry_max_s=30.0))))
    assert pusher._outbox_state() == (0, 0.0)  # nothing stored yet: nothing to send
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    (state / DB_NAME).write_bytes(os.urandom(8192))  # damaged: the daemon's writer heals it
    before = time.time()
    depth, next_at = pusher._outbox_state()
    assert depth == 1 and before + 30.0 <= next_at <= time.time() + 30.0


@pytest.mark.parametrize(("oldest_s", "attempt_at", "said"), [
    (125.4, "2026-12-06T10:00:00Z", "outbox 2, oldest 125 s; last attempt 2026-12-06T10:00:00Z: 503"),
    (125.4, None, "outbox 2, oldest 125 s; no attempt yet"),
    (None, "2026-12-06T10:00:00Z", "outbox 2; last attempt 2026-12-06T10:00:00Z: 503"),
    (None, None, "outbox 2; no attempt yet"),
])
def test_the_status_says_the_outboxs_depth_its_oldest_report_and_the_last_attempt_when_there_are(oldest_s, attempt_at,
                                                                                                 said):
    from posdiag.agent.push import status_rows

    summary = {**outbox.empty_summary(), "configured": True, "outbox": 2, "oldest_unsent_s": oldest_s,
               "last_attempt_at": attempt_at, "last_result": "503", "sent": 7, "refused": 1, "dropped": 0}
    assert status_rows(summary, None) == [("push:", said), ("", "sent 7, refused 1, dropped 0")]
    assert status_rows({**summary, "configured": False}, None) == [("push:", "not configured ([server] url)")]


def test_diagnose_push_beside_a_daemon_that_never_answers_still_prints_the_queued_report(push_config, tmp_path):
    """The report is queued before the daemon is asked to send it: a hung daemon (it accepts, never
    answers) costs the technician the 5 s wait, never the report."""
    from posdiag.core import settings as config

    cfg = push_config("https://127.0.0.1:9")
    path = config.load(str(cfg)).daemon.control_socket
    with hung_control_socket(path):
        rc, out, err = run_cli("diagnose", "--push", "--json", "--config", str(cfg))
    report = json.loads(out)
    assert rc in (0, 1, 2) and "internal error" not in err, err
    assert "report queued; the daemon did not answer" in " ".join(err.split()) and "did not answer within 5 s" in err
    assert push_state(tmp_path / "state")["outbox"] == 1 and stored_ids(tmp_path / "state") == [report["report_id"]]


@pytest.mark.parametrize(("lang", "column"), [("en", 12), ("zh_CN", 14)])  # after "problem:", after 交易日志：
def test_status_lines_put_every_text_in_one_column_after_the_widest_label_and_wrap_it_there_within_80_cells(lang,
                                                                                                           column):
    from posdiag.agent.columns import display_width
    from posdiag.agent.push import labelled
    from posdiag.core import i18n

    i18n.use(lang)
    try:
        lines = labelled([("txlog:", "not watched"), ("problem:", "word " * 30), ("", "sent 7, refused 0, dropped 0")])
        label = i18n.tr("txlog:")
    finally:
        i18n.use("en")
    assert lines[0] == "  " + label + " " * (column - 2 - display_width(label)) + "not watched"
    assert all(display_width(line) <= 80 for line in lines) and display_width(lines[1]) > 70  # filled, then broken
    wrapped = lines[1:-1]
    assert len(wrapped) == 3 and all(line.startswith(" " * column + "word") for line in wrapped[1:])
    assert display_width(wrapped[0][:wrapped[0].index("word")]) == column  # the first, after its label
    texts = [wrapped[0][wrapped[0].index("word"):]] + [line.strip() for line in wrapped[1:]]
    assert " ".join(texts) == ("word " * 30).strip()  # nothing lost at the breaks
    assert lines[-1] == " " * column + "sent 7, refused 0, dropped 0"  # no label: continues the line above


def test_the_status_says_a_healed_store_and_reports_not_stored_only_when_there_are():
    from posdiag.agent.push import status_rows

    push = {**outbox.empty_summary(), "configured": False}
    healed = {"at": "2026-12-06T10:00:00Z", "reason": "database disk image is malformed", "recovered_unsent": 3,
              "moved_to": "history.sqlite3.corrupt-20261206T100000Z", "unreadable_unsent": 1}
    unstored = {"count": 2, "first_at": "2026-12-06T09:00:00Z", "error": "disk I/O error"}
    rows = status_rows(push, {"healed": healed, "unstored": unstored})
    assert rows[1:] == [
        ("store:", "healed at 2026-12-06T10:00:00Z (database disk image is malformed): moved to "
                   "history.sqlite3.corrupt-20261206T100000Z, 3 unsent report(s) recovered, 1 unreadable"),
        ("store:", "2 report(s) could not be stored since 2026-12-06T09:00:00Z: disk I/O error")]
    assert status_rows(push, {"healed": None, "unstored": None}) == status_rows(push, None) == rows[:1]
    assert status_rows(push, {"healed": None, "unstored": unstored})[1:] == rows[2:]


def test_a_failed_post_is_said_in_a_few_words_and_at_most_160_characters_of_what_the_library_said():
    import requests
    from posdiag.agent.sender import describe_error

    said = describe_error(requests.exceptions.SSLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
                                                       "self-signed certificate in certificate chain (_ssl.c:1006)"))
    assert said == "tls: certificate verify failed: self-signed certificate in certificate chain"
    assert describe_error(requests.exceptions.SSLError("handshake " + "x" * 300)) == "tls: handshake " + "x" * 150
    assert describe_error(requests.exceptions.ConnectTimeout("timed out")) == "timeout"
    assert describe_error(requests.exceptions.ConnectionError("[Errno 111] Connection refused")) == "connection refused"
    assert describe_error(requests.exceptions.ConnectionError("('Connection aborted.', RemoteDisconnected('x'))")) == (
        "connection error: RemoteDisconnected")
    assert describe_error(requests.exceptions.ConnectionError("odd " + "y" * 300)) == (
        "connection error: odd " + "y" * 156)
    assert describe_error(ValueError("the token 4111111111111111")) == "error: ValueError"


# --- edges of the sender, the pusher and the outbox (2) --------------------------------------------------
def test_the_sender_process_exits_3_on_a_token_it_cannot_use_and_74_on_a_store_it_cannot_open(push_config, token_file,
                                                                                             tmp_path):
    """Setup (the token file) and the store (EX_IOERR) each have their own status: the daemon logs them and
    waits ``retry_max_s``, where a busy answer (76) or a retry later (75) waits less."""
    from posdiag.agent import sender
    from posdiag.core.settings import load

    settings = load(str(push_config("https://127.0.0.1:9")))
    token_file.chmod(0o644)
    assert subprocess.run(sender.argv_for(settings.server, settings.daemon.state_dir), capture_output=True,
                          timeout=60).returncode == 3
    token_file.chmod(0o600)
    (tmp_path / "broken" / "history.sqlite3").mkdir(parents=True)  # a store that cannot be opened
    broken = subprocess.run(sender.argv_for(settings.server, str(tmp_path / "broken")), capture_output=True,
                            text=True, timeout=60)
    assert broken.returncode == 74, broken.stderr
    assert (sender.DRAINED, sender.RETRY_LATER, sender.BUSY, sender.SETUP, sender.STORE_ERROR) == (0, 75, 76, 3, 74)


def test_an_attempt_recorded_without_a_failure_count_or_next_time_keeps_both(tmp_path):
    """``status`` records "setup: …" without touching the backoff the last sender left."""
    import sqlite3

    db = sqlite3.connect(tmp_path / "db")
    db.executescript(outbox.SCHEMA)
    outbox.record_attempt(db, "503", 10.0, failures=4, next_attempt_at=99.5)
    outbox.record_attempt(db, "setup: token", 11.0)
    assert outbox.get_meta(db, "push.failures") == "4" and outbox.next_attempt_at(db) == 99.5
    assert outbox.get_meta(db, "push.last_result") == "setup: token"
    outbox.record_attempt(db, "201", 12.0, failures=0, next_attempt_at=0)
    assert outbox.get_meta(db, "push.failures") == "0" and outbox.next_attempt_at(db) == 0.0


def test_an_urgent_report_outranks_the_backoff_only_seconds_after_the_last_start(push_config, monkeypatch):
    import types

    from posdiag.agent import push
    from posdiag.core import settings as config

    now = 1_000_000.0
    monkeypatch.setattr(push, "time", types.SimpleNamespace(time=lambda: now))
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9"))))
    assert pusher._due(now) and not pusher._due(now + 0.5)  # the outbox's next attempt: due at, not before
    pusher.not_before = now
    assert pusher._due(now - 5)
    pusher.not_before = now + 0.5
    assert not pusher._due(now - 5) and not pusher._due(now + 0.1)
    pusher.kick()
    assert not pusher.urgent
    pusher.kick(urgent=True)
    pusher.kick()  # a schedule report after the urgent one: still urgent
    assert pusher.urgent
    pusher.last_start = now - 2.0  # a send 2 s ago: within the gap
    assert not pusher._due(now + 600)
    pusher.last_start = now - 4.0
    assert pusher._due(now + 600)


def test_an_idle_pusher_sleeps_until_a_kick_or_the_next_attempt_and_forgets_urgency_with_nothing_to_send(
        push_config, tmp_path, monkeypatch):
    """With an empty outbox the pusher waits without a timeout; with a report due in 1.5 s it sleeps
    until then (no busy loop either way), and an urgent kick with nothing queued leaves nothing urgent."""
    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    starts = tmp_path / "starts"
    monkeypatch.setattr(sender, "argv_for", lambda server, state_dir: [
        "/bin/sh", "-c", f"echo started >> {starts}; exit {sender.BUSY}"])
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9"))))
    looks: list[float] = []
    real = pusher._outbox_state
    monkeypatch.setattr(pusher, "_outbox_state", lambda: (looks.append(time.time()), real())[1])
    Store(tmp_path / "state").close()
    pusher.start()
    try:
        assert wait_for(lambda: len(looks) >= 1, 5)
        pusher.kick(urgent=True)
        assert wait_for(lambda: len(looks) >= 2, 5)
        time.sleep(0.8)
        assert len(looks) == 2 and not pusher.urgent and not starts.exists()  # asleep, nothing urgent left
        queue_reports(tmp_path / "state", 1)
        with Store(tmp_path / "state") as store, store.db:
            outbox.record_attempt(store.db, "503", time.time(), failures=1, next_attempt_at=time.time() + 1.5)
        kicked = time.time()
        pusher.kick()
        assert wait_for(starts.exists, 15)
        assert time.time() - kicked >= 1.4  # not before the outbox's next attempt
        assert len([t for t in looks if t < kicked + 1.4]) <= 4, looks  # slept in between, not a loop
    finally:
        pusher.stop()


def test_an_urgent_kick_within_the_gap_stays_urgent_while_a_report_waits(push_config, tmp_path, monkeypatch):
    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    monkeypatch.setattr(sender, "argv_for", lambda server, state_dir: ["/bin/sh", "-c", "exit 75"])
    queue_reports(tmp_path / "state", 1)
    with Store(tmp_path / "state") as store, store.db:
        outbox.record_attempt(store.db, "503", time.time(), failures=1, next_attempt_at=time.time() + 600)
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9"))))
    pusher.last_start, pusher.urgent = time.time(), True  # a sender ran just now
    pusher.start()
    try:
        time.sleep(0.5)
        assert pusher.urgent and pusher.is_alive()
    finally:
        pusher.stop()
    assert not pusher.is_alive()


def test_stopping_the_pusher_ends_the_sender_in_flight(push_config, tmp_path, monkeypatch):
    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    monkeypatch.setattr(sender, "argv_for", lambda server, state_dir: ["/bin/sleep", "60"])
    queue_reports(tmp_path / "state", 1)
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9"))))
    pusher.start()
    assert wait_for(pusher.sending, 10)
    proc = pusher.proc
    pusher.stop()
    assert proc.wait(timeout=10) == -signal.SIGTERM and not pusher.is_alive()


def test_a_sender_that_cannot_be_started_is_tried_again_after_retry_max_s(push_config, tmp_path, monkeypatch):
    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    tries: list[float] = []

    def unstartable(server, state_dir):
        tries.append(time.time())
        raise OSError("no python")

    monkeypatch.setattr(sender, "argv_for", unstartable)
    queue_reports(tmp_path / "state", 1)
    pusher = push.Pusher(config.load(str(push_config("https://127.0.0.1:9", retry_max_s=1.0))))
    pusher.start()
    try:
        assert wait_for(lambda: len(tries) >= 2, 10)
    finally:
        pusher.stop()
    assert tries[1] - tries[0] >= 0.9  # retry_max_s later, not at once


def test_push_now_waits_a_minute_for_another_sender_and_says_so(push_config, tmp_path, monkeypatch):
    import io

    from posdiag.agent import push, sender
    from posdiag.core import settings as config

    waited: list[float] = []

    def busy(server, state_dir, *, lock_wait_s=0.0, stop=None):
        waited.append(lock_wait_s)
        return sender.DrainResult(busy=True)

    monkeypatch.setattr(sender, "drain", busy)
    err = io.StringIO()
    assert push.push_now(config.load(str(push_config("https://127.0.0.1:9"))), io.StringIO(), err) == 3
    assert waited == [60] and "60 s" in err.getvalue()


def test_queueing_a_report_says_whether_it_was_stored(push_config, tmp_path):
    import io

    from posdiag.agent import push
    from posdiag.core import settings as config

    settings = config.load(str(push_config("https://127.0.0.1:9")))
    err = io.StringIO()
    assert push.queue(settings, fake_report(time.time()), err) is True and "no daemon is running" in err.getvalue()
    assert push_state(tmp_path / "state")["outbox"] == 1
    for stored in (tmp_path / "state").iterdir():
        stored.unlink()
    (tmp_path / "state" / "history.sqlite3").mkdir()  # a store that cannot be written
    err = io.StringIO()
    assert push.queue(settings, fake_report(time.time()), err) is False and "could not queue" in err.getvalue()


def test_a_drain_told_to_stop_finishes_the_report_in_flight_and_leaves_the_rest_queued(server, push_config, tmp_path):
    """SIGTERM from the stopping daemon: the sender stops between two reports, never before the first
    it was asked to look at, and what it sent is marked."""
    from posdiag.agent import sender
    from posdiag.core.settings import load

    srv = server()
    settings = load(str(push_config(srv.url)))
    ids = queue_reports(Path(settings.daemon.state_dir), 3)
    result = sender.drain(settings.server, settings.daemon.state_dir, stop=lambda: len(srv.received()) >= 1)
    assert (result.sent, result.remaining, srv.received()) == (1, 2, ids[:1])
    assert push_state(Path(settings.daemon.state_dir))["outbox"] == 2
    result = sender.drain(settings.server, settings.daemon.state_dir, stop=lambda: False)
    assert (result.sent, result.remaining, srv.received()) == (2, 0, ids)



def test_sent_reports_wait_for_their_batch_until_exactly_a_quarter_second_has_passed(tmp_path, monkeypatch):
    import sqlite3

    from posdiag.agent import sender

    clock = [1000.0]
    monkeypatch.setattr(sender.time, "monotonic", lambda: clock[0])
    db = sqlite3.connect(tmp_path / "db")
    db.executescript(outbox.SCHEMA)
    for i in range(1, 4):
        outbox.enqueue(db, f"r{i}", 0.0, b"x", 0.0)
    marks = sender._Marks(db)
    clock[0] += 0.24
    marks.sent(1, "201", 5.0)
    assert outbox.depth(db) == 3  # 0.24 s since the last write: not yet
    clock[0] += 0.01
    marks.sent(2, "409", 6.0)
    assert outbox.depth(db) == 1 and outbox.get_meta(db, "push.last_result") == "409"
    assert outbox.get_meta(db, "push.sent") == "2" and outbox.get_meta(db, "push.failures") == "0"
