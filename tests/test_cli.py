"""`posdiag diagnose`, `probes` and exit codes, run as the real command."""

from __future__ import annotations

import json
import os

import jsonschema
import pytest
from labs.commands import run_cli, run_posdiag
from labs.helpers import unwrapped
from posdiag import probes
from posdiag.core.paths import report_schema_path
from posdiag.probes.base import Observation, Probe

SCHEMA = json.loads(report_schema_path().read_text())


def test_json_report_validates_against_the_schema(config_file):
    proc = run_posdiag("diagnose", "--json", "--config", str(config_file()))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    assert [p["name"] for p in report["probes"]] == list(probes.CATALOGUE)
    assert report["trigger"] == "on-demand"


def test_schema_rejects_a_report_missing_its_diagnosis(config_file):
    rc, out, _ = run_cli("diagnose", "--json", "--config", str(config_file()))
    report = json.loads(out)
    del report["diagnosis"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, SCHEMA)


def test_default_config_runs_anywhere_and_blames_nothing_it_did_not_check():
    """The packaged configuration probes no remote host, reader or log: on any machine it gives a
    valid report, checks nothing it was not given, and its verdict can only come from the machine's
    own state (a busy CI box may well read as a saturated CPU: its load is real, so that is allowed)."""
    proc = run_posdiag("diagnose", "--json", env={**os.environ, "POSDIAG_CONFIG": ""})
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    verdict = report["diagnosis"]["verdict"]
    assert proc.returncode == {"healthy": 0, "degraded": 1, "fault": 2}[verdict], proc.stderr
    unconfigured = [p for p in report["probes"] if p["name"].startswith(("network.", "reader.")) or p["name"] == "txlog"]
    assert unconfigured and {p["status"] for p in unconfigured} == {"skipped"}
    assert not [p["name"] for p in report["probes"] if p["status"] == "error"]
    blamed = {c["id"] for c in report["diagnosis"]["causes"] if c["certainty"] >= 0.5}
    assert not {c for c in blamed if c.startswith(("network.", "reader.", "host.", "config.", "data."))}, blamed


def test_text_report_tells_verdict_cause_evidence_and_steps(config_file):
    path = config_file(memory={"min_available_mb": 1_000_000})
    proc = run_posdiag("diagnose", "--config", str(path))
    assert proc.returncode == 2
    out = proc.stdout
    assert "Verdict: FAULT" in out
    assert "memory.exhausted" in out
    assert "Why:" in out and "only" in out and "MB of memory available" in out
    assert "What to do:\n  1. " in out
    assert "Probes:" in out and "memory" in out


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_the_probe_table_keeps_its_columns_for_the_longest_name_and_the_widest_mark(config_file, lang):
    """network.gateway beside disk, 跳过 beside 正常 (two columns a character): each row's time column
    starts at the same screen column."""
    from posdiag.agent.columns import display_width

    proc = run_posdiag("--lang", lang, "diagnose", "--config", str(config_file()))
    rows = [line for line in proc.stdout.splitlines() if line.startswith("  ") and line[2] != " " and " ms  " in line]
    names = {line.split()[0] for line in rows}
    assert {"disk", "network.gateway", "reader.events"} <= names, proc.stdout
    starts = {display_width(line[:line.index(" ms  ")]) for line in rows}
    assert len(starts) == 1, "\n".join(rows)


def test_no_progress_line_when_piped(config_file):
    proc = run_posdiag("diagnose", "--config", str(config_file()))
    assert "probing" not in proc.stderr
    assert "\r" not in proc.stdout


def _stderr_on_a_terminal(config: str, *extra: str) -> tuple[int, str]:
    """Run diagnose with stderr on a pty; what the terminal was sent, and the exit code."""
    import pty
    import subprocess
    import sys

    primary, secondary = pty.openpty()
    proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--config", config, *extra],
                          stdout=subprocess.PIPE, stderr=secondary, timeout=30)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # EIO: everything written has been read
            break
        if not chunk:
            break
        seen += chunk
    os.close(primary)
    return proc.returncode, seen.decode()


def test_a_slow_sweep_shows_on_a_terminal_which_probes_it_waits_for(config_file, ntp_server):
    srv = ntp_server(silent=True)  # the clock probe waits 2.5 s for an answer that never comes
    rc, seen = _stderr_on_a_terminal(str(config_file(clock={"ntp_server": srv.address}, network={"timeout_s": 2.5},
                                                     diagnosis={"deadline_s": 5.0})))
    assert "waiting" in seen and "for: clock" in seen, seen
    assert seen.endswith("\r\x1b[K"), "the progress line is cleared before the report"


def test_the_progress_line_counts_the_probes_of_the_sweep_before_the_first_one_ends(config_file, ntp_server):
    srv = ntp_server(silent=True)
    rc, seen = _stderr_on_a_terminal(str(config_file(clock={"ntp_server": srv.address}, network={"timeout_s": 2.5},
                                                     diagnosis={"deadline_s": 5.0})), "--only", "clock")
    assert "probing… 0/1 done, waiting " in seen and "0/0" not in seen, seen


def test_a_quick_sweep_shows_no_progress_on_a_terminal(config_file):
    rc, seen = _stderr_on_a_terminal(str(config_file(diagnosis={"deadline_s": 30.0})))
    assert rc == 0 and seen == "", seen


def test_only_runs_the_named_probes(config_file):
    rc, out, _ = run_cli("diagnose", "--json", "--only", "disk,clock", "--config", str(config_file()))
    assert [p["name"] for p in json.loads(out)["probes"]] == ["disk", "disk.health", "clock"]  # "disk" is the area


def test_unknown_probe_in_only_exits_3(config_file):
    rc, _, err = run_cli("diagnose", "--only", "nosuch", "--config", str(config_file()))
    assert rc == 3 and "unknown probe 'nosuch'" in err


def test_bad_usage_exits_3_not_2():
    proc = run_posdiag("diagnose", "--frobnicate")
    assert proc.returncode == 3


def test_help_reads_in_chinese_with_lang():
    proc = run_posdiag("--lang", "zh_CN", "diagnose", "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("用法：posdiag diagnose")
    for words in ("只运行这些检查项", "以 JSON 格式输出报告（posdiag.report/1）", "同时把报告放入待发送队列"):
        assert words in proc.stdout
    assert "--only P,..." in proc.stdout and "--format {text,json,nagios,prometheus}" in proc.stdout  # options as typed


@pytest.mark.parametrize("lang", ["fr", "zh_TW"])
def test_a_language_posdiag_does_not_speak_is_refused_naming_the_ones_it_does(lang):
    proc = run_posdiag("--lang", lang, "probes")
    assert proc.returncode == 3 and proc.stdout == "", proc.stderr
    assert f"--lang: expected one of en, zh_CN, got '{lang}'" in proc.stderr


def test_unknown_probe_is_refused_in_chinese(config_file, speak_chinese):
    rc, _, err = run_cli("--lang", "zh_CN", "diagnose", "--only", "nosuch", "--config", str(config_file()))
    assert rc == 3 and "未知的检查项 'nosuch'" in err and "network.tcp" in err


def test_probes_lists_every_probe_with_what_it_checks():
    rc, out, _ = run_cli("probes")
    assert rc == 0
    for name in probes.CATALOGUE:
        assert any(line.startswith(name + " ") and len(line) > len(name) + 10 for line in out.splitlines())


def test_hanging_probe_does_not_delay_the_report_past_the_deadline(config_file, ntp_server):
    # A silent NTP server asked twice, 0.5 s each: the clock probe would wait past what is left of the
    # 1 s deadline once the interpreter has started (a longer timeout is refused by the configuration).
    srv = ntp_server(silent=True)
    path = config_file(clock={"ntp_server": srv.address}, network={"timeout_s": 0.5},
                       diagnosis={"deadline_s": 1.0})
    proc = run_posdiag("diagnose", "--json", "--config", str(path))
    report = json.loads(proc.stdout)
    clock = next(p for p in report["probes"] if p["name"] == "clock")
    # abandoned, not answered: unheld, the probe would have come back after 1 s with clock.ntp_unreachable
    assert clock["status"] == "error" and clock["findings"][-1]["code"] == "probe.timeout"
    assert report["duration_s"] < 1.5
    assert {p["status"] for p in report["probes"] if p["name"] != "clock"} <= {"ok", "skipped"}


class Exploding(Probe):
    name = "zz_exploding"
    description = "raises"

    def check(self, obs: Observation) -> None:
        raise ZeroDivisionError("probe bug")


def test_raising_probe_is_contained_in_the_real_cli(config_file, monkeypatch):
    monkeypatch.setitem(probes.CATALOGUE, "zz_exploding", "test_cli:Exploding")
    rc, out, _ = run_cli("diagnose", "--json", "--config", str(config_file()))
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    boom = next(p for p in report["probes"] if p["name"] == "zz_exploding")
    assert boom["status"] == "error" and "probe bug" in boom["summary"]
    assert rc == 0 and report["diagnosis"]["causes"][0]["id"] == "none"
    assert report["diagnosis"]["causes"][0]["confidence"] < 0.95


def test_only_errors_means_could_not_diagnose(config_file, monkeypatch):
    monkeypatch.setitem(probes.CATALOGUE, "zz_exploding", "test_cli:Exploding")
    rc, _, err = run_cli("diagnose", "--only", "zz_exploding", "--config", str(config_file()))
    assert rc == 3 and "cannot diagnose" in err


def test_installed_package_carries_its_data_files(tmp_path):
    """Outside a checkout the default config, causes and presets come from the installed package."""
    import shutil
    import subprocess
    import sys

    from labs.commands import REPO

    # Build from a copy of the tracked files: building in the checkout would leave build/ and
    # *.egg-info behind, and an untracked file must not sneak into the wheel either.
    def litter() -> set:
        return {*REPO.glob("*.egg-info"), *REPO.glob("build")}

    before = litter()
    source = tmp_path / "src"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    installed = sorted(p.name for p in target.iterdir() if not p.name.endswith((".dist-info", "__pycache__")))
    assert installed == ["bin", "posdiag"] or installed == ["posdiag"], installed  # one import package, no other
    assert sorted(p.name for p in (target / "posdiag").iterdir()) == ["agent", "collector", "config", "core", "probes"]
    assert litter() == before  # the build left nothing in the checkout (an editable install's egg-info may be there)
    proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(target), "POSDIAG_CONFIG": ""})
    # Diagnosed from the installed files (a missing one is exit 3); the verdict is this machine's, whose
    # load on the packaged limits may well read as a saturated CPU.
    assert proc.returncode in (0, 1, 2), proc.stderr
    report = json.loads(proc.stdout)
    jsonschema.validate(report, SCHEMA)
    # The build compiled the Chinese catalogue into the package; its source stays in the repository.
    assert (target / "posdiag/core/locale/zh_CN/LC_MESSAGES/posdiag.mo").is_file()
    assert not list(target.rglob("*.po"))
    # The build froze the knowledge base beside it, and the frozen twin holds the very same document.
    from posdiag.core.frozen import tomllib, twin_of
    installed_causes = target / "posdiag/config/causes.toml"
    twin = json.loads(twin_of(installed_causes).read_text(encoding="utf-8"))
    assert twin["data"] == tomllib.loads(installed_causes.read_text(encoding="utf-8"))
    chinese = subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--lang", "zh_CN"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": str(target), "POSDIAG_CONFIG": ""})
    assert "结论：" in chinese.stdout and "处理步骤：" in chinese.stdout, chinese.stdout + chinese.stderr
    assert str(target) in subprocess.run([sys.executable, "-c", "import posdiag.core.paths as p; print(p.data_dir())"],
                                         cwd=tmp_path, capture_output=True, text=True,
                                         env={**os.environ, "PYTHONPATH": str(target)}).stdout


# --- what was not checked, and re-checks --------------------------------------------------------------

def test_nothing_configured_is_not_every_check_passed(config_file):
    rc, out, _ = run_cli("diagnose", "--json", "--config", str(config_file()))
    report = json.loads(out)
    none = report["diagnosis"]["causes"][0]
    assert rc == 0 and none["id"] == "none"
    assert none["certainty"] <= 0.6 and none["confidence"] <= 0.6
    assert "not checked: network — no payment host configured ([[payment_hosts]])" in none["evidence"]
    assert "not checked: card reader — no card reader configured ([reader] kind)" in none["evidence"]
    assert {u["area"] for u in report["diagnosis"]["not_checked"]} >= {"network", "reader"}


def test_nothing_configured_says_what_was_not_checked_in_both_languages(config_file):
    config = str(config_file())
    rc, out, _ = run_cli("diagnose", "--config", config)
    assert "Not checked:\n  - network — no payment host configured ([[payment_hosts]])" in out
    rc, out, _ = run_cli("diagnose", "--lang", "zh_CN", "--config", config)
    assert "未检查：\n  - 网络 — " in out and "  - 读卡器 — " in out
    rc, out, _ = run_cli("diagnose", "--format", "nagios", "--config", config)
    assert out.startswith("POSDIAG OK - no terminal-side fault found (") and "not checked: network, card reader" in out


@pytest.mark.parametrize(("lang", "every_check", "instead", "first_step"), [
    ("en", "Every check", "No fault in what was checked; not checked: network, card reader",
     "1. Configure what was not checked (network, card reader"),
    ("zh_CN", "所有检查都通过", "已检查的项目中没有发现故障；未检查：网络，读卡器", "1. 先配置未检查的项目（网络，读卡器")])
def test_nothing_configured_never_says_every_check_passed(config_file, lang, every_check, instead, first_step):
    """With network and reader not configured, "every check passed" would be untrue: the answer names
    what was not checked, and its first step is to configure it and run again, before escalating."""
    rc, out, _ = run_cli("diagnose", "--lang", lang, "--config", str(config_file()))
    assert rc == 0 and unwrapped(every_check) not in unwrapped(out)
    assert unwrapped(instead) in unwrapped(out) and unwrapped(first_step) in unwrapped(out)


def test_a_recheck_runs_what_the_asked_probe_needs(config_file):
    rc, out, _ = run_cli("diagnose", "--json", "--only", "network.tls", "--config", str(config_file()))
    report = json.loads(out)
    assert [p["name"] for p in report["probes"]] == ["network.link", "network.dns", "network.tcp", "network.tls"]
    assert report["only"] == {"asked": ["network.tls"], "prerequisites": ["network.link", "network.dns", "network.tcp"]}
    jsonschema.validate(report, SCHEMA)


def test_a_recheck_of_nothing_configured_could_not_diagnose_rather_than_healthy(config_file):
    rc, out, err = run_cli("diagnose", "--only", "network.tls", "--config", str(config_file()))
    assert rc == 3 and "cannot diagnose" in err
    rc, out, _ = run_cli("diagnose", "--format", "nagios", "--only", "network", "--config", str(config_file()))
    assert rc == 3 and out.startswith("POSDIAG UNKNOWN - ")


@pytest.mark.parametrize(("seconds", "said"), [(0, "0s"), (0.9, "0s"), (59, "59s"), (60, "1m"), (3600, "1h"),
                                               (86400, "1d"), (90061, "1d 1h 1m 1s"), (172800 + 7, "2d 7s")])
def test_the_daemons_uptime_is_said_in_days_hours_minutes_seconds_leaving_out_zeros(seconds, said):
    from posdiag.agent.cli import _age

    assert _age(seconds) == said


@pytest.mark.parametrize(("option", "value", "ok"), [
    ("--limit", "1", True), ("--limit", "0", False), ("--limit", "1000000", True), ("--limit", "1000001", False),
    ("--limit", "-1", False), ("--limit", "ten", False),
    ("--interval", "0.5", True), ("--interval", "0.49", False), ("--interval", "3600", True),
    ("--interval", "3600.1", False), ("--interval", "nan", False), ("--interval", "inf", False),
    ("--limit", "0" * 19 + "5", True), ("--limit", "0" * 20 + "5", False),  # at most 20 characters are read
    ("--interval", "0" * 17 + "2.5", True), ("--interval", "0" * 18 + "2.5", False),
])
def test_history_limit_and_watch_interval_take_their_documented_range_inclusive(option, value, ok):
    """``history --limit`` 1 to 1 000 000; ``watch --interval`` 0.5 s to an hour; both ends allowed; a
    value of more than 20 characters is refused unread."""
    import argparse

    from posdiag.agent.cli import _interval, _limit

    parse = {"--limit": _limit, "--interval": _interval}[option]
    if ok:
        assert parse(value) == float(value)
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(value)):
            parse(value)


def test_the_probes_get_the_deadline_less_start_up_and_keeping_but_never_under_half_of_it():
    """What cron or Nagios waits for is the whole command: the probes' share is the deadline less this
    process's start-up, a 0.1 s margin and the time keeping the report takes, and at least half."""
    from posdiag.agent.cli import _remaining, _startup_s

    started = _startup_s()  # this pytest process's age: seconds, or minutes into a whole run
    assert started > 0
    share = _remaining(10_000.0)
    assert 10_000.0 - 0.1 - _startup_s() <= share <= 10_000.0 - 0.1 - started
    kept = _remaining(10_000.0, 2.0)
    assert 10_000.0 - 2.1 - _startup_s() <= kept <= 10_000.0 - 2.1 - started
    assert _remaining(1.0, 5.0) == 0.5  # start-up and keeping take it all: half is left to the probes
    assert _remaining(10.0, 9.8) == 5.0


def test_the_progress_line_counts_the_seconds_since_the_sweep_started():
    import io
    import re
    import time

    from posdiag.agent.progress import Progress

    progress = Progress(io.StringIO())
    with progress:
        progress.started = time.monotonic() - 2.5  # the sweep started 2.5 s ago
        progress.on_running(("reader.serial", "network.tcp"), 7, 12)
        line = progress.line()
    seconds = float(re.fullmatch(r"probing… 7/12 done, waiting (\d+\.\d) s for: reader.serial, network.tcp", line)[1])
    assert 2.5 <= seconds < 60, line
    assert progress.ticker is None and progress.stream.getvalue() == ""  # not a terminal: nothing drawn


@pytest.mark.parametrize(("argv", "lang"), [
    (["--lang", "zh_CN", "probes"], "zh_CN"), (["probes", "--lang=zh_CN"], "zh_CN"),
    (["--lang", "zh_CN", "probes", "--lang", "en"], "en"),  # the last one wins, as argparse decides
    (["probes", "--", "--lang", "zh_CN"], None),  # after "--" it is an argument, not the option
    (["probes", "--lang"], None),  # no value: nothing chosen
])
def test_the_language_option_is_read_before_parsing_as_argparse_will_read_it(argv, lang):
    from posdiag.agent.cli import _option

    assert _option(argv, "--lang") == lang


def test_the_status_of_a_running_daemon_says_each_part_and_leaves_out_what_it_has_not(tmp_path):
    from posdiag.agent.cli import _status_text
    from posdiag.agent.outbox import empty_summary

    status = {"version": "0.1.0", "pid": 4242, "uptime_s": 3725, "config": "/etc/posdiag/posdiag.toml", "reloads": 1,
              "interval_s": 300, "sweeps": 7, "history_reports": 12, "txlog": None, "last_error": None,
              "push": {**empty_summary(), "configured": False},
              "last": {"verdict": "degraded", "top_cause": "none", "confidence": 0.38, "trigger": "schedule",
                       "started_at": "2026-12-06T10:00:00Z", "report_id": "3f2a9c1d-0000-4000-8000-000000000001",
                       "risks": 2, "soonest_risk": None}}
    text = "\n".join(_status_text(status, str(tmp_path)))
    assert text.startswith("posdiag daemon 0.1.0: running, pid 4242, up 1h 2m 5s")
    assert "2 ahead, the soonest due ?" in text and "not watched" in text and "problem:" not in text
    assert "every 300 s" in text and "(reloaded 1x)" in text and "7, history: 12 report(s)" in text
    quiet = "\n".join(_status_text({**status, "last": None, "txlog": "/var/log/pos.log", "last_error": "disk full"},
                                   str(tmp_path)))
    assert "last:" not in quiet and "risks:" not in quiet and "/var/log/pos.log" in quiet and "disk full" in quiet
    calm = "\n".join(_status_text({**status, "last": {**status["last"], "risks": 0}}, str(tmp_path)))
    assert "last:" in calm and "risks:" not in calm


def _pty(columns: int = 80):
    import fcntl
    import struct
    import termios

    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    return primary, os.fdopen(secondary, "w")


def test_a_slow_sweeps_progress_appears_after_a_second_is_redrawn_four_times_a_second_and_cleared():
    import time

    from posdiag.agent.progress import Progress

    primary, terminal = _pty()
    drawn: list[tuple[float, str]] = []
    try:
        quick = Progress(terminal, draw=lambda text: drawn.append((time.monotonic(), text)))
        with quick:
            quick.on_running(("clock",), 0, 1)
        assert drawn == []  # ended within its first second: nothing shown, nothing to clear
        slow = Progress(terminal, draw=lambda text: drawn.append((time.monotonic(), text)))
        with slow:
            slow.on_running(("clock",), 0, 1)
            time.sleep(2.9)
        began = slow.started
    finally:
        terminal.close()
        os.close(primary)
    lines = [text for _, text in drawn]
    assert lines[-1] == "" and all(text.startswith("probing… 0/1 done, waiting ") for text in lines[:-1]), lines
    # drawn from 1 s on, every 0.25 s: about eight times in 2.9 s, give or take the load
    assert drawn[0][0] - began >= 0.95 and 3 <= len(lines) - 1 <= 14, [round(t - began, 2) for t, _ in drawn]


def test_the_progress_line_is_clipped_to_one_cell_less_than_the_terminal_and_a_terminal_gone_is_let_go():
    from posdiag.agent.progress import Progress, is_terminal

    primary, terminal = _pty(columns=30)
    try:
        progress = Progress(terminal)
        assert progress.enabled and is_terminal(terminal)
        progress._draw_line("probing… 0/1 done, waiting 1.0 s for: network.tcp")
        seen = os.read(primary, 4096).decode()
        assert seen == "\r\x1b[K" + "probing… 0/1 done, waiting 1…", seen  # 29 cells: the cursor keeps the 30th
        terminal.close()
        progress._draw_line("again")
        assert progress.enabled is False and is_terminal(terminal) is False
    finally:
        if not terminal.closed:
            terminal.close()
        os.close(primary)
    assert is_terminal(object()) is False


def test_a_re_check_of_a_layer_and_what_it_needs_runs_each_once_and_counts_none_asked_as_needed():
    from posdiag.agent.sweep import asked, prerequisites, select_probes

    network = [n for n in probes.CATALOGUE if n.startswith("network.")]
    assert asked(["network.tcp", "network", "network.tcp"]) == ["network.tcp", *(n for n in network if n != "network.tcp")]
    assert prerequisites(["network.tls", "network.tcp"]) == ["network.link", "network.dns"]  # tcp was asked
    assert select_probes(["network.tls", "network.tcp"]) == ["network.link", "network.dns", "network.tcp", "network.tls"]
    assert select_probes(None) == select_probes([]) == list(probes.CATALOGUE)


def test_without_proc_the_processs_age_comes_from_psutil_and_is_never_negative(monkeypatch):
    """Where /proc cannot be read, start-up is the process's age by psutil: seconds, not the epoch."""
    import builtins
    import time

    import psutil
    from posdiag.agent import cli

    real_open = builtins.open

    def no_proc(path, *args, **kw):
        if str(path) in ("/proc/self/stat", "/proc/uptime"):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kw)

    monkeypatch.setattr(builtins, "open", no_proc)
    before = time.time() - psutil.Process().create_time()
    age = cli._startup_s()
    assert 0 < before <= age <= time.time() - psutil.Process().create_time()
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: time.time() + 60)  # a clock set back since
    assert cli._startup_s() == 0.0


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_the_history_tables_confidence_is_right_aligned_under_its_heading_in_both_languages(lang):
    """"conf" is four cells, 置信度 six: each percentage ends where the heading ends."""
    from types import SimpleNamespace

    from posdiag.agent.cli import _history_table
    from posdiag.agent.columns import display_width
    from posdiag.core import i18n

    i18n.use(lang)
    try:
        rows = [SimpleNamespace(started_at=1_800_000_000 + i, trigger="schedule", verdict="degraded", top_cause="none",
                                confidence=c, report_id=f"id-{i}") for i, c in enumerate((0.05, 0.38, 1.0))]
        lines = _history_table(rows, {r.report_id: f"ab{i}" for i, r in enumerate(rows)})
        heading = i18n.tr("conf")
    finally:
        i18n.use("en")
    head_end = display_width(lines[0][:lines[0].index(heading) + len(heading)])
    ends = [display_width(line[:line.index("%") + 1]) for line in lines[1:]]
    assert ends == [head_end] * 3, "\n".join(lines)
    assert [line.split()[-1] for line in lines[1:]] == ["ab0", "ab1", "ab2"]


def test_a_closed_standard_output_is_said_on_standard_error_with_exit_3(monkeypatch):
    import io

    from posdiag.agent.cli import main

    monkeypatch.setattr("sys.stdout", None)
    err = io.StringIO()
    assert main(["probes"], None, err) == 3
    assert "cannot write the output" in err.getvalue()


@pytest.mark.parametrize(("state", "push", "kept"), [("missing", False, False), ("writable", False, True),
                                                     ("missing", True, True)], ids=["not-kept", "kept", "pushed"])
def test_a_diagnosis_that_keeps_or_queues_its_report_leaves_150_ms_of_the_deadline_for_it(config_file, tmp_path,
                                                                                         monkeypatch, state, push, kept):
    """The probes' share is the deadline less start-up and 0.1 s, and less 0.15 s more when the report is
    then kept in the history or queued for the server. (Start-up is fixed here: the share is pure logic.)"""
    import io

    from posdiag.agent import cli, sweep
    from posdiag.core import settings as config

    settings = config.load(str(config_file(diagnosis={"deadline_s": 4.0})))
    if state == "writable":
        os.makedirs(settings.daemon.state_dir, exist_ok=True)
    shares: list[float] = []
    real = sweep.run_sweep
    monkeypatch.setattr(cli, "_startup_s", lambda: 0.25)
    monkeypatch.setattr(sweep, "run_sweep", lambda s, **kw: shares.append(kw["deadline_s"]) or real(s, **kw))
    monkeypatch.setattr("posdiag.agent.push.queue", lambda *args: True)  # queueing itself is test_push's
    cli._diagnose(settings, "json", io.StringIO(), io.StringIO(), only=["memory"], push=push)
    assert shares == [pytest.approx(4.0 - 0.25 - 0.1 - (0.15 if kept else 0.0))]


def test_only_takes_a_whole_area_by_its_dotted_prefix_and_never_part_of_a_name():
    from posdiag.agent.sweep import UnknownProbe, select_probes

    assert select_probes(["disk"]) == ["disk", "disk.health"] and select_probes(["disk.health"]) == ["disk.health"]
    for name in ("net", "network.", "reader.serial.x"):  # a prefix is a whole area, never part of a name
        with pytest.raises(UnknownProbe, match=repr(name)):
            select_probes([name])
