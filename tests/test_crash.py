"""system.crashed: the kernel's own failures written to the real /dev/kmsg, a POS process really
killed and restarted between real daemon sweeps, the previous boot's end as the journal and the
kernel's saved records tell it (files in the kernel's format under a test root)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from labs import kernel
from labs.commands import diagnose_json, run_cli, run_posdiag
from labs.daemonlab import DaemonProcess
from labs.helpers import codes_of, fill_filesystem, probe_of, top_cause, unwrapped, wait_for
from labs.history import past_report, stored
from posdiag.agent.report import render_text
from posdiag.agent.store import Store
from posdiag.core.timefmt import utc_iso
from posdiag.probes import _lastboot, _restarts
from posdiag.probes._procs import find_processes

OOPS = ("BUG: kernel NULL pointer dereference, address: 0000000000000008",
        "Oops: 0002 [#1] PREEMPT SMP NOPTI",
        "CPU: 1 PID: 4242 Comm: posapp Tainted: G      D            6.1.0 #1")


def causes(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["diagnosis"]["causes"]}


@pytest.mark.root
def test_kernel_oops_in_the_kernel_log_blames_an_os_crash(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000})
    with kernel.records(*OOPS):
        rc, report = diagnose_json(config, "--only", "system")
    assert rc == 2 and top_cause(report) == "system.crashed"
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.kernel_oops")
    assert finding["data"]["count"] == 2 and "NULL pointer dereference" in finding["data"]["first"]


@pytest.mark.root
def test_an_os_crash_reads_as_such_in_chinese(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000})
    with kernel.records(*OOPS):
        proc = run_posdiag("--lang", "zh_CN", "diagnose", "--only", "system", "--config", str(config))
    assert proc.returncode == 2
    assert "操作系统崩溃" in proc.stdout and "[system.crashed" in proc.stdout
    assert "内核出错 2 次" in proc.stdout


@pytest.mark.root
def test_records_cleared_with_dmesg_are_no_longer_evidence(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000})
    with kernel.records(*OOPS):
        pass  # the technician dealt with it: dmesg --clear
    rc, report = diagnose_json(config, "--only", "system.crash")
    assert rc == 0 and "crash.kernel_oops" not in codes_of(report, "system.crash")


@pytest.mark.root
def test_a_hung_task_is_a_warning_not_yet_a_crash(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg"})
    with kernel.records("INFO: task posapp:4242 blocked for more than 120 seconds."):
        rc, report = diagnose_json(config, "--only", "system.crash")
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.hung_task")
    assert rc == 1 and finding["severity"] == "warn" and finding["data"]["tasks"] == ["posapp"]


@pytest.mark.root
def test_the_oom_killer_taking_the_pos_is_a_crash_of_it_and_a_sign_of_memory(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg"}, terminal={"pos_process": "posapp"})
    with kernel.records("Out of memory: Killed process 4242 (posapp) total-vm:812345kB, anon-rss:512000kB, "
                        "file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:1200kB oom_score_adj:0",
                        "Out of memory: Killed process 4343 (chromium) total-vm:1kB"):
        rc, report = diagnose_json(config, "--only", "system.crash")
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.pos_oom_killed")
    assert finding["data"]["pids"] == [4242]  # another process's death is the memory probe's business
    assert rc == 2 and {"system.crashed", "memory.exhausted"} <= set(causes(report))


@pytest.mark.root
def test_a_crash_and_a_full_disk_are_two_faults_each_certain_on_its_own_evidence(config_file, tmpfs):
    full = tmpfs("1m")
    fill_filesystem(full)
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000},
                         disk={"paths": [str(full)], "min_free_mb": 1})
    with kernel.records(*OOPS):
        rc, report = diagnose_json(config, "--only", "disk,system")
    found = causes(report)
    assert rc == 2 and {"system.crashed", "disk.full"} <= set(found)
    # neither explains the other: each stands on its own evidence, nothing of one shown as the other's consequence
    assert any("kernel failed" in e for e in found["system.crashed"]["evidence"])
    assert any(str(full) in e for e in found["disk.full"]["evidence"])
    assert not found["system.crashed"]["consequences"] and not found["disk.full"]["consequences"]
    for cause in ("system.crashed", "disk.full"):  # independent faults do not share a certainty
        assert found[cause]["certainty"] >= 0.8
    headed = re.findall(r"Fault(\d)of(\d):[^\[]*\[([\w.]+),", unwrapped(render_text(report)))
    assert [(i, n) for i, n, _ in headed] == [("1", "2"), ("2", "2")], headed
    assert {cause for _, _, cause in headed} == {"system.crashed", "disk.full"}


def start_pos(folder: Path, name: str) -> subprocess.Popen:
    """A process named like the POS application: a copy of sleep under that name."""
    binary = folder / name
    if not binary.exists():
        shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    return subprocess.Popen([str(binary), "600"])


def seen_starts(state: Path) -> list[float]:
    """The POS start times the daemon recorded in its store."""
    if not (state / "history.sqlite3").exists():
        return []
    with Store(state) as store:
        return store.pos_starts()


def test_a_pos_restarting_three_times_between_scheduled_sweeps_is_found_by_the_daemon_itself(config_file, tmp_path):
    """The daemon at its defaults — a sweep every 300 s, a look at the POS every 10 s, 3 restarts in
    10 min a crash loop — and nobody asking it to diagnose: a POS killed and started again three
    times within a minute or so is reported as a crash loop by a sweep the daemon brings forward."""
    name = f"posfc{os.getpid() % 100000}"
    config = config_file(terminal={"pos_process": name})
    state = tmp_path / "state"
    pos = start_pos(tmp_path, name)
    daemon = DaemonProcess(config, state)
    try:
        assert wait_for(lambda: len(daemon.reports()) >= 1 and len(seen_starts(state)) == 1, 30), daemon.output()
        for restarts in range(1, 4):
            pos.kill()
            pos.wait()
            pos = start_pos(tmp_path, name)  # it crashed; its supervisor starts it again
            assert wait_for(lambda n=restarts: len(seen_starts(state)) == n + 1, 30), daemon.output()
        assert wait_for(lambda: len(daemon.reports()) >= 2, 30), daemon.output()
        newest, boot = daemon.reports()[0], daemon.reports()[-1]
    finally:
        pos.kill()
        pos.wait()
        daemon.stop()
    assert newest.trigger == "schedule" and newest.top_cause == "system.crashed"
    assert newest.started_at - boot.started_at < 300 * 0.95  # brought forward: not the scheduled sweep
    assert "diagnosing now" in daemon.output()
    with Store(state) as store:
        report = store.get(newest.report_id)
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.pos_restarting")
    assert finding["data"]["restarts"] == 3 and finding["data"]["source"] == "start_times"


def test_a_restart_limit_the_daemon_could_never_see_within_the_window_is_refused(config_file):
    """One restart a look at most: 100 restarts cannot be seen within a minute when it looks every 10 s."""
    rc, _, err = run_cli("config", "check", "--config", str(config_file(
        terminal={"pos_process": "posapp"}, system={"restart_limit": 100, "restart_window_min": 1})))
    assert rc == 3 and "system.restart_limit: 100 restarts cannot be seen within restart_window_min = 1 min" in err
    rc, _, err = run_cli("config", "check", "--config", str(config_file(
        terminal={"pos_process": "posapp"}, system={"restart_limit": 6, "restart_window_min": 1})))
    assert rc == 0, err  # six restarts seen by looks 10 s apart span 50 s: they fit in the minute
    rc, _, err = run_cli("config", "check", "--config", str(config_file(  # systemd counts every restart of a unit
        terminal={"pos_process": "posapp", "pos_unit": "posapp.service"},
        system={"restart_limit": 100, "restart_window_min": 1})))
    assert rc == 0, err


def test_restarts_are_counted_only_within_the_window():
    now = time.time()
    starts = [now - 3600, now - 3600, None, now - 500, now - 400, now - 400, now - 10]
    assert _restarts.restarts_seen(starts, since=now - 600) == [now - 500, now - 400, now - 10]
    assert _restarts.restarts_seen(starts, since=now - 60) == [now - 10]


def test_systemd_restart_count_is_read_from_systemctl_show():
    state = _restarts.parse_show("NRestarts=5\nActiveState=active\nLoadState=loaded\n"
                                 "ExecMainStartTimestampMonotonic=123456789\n")
    assert (state.restarts, state.active, state.started_monotonic_us) == (5, "active", 123456789)
    assert _restarts.parse_show("NRestarts=0\nLoadState=not-found\n").restarts is None


def stand_in_systemctl(folder: Path, *, says: str = "", stderr_lines: tuple[str, ...] = (), rc: int = 0) -> str:
    """A ``systemctl`` answering as one talking to a systemd PID 1 can (this machine's PID 1 is not
    systemd): ``says`` on stdout, ``stderr_lines`` on stderr, exit ``rc``. Returns the PATH that finds it first."""
    folder.mkdir()
    tool = folder / "systemctl"
    tool.write_text("#!/bin/sh\n" + "".join(f"echo '{line}'\n" for line in says.splitlines())
                    + "".join(f"echo '{line}' >&2\n" for line in stderr_lines) + f"exit {rc}\n")
    tool.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


@pytest.mark.parametrize(("restarts", "started_s_ago", "before", "looping"), [
    (5, 60, None, True),  # no sweep before the window: the last restart is within it, all five count
    (5, 20 * 60, None, False),  # running for 20 min: the restarts were before the 10-min window
    (5, 60, 4, False),  # a sweep 15 min ago counted 4: one restart since, below the limit
    (5, 60, 1, True),  # it counted 1: four since
    (5, 5 * 60, None, True)],  # the last restart 5 min ago: within the 10-min window
    ids=["restarted-just-now", "running-20-min", "one-since-the-last-sweep", "four-since-the-last-sweep",
         "restarted-5-min-ago"])
def test_systemd_s_restarts_within_the_window_are_a_crash_loop(config_file, tmp_path, monkeypatch, restarts,
                                                                started_s_ago, before, looping):
    started_us = int((time.monotonic() - started_s_ago) * 1e6)
    monkeypatch.setenv("PATH", stand_in_systemctl(tmp_path / "bin", says=f"NRestarts={restarts}\nActiveState=active\n"
                                                  f"LoadState=loaded\nExecMainStartTimestampMonotonic={started_us}"))
    if before is not None:
        stored(tmp_path, [past_report(time.time() - 15 * 60, {"system.crash": {"pos_unit_restarts": before}})])
    config = config_file(terminal={"pos_unit": "posapp.service"}, system={"restart_limit": 3, "restart_window_min": 10})
    rc, report = diagnose_json(config, "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert ("crash.pos_restarting" in found) is looping, found
    if looping:
        assert found["crash.pos_restarting"]["data"]["source"] == "systemd"


def test_a_unit_systemd_cannot_report_is_said_so(config_file):
    """This machine's PID 1 is not systemd (or the unit does not exist): the count is unknown, not zero."""
    rc, report = diagnose_json(config_file(terminal={"pos_unit": "posdiag-test-nonexistent.service"}),
                               "--only", "system.crash")
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.unit_unreadable")
    assert finding["data"]["unit"] == "posdiag-test-nonexistent.service" and rc == 0


def test_systemctls_own_words_are_shown_when_it_fails_cut_to_a_line_of_200_characters(config_file, tmp_path,
                                                                                    monkeypatch):
    """systemctl's last line says why (a denial, a bus time-out); a short one is shown whole, and one as
    long as a D-Bus error can be is cut, so that one finding cannot swell the report."""
    cfg = config_file(terminal={"pos_unit": "posapp.service"})
    short = "Failed to get properties: Access denied"
    long = "Failed to get properties: Connection timed out: " + "the bus did not answer; " * 12 + "END"
    for folder, said, shown in (("short", short, short), ("long", long, long[:200])):
        monkeypatch.setenv("PATH", stand_in_systemctl(tmp_path / folder, stderr_lines=("Warning: an earlier line", said),
                                                      rc=1))
        _, report = diagnose_json(cfg, "--only", "system.crash")
        finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.unit_unreadable")
        assert finding["message"].endswith(f"({shown})"), finding["message"]
        assert "earlier line" not in finding["message"]


JOURNAL_CLEAN = "\n".join([
    '{"__REALTIME_TIMESTAMP":"1764990000000000","MESSAGE":"Stopped target Multi-User System."}',
    '{"__REALTIME_TIMESTAMP":"1764990001000000","MESSAGE_ID":"98268866d1d54a499c4e98921d93bc40",'
    '"MESSAGE":"System is powering down."}',
    '{"__REALTIME_TIMESTAMP":"1764990002000000","MESSAGE":"Journal stopped"}'])
JOURNAL_CUT = "\n".join([
    '{"__REALTIME_TIMESTAMP":"1764990000000000","MESSAGE":"posapp[812]: transaction 1234 sent"}',
    '{"__REALTIME_TIMESTAMP":"1764990005000000","MESSAGE":[80,79,83]}',
    '{"__REALTIME_TIMESTAMP":"1764990009000000","MESSAGE":"systemd-timesyncd[301]: Contacted time server"}'])


def test_a_previous_boot_that_ends_in_ordinary_work_was_not_shut_down():
    cut = _lastboot.parse_journal_tail(JOURNAL_CUT)
    assert cut.known and not cut.clean and cut.ended_at == 1764990009.0
    clean = _lastboot.parse_journal_tail(JOURNAL_CLEAN)
    assert clean.known and clean.clean


def test_the_previous_boots_end_is_asked_once_per_boot_and_again_after_a_journal_that_timed_out(tmp_path, monkeypatch):
    """It cannot change while this boot runs, so the daemon asks journalctl once per boot; a journal too
    slow to answer in time is asked again at the next sweep, not taken as the answer for the whole boot."""
    hang, answered_calls = tmp_path / "hang", tmp_path / "answered"
    folder = tmp_path / "bin"
    folder.mkdir()
    tool = folder / "journalctl"  # hangs while told to (a busy journal), else answers and counts it
    tool.write_text(f'#!/bin/sh\n[ -e "{hang}" ] && exec sleep 30\necho x >> "{answered_calls}"\n'
                    f"cat <<'END'\n{JOURNAL_CUT}\nEND\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    monkeypatch.setattr(_lastboot, "_asked", {})  # what other tests of this process asked is not this boot's
    boot = tmp_path / "boot_id"
    boot.write_text("0f6b5a1e-2824-4c1e-9d3e-000000000001\n")

    def answers() -> int:
        return len(answered_calls.read_text().splitlines())

    hang.touch()
    assert _lastboot.journal_end(0.3, str(boot)).why == "timeout"
    hang.unlink()
    answered = _lastboot.journal_end(10.0, str(boot))
    assert answered.known and answered.ended_at == 1764990009.0 and answers() == 1
    assert _lastboot.journal_end(10.0, str(boot)) == answered and answers() == 1  # kept for the rest of the boot


def test_without_a_previous_boot_in_the_journal_the_probe_says_so(config_file):
    rc, report = diagnose_json(config_file(), "--only", "system.crash")
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.previous_boot_unknown")
    assert finding["data"]["why"] in ("no-journalctl", "no-previous-boot", "timeout", "error")
    assert rc == 0


def test_crash_records_kept_across_the_reboot_blame_an_os_crash(config_file, tmp_path):
    root = tmp_path / "root"
    pstore = root / "sys/fs/pstore"
    pstore.mkdir(parents=True)
    (pstore / "dmesg-ramoops-0").write_text("Panic#1 Part1\n<0>[  812.123456] Kernel panic - not syncing: Fatal "
                                            "exception in interrupt\n")
    dump = root / "var/crash/202612060101"
    dump.mkdir(parents=True)
    (dump / "dmesg.202612060101").write_text("[  812.1] Kernel panic - not syncing: Fatal exception\n")
    rc, report = diagnose_json(config_file(system={"host_root": str(root)}), "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert found["crash.pstore"]["data"]["reasons"] == ["Panic"] and found["crash.kdump"]["data"]["count"] == 1
    assert rc == 2 and top_cause(report) == "system.crashed"


def test_saved_crash_records_older_than_the_window_are_history(config_file, tmp_path):
    pstore = tmp_path / "root/sys/fs/pstore"
    pstore.mkdir(parents=True)
    old = pstore / "dmesg-efi-1"
    old.write_text("Oops#1 Part1\n")
    os.utime(old, (time.time() - 3 * 86400, time.time() - 3 * 86400))
    rc, report = diagnose_json(config_file(system={"host_root": str(tmp_path / "root"), "kernel_log_window_h": 24}),
                               "--only", "system.crash")
    assert "crash.pstore" not in codes_of(report, "system.crash") and rc == 0


#: what the kernel logs when an ordinary program crashes: the program's fault, not the kernel's
OTHER_PROGRAM_CRASHES = (
    "traps: chromium[4343] general protection fault ip:7f3a1c2b4e10 sp:7ffd5a3c8e40 error:0 in libc.so.6[7f3a1c200000+195000]",
    "chromium[4344]: segfault at 8 ip 00007f3a1c2b4e10 sp 00007ffd5a3c8e40 error 4 in libc.so.6[7f3a1c200000+195000]")


@pytest.mark.root
def test_another_programs_crash_is_not_a_crash_of_the_system(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000}, terminal={"pos_process": "posapp"})
    with kernel.records(*OTHER_PROGRAM_CRASHES):
        rc, report = diagnose_json(config, "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert "crash.kernel_oops" not in found and "crash.pos_segfault" not in found
    assert "system.crashed" not in causes(report) and rc == 0
    other = found["crash.program_crashed"]  # said, as a piece of information only
    assert other["severity"] == "info" and other["data"]["programs"] == {"chromium": 2}


@pytest.mark.root
@pytest.mark.parametrize("line", [
    "traps: posapp[4242] general protection fault ip:55d0c2a1b2c3 sp:7ffd5a3c8e40 error:0 in posapp[55d0c2a00000+20000]",
    "posapp[4242]: segfault at 0 ip 000055d0c2a1b2c3 sp 00007ffd5a3c8e40 error 4 in posapp[55d0c2a00000+20000]"],
    ids=["general-protection-fault", "segfault"])
def test_the_pos_crashing_in_user_space_is_evidence_of_its_crash(config_file, line):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000}, terminal={"pos_process": "posapp"})
    with kernel.records(line):
        rc, report = diagnose_json(config, "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert "crash.kernel_oops" not in found
    assert found["crash.pos_segfault"]["data"]["pids"] == [4242] and "POS application 'posapp'" in \
        found["crash.pos_segfault"]["message"]
    assert rc == 2 and top_cause(report) == "system.crashed"


@pytest.mark.root
@pytest.mark.parametrize("line", [
    "general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI",
    "general protection fault: 0000 [#1] SMP PTI",
    "Oops: 0002 [#1] PREEMPT SMP NOPTI",
    "kernel BUG at mm/slub.c:305!"],
    ids=["gpf-non-canonical", "gpf", "oops", "kernel-bug-at"])
def test_the_kernels_own_oops_is_still_a_crash_of_the_system(config_file, line):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000})
    with kernel.records(line):
        rc, report = diagnose_json(config, "--only", "system.crash")
    assert "crash.kernel_oops" in codes_of(report, "system.crash")
    assert rc == 2 and top_cause(report) == "system.crashed"


def stand_in_journalctl(folder: Path, *, tail: list[tuple[float, str]], kernel: list[tuple[float, str]]) -> str:
    """A ``journalctl`` that keeps a previous boot (this machine's journal keeps none): ``tail`` as the
    boot's last records, ``kernel`` as its kernel messages (asked with ``-k``). Returns the PATH that finds it."""
    folder.mkdir()
    answers = {}
    for name, records in (("tail", tail), ("kernel", kernel)):
        answers[name] = folder / f"{name}.json"
        answers[name].write_text("".join(json.dumps({"__REALTIME_TIMESTAMP": str(int(t * 1e6)), "MESSAGE": m}) + "\n"
                                         for t, m in records))
    tool = folder / "journalctl"
    tool.write_text("#!/bin/sh\ncase \" $* \" in *\" -k \"*) exec cat " + str(answers["kernel"]) + " ;; esac\n"
                    f"exec cat {answers['tail']}\n")
    tool.chmod(0o755)
    return f"{folder}:/usr/bin:/bin"


def fresh_boot(root: Path) -> Path:
    """A test root with a boot id of its own: what the journal said of the previous boot is asked anew."""
    (root / "proc/sys/kernel/random").mkdir(parents=True)
    (root / "proc/sys/kernel/random/boot_id").write_text(f"{os.getpid()}-{time.monotonic_ns()}\n")
    return root


def test_an_oops_and_the_pos_killed_before_the_reboot_are_evidence_of_a_crash(config_file, tmp_path, monkeypatch):
    before = time.time() - 3600
    monkeypatch.setenv("PATH", stand_in_journalctl(tmp_path / "bin", tail=[(before + 60, "systemd[1]: Started Session 4.")],
                                                   kernel=[(before, "usb 1-1: new full-speed USB device number 3"),
                                                           (before + 10, "Out of memory: Killed process 812 (posapp) "
                                                                         "total-vm:812345kB, anon-rss:512000kB"),
                                                           (before + 20, OTHER_PROGRAM_CRASHES[1]),
                                                           (before + 30, OOPS[1])]))
    config = config_file(terminal={"pos_process": "posapp"}, system={"host_root": str(fresh_boot(tmp_path / "root"))})
    rc, report = diagnose_json(config, "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert found["crash.kernel_oops"]["data"] == {"count": 1, "first": OOPS[1], "boot": "previous"}
    assert found["crash.pos_oom_killed"]["data"]["pids"] == [812] and found["crash.pos_oom_killed"]["data"]["boot"] == \
        "previous"
    assert found["crash.kernel_oops"]["message"].startswith("before the last reboot")
    assert "crash.pos_segfault" not in found  # another program's crash in that boot is no evidence either
    assert rc == 2 and top_cause(report) == "system.crashed"


def test_the_previous_boot_s_kernel_messages_are_asked_once_per_boot(config_file, tmp_path, monkeypatch):
    before = time.time() - 3600
    monkeypatch.setenv("PATH", stand_in_journalctl(tmp_path / "bin", tail=[(before + 60, "systemd[1]: Started Session 4.")],
                                                   kernel=[(before, OOPS[1])]))
    config = config_file(system={"host_root": str(fresh_boot(tmp_path / "root"))})
    diagnose_json(config, "--only", "system.crash")
    (tmp_path / "bin/journalctl").write_text("#!/bin/sh\nexit 1\n")  # asked again, it would say no previous boot
    rc, report = diagnose_json(config, "--only", "system.crash")
    assert "crash.kernel_oops" in codes_of(report, "system.crash") and rc == 2


def test_without_journalctl_the_previous_boot_s_kernel_messages_are_not_checked_and_said_so(config_file, tmp_path,
                                                                                             monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    config = config_file(system={"host_root": str(fresh_boot(tmp_path / "root"))})
    rc, report = diagnose_json(config, "--only", "system.crash")
    finding = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.previous_boot_unknown")
    assert finding["data"]["why"] == "no-journalctl" and "kernel messages" in finding["message"]
    assert "not checked" in finding["message"] and rc == 0


def test_saved_crash_records_are_looked_for_one_folder_down_and_no_deeper(tmp_path):
    """pstore's archive and kdump keep a folder per crash: a record there counts, one buried a level
    further down (a technician's copy of old dumps) does not."""
    crash = tmp_path / "var/crash"
    (crash / "202612060101").mkdir(parents=True)
    (crash / "202612060101/dmesg.202612060101").write_text("panic\n")
    (crash / "old/202501010101").mkdir(parents=True)
    (crash / "old/202501010101/dump.202501010101").write_text("panic\n")
    (crash / "vmcore.flat").write_text("")
    assert sorted(c.path for c in _lastboot.kdump_dumps(str(crash))) == [str(crash), str(crash / "202612060101")]
    pstore = tmp_path / "pstore"
    (pstore / "boot-1/deeper").mkdir(parents=True)
    for path in ("dmesg-efi-1", "boot-1/dmesg-efi-2", "boot-1/deeper/dmesg-efi-3", "boot-1/notes.txt"):
        (pstore / path).write_text("Oops#1 Part1\n")
    assert sorted(c.path for c in _lastboot.pstore_records([str(pstore)])) == [str(pstore / "boot-1/dmesg-efi-2"),
                                                                               str(pstore / "dmesg-efi-1")]


def test_saved_crash_findings_name_the_newest_record_and_dump(config_file, tmp_path):
    """Two pstore records and two kdump dumps an hour apart: each finding says when the last one was."""
    root = tmp_path / "root"
    older, newer = time.time() - 7200, time.time() - 3600
    pstore = root / "sys/fs/pstore"
    pstore.mkdir(parents=True)
    for name, at in (("dmesg-ramoops-0", older), ("dmesg-ramoops-1", newer)):
        (pstore / name).write_text("Oops#1 Part1\n")
        os.utime(pstore / name, (at, at))
    for name, at in (("202612060101", older), ("202612060201", newer)):
        (root / "var/crash" / name).mkdir(parents=True)
        (root / "var/crash" / name / f"dmesg.{name}").write_text("panic\n")
        os.utime(root / "var/crash" / name / f"dmesg.{name}", (at, at))
    rc, report = diagnose_json(config_file(system={"host_root": str(root)}), "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert found["crash.pstore"]["message"].endswith(f"the last at {utc_iso(newer)}"), found["crash.pstore"]
    assert found["crash.pstore"]["data"]["count"] == 2 and found["crash.kdump"]["data"]["count"] == 2
    assert f"the last at {utc_iso(newer)} ({root / 'var/crash/202612060201'})" in found["crash.kdump"]["message"]


@pytest.mark.parametrize(("age_h", "counted"), [(1.9, True), (2.1, False)], ids=["within-the-window", "older"])
def test_a_kernel_oops_is_evidence_only_within_the_kernel_log_window(config_file, tmp_path, age_h, counted):
    """A kernel log of one record (/dev/kmsg's format, its time on the monotonic clock), ``age_h`` old, against a
    window of 2 h. The oops is long: the finding keeps its first 300 characters, the message its first 160."""
    oops = OOPS[0] + " " + "x" * 400
    log = tmp_path / "oops.kmsg"
    log.write_text(f"2,1,{int((time.monotonic() - age_h * 3600) * 1e6)},-;{oops}\n")
    rc, report = diagnose_json(config_file(system={"kernel_log": str(log), "kernel_log_window_h": 2}),
                               "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert ("crash.kernel_oops" in found) is counted, found
    assert probe_of(report, "system.crash")["metrics"]["kernel_oopses"] == int(counted)
    if counted:
        assert found["crash.kernel_oops"]["data"] == {"count": 1, "first": oops[:300], "window_h": 2}
        assert found["crash.kernel_oops"]["message"] == f"the kernel failed 1 time in the last 2 h: {oops[:160]}"
        assert rc == 2 and top_cause(report) == "system.crashed"


@pytest.mark.parametrize(("apart_s", "restarted"), [(0.01, False), (0.05, True)], ids=["rounding", "a-restart"])
def test_two_start_times_are_one_process_only_within_rounding(apart_s, restarted):
    """Start times are kept to the hundredth: 10 ms apart is the same process seen twice, 50 ms a restart."""
    now = time.time()
    assert _restarts.restarts_seen([now - 100, now - 100 + apart_s], since=now - 600) == \
        ([now - 100 + apart_s] if restarted else [])


def test_a_restart_at_the_start_of_the_window_counts():
    now = time.time()
    assert _restarts.restarts_seen([now - 700, now - 600], since=now - 600) == [now - 600]


@pytest.mark.parametrize(("restarts", "looping"), [(3, True), (2, False)], ids=["3-of-3", "2-of-3"])
def test_the_pos_restarting_as_often_as_the_limit_is_a_crash_loop(config_file, tmp_path, restarts, looping):
    """Start times seen by earlier sweeps within the 10-minute window; the default limit is 3 restarts."""
    now = time.time()
    stored(tmp_path, [past_report(now - 500 + i * 100, {"system": {"pos_start_time_s": now - 505 + i * 100}})
                      for i in range(restarts + 1)])
    rc, report = diagnose_json(config_file(terminal={"pos_process": f"posgone{os.getpid()}"}), "--only", "system.crash")
    found = {f["code"]: f for f in probe_of(report, "system.crash")["findings"]}
    assert probe_of(report, "system.crash")["metrics"]["pos_restarts_seen"] == restarts
    if looping:
        assert found["crash.pos_restarting"]["data"]["restarts"] == 3 and "crash.pos_restarts" not in found
        assert "(limit 3)" in found["crash.pos_restarting"]["message"]
    else:
        assert "crash.pos_restarting" not in found and found["crash.pos_restarts"]["severity"] == "info"
        assert found["crash.pos_restarts"]["message"].endswith("restarted 2 times in 10 min")


@pytest.mark.parametrize(("window_min", "seen"), [(10, 0), (15, 3)])
def test_the_pos_restarts_counted_are_those_of_the_last_restart_window_min_minutes(config_file, tmp_path, window_min,
                                                                                    seen):
    """Three restarts 11 to 13 minutes ago: outside a 10-minute window, all inside a 15-minute one."""
    now = time.time()
    starts = [now - 900, now - 780, now - 720, now - 660]  # the process 15 min ago, then three restarts
    stored(tmp_path, [past_report(start + 5, {"system": {"pos_start_time_s": start}}) for start in starts])
    rc, report = diagnose_json(config_file(terminal={"pos_process": f"posgone{os.getpid()}"},
                                           system={"restart_window_min": window_min}), "--only", "system.crash")
    assert probe_of(report, "system.crash")["metrics"]["pos_restarts_seen"] == seen, probe_of(report, "system.crash")


@pytest.mark.parametrize(("restarted_in", "looping"), [("the-last-30", True), ("earlier-sweeps", False)])
def test_pos_restarts_are_looked_for_in_the_last_30_sweeps(config_file, tmp_path, restarted_in, looping):
    """40 sweeps 10 s apart, all within the 10-minute window: three restarts seen by sweeps among the last 30
    are a crash loop; the same three seen only by the 10 sweeps before them are no longer looked at."""
    now = time.time()
    first = 11 if restarted_in == "the-last-30" else 1  # the sweep that sees the first of the three restarts
    restarts = [now - 500, now - 450, now - 400]
    starts = [now - 590 if i < first else restarts[min(i - first, 2)] for i in range(40)]
    stored(tmp_path, [past_report(now - 400 + i * 10, {"system": {"pos_start_time_s": start}})
                      for i, start in enumerate(starts)])
    rc, report = diagnose_json(config_file(terminal={"pos_process": f"posgone{os.getpid()}"}), "--only", "system.crash")
    assert ("crash.pos_restarting" in codes_of(report, "system.crash")) is looping, probe_of(report, "system.crash")


def test_a_journal_without_the_previous_boot_is_said_in_journalctl_s_own_last_words(config_file, tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "journalctl").write_text("#!/bin/sh\necho 'Hint: a first line' >&2\n"
                                       "echo 'Data from the specified boot (-1) is not available: No such boot ID' >&2\n"
                                       "exit 1\n")
    (folder / "journalctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    config = config_file(system={"host_root": str(fresh_boot(tmp_path / "root"))})
    rc, report = diagnose_json(config, "--only", "system.crash")
    unknown = [f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.previous_boot_unknown"]
    assert unknown and unknown[0]["data"] == {"why": "no-previous-boot", "detail": "Data from the specified boot (-1) is "
                                                                                  "not available: No such boot ID"}
    assert unknown[0]["message"].endswith("No such boot ID") and rc == 0


def test_a_dozen_saved_crash_records_are_counted_and_ten_named(config_file, tmp_path):
    pstore = tmp_path / "root/sys/fs/pstore"
    pstore.mkdir(parents=True)
    for n in range(12):
        (pstore / f"dmesg-efi-{n:02}").write_text("Oops#1 Part1\n")
    rc, report = diagnose_json(config_file(system={"host_root": str(tmp_path / "root")}), "--only", "system.crash")
    found = next(f for f in probe_of(report, "system.crash")["findings"] if f["code"] == "crash.pstore")
    assert found["data"]["count"] == 12 and found["data"]["paths"] == [str(pstore / f"dmesg-efi-{n:02}") for n in range(10)]


def test_an_unreadable_kernel_log_is_said_in_the_system_s_words(config_file, tmp_path):
    config = config_file(system={"kernel_log": str(tmp_path / "no-kmsg")})
    rc, report = diagnose_json(config, "--only", "system.crash,disk.health")
    said = [f["message"] for name in ("system.crash", "disk.health") for f in probe_of(report, name)["findings"]
            if f["code"].endswith("kernel_log_unreadable")]
    assert said and all(f"the kernel log {tmp_path / 'no-kmsg'} cannot be read (No such file or directory)" in m
                        for m in said), said


@pytest.mark.parametrize(("line", "kind"), [
    ("Out of memory: Killed process 812 (posterminal-mai) total-vm:812345kB, anon-rss:512000kB", "oom"),
    ("posterminal-mai[813]: segfault at 0 ip 000055d0c2a1b2c3 sp 00007ffd5a3c8e40 error 4 in posterminal-main", "segfault")],
    ids=["oom-killed", "segfault"])
def test_a_pos_with_a_name_longer_than_the_kernel_keeps_is_known_by_its_first_fifteen_characters(line, kind):
    """The kernel names a process by at most 15 characters: "posterminal-main" is "posterminal-mai" in its log."""
    from posdiag.probes import _crashlog

    found = _crashlog.read([line], "posterminal-main")
    assert found.pos_deaths[kind] == [812 if kind == "oom" else 813]
    assert not found.programs and not found.oopses


def test_the_daemons_look_at_a_pos_application_that_is_not_running_asks_for_no_sweep(config_file):
    from posdiag.agent.poswatch import PosWatch
    from posdiag.core import settings as config

    settings = config.load(str(config_file(terminal={"pos_process": "posdiag-no-such-pos-app"})))
    watch = PosWatch(settings, None)
    assert watch.look() is False and watch.starts == []
    assert watch.look() is False  # not due again yet: nothing looked at


def test_every_restart_limit_the_configuration_takes_can_be_counted_by_the_daemon(config_file):
    """A limit above the start times the daemon keeps could never be reached: it is refused, naming its range."""
    from posdiag.agent.poswatch import STARTS_KEPT
    from posdiag.agent.store import POS_STARTS_KEPT

    unit = {"pos_process": "posapp", "pos_unit": "posapp.service"}  # no watch-interval rule in the way
    rc, _, err = run_cli("config", "check", "--config", str(config_file(
        terminal=unit, system={"restart_limit": STARTS_KEPT, "restart_window_min": 1440})))
    assert rc == 0, err
    rc, _, err = run_cli("config", "check", "--config", str(config_file(
        terminal=unit, system={"restart_limit": STARTS_KEPT + 1, "restart_window_min": 1440})))
    assert rc == 3 and "system.restart_limit" in err and "100" in err, err
    assert POS_STARTS_KEPT >= STARTS_KEPT


def test_a_previous_boot_ends_cleanly_on_systemd_s_shutdown_id_alone_at_its_latest_record():
    """The catalogue id marks the shutdown whatever its words; the end is the latest record, in any order."""
    tail = "\n".join([json.dumps({"__REALTIME_TIMESTAMP": "1764990009000000", "MESSAGE": "posapp[812]: sent"}),
                      json.dumps({"__REALTIME_TIMESTAMP": "1764990002000000", "MESSAGE": "bye",
                                  "MESSAGE_ID": _lastboot.SHUTDOWN_MESSAGE_ID}),
                      json.dumps({"MESSAGE": "a record without its time"})])
    assert _lastboot.parse_journal_tail(tail) == _lastboot.PreviousBoot(True, True, 1764990009.0)
    assert _lastboot.parse_journal_tail(tail.replace(_lastboot.SHUTDOWN_MESSAGE_ID, "0" * 32)).clean is False
    assert _lastboot.parse_journal_tail(json.dumps({"MESSAGE": "no time"})) == _lastboot.PreviousBoot(
        False, why="no-previous-boot")


def test_journalctl_is_asked_for_the_last_60_records_and_5000_kernel_messages_of_the_previous_boot(tmp_path,
                                                                                                monkeypatch):
    """Only text records with their time are kept of the kernel's: a binary message or one without a time is skipped."""
    folder = tmp_path / "bin"
    folder.mkdir()
    kernel_out = "\n".join([json.dumps({"__REALTIME_TIMESTAMP": "1764990001000000", "MESSAGE": OOPS[1]}),
                            json.dumps({"__REALTIME_TIMESTAMP": "1764990002000000", "MESSAGE": [80, 79, 83]}),
                            json.dumps({"MESSAGE": OOPS[0]})])
    (folder / "kernel.json").write_text(kernel_out + "\n")
    (folder / "journalctl").write_text(f'#!/bin/sh\necho "$*" >> {folder}/asked\n'
                                       f'case " $* " in *" -k "*) exec cat {folder}/kernel.json ;; esac\n'
                                       f"cat <<'END'\n{JOURNAL_CUT}\nEND\n")
    (folder / "journalctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    monkeypatch.setattr(_lastboot, "_asked", {})
    boot = fresh_boot(tmp_path / "root") / "proc/sys/kernel/random/boot_id"
    assert _lastboot.journal_end(10.0, str(boot)).ended_at == 1764990009.0
    told = _lastboot.kernel_messages(10.0, lambda m: True, str(boot))
    assert told == _lastboot.PreviousKernel(True, ((1764990001.0, OOPS[1]),))
    asked = (folder / "asked").read_text().splitlines()
    assert asked[0].split()[:4] == ["-b", "-1", "-n", "60"] and asked[1].split()[:5] == ["-b", "-1", "-k", "-n", "5000"]


@pytest.mark.parametrize(("ended_h_ago", "warned"), [(1.5, True), (2.5, False)], ids=["within-the-window", "older"])
def test_a_previous_boot_that_was_not_shut_down_is_a_warning_only_within_the_kernel_log_window(
        config_file, tmp_path, monkeypatch, ended_h_ago, warned):
    ended = time.time() - ended_h_ago * 3600
    monkeypatch.setenv("PATH", stand_in_journalctl(tmp_path / "bin", tail=[(ended, "systemd[1]: Started Session 4.")],
                                                   kernel=[]))
    config = config_file(system={"host_root": str(fresh_boot(tmp_path / "root")), "kernel_log_window_h": 2})
    rc, report = diagnose_json(config, "--only", "system.crash")
    crash = probe_of(report, "system.crash")
    assert crash["metrics"]["previous_boot_clean"] == 0
    assert ("crash.unclean_shutdown" in codes_of(report, "system.crash")) is warned, crash
    if warned:
        [finding] = [f for f in crash["findings"] if f["code"] == "crash.unclean_shutdown"]
        assert finding["severity"] == "warn" and finding["data"] == {"ended_at": utc_iso(ended)}


def test_a_previous_boot_that_was_shut_down_is_clean_and_no_warning(config_file, tmp_path, monkeypatch):
    ended = time.time() - 600
    monkeypatch.setenv("PATH", stand_in_journalctl(tmp_path / "bin", tail=[(ended, "System is powering down.")],
                                                   kernel=[]))
    rc, report = diagnose_json(config_file(system={"host_root": str(fresh_boot(tmp_path / "root"))}),
                               "--only", "system.crash")
    assert probe_of(report, "system.crash")["metrics"]["previous_boot_clean"] == 1
    assert "crash.unclean_shutdown" not in codes_of(report, "system.crash")


@pytest.mark.parametrize("name", ["dmesg-ramoops-0", "console-ramoops-0"])
def test_pstore_keeps_the_kernel_s_dmesg_and_console_records(tmp_path, name):
    (tmp_path / name).write_text("Panic#1 Part1\n")
    (tmp_path / "pmsg-ramoops-0").write_text("a user-space log, not a crash\n")
    assert [(os.path.basename(c.path), c.reason) for c in _lastboot.pstore_records([str(tmp_path)])] == [(name, "Panic")]


@pytest.mark.parametrize("name", ["dmesg.202612060101", "dump.202612060101", "vmcore", "vmcore-dmesg.txt"])
def test_kdump_knows_a_dump_by_each_of_its_files(tmp_path, name):
    (tmp_path / "202612060101").mkdir()
    (tmp_path / "202612060101" / name).write_text("x")
    (tmp_path / "202612060102").mkdir()
    (tmp_path / "202612060102" / "kexec-dmesg.log").write_text("not a dump")
    assert [c.path for c in _lastboot.kdump_dumps(str(tmp_path))] == [str(tmp_path / "202612060101")]


def test_a_folder_of_saved_crash_records_is_read_up_to_its_first_thousand_entries(tmp_path):
    for n in range(1001):
        (tmp_path / f"dmesg-efi-{n:04}").touch()
    assert len(_lastboot.pstore_records([str(tmp_path)])) == 1000


def test_with_no_pos_named_every_program_s_crash_is_another_program_s_and_no_oom_kill_is_the_pos_s():
    from posdiag.probes import _crashlog

    posapp_segfault = "posapp[812]: segfault at 8 ip 00007f3a1c2b4e10 sp 00007ffd5a3c8e40 error 4 in posapp[55d0c2a00000+20000]"
    oom = "Out of memory: Killed process 812 (posapp) total-vm:812345kB, anon-rss:512000kB"
    unnamed = _crashlog.read([posapp_segfault, oom, OTHER_PROGRAM_CRASHES[1], "usb 1-1: new full-speed USB device"], "")
    assert unnamed.pos_deaths == {"oom": [], "segfault": []} and unnamed.oopses == []
    assert unnamed.programs == {"posapp": 1, "chromium": 1}
    named = _crashlog.read([posapp_segfault, oom, OTHER_PROGRAM_CRASHES[1]], "posapp")
    assert named.pos_deaths == {"oom": [812], "segfault": [812]} and named.programs == {"chromium": 1}


@pytest.mark.parametrize(("wait", "known"), [("sleep 0.15", True), ("exec sleep 30", False)],
                         ids=["slow-journal", "hung-journal"])
def test_journalctl_gets_a_share_of_the_probe_s_time_and_a_hung_one_is_left_within_it(config_file, tmp_path, monkeypatch,
                                                                                     wait, known):
    """A journal slow to answer (0.15 s) is still heard; one that hangs is given up in time for the probe to say
    so itself, not abandoned by the runner."""
    ended = time.time() - 600
    path = stand_in_journalctl(tmp_path / "bin", tail=[(ended, "System is powering down.")],
                               kernel=[(ended - 60, "usb 1-1: new full-speed USB device number 3")])
    tool = tmp_path / "bin/journalctl"
    tool.write_text(tool.read_text().replace("#!/bin/sh\n", f"#!/bin/sh\n{wait}\n", 1))
    monkeypatch.setenv("PATH", path)
    rc, report = diagnose_json(config_file(system={"host_root": str(fresh_boot(tmp_path / "root"))}),
                               "--only", "system.crash")
    crash = probe_of(report, "system.crash")
    unknown = [f["data"]["why"] for f in crash["findings"] if f["code"] == "crash.previous_boot_unknown"]
    assert crash["status"] == "ok" and "probe.timeout" not in codes_of(report, "system.crash"), crash
    assert unknown == ([] if known else ["timeout"]), crash


@pytest.mark.parametrize(("wait", "answered"), [("sleep 0.15", True), ("exec sleep 30", False)],
                         ids=["slow-systemctl", "hung-systemctl"])
def test_systemctl_gets_a_share_of_the_probe_s_time_and_a_hung_one_is_said_within_it(config_file, tmp_path, monkeypatch,
                                                                                    wait, answered):
    path = stand_in_systemctl(tmp_path / "bin", says="NRestarts=0\nActiveState=active\n")
    tool = tmp_path / "bin/systemctl"
    tool.write_text(tool.read_text().replace("#!/bin/sh\n", f"#!/bin/sh\n{wait}\n", 1))
    monkeypatch.setenv("PATH", path)
    rc, report = diagnose_json(config_file(terminal={"pos_unit": "posapp.service"},
                                           system={"host_root": str(fresh_boot(tmp_path / "root"))}),
                               "--only", "system.crash")
    crash = probe_of(report, "system.crash")
    assert crash["status"] == "ok" and "probe.timeout" not in codes_of(report, "system.crash"), crash
    unreadable = [f["message"] for f in crash["findings"] if f["code"] == "crash.unit_unreadable"]
    if answered:
        assert unreadable == [] and crash["metrics"]["pos_unit_restarts"] == 0, crash
    else:
        assert len(unreadable) == 1 and "systemctl show did not answer within" in unreadable[0], crash


def test_a_pstore_record_s_reason_is_read_from_its_first_256_bytes(tmp_path):
    """The kernel writes the header first; a file whose head holds none is of no known reason."""
    (tmp_path / "dmesg-efi-1").write_text("Oops#1 Part1\n" + "x" * 300)
    (tmp_path / "dmesg-efi-2").write_text("x" * 200 + "\nPanic#1 Part1\n")
    (tmp_path / "dmesg-efi-3").write_text("x" * 300 + "\nPanic#1 Part1\n")
    reasons = {os.path.basename(c.path): c.reason for c in _lastboot.pstore_records([str(tmp_path)])}
    assert reasons == {"dmesg-efi-1": "Oops", "dmesg-efi-2": "Panic", "dmesg-efi-3": "Unknown"}


def _pos_stand_in(folder: Path, name: str) -> Path:
    folder.mkdir(exist_ok=True)
    script = folder / name
    script.write_text("import sys, time\nprint('up', flush=True)\ntime.sleep(60)\n")
    return script


def _started(*argv: str, executable: str | None = None) -> subprocess.Popen:
    proc = subprocess.Popen(list(argv), executable=executable, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "up"
    return proc


def test_the_start_watch_follows_the_youngest_pos_process_and_looks_again_when_it_is_gone(tmp_path):
    name = f"posw{os.getpid()}"
    script = _pos_stand_in(tmp_path, name)
    older = _started(sys.executable, str(script))
    younger = None
    try:
        time.sleep(0.05)  # start times are kept to the clock tick: the two must differ
        younger = _started(sys.executable, str(script))
        watch = _restarts.StartWatch(name)
        assert watch.look() == round(psutil.Process(younger.pid).create_time(), 2)
        assert watch.look() == round(psutil.Process(younger.pid).create_time(), 2)  # the same one, looked at again
        younger.kill()
        younger.wait()
        assert watch.look() == round(psutil.Process(older.pid).create_time(), 2)
        older.kill()
        older.wait()
        assert watch.look() is None and watch.proc is None
    finally:
        for proc in (older, younger):
            if proc is not None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("how", ["process-name", "script-argument"])
def test_the_pos_is_found_by_its_process_name_or_the_script_it_runs_and_not_by_a_later_argument(tmp_path, how):
    """A program started under its own name (``comm``) though its argv says otherwise, and a script run by
    its interpreter; a name that only a third argument carries is not the POS."""
    name = f"posf{os.getpid() % 100000}"  # a process name is 15 characters at most
    script = _pos_stand_in(tmp_path, "pos.py")
    if how == "process-name":
        binary = tmp_path / name
        shutil.copy(sys.executable, binary)
        proc = _started("interpreter", str(script), executable=str(binary))
    else:
        proc = _started(sys.executable, str(_pos_stand_in(tmp_path, name)))
    other = _started(sys.executable, str(script), name)
    try:
        assert [p.pid for p in find_processes(name)] == [proc.pid]
    finally:
        for p in (proc, other):
            p.kill()
            p.wait()


def test_systemctl_failing_without_a_word_is_an_error_with_no_detail(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", stand_in_systemctl(tmp_path / "bin", rc=1))
    assert _restarts.unit_state("posapp.service", 5.0) == _restarts.UnitState(None, why="error", detail="")


def test_two_start_times_exactly_the_rounding_apart_are_one_process():
    """0.02 s is the most two readings of one start time differ by (clock ticks, kept to the hundredth)."""
    assert _restarts.restarts_seen([0.0, 0.02], since=-1.0) == []
    assert _restarts.restarts_seen([0.0, 0.03], since=-1.0) == [0.03]


def test_the_oom_killer_taking_another_program_is_no_death_of_the_pos():
    from posdiag.probes import _crashlog

    found = _crashlog.read(["Out of memory: Killed process 999 (chromium) total-vm:812345kB, anon-rss:512000kB",
                            "Oops: 0002 [#1] PREEMPT SMP NOPTI"], "posapp")
    assert found.pos_deaths == {"oom": [], "segfault": []} and found.oopses == ["Oops: 0002 [#1] PREEMPT SMP NOPTI"]
    assert _crashlog.read(["Out of memory: Killed process 812 (posapp) total-vm:1kB"], "posapp").pos_deaths["oom"] == [812]


class _ScriptedStarts:
    """The POS's start times a look would read, one per look (the process scan is probed elsewhere)."""

    def __init__(self, name: str, starts: list[float | None]) -> None:
        self.name, self.starts, self.looks = name, list(starts), 0

    def look(self) -> float | None:
        self.looks += 1
        return self.starts.pop(0)


class _ListStore:
    def __init__(self, starts: list[float]) -> None:
        self.kept = list(starts)

    def add_pos_start(self, start_s: float) -> None:
        self.kept.append(start_s)

    def pos_starts(self) -> list[float]:
        return list(self.kept)


def _pos_watch(config_file, starts: list[float | None], stored: list[float] | None = None, limit: int = 3):
    from posdiag.agent.poswatch import PosWatch
    from posdiag.core import settings as config

    settings = config.load(str(config_file(terminal={"pos_process": "posapp"},
                                           system={"restart_limit": limit, "restart_window_min": 10})))
    watch = PosWatch(settings, None if stored is None else _ListStore(stored))
    watch.watch = _ScriptedStarts("posapp", starts)
    return watch, settings


def _look_each(watch) -> list[bool]:
    said = []
    while watch.watch.starts:
        watch.next_at = 0.0  # due: the look's pace is tested on its own
        said.append(watch.look())
    return said


@pytest.mark.parametrize(("ages_s", "looping"), [
    ((700, 500, 300, 1), True),  # three restarts within the 10 min window, the first start is no restart
    ((1000, 700, 300, 1), False),  # one of the three is 11.7 min old: two within the window
    ((700, 300, 1), False),  # two restarts: one short of the limit
])
def test_the_daemon_asks_for_a_sweep_when_the_restarts_within_the_window_reach_the_limit(config_file, ages_s, looping):
    import logging

    now = time.time()
    watch, _ = _pos_watch(config_file, [now - age for age in ages_s])
    logger = logging.getLogger("posdiag")
    heard = logging.Handler(logging.INFO)
    records: list[logging.LogRecord] = []
    heard.emit = records.append  # the daemon's logger may not propagate (agent/logs.py): listen on it itself
    logger.addHandler(heard)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        said = _look_each(watch)
    finally:
        logger.removeHandler(heard)
        logger.setLevel(level)
    logged = "\n".join(record.getMessage() for record in records)
    assert said == [False] * (len(ages_s) - 1) + [looping]
    assert ("restarted 3 times or more within 10 min: diagnosing now" in logged) is looping, logged
    assert logged.count("restarted: a process started at") == len(ages_s) - 1  # the first is no restart


def test_a_crash_loop_brings_one_sweep_forward_a_window_and_keeps_every_start(config_file):
    now = time.time()
    stored = [now - 700, now - 500]
    watch, _ = _pos_watch(config_file, [now - 300, now - 200, now - 200 + 0.02, now - 1, None], stored)
    assert watch.starts == stored  # read back from the store: the daemon was restarted in between
    assert _look_each(watch) == [False, True, False, False, False]  # the third restart; the same process; once a window
    assert watch.starts == [now - 700, now - 500, now - 300, now - 200, now - 1]
    assert watch.store.kept == watch.starts


def test_the_pos_is_looked_at_once_every_pos_watch_s_and_a_new_name_starts_a_new_watch(config_file):
    watch, settings = _pos_watch(config_file, [100.0, 200.0])
    assert watch.every_s == settings.daemon.pos_watch_s == 10 and watch.window_s == 600
    assert watch.look() is False and watch.look() is False
    assert watch.watch.looks == 1  # the second is not due for 10 s
    assert watch.next_at - time.monotonic() > 9
    scripted = watch.watch
    watch.configure(settings)  # a reload with the same process name keeps the watch and what it saw
    assert watch.watch is scripted and watch.starts == [100.0]
    from dataclasses import replace

    watch.configure(replace(settings, terminal=replace(settings.terminal, pos_process="otherpos")))
    assert watch.watch is not scripted and watch.watch.name == "otherpos" and watch.starts == []
