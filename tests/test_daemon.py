"""The daemon as real processes: boot sweep, the control socket, 2824 events from a real log file,
SIGHUP with good and bad configs, SIGTERM, kill -9 and restart, the systemd notify protocol."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from labs.commands import REPO, run_cli, run_posdiag
from labs.daemonlab import DaemonProcess
from labs.helpers import pids_cgroup, wait_for, write_config
from labs.history import past_report
from posdiag.agent.control import request


@pytest.fixture
def daemon(config_file, tmp_path):
    started: list[DaemonProcess] = []

    def start(env: dict | None = None, **sections) -> DaemonProcess:
        sections.setdefault("daemon", {}).setdefault("interval_s", 3600)
        sections.setdefault("txlog", {}).setdefault("path", str(tmp_path / "pos.log"))
        (tmp_path / "pos.log").touch()
        proc = DaemonProcess(config_file(**sections), tmp_path / "state", env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def test_boot_sweep_is_stored_and_status_tells_it(daemon):
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 10), d.output()
    assert d.reports()[0].trigger == "boot"
    rc, out, _ = d.cli("status", "--json")
    status = json.loads(out)
    assert rc == 0 and status["running"] and status["pid"] == d.proc.pid
    assert status["last"]["trigger"] == "boot" and status["last"]["verdict"] == "healthy"
    assert status["history_reports"] == 1
    assert status["remote"] == {"enabled": False}  # no central server configured: none to ask for requests
    rc, out, _ = d.cli("status")
    assert "running" in out and "HEALTHY" in out


def test_an_idle_daemon_sleeps_between_its_work_and_never_spins(daemon):
    """Between sweeps the daemon waits for its next piece of work: over three idle seconds it uses a
    small part of a core (a loop that never waits would use all the CPU it is given)."""
    import psutil

    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 15), d.output()  # the boot sweep is done
    proc = psutil.Process(d.proc.pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(3)
    used = sum(proc.cpu_times()[:2]) - before
    assert used < 0.3, f"{used:.2f} s of CPU in 3 s idle"


def test_the_control_socket_s_folder_is_made_when_it_does_not_exist_yet(config_file, tmp_path):
    """/run/posdiag is gone after every reboot where no RuntimeDirectory= made it: the daemon makes it."""
    sock = tmp_path / "run" / "posdiag" / "control.sock"
    d = DaemonProcess(config_file(daemon={"interval_s": 3600, "control_socket": str(sock)}), tmp_path / "state",
                      socket=sock)
    try:
        rc, out, err = d.cli("status", "--json")
        assert rc == 0 and json.loads(out)["running"], err
        assert sock.is_socket()
    finally:
        d.stop()


def test_control_socket_is_group_accessible_only(daemon):
    d = daemon()
    mode = stat.S_IMODE(os.stat(d.socket).st_mode)
    assert mode == 0o660


def test_trigger_runs_an_on_demand_sweep_in_the_daemon(daemon):
    d = daemon()
    rc, out, err = d.cli("trigger", "--json")
    report = json.loads(out)
    assert rc == 0 and report["trigger"] == "on-demand", err
    assert wait_for(lambda: report["report_id"] in {r.report_id for r in d.reports()})


@pytest.mark.root
def test_a_trigger_whose_sweep_fails_says_why_and_the_daemon_carries_on(daemon):
    """In a cgroup with room for the request's own thread and no more, the sweep cannot start its probes:
    the technician is told why, not merely that it failed, and the next trigger works again."""
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    with pids_cgroup(10_000) as procs:
        procs.write_text(str(d.proc.pid))  # every thread of the daemon moves with it
        limit = procs.parent / "pids.max"
        limit.write_text(str(len(os.listdir(f"/proc/{d.proc.pid}/task")) + 1))
        rc, out, err = d.cli("trigger")
        assert rc == 3 and out == "", err
        assert "the daemon could not diagnose:" in err and "RuntimeError(\"can't start new thread\")" in err, err
        limit.write_text("max")
        rc, out, err = d.cli("trigger", "--json")
        assert rc in (0, 1, 2) and json.loads(out)["trigger"] == "on-demand", err


def test_a_trigger_waits_for_a_daemon_that_answers_well_after_the_deadline(config_file, tmp_path):
    """A trigger that comes while the daemon finishes another sweep waits for that one and then its own,
    and the daemon gives its sweep up to deadline_s + 30 s: the command must not give up first. Here a
    daemon (the socket's far end, played by the test) answers 5 s after being asked, with a 0.2 s deadline."""
    report = past_report(time.time(), {"memory": {}})
    path = tmp_path / "control.sock"
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(path))
    listening.listen(1)

    def answer_late() -> None:
        conn, _ = listening.accept()
        with conn:
            conn.makefile("rb").readline()
            time.sleep(5)
            conn.sendall(json.dumps({"ok": True, "report": report}).encode() + b"\n")

    late = threading.Thread(target=answer_late, daemon=True)
    late.start()
    config = config_file(diagnosis={"deadline_s": 0.2}, network={"timeout_s": 0.1})
    try:
        rc, out, err = run_cli("trigger", "--json", "--config", str(config))
    finally:
        listening.close()
    assert rc == 0 and json.loads(out)["report_id"] == report["report_id"], err
    late.join(5)


def test_trigger_without_a_daemon_diagnoses_locally(config_file):
    rc, out, err = run_cli("trigger", "--json", "--config", str(config_file()))
    assert "diagnosing locally" in err
    assert json.loads(out)["trigger"] == "on-demand" and rc == 0


def test_status_without_a_daemon_says_not_running_and_exits_3(config_file):
    rc, out, _ = run_cli("status", "--config", str(config_file()))
    assert rc == 3 and "not running" in out


def append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)
        fh.flush()


def test_a_2824_line_yields_a_stored_event_report(daemon, tmp_path):
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    append(tmp_path / "pos.log", "2026-11-30 10:00:00 txn=9 code=0 rc=00\n")
    time.sleep(0.6)
    assert [r.trigger for r in d.reports()] == ["boot"]  # a good transaction triggers nothing
    append(tmp_path / "pos.log", "2026-11-30 10:00:01 txn=10 code=2824\n")
    assert wait_for(lambda: any(r.trigger == "event" for r in d.reports()), 5), d.output()
    assert "2824 in" in d.output()


def test_events_keep_coming_across_rotation_and_partial_lines(daemon, tmp_path):
    d = daemon()
    log = tmp_path / "pos.log"
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    os.rename(log, tmp_path / "pos.log.1")
    log.write_text("")
    append(log, "2026-11-30 10:00:02 txn=11 co")
    time.sleep(0.5)
    assert not any(r.trigger == "event" for r in d.reports())  # half a line is not an event yet
    append(log, "de=2824\n")
    assert wait_for(lambda: any(r.trigger == "event" for r in d.reports()), 5), d.output()


def test_sighup_reloads_a_good_config_and_keeps_the_old_on_a_bad_one(daemon, tmp_path):
    d = daemon()
    text = d.config.read_text()
    d.config.write_text(text.replace("interval_s = 3600", "interval_s = 1800"))
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: json.loads(d.cli("status", "--json")[1])["reloads"] == 1, 5)
    assert json.loads(d.cli("status", "--json")[1])["interval_s"] == 1800
    d.config.write_text(text + "\n[memory]\nmin_avail_mb = 3\n")
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload refused" in d.output(), 5)
    status = request(d.socket, {"cmd": "status"})["status"]  # the CLI itself would refuse the bad file
    assert status["reloads"] == 1 and status["interval_s"] == 1800
    assert "min_avail_mb" in status["last_error"]
    assert d.proc.poll() is None


def test_sigterm_stops_cleanly_within_five_seconds(daemon):
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    started = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(10)
    assert time.monotonic() - started < 5
    assert d.proc.returncode == 0
    assert not os.path.exists(d.socket)
    assert "posdiag stopped" in d.output()


def test_kill_9_then_restart_keeps_the_history(daemon):
    d = daemon()
    for _ in range(3):
        assert d.cli("trigger")[0] == 0
    before = {r.report_id for r in d.reports()}
    assert len(before) == 4
    d.proc.kill()
    d.proc.wait()
    again = daemon()  # the stale socket of the killed daemon does not stop the new one
    assert wait_for(lambda: len(again.reports()) == 5, 10), again.output()
    assert before <= {r.report_id for r in again.reports()}


def test_second_daemon_on_the_same_socket_refuses_to_start(daemon, tmp_path):
    d = daemon()
    proc = run_posdiag("run", "--config", str(d.config), timeout=20)
    assert proc.returncode == 3
    assert "already running" in proc.stderr


def test_systemd_notify_protocol_ready_and_watchdog(daemon, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    try:
        d = daemon(env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
        got = []
        while not (any("READY=1" in m for m in got) and sum("WATCHDOG=1" in m for m in got) >= 2):
            got.append(sock.recv(4096).decode())
        assert any(f"MAINPID={d.proc.pid}" in m for m in got)
        d.stop()
        while not any("STOPPING=1" in m for m in got):
            got.append(sock.recv(4096).decode())
    finally:
        sock.close()


def test_history_lists_newest_first_and_filters_by_age(daemon, tmp_path):
    d = daemon()
    d.cli("trigger")
    rc, out, _ = d.cli("history")
    lines = out.splitlines()
    assert lines[1].split()[1] == "on-demand" and lines[2].split()[1] == "boot"
    rc, out, _ = d.cli("history", "--json", "--since", "1h")
    assert [r["trigger"] for r in json.loads(out)] == ["on-demand", "boot"]
    rc, out, err = d.cli("history", "--since", "soon")
    assert rc == 3 and "--since" in err


def test_journal_log_lines_carry_syslog_priorities(daemon, tmp_path):
    d = daemon()
    assert wait_for(lambda: "boot sweep" in d.output(), 10)
    assert any(line.startswith("<6>") and "started" in line for line in d.output().splitlines())


def test_bad_config_at_start_exits_3(tmp_path):
    bad = write_config(tmp_path / "bad.toml", {"daemon": {"interval_s": "often"}})
    proc = run_posdiag("run", "--config", str(bad), timeout=20)
    assert proc.returncode == 3 and "daemon.interval_s" in proc.stderr


@pytest.mark.root
def test_a_daemon_that_cannot_start_a_thread_says_it_could_not_start_and_leaves_no_socket(config_file, tmp_path):
    """In a cgroup that allows no task but its own, the control socket's thread cannot start: the daemon
    says it could not start, and why, exits 3 and leaves no bound socket behind."""
    config = config_file(txlog={"path": str(tmp_path / "pos.log")})
    with pids_cgroup(1) as procs:
        proc = subprocess.run(["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "sh", sys.executable, "-m",
                               "posdiag.agent", "run", "--config", str(config)],
                              capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert "posdiag could not start: RuntimeError(\"can't start new thread\")" in proc.stderr, proc.stderr
    assert proc.stderr.rstrip().endswith("posdiag stopped"), proc.stderr
    assert not (tmp_path / "control.sock").exists()


@pytest.fixture
def daemon_in_process(config_file, capsys):
    """``posdiag run`` in this process (to plant a bug in it), its signal handlers restored afterwards.
    A daemon that swallowed the bug and kept running is stopped with SIGTERM after 30 s."""
    import threading

    from posdiag.agent import daemon

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}

    def run() -> tuple[int, str]:
        stop = threading.Timer(30, os.kill, (os.getpid(), signal.SIGTERM))
        stop.start()
        try:
            rc = daemon.run(str(config_file(memory={"min_available_mb": 1})))
        finally:
            stop.cancel()  # before the handlers are restored: a late SIGTERM must not reach pytest
        return rc, capsys.readouterr().err

    yield run
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _recurse_forever(self, next_sweep):
    return _recurse_forever(self, next_sweep)


def _store_bug(self, report, *, push=False):
    raise TypeError("Store.add() got an unexpected keyword argument 'pusch'")


@pytest.mark.parametrize(("where", "bug", "error"), [
    ("run_due_work", _recurse_forever, "RecursionError: maximum recursion depth exceeded"),
    ("add", _store_bug, "TypeError: Store.add() got an unexpected keyword argument"),
], ids=["recursion-in-the-loop", "bug-in-the-store"])
def test_a_bug_in_the_running_daemon_is_logged_with_its_traceback_not_taken_for_a_start_failure(
        daemon_in_process, monkeypatch, tmp_path, where, bug, error):
    from posdiag.agent.daemon import Daemon
    from posdiag.agent.store import Store

    monkeypatch.setattr(Daemon if where == "run_due_work" else Store, where, bug)
    rc, err = daemon_in_process()
    assert rc == 3
    assert "posdiag stopped on an internal error" in err and "Traceback" in err and error in err, err
    assert "could not start" not in err and "could not store report" not in err
    assert not (tmp_path / "control.sock").exists()  # what had started was stopped


def test_the_control_socket_answers_each_command_and_says_when_a_trigger_was_not_finished_in_time(config_file):
    """What ``posdiag trigger``, ``status`` and ``push`` get back, from the daemon's side: a trigger
    the main loop does not finish within deadline_s + 30 s is answered "not ok" and why (the command
    then exits 3 saying so), never "ok" without a report. The wait is shortened here by a deadline no
    configuration could hold: there is no main loop to finish it."""
    import dataclasses

    from posdiag.agent.daemon import Daemon
    from posdiag.core import settings as config

    path = config_file()
    settings = config.load(str(path))
    daemon = Daemon(dataclasses.replace(settings, diagnosis=dataclasses.replace(settings.diagnosis, deadline_s=-29.7)),
                    str(path))
    assert daemon.handle_control({"cmd": "ping"}) == {"ok": True}
    assert daemon.handle_control({"cmd": "push"}) == {"ok": True}
    assert daemon.handle_control({"cmd": "reboot"}) == {"ok": False, "error": "unknown command 'reboot'"}
    assert daemon.handle_control({}) == {"ok": False, "error": "unknown command None"}
    assert daemon.handle_control({"cmd": "trigger"}) == {"ok": False,
                                                         "error": "the daemon did not finish the diagnosis in time"}


def test_scheduled_sweeps_come_every_interval_give_or_take_five_percent(config_file):
    """A fleet started together must not sweep (and push) in step: each wait is jittered, by at most 5 %."""
    from posdiag.agent.daemon import Daemon
    from posdiag.core import settings as config

    path = config_file(daemon={"interval_s": 100})
    daemon = Daemon(config.load(str(path)), str(path))
    waits = [daemon.next_interval() for _ in range(500)]
    assert 95 <= min(waits) < 99 and 101 < max(waits) <= 105


@pytest.mark.parametrize(("usec", "every_s"), [("400000", 0.2), ("30000000", 15.0), ("1", 0.0000005), ("0", None),
                                               ("", None), ("-5", None), ("soon", None)])
def test_the_watchdog_is_pinged_at_half_its_timeout_and_not_at_all_without_one(monkeypatch, caplog, usec, every_s):
    from posdiag.agent.daemon import Notifier

    monkeypatch.setenv("WATCHDOG_USEC", usec)
    monkeypatch.setenv("NOTIFY_SOCKET", "@posdiag-test")
    notifier = Notifier()
    assert notifier.watchdog_s == every_s and notifier.addr == "\0posdiag-test"  # "@": an abstract socket
    monkeypatch.delenv("NOTIFY_SOCKET")
    Notifier().send("READY=1")  # not under systemd: nothing sent, nothing to complain about
    assert Notifier().addr == "" and "cannot notify" not in caplog.text


def test_every_journal_line_carries_its_syslog_priority_a_tracebacks_too_and_no_card_number():
    import logging

    from posdiag.agent.logs import JournalFormatter

    formatter = JournalFormatter("%(message)s")

    def line(level: int, message: str, exc_info=None) -> str:
        return formatter.format(logging.LogRecord("posdiag", level, __file__, 1, message, None, exc_info))

    assert [line(level, "x") for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                                           logging.CRITICAL, 25)] == ["<7>x", "<6>x", "<4>x", "<3>x", "<2>x", "<6>x"]
    try:
        raise ValueError("pan 4111111111111111")
    except ValueError:
        text = line(logging.ERROR, "sweep failed", sys.exc_info())
    assert len(text.splitlines()) > 3 and all(row.startswith("<3>") for row in text.splitlines())
    assert "4111111111111111" not in text and "411111******1111" in text


@pytest.mark.parametrize(("trigger", "urgent"), [("event", True), ("on-demand", True), ("remote", True),
                                                 ("schedule", False), ("boot", False)])
def test_a_report_someone_waits_for_is_pushed_at_once_a_routine_one_waits_its_turn(config_file, tmp_path, trigger,
                                                                                   urgent):
    """A 2824, a technician's trigger and an operator's request outrank the push backoff; boot and
    scheduled sweeps do not. (The pusher here only records how it was asked: which is pure logic.)"""
    import types

    from posdiag.agent.daemon import Daemon
    from posdiag.agent.store import Store
    from posdiag.core import settings as config

    path = config_file(memory={"min_available_mb": 1})
    daemon = Daemon(config.load(str(path)), str(path))
    kicks: list[bool] = []
    daemon.pusher = types.SimpleNamespace(kick=lambda urgent=False: kicks.append(urgent))
    with Store(tmp_path / "state") as store:
        daemon.store = store
        event = {"count_2824": 1, "first_at": "2026-12-06T10:00:00Z", "last_at": "2026-12-06T10:00:00Z"}
        report = daemon.sweep(trigger, event=event if trigger == "event" else None)
        assert report is not None and store.list()[0].report_id == report["report_id"]
    assert kicks == [urgent] and daemon.state.sweeps == 1 and daemon.state.last["trigger"] == trigger


def test_a_stale_socket_is_claimed_after_a_second_of_retries_and_a_silent_listener_after_two_seconds(tmp_path):
    """Starting, the daemon asks whatever holds its socket path: a dead daemon's socket is retried for a
    second, then removed; something that accepts but never answers is given two seconds, then taken for a
    busy daemon, and the new one refuses to start beside it."""
    from posdiag.agent.control import AlreadyRunning, claim_path

    path = str(tmp_path / "control.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    try:
        began = time.monotonic()
        claim_path(path)
        assert 0.9 <= time.monotonic() - began < 8 and not os.path.exists(path)
    finally:
        dead.close()
    silent = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    silent.bind(path)
    silent.listen(8)
    try:
        began = time.monotonic()
        with pytest.raises(AlreadyRunning, match=r"already running on .* \(busy\)"):
            claim_path(path)
        assert 1.9 <= time.monotonic() - began < 10 and os.path.exists(path)
    finally:
        silent.close()


@contextlib.contextmanager
def journal() -> Iterator[list[logging.LogRecord]]:
    """The daemon's log records while this block runs (its logger may not propagate to pytest's: agent/logs.py)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append
    logger = logging.getLogger("posdiag")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize(("min_available_mb", "level"), [(1, "INFO"), (1048576, "WARNING")], ids=["healthy", "fault"])
def test_each_sweep_is_logged_with_its_verdict_and_top_cause_at_warning_unless_healthy(config_file, tmp_path,
                                                                                     min_available_mb, level):
    """The journal line of a sweep: its trigger, verdict, top cause and confidence in percent; a healthy
    one at INFO, anything else at WARNING (what an operator's journal filter shows)."""
    import re

    from posdiag.agent.daemon import Daemon
    from posdiag.agent.store import Store
    from posdiag.core import settings as config

    path = config_file(memory={"min_available_mb": min_available_mb})
    daemon = Daemon(config.load(str(path)), str(path))
    with Store(tmp_path / "state") as store, journal() as records:
        daemon.store = store
        report = daemon.sweep("schedule")
    top = report["diagnosis"]["causes"][0]
    [record] = [r for r in records if "schedule sweep:" in r.getMessage()]
    said = re.match(r"schedule sweep: (\w+), top cause (\S+) \((\d+)%\)", record.getMessage())
    assert said and said.groups() == (report["diagnosis"]["verdict"], top["id"], f"{top['confidence'] * 100:.0f}")
    assert record.levelname == level and (report["diagnosis"]["verdict"] == "healthy") == (level == "INFO")
    assert daemon.state.last["risks"] == len(report.get("risks") or [])


def test_the_daemons_status_says_its_uptime_and_that_remote_requests_are_off_without_a_server(config_file, tmp_path):
    from posdiag.agent.daemon import Daemon
    from posdiag.agent.store import Store
    from posdiag.core import settings as config

    path = config_file()
    daemon = Daemon(config.load(str(path)), str(path))
    daemon.state.started = time.time() - 100
    with Store(tmp_path / "state") as store:
        daemon.store = store
        status = daemon.status()
    assert 100 <= status["uptime_s"] <= 160 and status["remote"] == {"enabled": False}
    assert status["sweeps"] == 0 and status["last"] is None and status["pid"] == os.getpid()


def test_the_txlog_watcher_hands_on_only_2824_lines_masked_and_says_once_when_the_log_is_no_regular_file(
        config_file, tmp_path):
    """What the log held when the watcher started is history, however long; other response codes are not
    events; the line handed on has its card number masked. A log path
    that is a FIFO is said once when it starts (not at every poll) and once when it is a file again."""
    from posdiag.agent.daemon import TxlogWatcher
    from posdiag.core import settings as config

    log_path = tmp_path / "pos.log"
    old = "2026-11-30 09:00:00 txn=0 code=0 " + "x" * 60 + "\n"  # a POS log of 1.5 MiB: read more than one poll takes
    log_path.write_text(old * (3 * 1024 * 1024 // 2 // len(old)) + "2026-11-30 09:00:01 txn=0 code=2824 before it\n")
    settings = config.load(str(config_file(txlog={"path": str(log_path)})))
    heard: list[str] = []
    with journal() as records:
        watcher = TxlogWatcher(settings, heard.append)
        watcher.start()
        try:
            append(log_path, "2026-11-30 10:00:00 txn=1 code=0 card=4111111111111111\n"
                             "2026-11-30 10:00:01 txn=2 code=2824 card=4111111111111111\n")
            assert wait_for(lambda: heard, 5)
            assert len(heard) == 1 and "code=2824" in heard[0] and "4111111111111111" not in heard[0]
            log_path.unlink()
            os.mkfifo(log_path)
            assert wait_for(lambda: any("not read" in r.getMessage() for r in records), 5)
            time.sleep(1.0)  # polls every 0.2 s: several more looks at the same FIFO
            log_path.unlink()
            log_path.write_text("")
            assert wait_for(lambda: any("regular file again" in r.getMessage() for r in records), 5)
        finally:
            watcher.stopping.set()
            watcher.join(5)
    said = [r.getMessage() for r in records if "not read" in r.getMessage() or "regular file again" in r.getMessage()]
    assert len(said) == 2 and "is a FIFO" in said[0], said


def test_the_daemon_runs_the_most_urgent_work_first_a_2824_a_trigger_an_operators_request_then_the_schedule(
        config_file):
    """One sweep per turn of the loop, the most urgent first; a trigger whose sweep failed is told why
    (or "sweep failed" when nothing says). (The sweeps are recorded, not run: the order is pure logic.)"""
    from posdiag.agent.daemon import Daemon
    from posdiag.core import settings as config

    path = config_file()
    daemon = Daemon(config.load(str(path)), str(path))
    ran: list[tuple] = []
    daemon.sweep = lambda trigger, event=None, request_id=None: ran.append((trigger, event, request_id))
    daemon.events.add()
    first, second = daemon.waiters.join(), None
    daemon.on_remote_diagnose("r-1")
    due = time.monotonic() - 1
    assert daemon.run_due_work(due) == "event" and ran[-1][1]["count_2824"] == 1
    daemon.state.last_error = "the store is full"
    assert daemon.run_due_work(due) == "on-demand" and first.get_nowait() == {"ok": False, "error": "the store is full"}
    daemon.state.last_error, second = None, daemon.waiters.join()
    assert daemon.run_due_work(due) == "on-demand" and second.get_nowait() == {"ok": False, "error": "sweep failed"}
    assert daemon.run_due_work(due) == "remote" and ran[-1] == ("remote", None, "r-1")
    assert daemon.run_due_work(due) == "schedule" and ran[-1] == ("schedule", None, None)
    assert daemon.run_due_work(time.monotonic() + 3600) is None and len(ran) == 5
    third = daemon.waiters.join()
    daemon.sweep = lambda trigger, event=None, request_id=None: {"report_id": "r-2"}  # this one succeeds
    assert daemon.run_due_work(time.monotonic() + 3600) == "on-demand"
    assert third.get_nowait() == {"ok": True, "report": {"report_id": "r-2"}}


@pytest.mark.parametrize(("setup", "waits", "triggers"), [
    ("idle", [0.5, 0.5, 0.5], ["boot"]),  # nothing due: back every 0.5 s to obey a signal
    ("watchdog", [0.3, 0.3, 0.3], ["boot"]),  # pinged at half its timeout
    ("event", [0.2, 0.5, 0.5], ["boot", "event"]),  # a 2824 within the gap of the last event sweep
    ("schedule", [0.5, 0.5, 0.5], ["boot", "schedule"]),  # the interval is up at 1 s
], ids=["idle", "watchdog", "event", "schedule"])
def test_the_daemons_loop_sleeps_until_the_nearest_thing_due_and_never_more_than_half_a_second(config_file,
                                                                                              monkeypatch, setup,
                                                                                              waits, triggers):
    """(The loop's clock and its sleeps are the test's: the schedule is pure logic.)"""
    import types

    from posdiag.agent import daemon as daemon_module
    from posdiag.agent import storm
    from posdiag.agent.daemon import Daemon
    from posdiag.core import settings as config

    clock = [1000.0]
    fake = types.SimpleNamespace(monotonic=lambda: clock[0], time=time.time)
    monkeypatch.setattr(daemon_module, "time", fake)
    monkeypatch.setattr(storm, "time", fake)
    path = config_file()
    daemon = Daemon(config.load(str(path)), str(path))
    ran: list[str] = []

    def sweep(trigger: str, event=None, request_id=None) -> None:
        ran.append(trigger)
        if len(ran) > 10:  # a loop that sweeps without ever sleeping: end it, the assertions say so
            daemon.stopping.set()

    daemon.sweep = sweep
    daemon.next_interval = lambda: 1.0 if setup == "schedule" else 100.0
    pings: list[str] = []
    daemon.notify.send = pings.append
    daemon.notify.watchdog_s = 0.3 if setup == "watchdog" else None
    if setup == "event":
        daemon.events.add()
        daemon.events.gap_s, daemon.events.last_sweep = 10.0, clock[0] - 9.8  # due in 0.2 s
    slept: list[float] = []

    class Wake:
        def wait(self, seconds: float) -> None:
            slept.append(round(seconds, 6))
            clock[0] += seconds
            if len(slept) == 3:
                daemon.stopping.set()

        def clear(self) -> None:
            pass

    daemon.wake = Wake()
    daemon.loop()
    assert slept == waits and ran == triggers
    assert pings == (["WATCHDOG=1"] * 3 if setup == "watchdog" else [])


def test_the_daemons_last_sweep_says_how_many_risks_lie_ahead_and_when_the_soonest_is_due(config_file, tmp_path,
                                                                                       monkeypatch):
    """What ``status`` shows under "last" (the sweep itself is the test's: the bookkeeping is pure logic)."""
    from posdiag.agent import daemon as daemon_module
    from posdiag.agent.daemon import Daemon
    from posdiag.agent.store import Store
    from posdiag.core import settings as config

    risks = [{"code": "tls.expiring_soon", "due_at": "2026-12-09T10:00:00Z", "hours_left": 60.0},
             {"code": "disk.filling", "due_at": "2026-12-20T10:00:00Z", "hours_left": 320.0}]
    reports = iter([{**past_report(time.time() - 60, {}), "risks": risks}, past_report(time.time(), {})])
    monkeypatch.setattr(daemon_module, "run_sweep", lambda settings, **kw: next(reports))
    path = config_file()
    daemon = Daemon(config.load(str(path)), str(path))
    with Store(tmp_path / "state") as store:
        daemon.store = store
        daemon.sweep("schedule")
        assert (daemon.state.last["risks"], daemon.state.last["soonest_risk"]) == (2, "2026-12-09T10:00:00Z")
        daemon.sweep("schedule")
        assert (daemon.state.last["risks"], daemon.state.last["soonest_risk"]) == (0, None)
    assert daemon.state.sweeps == 2 and daemon.state.last["verdict"] == "healthy"
