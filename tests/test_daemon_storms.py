"""The daemon as real processes under pressure: a storm of 2824 lines, crowds of socket clients,
a busy socket, hostile paths (a FIFO or /dev/zero as the txlog, a regular file at the socket path)
and requests that are not what the protocol expects."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import test_daemon
from labs.commands import REPO, run_cli, run_posdiag
from labs.helpers import hung_control_socket, wait_for
from labs.reader_emulator import ReaderEmulator
from posdiag.agent.control import request
from posdiag.agent.store import Store
from test_daemon import append

daemon = test_daemon.daemon  # the fixture that starts real daemons, shared with test_daemon.py


def event_reports(d) -> list[dict]:
    if not (d.state / "history.sqlite3").exists():
        return []
    with Store(d.state) as store:
        return [store.get(r.report_id) for r in store.list() if r.trigger == "event"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def test_a_storm_of_2824_lines_is_coalesced_and_every_line_counted(daemon, tmp_path):
    d = daemon(daemon={"event_min_gap_s": 1})
    assert wait_for(lambda: len(d.reports()) == 1, 10), d.output()
    log = tmp_path / "pos.log"
    first_written = time.time()
    for i in range(60):  # 20 lines/s for 3 s
        append(log, f"2026-11-30 10:00:{i % 60:02d} txn={i} code=2824\n")
        time.sleep(0.05)
    assert wait_for(lambda: sum(r["event"]["count_2824"] for r in event_reports(d)) == 60, 15), d.output()
    # time stamps have whole seconds: within one, the sweep that started first covers the fewest lines
    reports = sorted(event_reports(d), key=lambda r: (r["started_at"], r["event"]["first_at"], r["event"]["count_2824"]))
    assert 2 <= len(reports) <= 6, [r["event"] for r in reports]  # 60 lines → one sweep a second or so, not 60
    first = reports[0]
    assert first["event"]["count_2824"] <= 10  # the sweep starts within 0.5 s (≤ 10 lines at 20/s), not after the window
    from posdiag.core.timefmt import parse_utc_iso
    assert parse_utc_iso(first["started_at"]) <= first_written + 1.5
    announced = [line for line in d.output().splitlines() if "2824 in" in line]
    assert len(announced) <= len(reports)  # one log line per storm window, not one per line
    assert "covering" in d.output()


def test_concurrent_triggers_share_one_sweep_and_all_get_its_report(daemon, tmp_path):
    # Each sweep waits a second on a silent reader: the 60 requests arrive while one runs however fast
    # the rest of a sweep is (a few ms on the default configuration) and however busy the box.
    emu = ReaderEmulator("generic", "silent").start()
    try:
        d = daemon(reader={"kind": "serial", "port": emu.path, "timeout_s": 1.0, "sysfs_root": str(tmp_path / "no-sysfs")})
        assert wait_for(lambda: len(d.reports()) == 1, 10)
        with ThreadPoolExecutor(60) as pool:
            replies = list(pool.map(lambda _: request(d.socket, {"cmd": "trigger"}, timeout_s=60), range(60)))
    finally:
        emu.stop()
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:2]
    ids = {r["report"]["report_id"] for r in replies}
    assert len(ids) <= 3, f"60 concurrent triggers made {len(ids)} sweeps"
    assert ids <= {r.report_id for r in d.reports()}


def test_an_event_is_not_starved_by_a_queue_of_triggers(daemon, tmp_path):
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            request(d.socket, {"cmd": "trigger"}, timeout_s=60)

    threads = [threading.Thread(target=hammer) for _ in range(20)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        written = time.monotonic()
        append(tmp_path / "pos.log", "2026-11-30 10:00:00 txn=1 code=2824\n")
        assert wait_for(lambda: event_reports(d), 15), d.output()
        waited = time.monotonic() - written
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    # at most the on-demand sweep already running, then the event: two sweeps, never the whole queue
    assert waited < 10, f"the event waited {waited:.1f} s behind on-demand requests"


def test_fifty_status_clients_at_once_are_all_answered(daemon):
    d = daemon()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: d.cli("status", "--json"), range(50)))
    assert [rc for rc, _, _ in results] == [0] * 50, [out for rc, out, _ in results if rc][:2]
    assert all(json.loads(out)["running"] for _, out, _ in results)


def test_a_busy_daemon_is_never_taken_for_a_dead_one(config_file, tmp_path):
    """A socket that is listening but never accepts (its backlog full): trigger must not diagnose locally."""
    path = str(tmp_path / "control.sock")
    busy = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    busy.bind(path)
    busy.listen(0)
    fillers = []
    try:
        for _ in range(4):  # fill the backlog
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(path)
            except BlockingIOError:
                s.close()
                break
            fillers.append(s)
        config = config_file()
        rc, out, err = run_cli("trigger", "--json", "--config", str(config))
        assert rc == 3 and "busy" in err and out == ""
        assert "diagnosing locally" not in err
        rc, out, _ = run_cli("status", "--config", str(config))
        assert rc == 3 and "busy" in out
    finally:
        for s in fillers:
            s.close()
        busy.close()


def test_a_regular_file_at_the_socket_path_is_kept_and_the_daemon_refuses(config_file, tmp_path):
    precious = tmp_path / "control.sock"
    precious.write_text("somebody's data\n")
    config = config_file()
    proc = run_posdiag("run", "--config", str(config), timeout=30)
    assert proc.returncode == 3
    assert "not a socket" in proc.stderr and "Traceback" not in proc.stderr
    assert precious.read_text() == "somebody's data\n"
    rc, _, err = run_cli("config", "check", "--config", str(config))
    assert rc == 3 and "daemon.control_socket" in err


def test_a_request_up_to_64_kib_is_answered_and_a_longer_one_refused(daemon):
    d = daemon()
    assert request(d.socket, {"cmd": "ping", "note": "x" * 60_000}, timeout_s=10) == {"ok": True}
    refused = request(d.socket, {"cmd": "ping", "note": "x" * 70_000}, timeout_s=10)
    assert refused["ok"] is False and "longer than 65536 bytes" in refused["error"], refused


def test_non_object_json_on_the_socket_gets_an_error_reply(daemon):
    d = daemon()
    for raw in (b"[1]\n", b"42\n", b"\"trigger\"\n", b"{not json\n", b"null\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(10)
            s.connect(d.socket)
            s.sendall(raw)
            reply = json.loads(s.makefile("rb").readline())
        assert reply["ok"] is False and "bad request" in reply["error"], raw
    assert request(d.socket, {"cmd": "ping"})["ok"]
    assert "Traceback" not in d.output()


def test_daemon_with_a_fifo_txlog_sweeps_at_boot_and_obeys_signals(daemon, tmp_path):
    fifo = tmp_path / "pos.fifo"
    os.mkfifo(fifo)
    d = daemon(txlog={"path": str(fifo)})
    assert wait_for(lambda: len(d.reports()) == 1, 15), d.output()
    with Store(d.state) as store:
        boot = store.get(d.reports()[0].report_id)
    txlog = next(p for p in boot["probes"] if p["name"] == "txlog")
    assert [f["code"] for f in txlog["findings"]] == ["txlog.not_regular"]
    assert wait_for(lambda: "not read" in d.output(), 5), d.output()
    d.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: request(d.socket, {"cmd": "status"})["status"]["reloads"] == 1, 5), d.output()
    rc, out, _ = d.cli("trigger", "--json")
    assert rc in (0, 1, 2) and json.loads(out)["trigger"] == "on-demand"
    started = time.monotonic()
    d.proc.send_signal(signal.SIGTERM)
    d.proc.wait(10)
    assert time.monotonic() - started < 5 and d.proc.returncode == 0


def test_txlog_swapped_for_dev_zero_costs_no_memory_and_the_file_put_back_is_followed(daemon, tmp_path):
    d = daemon()
    log = tmp_path / "pos.log"
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    time.sleep(0.5)
    idle = rss_mb(d.proc.pid)
    os.rename(log, tmp_path / "pos.log.real")
    os.symlink("/dev/zero", tmp_path / "pos.log.new")
    os.replace(tmp_path / "pos.log.new", log)
    peak = idle
    for _ in range(15):
        time.sleep(0.2)
        peak = max(peak, rss_mb(d.proc.pid))
    assert peak - idle < 10, f"RSS grew from {idle:.1f} to {peak:.1f} MB with the txlog on /dev/zero"
    assert "character device" in d.output()
    os.replace(tmp_path / "pos.log.real", log)  # the regular file is back, with a 2824 in it
    append(log, "2026-11-30 10:00:00 txn=5 code=2824\n")
    assert wait_for(lambda: event_reports(d), 10), d.output()


def test_state_dir_that_is_a_file_is_refused_by_config_check_and_run(config_file, tmp_path):
    (tmp_path / "state").write_text("not a directory\n")
    config = config_file()
    rc, _, err = run_cli("config", "check", "--config", str(config))
    assert rc == 3 and "daemon.state_dir" in err and "regular file" in err
    proc = run_posdiag("run", "--config", str(config), timeout=30)
    assert proc.returncode == 3 and "daemon.state_dir" in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "state").read_text() == "not a directory\n"


@pytest.mark.root
def test_a_user_outside_the_group_is_told_which_group_to_join(daemon, tmp_path):
    d = daemon()
    assert wait_for(lambda: len(d.reports()) == 1, 10)
    os.chmod(d.config, 0o644)
    os.chown(d.socket, 4242, 20)  # as the packaging would: root's daemon, a technicians' group
    os.chown(d.state, 4242, 20)
    os.chmod(d.state, 0o750)
    # Root without the capabilities that bypass file permissions: a user outside the group.
    unprivileged = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-m", "posdiag.agent"]
    for command in ("status", "history"):
        proc = subprocess.run([*unprivileged, command, "--config", str(d.config)], capture_output=True, text=True,
                              cwd=REPO, timeout=30)
        said = proc.stdout + proc.stderr
        assert proc.returncode == 3, said
        assert "permission denied" in said and "member of group" in said, said
        assert "dialout" in said or "group 20" in said, said
        assert "Traceback" not in said and "not running" not in said
    assert d.proc.poll() is None


def test_control_socket_path_longer_than_a_unix_address_is_refused(config_file, tmp_path):
    long_path = str(tmp_path / ("x" * 120) / "control.sock")
    rc, _, err = run_cli("config", "check", "--config", str(config_file(daemon={"control_socket": long_path})))
    assert rc == 3 and "daemon.control_socket" in err and "107 bytes" in err


def test_an_event_window_opens_once_waits_out_the_gap_and_says_when_its_first_and_last_2824_came(monkeypatch):
    """The first 2824 opens a window and may start a sweep at once; after an event sweep the next one waits
    event_min_gap_s from its start (0 at the gap's end, not before); the sweep says how many 2824s it
    covers, when the first and when the last came, then the window is empty again."""
    from posdiag.agent import storm
    from posdiag.core.timefmt import utc_iso

    wall = [1_800_000_000.0]
    monkeypatch.setattr(storm.time, "time", lambda: wall[0])
    window = storm.EventWindow(15.0)
    assert window.due_in(now=100.0) is None  # nothing pending
    assert window.add() is True  # opens the window: the caller wakes the loop
    wall[0] += 4
    assert window.add() is False and window.add() is False
    assert window.due_in(now=100.0) == 0.0  # no event sweep yet: at once
    wall[0] += 6
    covered = window.take()
    assert covered == {"count_2824": 3, "first_at": utc_iso(1_800_000_000.0), "last_at": utc_iso(1_800_000_004.0)}
    assert window.due_in() is None and window.count == 0
    started = window.last_sweep
    assert window.add() is True  # a new window, within the gap of the last sweep
    assert window.due_in(now=started + 5) == 10.0
    assert window.due_in(now=started + 15) == 0.0 and window.due_in(now=started + 20) == 0.0
    assert window.take() == {"count_2824": 1, "first_at": utc_iso(wall[0]), "last_at": utc_iso(wall[0])}


def test_triggers_join_the_sweep_running_or_else_the_next_one():
    from posdiag.agent.storm import Waiters

    waiters = Waiters()
    assert waiters.start() is False  # nobody waits: no sweep
    early = waiters.join()
    assert waiters.start() is True
    during = waiters.join()  # arrives while it runs: gets its report too
    waiters.finish({"ok": True, "report": "first"})
    after = waiters.join()  # after it ended: waits for the next
    assert early.get_nowait() == during.get_nowait() == {"ok": True, "report": "first"} and after.empty()
    assert waiters.start() is True
    waiters.finish({"ok": True, "report": "second"})
    assert after.get_nowait() == {"ok": True, "report": "second"} and waiters.start() is False


def test_a_request_the_daemon_fails_on_is_an_error_reply_and_the_socket_serves_on(tmp_path):
    """The control socket in this process, with a handler that breaks on one command: that request gets
    "not ok" and the error, the next is answered as usual."""
    from posdiag.agent.control import serve

    def handle(message: dict) -> dict:
        if message["cmd"] == "status":
            raise ValueError("no status today")
        return {"ok": True}

    path = str(tmp_path / "control.sock")
    server = serve(path, handle)
    try:
        assert request(path, {"cmd": "status"}, timeout_s=10) == {"ok": False,
                                                                  "error": "internal error: ValueError('no status today')"}
        assert request(path, {"cmd": "ping"}, timeout_s=10) == {"ok": True}
    finally:
        server.shutdown()
        server.server_close()


def test_what_sits_on_the_socket_path_decides_between_not_running_busy_and_not_a_daemon(tmp_path):
    """A socket nobody listens on any more is a dead daemon's (stale), after a short retry; a path
    with nothing, or a file, is no daemon at once; something that answers but not in JSON is not ours."""
    from posdiag.agent.control import DaemonNotRunning

    path = str(tmp_path / "control.sock")
    with pytest.raises(DaemonNotRunning, match=r"\(FileNotFoundError\)"):
        request(path, {"cmd": "ping"}, timeout_s=2, retry_s=0.3)
    Path(path).write_text("somebody's file\n")  # not a socket: no retry, no daemon
    with pytest.raises(DaemonNotRunning, match=r"\(ConnectionRefusedError\)"):
        request(path, {"cmd": "ping"}, timeout_s=2, retry_s=0.3)
    os.unlink(path)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # bound, never listening: what a killed daemon leaves behind
    try:
        with pytest.raises(DaemonNotRunning, match=r"\(stale socket\)"):
            request(path, {"cmd": "ping"}, timeout_s=2, retry_s=0.3)
    finally:
        dead.close()
    os.unlink(path)
    stranger = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stranger.bind(path)
    stranger.listen(1)

    def answer(reply: bytes) -> None:
        conn, _ = stranger.accept()
        with conn:
            conn.makefile("rb").readline()
            conn.sendall(reply)

    try:
        for reply, said in ((b"HTTP/1.0 400 Bad Request\r\n", "that is not a posdiag daemon answered"),
                            (b"[1, 2]\n", "that is not a posdiag daemon answered"), (b"", "closed the connection")):
            responder = threading.Thread(target=answer, args=(reply,), daemon=True)
            responder.start()
            with pytest.raises(DaemonNotRunning, match=said):
                request(path, {"cmd": "ping"}, timeout_s=5, retry_s=0.3)
            responder.join(5)
    finally:
        stranger.close()


@pytest.mark.root
def test_the_group_to_join_is_the_one_owning_the_path_or_its_nearest_parent_by_name_or_number(tmp_path):
    import grp

    from posdiag.agent.access import group_name

    folder = tmp_path / "run"
    folder.mkdir()
    named = next(g for g in grp.getgrall() if g.gr_gid != 0)
    os.chown(folder, 0, named.gr_gid)
    assert group_name(str(folder / "posdiag" / "control.sock")) == named.gr_name  # not there yet: its parent's
    gid = next(g for g in range(54321, 60000) if not _has_group(g))
    os.chown(folder, 0, gid)
    assert group_name(str(folder)) == str(gid)  # a group with no name: its number
    assert group_name("/nonexistent-posdiag-root/x") == "root"


def _has_group(gid: int) -> bool:
    import grp

    try:
        grp.getgrgid(gid)
    except KeyError:
        return False
    return True


def test_a_socket_that_starts_listening_within_the_retry_time_is_answered(tmp_path):
    """A daemon that is starting has bound its socket but not listened yet: the client tries again for
    its retry time instead of calling it dead."""
    path = str(tmp_path / "control.sock")
    starting, listener = _listening_after(path, 0.3, [])
    try:
        assert request(path, {"cmd": "ping"}, timeout_s=10, retry_s=20) == {"ok": True}
    finally:
        listener.join(10)
        starting.close()


@pytest.mark.parametrize(("line", "said"), [(b'{"cmd": "ping"}', None), (b'{"cmd": "ping"}\n', None),
                                            (b" " * 65535 + b"\n", "not JSON"),
                                            (b" " * 65536, "longer than 65536 bytes"),
                                            (b"[1]\n", "expected a JSON object, got list")])
def test_a_request_line_is_answered_unless_it_fills_the_limit_without_its_end(line, said):
    """A last request without its newline (the client shut its side) is still a request; one that
    fills the 64 KiB limit without ending is cut, refused as too long rather than parsed."""
    from posdiag.agent.control import _answer

    reply = _answer(lambda message: {"ok": True, "cmd": message["cmd"]}, line)
    if said is None:
        assert reply == {"ok": True, "cmd": "ping"}
    else:
        assert reply["ok"] is False and said in reply["error"], reply


def test_the_control_socket_is_made_in_a_folder_that_does_not_exist_yet(tmp_path):
    from posdiag.agent.control import serve

    path = str(tmp_path / "run" / "posdiag" / "control.sock")
    server = serve(path, lambda message: {"ok": True})
    try:
        assert request(path, {"cmd": "ping"}, timeout_s=10) == {"ok": True}
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o660)
    finally:
        server.shutdown()
        server.server_close()


def test_a_client_waits_three_seconds_by_default_for_a_socket_that_never_listens(tmp_path):
    """The default retry time (3 s): long enough for a daemon that is starting, short for a dead one."""
    from posdiag.agent.control import DaemonNotRunning

    path = str(tmp_path / "control.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    try:
        began = time.monotonic()
        with pytest.raises(DaemonNotRunning, match=r"\(stale socket\)"):
            request(path, {"cmd": "ping"}, timeout_s=2)
        assert 2.9 <= time.monotonic() - began < 20
    finally:
        dead.close()


def test_a_client_tries_a_starting_socket_again_at_least_every_fifth_of_a_second(tmp_path):
    """The wait between tries doubles from 10 ms but stops at 0.2 s: a daemon that starts listening
    after 2.6 s is answered within a few tenths, not after a wait as long as the time already spent."""
    path = str(tmp_path / "control.sock")
    listening_at: list[float] = []
    starting, listener = _listening_after(path, 2.6, listening_at)
    try:
        assert request(path, {"cmd": "ping"}, timeout_s=10, retry_s=20) == {"ok": True}
        assert time.monotonic() - listening_at[0] < 1.2  # 0.2 s and the load; a 2 s cap would wait 1.95 s
    finally:
        listener.join(10)
        starting.close()


def test_a_sweep_finished_with_nobody_joined_hands_out_nothing_and_the_next_trigger_waits_for_its_own():
    from posdiag.agent.storm import Waiters

    waiters = Waiters()
    waiters.finish({"ok": True, "report": "nobody asked"})  # e.g. a sweep whose waiters all gave up
    late = waiters.join()
    assert late.empty() and waiters.start() is True
    waiters.finish({"ok": True, "report": "its own"})
    assert late.get_nowait() == {"ok": True, "report": "its own"}


@pytest.mark.root
def test_a_state_dir_or_database_this_user_may_not_read_is_refused_naming_it_and_the_group(tmp_path):
    """Checked without the capabilities that bypass file permissions (as for a technician outside the
    group): a folder there and readable, or not there at all, passes; one that is not, or its database,
    is named with the group to join."""
    from posdiag.agent.access import AccessDenied, check_readable_dir

    check_readable_dir(str(tmp_path / "not-there"), "history.sqlite3")  # nothing to refuse
    check_readable_dir(str(tmp_path), "history.sqlite3")
    closed, open_db = tmp_path / "closed", tmp_path / "open"
    closed.mkdir(mode=0o700)
    open_db.mkdir(mode=0o755)
    (open_db / "history.sqlite3").write_text("")
    (open_db / "history.sqlite3").chmod(0o600)
    for folder in (closed, open_db):
        os.chown(folder, 4242, 0)
        if (folder / "history.sqlite3").exists():
            os.chown(folder / "history.sqlite3", 4242, 0)
    code = ("import sys\nfrom posdiag.agent.access import AccessDenied, check_readable_dir\n"
            "for path in sys.argv[1:]:\n"
            "    try:\n        check_readable_dir(path, 'history.sqlite3')\n        print('ok')\n"
            "    except AccessDenied as exc:\n        print(exc)\n")
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c",
                           code, str(closed), str(open_db), str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert proc.stdout.splitlines() == [f"permission denied on {closed}: run as root or a member of group root",
                                        f"permission denied on {open_db / 'history.sqlite3'}: run as root or a member "
                                        "of group root", "ok"], proc.stderr
    assert issubclass(AccessDenied, PermissionError)


def test_the_control_socket_takes_a_backlog_of_128_connections(tmp_path):
    """A crowd of clients (a monitoring script's triggers) queues in the kernel instead of being refused."""
    from posdiag.agent.control import serve

    path = str(tmp_path / "control.sock")
    server = serve(path, lambda message: {"ok": True})
    try:
        listing = subprocess.run(["ss", "-xlnH", "src", path], capture_output=True, text=True, check=True).stdout
    finally:
        server.shutdown()
        server.server_close()
    [line] = [line for line in listing.splitlines() if path in line]
    assert line.split()[3] == "128", line  # a listening socket's Send-Q is its backlog


def test_a_client_that_connects_and_says_nothing_does_not_hold_up_closing_the_socket(tmp_path):
    """Its request thread waits for a line that never comes; closing the socket at shutdown does not wait for it."""
    from posdiag.agent.control import serve

    path = str(tmp_path / "control.sock")
    server = serve(path, lambda message: {"ok": True})
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.connect(path)
    try:
        assert request(path, {"cmd": "ping"}, timeout_s=10) == {"ok": True}  # the mute one is being handled by now
        began = time.monotonic()
        server.shutdown()
        server.server_close()
        assert time.monotonic() - began < 20
    finally:
        mute.close()


def test_a_stale_socket_is_retried_at_doubling_intervals_capped_at_a_fifth_of_a_second_until_retry_s(tmp_path,
                                                                                                   monkeypatch):
    """A client meeting a socket nobody listens on (a daemon restarting) tries again after 10, 20, 40,
    80, 160 ms, then every 200 ms, and gives up once ``retry_s`` has passed. (The clock is the test's:
    the schedule is pure logic.)"""
    import types

    from posdiag.agent import control

    clock = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        clock[0] += seconds

    monkeypatch.setattr(control, "time", types.SimpleNamespace(monotonic=lambda: clock[0], sleep=sleep))
    path = str(tmp_path / "control.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)  # bound, never listening
    try:
        with pytest.raises(control.DaemonNotRunning, match=r"\(stale socket\)"):
            request(path, {"cmd": "ping"}, timeout_s=2, retry_s=1.0)
        assert slept == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2, 0.2]  # 1.11 s: the first look past 1 s gives up
        slept.clear()
        with pytest.raises(control.DaemonNotRunning, match=r"\(stale socket\)"):
            request(path, {"cmd": "ping"})  # a command's client waits 3 s by default
        assert sum(slept[:-1]) < 3.0 <= sum(slept)
        slept.clear()
        control.claim_path(path)  # a starting daemon gives a dead one's socket a second, then takes its path
        assert sum(slept[:-1]) < 1.0 <= sum(slept) and not os.path.exists(path)
    finally:
        dead.close()


def _listening_after(path: str, delay_s: float, listening_at: list[float]) -> tuple[socket.socket, threading.Thread]:
    """A daemon that is starting: its socket bound at once, listening (and answering one ping) only
    after ``delay_s``; when it began to listen is appended to ``listening_at``."""
    starting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    starting.bind(path)

    def start_listening() -> None:
        time.sleep(delay_s)
        listening_at.append(time.monotonic())
        starting.listen(1)
        conn, _ = starting.accept()
        with conn:
            conn.makefile("rb").readline()
            conn.sendall(b'{"ok": true}\n')

    listener = threading.Thread(target=start_listening, daemon=True)
    listener.start()
    return starting, listener


def test_status_gives_a_daemon_that_accepts_but_never_answers_five_seconds_and_says_it_is_busy(config_file, tmp_path):
    """A hung daemon must not hang a technician's ``posdiag status``: it waits 5 s for the answer, then
    says the daemon is busy (exit 3) with what waits in the outbox all the same."""
    path = str(tmp_path / "control.sock")
    with hung_control_socket(path):
        rc, out, err = run_cli("status", "--config", str(config_file(daemon={"control_socket": path})))
    assert rc == 3 and "posdiag daemon: busy" in out, (out, err)
    assert f"the posdiag daemon on {path} did not answer within 5 s" in " ".join(out.split())  # laid out in 80 columns
