"""``posdiag watch`` against faults made while it runs: a card reader on a pty that goes silent and
comes back, the terminal's link in a network namespace set down and up. Asserted on the change lines
it prints, the summary it keeps in the history, and the screen a technician sees (a real terminal:
tmux)."""

from __future__ import annotations

import fcntl
import io
import json
import os
import queue
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid

import jsonschema
import pytest
from labs import REPO
from labs.commands import IN_CI, run_cli
from labs.helpers import wait_for
from labs.netlab import HOST_ADDR
from labs.reader_emulator import ReaderEmulator, hold_port
from labs.terminal import Tmux
from posdiag.agent.screen import ENTER, LEAVE, Screen, terminal_size
from posdiag.agent.watch import Session, folded
from posdiag.agent.watchsummary import change_line, summary_lines, watch_block
from posdiag.core import i18n
from posdiag.core.paths import report_schema_path

SCHEMA = json.loads(report_schema_path().read_text())


class Watching:
    """``posdiag watch`` in a child process whose stdout is a pipe: its lines as they come."""

    def __init__(self, config, *extra: str, prefix: tuple[str, ...] = ()) -> None:
        self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "posdiag.agent", "watch", "--config", str(config),
                                      "--interval", "0.5", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, cwd=REPO)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, text: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in {timeout} s; seen: {self.seen}")

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, list[str], str]:
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=30)
        time.sleep(0.1)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return rc, self.seen, self.proc.stderr.read() if self.proc.stderr else ""


def stored(config, short_id: str) -> dict:
    rc, out, err = run_cli("show", short_id, "--json", "--config", str(config))
    assert rc in (0, 1, 2), err
    return json.loads(out)


@pytest.fixture
def reader_config(config_file, tmp_path):
    (tmp_path / "state").mkdir()

    def make(emu: ReaderEmulator) -> object:
        return config_file(reader={"kind": "serial", "port": emu.path, "protocol": "generic", "timeout_s": 0.3,
                                   "sysfs_root": str(tmp_path / "no-sysfs")}, terminal={"id": "lane-03"})

    return make


def test_a_reader_that_goes_silent_and_comes_back_is_two_changes_kept_as_one_summary(reader_config):
    with ReaderEmulator("generic", "healthy") as emu:
        config = reader_config(emu)
        watch = Watching(config, "--only", "reader.serial")
        assert wait_for(lambda: emu.frames >= 2, timeout=30), "the first two sweeps never asked the reader"
        emu.mode = "silent"
        went = watch.wait_line("reader.serial ok → fail")
        emu.mode = "healthy"
        came = watch.wait_line("reader.serial fail → ok")
        rc, lines, err = watch.stop()
    assert went[:8] <= came[:8] and went[2] == ":" and went[5] == ":"  # HH:MM:SS first, in order
    changes = [line for line in lines if " → " in line and not line.startswith(" ")]
    assert changes == [went, came], lines  # nothing but the change lines until the summary
    summary = " ".join(line.strip() for line in lines)  # the summary's lines are wrapped at 80 columns
    assert "Watch: " in summary and "2 change(s); at the end: HEALTHY" in summary
    assert "  reader.serial  changed 2 times" in lines and "flapping" not in summary
    short = next(line for line in lines if line.startswith("kept in the history: posdiag show ")).split()[-1]
    report = stored(config, short)
    jsonschema.validate(report, SCHEMA)
    assert report["trigger"] == "watch" and rc == 2  # the worst sweep: the silent reader
    assert report["diagnosis"]["verdict"] == "fault" and report["diagnosis"]["causes"][0]["id"] == "reader.unresponsive"
    w = report["watch"]
    assert w["final_verdict"] == "healthy" and w["changed"] == {"reader.serial": 2} and w["flapping"] == []
    assert [(c["probe"], c["from"], c["to"]) for c in w["changes"]] == [("reader.serial", "ok", "fail"),
                                                                          ("reader.serial", "fail", "ok")]
    assert w["sweeps"] >= 4 and err == ""


def test_sigterm_ends_a_watch_like_ctrl_c(reader_config):
    with ReaderEmulator("generic", "healthy") as emu:
        config = reader_config(emu)
        watch = Watching(config, "--only", "reader")
        # asked a second time: the first sweep has finished (on a busy machine its last probes may lag
        # the reader's answer), so there is a sweep to keep
        assert wait_for(lambda: emu.frames >= 2, timeout=30)
        rc, lines, err = watch.stop(signal.SIGTERM)
    assert rc == 0 and any(line.startswith("kept in the history: posdiag show ") for line in lines), (lines, err)


def test_a_watch_that_could_check_nothing_exits_3_as_diagnose_does(reader_config):
    with ReaderEmulator("generic", "healthy") as emu:
        holder = hold_port(emu.path)  # another program, and no pos_process to tell it from the POS
        try:
            config = reader_config(emu)
            diagnose = run_cli("diagnose", "--only", "reader.serial", "--config", str(config))
            watch = Watching(config, "--only", "reader.serial")
            # the first sweep has come to the reader once its turn's lock file is there; it ends at once
            assert wait_for(lambda: any((config.parent / "state").glob("reader-*.lock")), timeout=30)
            time.sleep(1.5)
            rc, lines, err = watch.stop()
        finally:
            holder.kill()
            holder.wait()
    assert diagnose[0] == 3 and "no probe could check anything" in diagnose[2]
    assert rc == 3 and "no probe could check anything; cannot diagnose" in err, (lines, err)
    assert any(line.startswith("kept in the history: posdiag show ") for line in lines), lines  # kept all the same


@pytest.mark.root
def test_a_link_set_down_and_up_shows_each_change_with_the_layers_above(lab, config_file, tmp_path):
    (tmp_path / "state").mkdir()
    lab.peer(lab.host, "tcp", "--bind", HOST_ADDR, "--port", "8000")
    lab.count_forwarded(8000)
    config = config_file(payment_hosts=[{"name": "primary", "host": HOST_ADDR, "port": 8000, "tls": False}],
                         network={"timeout_s": 0.5})
    watch = Watching(config, "--only", "network", prefix=("ip", "netns", "exec", lab.term))
    assert wait_for(lambda: lab.forwarded() >= 6, timeout=30), "the terminal never reached the payment host"
    lab.interface_down()
    watch.wait_line("network.link ok → fail")
    lab.interface_up()
    watch.wait_line("network.link fail → ok")
    watch.wait_line("network.tcp skipped → ")
    rc, lines, err = watch.stop()
    changed = [line.split(" ", 1)[1] for line in lines if " → " in line and not line.startswith(" ")]
    # the layers above the link are skipped while it is down (ok, or warn on a busy machine, before)
    down = changed.index("network.link ok → fail")
    assert any(c.startswith("network.tcp ") and c.endswith(" → skipped") for c in changed[down:]), lines
    assert changed.index("network.link fail → ok") > down
    short = next(line for line in lines if line.startswith("kept in the history: posdiag show ")).split()[-1]
    report = stored(config, short)
    w = report["watch"]
    assert w["changed"]["network.link"] == 2 and w["changed"]["network.tcp"] >= 2
    assert w["final_verdict"] != "fault"
    assert report["diagnosis"]["causes"][0]["id"] == "network.link_down" and rc == 2


def test_the_screen_is_redrawn_in_place_on_a_real_terminal(reader_config):
    if not Tmux.available():
        message = "tmux is missing: apt-get install tmux (.ci/run does)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    with ReaderEmulator("generic", "healthy") as emu:
        config = reader_config(emu)
        with Tmux(f"{sys.executable} -m posdiag.agent watch --only reader --interval 0.5 --config {config}") as term:
            assert wait_for(lambda: "reader.serial" in term.screen() and emu.frames >= 2, timeout=30), term.screen()
            emu.mode = "silent"
            assert wait_for(lambda: "ok → fail" in term.screen(), timeout=30), term.screen()
            failing = term.screen()
            emu.mode = "healthy"
            assert wait_for(lambda: "fail → ok" in term.screen(), timeout=30), term.screen()
            term.keys("C-c")
            assert wait_for(lambda: "kept in the history" in term.screen(), timeout=30), term.screen()
            after = term.screen()
    rows = failing.splitlines()
    assert rows[0].startswith("posdiag watch — lane-03 — every 0.5 s")
    assert sum(row.startswith("Verdict: ") for row in rows) == 1, failing  # one screen, redrawn: never scrolled
    serial = next(row for row in rows if row.startswith("  reader.serial "))
    assert serial.split()[1:3] == ["FAIL", "*1×"], serial  # marked where it changed, and how often
    assert "Verdict: FAULT" in failing and "reader.unresponsive" in failing
    # the screen is left when the session ends: the summary stays in the scrollback, no screen above it
    assert "Verdict: " not in after and "Watch: " in after and "reader.serial  changed 2 times" in after


def _report(verdict: str, **statuses: str) -> dict:
    return {"report_id": str(uuid.uuid4()), "started_at": "2026-11-30T12:00:00Z", "duration_s": 0.2,
            "trigger": "watch", "probes": [{"name": n, "status": s, "summary": ""} for n, s in statuses.items()],
            "diagnosis": {"verdict": verdict, "causes": [{"id": "none", "title": "t", "confidence": 0.9}]}}


def test_a_layer_that_changes_three_times_is_called_flapping_and_the_worst_sweep_is_kept():
    session = Session(2.0)
    t0 = 1_800_000_000
    sequence = [("healthy", "ok"), ("fault", "fail"), ("healthy", "ok"), ("fault", "fail"), ("healthy", "ok")]
    for i, (verdict, status) in enumerate(sequence):
        session.observe(_report(verdict, **{"network.link": status, "disk": "ok"}), now=t0 + 2 * i)
    summary = session.summary_report(ended=t0 + 10)
    assert summary["watch"]["flapping"] == ["network.link"] and summary["watch"]["changed"] == {"network.link": 4}
    assert summary["diagnosis"]["verdict"] == "fault" and summary["watch"]["final_verdict"] == "healthy"
    assert summary["report_id"] != session.worst["report_id"]  # the summary is a report of its own
    text = "\n".join(summary_lines(summary))
    assert "  network.link  changed 4 times: flapping" in text.splitlines()
    assert "Watch: 5 sweeps from" in text and "4 change(s); at the end: HEALTHY" in text


def test_change_lines_speak_the_readers_language():
    change = {"at": "2026-11-30T12:03:41Z", "probe": "reader.serial", "from": "ok", "to": "fail"}
    assert change_line(change) == "12:03:41 reader.serial ok → fail"
    assert change_line(change, i18n.translator("zh_CN")) == "12:03:41 reader.serial 正常 → 故障"


def test_unconfigured_checks_fold_into_one_row_so_the_changes_stay_on_a_short_screen():
    probes = [{"name": name, "status": status, "summary": "s"} for name, status in
              [("memory", "ok"), ("network.link", "skipped"), ("network.dns", "skipped"), ("network.tls", "skipped"),
               ("reader.serial", "fail"), ("txlog", "skipped")]]
    shown = folded(probes, keep={"network.tls"})  # a check that changed this sweep keeps its row
    assert [p["name"] for p in shown] == ["memory", "3 probes", "network.tls", "reader.serial"]
    assert shown[1]["summary"] == "network.link, network.dns, txlog" and shown[1]["status"] == "skipped"


def _pty_sized(columns: int, rows: int):
    """A real pty whose window size is ``columns`` × ``rows`` (0 × 0: a terminal that cannot say)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    return master, os.fdopen(slave, "w")


@pytest.mark.parametrize(("columns", "rows", "expected"), [
    (0, 0, (80, 24)),  # the terminal says 0: taken as 80×24
    (132, 50, (132, 50)),
    (21, 6, (21, 6)),  # just above the floor
    (20, 5, (20, 5)),  # on it
    (19, 4, (20, 5)),  # below it: never fewer than 20 columns and 5 rows
])
def test_a_terminals_size_is_its_own_with_a_floor_and_80_by_24_when_it_says_0(columns, rows, expected):
    master, stream = _pty_sized(columns, rows)
    try:
        assert terminal_size(stream) == expected
    finally:
        stream.close()
        os.close(master)


def test_output_that_is_no_terminal_is_drawn_80_by_24():
    assert terminal_size(io.StringIO()) == (80, 24)
    assert terminal_size(object()) == (80, 24)
    out = io.StringIO()
    Screen(out).draw([f"row {i}" for i in range(40)])
    assert "row 22" in out.getvalue() and "row 23" not in out.getvalue()  # 24 rows: 23 lines and the cursor's


def test_a_screen_that_ends_gives_the_terminal_back_with_its_cursor():
    out = io.StringIO()
    with Screen(out) as screen:
        screen.draw(["posdiag watch"])
        assert out.getvalue().startswith(ENTER) and LEAVE not in out.getvalue()
    assert out.getvalue().endswith(LEAVE)
    screen.__exit__(None, None, None)  # a second end writes nothing more
    assert out.getvalue().count(LEAVE) == 1


def test_three_changes_make_a_probe_flapping_two_do_not():
    session = Session(2.0)
    t0 = 1_800_000_000
    for i, (verdict, link, reader) in enumerate([("healthy", "ok", "ok"), ("fault", "fail", "fail"),
                                                 ("healthy", "ok", "ok"), ("fault", "fail", "ok")]):
        session.observe(_report(verdict, **{"network.link": link, "reader.serial": reader}), now=t0 + 2 * i)
    watch = session.summary_report(ended=t0 + 8)["watch"]
    assert watch["changed"] == {"network.link": 3, "reader.serial": 2} and watch["flapping"] == ["network.link"]


def test_the_worst_sweep_kept_is_the_latest_of_the_worst_and_the_final_verdict_the_last_sweeps():
    session = Session(2.0)
    sweeps = [_report("fault", disk="fail"), _report("degraded", disk="warn"), _report("fault", disk="fail"),
              _report("healthy", disk="ok")]
    for i, report in enumerate(sweeps):
        session.observe(report, now=1_800_000_000 + i)
    assert session.worst is sweeps[2] and session.latest is sweeps[3]
    summary = session.summary_report(ended=1_800_000_010)
    assert summary["diagnosis"]["verdict"] == "fault" and summary["watch"]["final_verdict"] == "healthy"
    assert summary["watch"]["sweeps"] == 4 and summary["watch"]["started_at"] != summary["watch"]["ended_at"]


def test_a_session_keeps_its_last_500_changes_and_its_summary_shows_the_last_20():
    changes = [{"at": f"2026-11-30T12:{i // 60 % 60:02d}:{i % 60:02d}Z", "probe": "reader.serial",
                "from": "ok" if i % 2 else "fail", "to": "fail" if i % 2 else "ok"} for i in range(501)]
    block = watch_block(started=1_800_000_000, ended=1_800_000_600, interval_s=1.0, sweeps=502,
                        final_verdict="healthy", changes=changes)
    assert block["changes_total"] == 501 and block["changes"] == changes[1:] and block["changed"] == {"reader.serial": 501}
    shown = [line for line in summary_lines({"watch": block}, i18n.translator("en")) if line.startswith("  12:")]
    assert shown == ["  " + change_line(c, i18n.translator("en")) for c in changes[-20:]]


def test_one_unconfigured_check_keeps_its_row_two_fold_into_one():
    one = [{"name": "memory", "status": "ok", "summary": "s"}, {"name": "txlog", "status": "skipped", "summary": "s"}]
    assert folded(one, keep=set()) == one
    two = [*one, {"name": "network.dns", "status": "skipped", "summary": "s"}]
    assert [p["name"] for p in folded(two, keep=set())] == ["memory", "2 probes"]


@pytest.mark.parametrize(("rows", "folded_rows"), [(18, True), (19, False)])
def test_a_short_screen_folds_the_unconfigured_checks_so_the_latest_changes_stay_on_it(rows, folded_rows):
    """Heading (5 lines), 8 probes and the changes (a heading and 3 lines, plus a gap) take 18 rows;
    a screen of 18 rows (one kept for the cursor) folds, one of 19 does not."""
    from posdiag.agent.watch import screen_lines

    session = Session(2.0)
    statuses = {"memory": "ok", "disk": "ok", "network.link": "ok", "network.dns": "skipped", "network.tls": "skipped",
                "txlog": "skipped", "clock": "ok", "reader.serial": "ok"}
    for i in range(6):  # five changes of the reader
        report = _report("fault" if i % 2 else "healthy", **{**statuses, "reader.serial": "fail" if i % 2 else "ok"})
        changes = session.observe(report, now=1_800_000_000 + i)
    lines = screen_lines(session, report, changes, "posdiag watch — lane-03", rows)
    assert any(line.startswith("  3 probes") for line in lines) is folded_rows
    assert any(line.startswith("  txlog") for line in lines) is not folded_rows
    shown = [line for line in lines if "reader.serial ok → fail" in line or "reader.serial fail → ok" in line]
    assert len(shown) == 3 and shown[-1].endswith("08:00:05 reader.serial ok → fail")  # the latest that fit
    assert len(screen_lines(session, report, changes, "posdiag watch — lane-03", 40)) == 5 + 8 + 2 + 5  # all five


def test_sweeps_start_one_interval_apart_not_sooner_and_not_later(reader_config):
    """--interval 1 and sweeps of a tenth of a second: about one sweep a second. The wait is the rest of
    the interval (a quarter of it only after a sweep that ran long), so 3.6 s hold four sweeps, not ten."""
    with ReaderEmulator("generic", "healthy") as emu:
        config = reader_config(emu)
        watch = Watching(config, "--only", "reader.serial", "--interval", "1")
        assert wait_for(lambda: emu.frames >= 1, timeout=30)
        time.sleep(3.6)
        rc, lines, err = watch.stop()
    short = next(line for line in lines if line.startswith("kept in the history: posdiag show ")).split()[-1]
    sweeps = stored(config, short)["watch"]["sweeps"]
    assert rc == 0 and 2 <= sweeps <= 5, (sweeps, lines, err)  # four, give or take the load; ten at a quarter


def test_a_screen_clips_each_line_and_its_status_row_to_a_cell_less_than_the_terminal():
    master, stream = _pty_sized(30, 6)
    try:
        screen = Screen(stream)
        screen.__exit__(None, None, None)  # never entered: nothing to give back
        screen.draw(["x" * 40, "short"] + [f"row {i}" for i in range(10)])
        screen.status("probing… 0/1 done, waiting 1.0 s for: clock")
        stream.flush()
        seen = b""
        while not seen.endswith(b"\x1b8") and select.select([master], [], [], 5)[0]:  # a pty hands it over in pieces
            seen += os.read(master, 65536)
        seen = seen.decode()
    finally:
        stream.close()
        os.close(master)
    assert ENTER not in seen and LEAVE not in seen
    assert "x" * 28 + "…\x1b[K" in seen and "x" * 29 not in seen  # 29 cells: the last column stays free
    assert "row 2" in seen and "row 3" not in seen  # 6 rows: 5 lines and the cursor's
    assert "\x1b7\x1b[6;1Hprobing… 0/1 done, waiting 1…\x1b[K\x1b8" in seen


def test_a_watch_summary_says_how_many_minutes_it_lasted_and_lists_the_most_changed_probe_first():
    changes = [{"at": "2026-11-30T12:00:10Z", "probe": p, "from": "ok", "to": "fail"}
               for p in ("txlog", "reader.serial", "reader.serial")]
    block = watch_block(started=1_800_000_000, ended=1_800_000_000 + 750, interval_s=2.0, sweeps=1,
                        final_verdict="degraded", changes=changes)
    lines = summary_lines({"watch": block}, i18n.translator("en"))
    assert lines[0].endswith("UTC (12.5 min), 3 change(s); at the end: DEGRADED") and lines[0].startswith("Watch: 1 sweep ")
    assert lines[1:3] == ["  reader.serial  changed 2 times", "  txlog          changed 1 time"]


@pytest.mark.parametrize(("site", "heading"), [
    ("store-042", "posdiag watch — lane-03 @ store-042 — every 2.5 s — Ctrl-C to end"),
    ("", "posdiag watch — lane-03 — every 2.5 s — Ctrl-C to end")])
def test_the_watch_screen_is_headed_by_the_terminal_its_site_and_the_interval(config_file, site, heading):
    from posdiag.agent.watch import ScreenView
    from posdiag.core import settings as config

    settings = config.load(str(config_file(terminal={"id": "lane-03", "site": site})))
    assert ScreenView(io.StringIO(), settings, 2.5).heading == heading


def test_ctrl_c_during_the_first_sweep_ends_the_watch_at_once_keeping_nothing(config_file, tmp_path):
    """The signal leaves a sweep in progress (here one waiting 5 s on a silent reader) instead of
    waiting for it: nothing was seen whole, so nothing is kept, and the exit says unknown."""
    (tmp_path / "state").mkdir()
    with ReaderEmulator("generic", "silent") as emu:
        config = config_file(reader={"kind": "serial", "port": emu.path, "protocol": "generic", "timeout_s": 5.0,
                                     "sysfs_root": str(tmp_path / "no-sysfs")}, diagnosis={"deadline_s": 20.0})
        watch = Watching(config, "--only", "reader.serial")
        assert wait_for(lambda: emu.frames >= 1, timeout=30), "the first sweep never asked the reader"
        rc, lines, err = watch.stop()
    assert rc == 3 and "watch ended before its first sweep finished; nothing kept" in err, (rc, lines, err)
    assert not any(line.startswith("kept in the history") for line in lines) and "Traceback" not in err


def test_ctrl_c_between_sweeps_ends_the_watch_with_its_summary_kept(reader_config):
    """A signal while the watch waits for its next sweep (30 s away) ends the wait, not the program:
    the summary of the sweep seen is printed and kept, and the exit is its verdict's."""
    with ReaderEmulator("generic", "healthy") as emu:
        config = reader_config(emu)
        watch = Watching(config, "--only", "reader.serial", "--interval", "30")
        assert wait_for(lambda: emu.frames >= 1, timeout=30), "the first sweep never asked the reader"
        time.sleep(3)  # the rest of the sweep takes milliseconds: it is waiting now
        rc, lines, err = watch.stop()
    assert rc == 0 and any(line.startswith("kept in the history: posdiag show ") for line in lines), (lines, err)
    assert "Traceback" not in err


def test_a_sessions_summary_says_from_which_second_to_which_it_watched_and_when_each_change_came():
    changes = [{"at": "2027-01-15T08:00:30Z", "probe": "reader.serial", "from": "ok", "to": "fail"},
               {"at": "2027-01-15T08:01:00Z", "probe": "network.link", "from": "ok", "to": "fail"},
               {"at": "2027-01-15T08:01:10Z", "probe": "reader.serial", "from": "fail", "to": "ok"}]
    block = watch_block(started=1_800_000_000, ended=1_800_000_000 + 90, interval_s=2.0, sweeps=4,
                        final_verdict="healthy", changes=changes)
    lines = summary_lines({"watch": block}, i18n.translator("en"))
    assert lines[0].startswith("Watch: 4 sweeps from 08:00:00 to 08:01:30 UTC (1.5 min), 3 change(s); at the end: ")
    assert lines[-3:] == ["  08:00:30 reader.serial ok → fail", "  08:01:00 network.link ok → fail",
                          "  08:01:10 reader.serial fail → ok"]


def test_a_watch_starts_each_sweep_an_interval_after_the_last_began_but_rests_a_quarter_of_it_after_a_slow_one(
        config_file, tmp_path, monkeypatch):
    """(The sweeps, the clock and the waits are the test's: the pacing is pure logic.)"""
    import types

    from posdiag.agent import watch
    from posdiag.core import settings as config

    settings = config.load(str(config_file()))
    clock = [1000.0]
    took = iter([0.5, 1.9, 3.0])  # seconds each sweep takes
    waits: list[float] = []

    class Stop:
        def is_set(self) -> bool:
            return len(waits) == 3

        def set(self) -> None:
            pass

        def wait(self, seconds: float) -> None:
            waits.append(round(seconds, 6))

    def sweep(*args, **kwargs) -> dict:
        clock[0] += next(took)
        return _report("healthy", memory="ok")

    monkeypatch.setattr(watch, "time", types.SimpleNamespace(monotonic=lambda: clock[0], time=time.time))
    monkeypatch.setattr(watch, "threading", types.SimpleNamespace(Event=Stop))
    monkeypatch.setattr(watch, "run_sweep", sweep)
    monkeypatch.setattr(watch, "_finish", lambda *args: 0)
    assert watch.run_watch(settings, io.StringIO(), io.StringIO(), interval_s=2.0) == 0
    assert waits == [1.5, 0.5, 0.5]  # 2 - 0.5; then a quarter of 2 s, however slow the sweep was
