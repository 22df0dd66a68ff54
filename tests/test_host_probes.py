"""Host-resource probes against real faults: filesystems that really fill up, read-only remounts,
an NTP responder whose clock is wrong, thresholds above what this machine has, a missing POS process."""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from labs.commands import diagnose_in_namespace, diagnose_json
from labs.helpers import codes_of as codes
from labs.helpers import exhaust_inodes, fill_filesystem, probe_of, remount_read_only
from posdiag.core import settings as cfg
from posdiag.probes.base import Observation, Status
from posdiag.probes.clock import ClockProbe
from posdiag.probes.disk import DiskProbe
from posdiag.probes.memory import MemoryProbe

MB = 1024 * 1024


def found(result) -> list[str]:
    return [f.code for f in result.findings]


@pytest.mark.root
def test_full_filesystem_blames_disk_full(tmpfs, config_file):
    fs = tmpfs("1m")
    fill_filesystem(fs)
    rc, report = diagnose_json(config_file(disk={"paths": [str(fs)], "min_free_mb": 1}))
    assert rc == 2
    assert report["diagnosis"]["verdict"] == "fault"
    assert report["diagnosis"]["causes"][0]["id"] == "disk.full"
    assert {"disk.space_low", "disk.write_no_space"} <= set(codes(report, "disk"))


@pytest.mark.root
def test_filesystem_out_of_inodes_blames_disk_full(tmpfs, config_file):
    fs = tmpfs("8m", inodes=64)
    exhaust_inodes(fs)
    rc, report = diagnose_json(config_file(disk={"paths": [str(fs)], "min_free_mb": 1}))
    assert report["diagnosis"]["causes"][0]["id"] == "disk.full"
    assert "disk.inodes_low" in codes(report, "disk")
    assert "disk.space_low" not in codes(report, "disk")  # plenty of bytes, no inodes


@pytest.mark.root
@pytest.mark.parametrize(("ballast_mb", "low"), [(2, False), (6, True)], ids=["6-mb-free-of-4", "2-mb-free-of-4"])
def test_free_space_is_judged_against_the_minimum_on_both_sides(tmpfs, config_file, ballast_mb, low):
    """Not only a full filesystem: 2 MB free of a 4 MB minimum is low though writes still succeed, 6 MB is not."""
    fs = tmpfs("8m")
    (fs / "ballast").write_bytes(b"\0" * ballast_mb * MB)
    result = DiskProbe(cfg.load(str(config_file(disk={"paths": [str(fs)], "min_free_mb": 4})))).run()
    assert ("disk.space_low" in found(result)) is low, result
    assert "disk.write_no_space" not in found(result)


@pytest.mark.root
@pytest.mark.parametrize(("free_percent", "low"), [(30, False), (10, True)], ids=["30-percent-free", "10-percent-free"])
def test_free_inodes_are_judged_as_a_percentage_on_both_sides(tmpfs, config_file, free_percent, low):
    """With a minimum of 20 % free inodes: 30 % free passes, 10 % free is low (the only other test uses them all)."""
    import os

    fs = tmpfs("8m", inodes=200)
    total = os.statvfs(fs).f_files
    n = 0
    while os.statvfs(fs).f_favail > total * free_percent // 100:
        (fs / f"f{n}").touch()
        n += 1
    result = DiskProbe(cfg.load(str(config_file(disk={"paths": [str(fs)], "min_free_mb": 1,
                                                      "min_free_inodes_percent": 20})))).run()
    assert result.metrics[f"free_inodes_percent[{fs}]"] == pytest.approx(free_percent, abs=1)
    assert ("disk.inodes_low" in found(result)) is low, result


@pytest.mark.root
def test_free_inodes_are_a_percentage_to_two_decimals(tmpfs, config_file):
    """Three inodes, one of them the root folder's: 66.67 % free, in the metric and in the finding."""
    fs = tmpfs("1m", inodes=3)
    stat = os.statvfs(fs)
    percent = round(stat.f_favail / stat.f_files * 100, 2)
    assert percent != round(percent, 1), "the filesystem's counts give no third decimal to cut"
    result = DiskProbe(cfg.load(str(config_file(disk={"paths": [str(fs)], "min_free_mb": 0,
                                                      "min_free_inodes_percent": 90})))).run()
    assert result.metrics[f"free_inodes_percent[{fs}]"] == percent
    [low] = [f for f in result.findings if f.code == "disk.inodes_low"]
    assert low.data["free_inodes_percent"] == percent and low.data["free_inodes"] == stat.f_favail


@pytest.mark.root
def test_the_write_test_needs_only_its_four_kib_of_space(tmpfs, config_file):
    """A filesystem with three pages left: the scratch write of 4 KiB fits, so nothing is said of space."""
    fs = tmpfs("1m")
    stat = os.statvfs(fs)
    (fs / "ballast").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 3 * 4096))
    assert os.statvfs(fs).f_bavail * stat.f_frsize == 3 * 4096
    result = DiskProbe(cfg.load(str(config_file(disk={"paths": [str(fs)], "min_free_mb": 0})))).run()
    assert result.status is Status.OK and found(result) == [], result
    assert f"write_fsync_ms[{fs}]" in result.metrics


@pytest.mark.root
def test_space_and_inodes_exactly_at_their_minimum_are_not_low(tmpfs, config_file):
    """Exactly 4 MB free of a 4 MB minimum, and two inodes of four (the root folder's and the ballast's in use)
    free of a 50 % minimum: at the limit, not under it."""
    fs = tmpfs("8m", inodes=4)
    stat = os.statvfs(fs)
    (fs / "ballast").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 4 * MB))
    stat = os.statvfs(fs)
    assert (stat.f_bavail * stat.f_frsize, stat.f_favail * 100 / stat.f_files) == (4 * MB, 50.0)
    settings = cfg.load(str(config_file(disk={"paths": [str(fs)], "min_free_mb": 4, "min_free_inodes_percent": 50,
                                              "write_test": False})))
    result = DiskProbe(settings).run()
    assert result.metrics[f"free_mb[{fs}]"] == 4.0 and result.metrics[f"free_inodes_percent[{fs}]"] == 50.0
    assert found(result) == [], result


@pytest.mark.root
def test_read_only_remount_blames_disk_failing(tmpfs, config_file):
    fs = tmpfs("4m")
    remount_read_only(fs)
    rc, report = diagnose_json(config_file(disk={"paths": [str(fs)], "min_free_mb": 1}))
    assert rc == 2
    assert report["diagnosis"]["causes"][0]["id"] == "disk.failing"
    assert "disk.read_only" in codes(report, "disk")


@pytest.mark.root
def test_a_read_only_folder_is_said_with_the_mount_it_lies_on(tmpfs, config_file):
    fs = tmpfs("4m")
    (fs / "spool" / "pos").mkdir(parents=True)
    remount_read_only(fs)
    result = DiskProbe(cfg.load(str(config_file(disk={"paths": [str(fs / "spool" / "pos")], "min_free_mb": 1})))).run()
    [finding] = [f for f in result.findings if f.code == "disk.read_only"]
    assert finding.data == {"path": str(fs / "spool" / "pos"), "mount": str(fs)}


@pytest.mark.root
def test_read_only_sandbox_of_a_writable_filesystem_is_not_a_failing_disk(tmpfs, tmp_path, config_file):
    """What systemd's ProtectSystem=strict does to /: a read-only view of a healthy filesystem."""
    fs = tmpfs("4m")
    view = tmp_path / "sandboxed"
    view.mkdir()
    subprocess.run(["mount", "--bind", str(fs), str(view)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        rc, report = diagnose_json(config_file(disk={"paths": [str(view)], "min_free_mb": 1}))
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)
    assert "disk.read_only" not in codes(report, "disk")
    assert "disk.write_not_permitted" in codes(report, "disk")
    assert all(c["id"] != "disk.failing" for c in report["diagnosis"]["causes"])
    assert probe_of(report, "disk")["summary"] == f"0 paths writable with space to spare; not writable by the agent, " \
        f"write test skipped: {view}"


@pytest.mark.root
def test_full_disk_finding_reads_in_chinese(tmpfs, config_file, speak_chinese):
    """A technician who reads Chinese is told the disk is full in Chinese: finding, data kept machine-readable."""
    fs = tmpfs("1m")
    fill_filesystem(fs)
    settings = cfg.load(str(config_file(disk={"paths": [str(fs)], "min_free_mb": 1})))
    result = DiskProbe(settings).run()
    by_code = {f.code: f for f in result.findings}
    assert "可用空间仅" in by_code["disk.space_low"].message and "最低 1 MB" in by_code["disk.space_low"].message
    assert "无法写入，空间或 inode 已用尽" in by_code["disk.write_no_space"].message
    assert by_code["disk.write_no_space"].data["errno"] == "ENOSPC"  # data stays what machines read
    assert "（另有 1 项）" in result.summary  # the framework's summary of two faults speaks Chinese too


def test_write_test_leaves_no_scratch_file_behind(tmp_path, config_file):
    settings = cfg.load(str(config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 1})))
    before = set(tmp_path.iterdir())
    result = DiskProbe(settings).run()
    assert result.status is Status.OK, result
    assert set(tmp_path.iterdir()) == before
    took = result.metrics[f"write_fsync_ms[{tmp_path}]"]
    assert took >= 0 and took == round(took, 2)  # ms, to two decimals


class _Stopwatch:
    """A monotonic clock that moves ``step_ms`` between two readings: the write itself is real, only the time
    it is said to take is set, so that the limit can be met on both sides on a busy machine."""

    def __init__(self, step_ms: float) -> None:
        self.now, self.step = 0.0, step_ms / 1000

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


@pytest.mark.parametrize(("took_ms", "slow"), [(40.0, False), (40.5, True), (400.0, True)])
def test_a_write_is_slow_only_strictly_beyond_slow_write_ms(tmp_path, config_file, monkeypatch, took_ms, slow):
    import posdiag.probes.disk as disk

    probe = DiskProbe(cfg.load(str(config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 1, "slow_write_ms": 40}))))
    obs = Observation()
    monkeypatch.setattr(disk, "time", _Stopwatch(took_ms))
    probe._write_test(obs, str(tmp_path))
    assert obs.metrics[f"write_fsync_ms[{tmp_path}]"] == took_ms
    assert [f.code for f in obs.findings] == (["disk.write_slow"] if slow else [])
    if slow:
        assert obs.findings[0].data == {"path": str(tmp_path), "write_fsync_ms": took_ms}


def test_without_the_write_test_nothing_is_written(tmp_path, config_file):
    settings = cfg.load(str(config_file(disk={"paths": [str(tmp_path)], "min_free_mb": 1, "write_test": False})))
    result = DiskProbe(settings).run()
    assert result.status is Status.OK and not any(k.startswith("write_fsync_ms") for k in result.metrics), result.metrics
    assert f"free_mb[{tmp_path}]" in result.metrics


def test_the_summary_counts_every_path_written(tmp_path, config_file):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    settings = cfg.load(str(config_file(disk={"paths": [str(tmp_path / "a"), str(tmp_path / "b")], "min_free_mb": 1})))
    assert DiskProbe(settings).run().summary == "2 paths writable with space to spare"


@pytest.mark.parametrize(("number", "code"), [(errno.ENOSPC, "disk.write_no_space"), (errno.EDQUOT, "disk.write_no_space"),
                                              (errno.EROFS, "disk.read_only"), (errno.EACCES, "disk.write_not_permitted"),
                                              (errno.EPERM, "disk.write_not_permitted"), (errno.EIO, "disk.io_error")])
def test_a_failed_write_is_told_by_its_error_number(number, code):
    obs = Observation()
    DiskProbe._write_error(obs, "/srv/pos", OSError(number, os.strerror(number)))
    [finding] = obs.findings
    assert finding.code == code and finding.data["errno"] == errno.errorcode[number]


def test_missing_disk_path_is_reported_not_fatal(tmp_path, config_file):
    settings = cfg.load(str(config_file(disk={"paths": [str(tmp_path / "gone"), str(tmp_path)]})))
    result = DiskProbe(settings).run()
    assert [f.code for f in result.findings] == ["disk.path_missing"]
    assert result.status is Status.WARN


def test_a_disk_path_that_is_a_file_is_reported_as_not_a_folder(tmp_path, config_file):
    (tmp_path / "journal.dat").write_text("not a folder\n")
    settings = cfg.load(str(config_file(disk={"paths": [str(tmp_path / "journal.dat")]})))
    [finding] = DiskProbe(settings).run().findings
    assert finding.code == "disk.path_missing" and finding.message == f"{tmp_path / 'journal.dat'} is not a folder"


def test_clock_an_hour_off_against_local_ntp_blames_clock_skew(ntp_server, config_file):
    srv = ntp_server(offset_s=3600)
    rc, report = diagnose_json(config_file(clock={"ntp_server": srv.address}))
    assert rc == 2
    top = report["diagnosis"]["causes"][0]
    assert top["id"] == "clock.skew"
    clock = next(p for p in report["probes"] if p["name"] == "clock")
    assert clock["metrics"]["offset_s"] == pytest.approx(3600, abs=1)
    assert any("behind" in e for e in top["evidence"])


@pytest.mark.root
def test_an_ntp_server_named_without_a_port_is_asked_on_port_123(ntp_server, config_file):
    srv = ntp_server(offset_s=3600, host="127.0.0.123", port=123)  # a loopback address of its own: port 123 is free
    rc, report = diagnose_json(config_file(clock={"ntp_server": "127.0.0.123"}), "--only", "clock")
    clock = next(p for p in report["probes"] if p["name"] == "clock")
    assert srv.requests >= 1 and clock["metrics"]["offset_s"] == pytest.approx(3600, abs=1), clock


@pytest.mark.parametrize(("offset_s", "code", "words"), [
    (15, "clock.offset_high", "clock is 15.0 s behind"), (-15, "clock.offset_high", "clock is 15.0 s ahead"),
    (7, "clock.offset_drifting", "clock is 7.0 s off"), (-7, "clock.offset_drifting", "clock is 7.0 s off"),
    (3, None, "offset +"), (-3, None, "offset -")],
    ids=["behind", "ahead", "drifting-behind", "drifting-ahead", "within-half-behind", "within-half-ahead"])
def test_clock_offset_is_judged_both_ways_against_the_limit_and_its_half(ntp_server, config_file, offset_s, code, words):
    """A 10 s limit: beyond it a fault whichever way the clock is off, beyond half of it a warning, within that nothing.
    The responder's clock is ``offset_s`` ahead of ours: ours is behind by that much."""
    srv = ntp_server(offset_s=offset_s)
    result = ClockProbe(cfg.load(str(config_file(clock={"ntp_server": srv.address, "max_offset_s": 10})))).run()
    judged = [f for f in result.findings if f.severity.value != "info"]
    assert [f.code for f in judged] == ([code] if code else []), result
    assert words in (judged[0].message if judged else result.summary)  # the distance unsigned, the direction in words
    assert result.metrics["offset_s"] == round(result.metrics["offset_s"], 4) == pytest.approx(offset_s, abs=0.5)
    if judged:  # the data keep the sign (positive: ours is behind), to the millisecond
        data = judged[0].data
        assert data["offset_s"] == round(data["offset_s"], 3) == pytest.approx(offset_s, abs=0.5)
        assert data["server"] == srv.address and data.get("max_offset_s", 10) == 10


@pytest.mark.parametrize(("built_days_ago", "implausible"), [(1, False), (-1, True)],
                         ids=["built-yesterday", "built-tomorrow"])
def test_a_clock_that_reads_before_the_build_date_is_implausible(config_file, built_days_ago, implausible):
    """The real clock against the running build's date (which the agent hands the probe): a build from
    tomorrow means the clock is behind."""
    from posdiag.probes.base import ProbeContext

    context = ProbeContext(build_epoch=time.time() - built_days_ago * 86400)
    result = ClockProbe(cfg.load(str(config_file())), context).run()
    assert ("clock.implausible" in found(result)) is implausible, result


@pytest.mark.parametrize(("spoil", "words"), [("", None), ("broadcast", None), ("short", "short reply (47 bytes)"),
                                             ("client", "not an NTP server reply (mode 3)"),
                                             ("kiss", "kiss-of-death (RATE)"), ("origin", "origin mismatch")])
def test_an_ntp_reply_that_does_not_answer_the_request_is_not_used(ntp_server, config_file, spoil, words):
    """Each check of the SNTP reply against a real responder that breaks it (and one that does not)."""
    srv = ntp_server(offset_s=3600, spoil=spoil)
    result = ClockProbe(cfg.load(str(config_file(clock={"ntp_server": srv.address})))).run()
    judged = [f for f in result.findings if f.severity.value != "info"]
    if words is None:
        assert [f.code for f in judged] == ["clock.offset_high"], result
    else:
        assert [f.code for f in judged] == ["clock.ntp_unreachable"] and words in judged[0].message, result
        assert "offset_s" not in result.metrics


@pytest.mark.parametrize(("spec", "host", "port"), [("ntp.store.test", "ntp.store.test", 123),
                                                   ("ntp.store.test:1123", "ntp.store.test", 1123),
                                                   ("[fd00::123]:1123", "fd00::123", 1123), ("[fd00::123]", "fd00::123", 123),
                                                   ("fd00::123", "fd00::123", 123)])
def test_an_ntp_server_is_named_with_or_without_its_port(spec, host, port):
    from posdiag.probes.clock import split_server

    assert split_server(spec) == (host, port)


def test_the_kernel_s_own_sync_state_is_said_as_it_is(config_file):
    """This machine's real clock discipline: "not synchronized" is said exactly when adjtimex says so."""
    from posdiag.probes.clock import kernel_synchronized

    result = ClockProbe(cfg.load(str(config_file()))).run()
    synced = kernel_synchronized()
    assert synced is not None and result.metrics["kernel_synchronized"] == int(synced)
    assert ("clock.unsynchronized" in found(result)) is (not synced), result
    assert "clock.no_reference" in found(result) and result.status is Status.OK


def test_clock_an_hour_behind_reads_in_chinese(ntp_server, config_file, speak_chinese):
    srv = ntp_server(offset_s=3600)
    result = ClockProbe(cfg.load(str(config_file(clock={"ntp_server": srv.address})))).run()
    [finding] = [f for f in result.findings if f.code == "clock.offset_high"]
    assert f"时钟比 {srv.address} 慢 3600." in finding.message and "秒（上限" in finding.message


def test_clock_in_sync_with_local_ntp_is_healthy(ntp_server, config_file):
    srv = ntp_server(offset_s=0.0)
    settings = cfg.load(str(config_file(clock={"ntp_server": srv.address})))
    result = ClockProbe(settings).run()
    assert result.status is Status.OK
    assert abs(result.metrics["offset_s"]) < 0.5
    assert result.metrics["ntp_stratum"] == 2


def test_the_ntp_round_trip_is_measured_in_ms_and_left_out_of_the_offset(ntp_server, config_file):
    """A server 0.4 s of round trip away, busy for 0.3 s with each request, whose clock is 20 s ahead: the
    delay is the round trip without the server's own time, the offset the clocks' difference alone (the
    round trip is symmetric)."""
    srv = ntp_server(offset_s=20, delay_s=0.4, hold_s=0.3)
    result = ClockProbe(cfg.load(str(config_file(clock={"ntp_server": srv.address, "max_offset_s": 100},
                                                 network={"timeout_s": 1.5})))).run()
    assert 400 <= result.metrics["ntp_delay_ms"] < 700 and result.metrics["ntp_delay_ms"] == \
        round(result.metrics["ntp_delay_ms"], 2), result
    assert result.metrics["offset_s"] == pytest.approx(20, abs=0.05), result


def test_silent_ntp_server_is_a_warning_within_the_timeout(ntp_server, config_file):
    srv = ntp_server(silent=True)
    settings = cfg.load(str(config_file(clock={"ntp_server": srv.address}, network={"timeout_s": 0.2})))
    started = time.monotonic()
    result = ClockProbe(settings).run()
    assert time.monotonic() - started < 2.5  # two 0.2 s waits; a wait of ten times the timeout would be 4 s
    assert [f.code for f in result.findings if f.severity.value != "info"] == ["clock.ntp_unreachable"]
    assert srv.requests == 2  # one retry on silence


def test_a_silent_ntp_server_asked_twice_fits_within_the_clock_probe_s_deadline(ntp_server, config_file):
    """Two tries of the network timeout each, and the runner still waits for the probe's own answer."""
    srv = ntp_server(silent=True)
    rc, report = diagnose_json(config_file(clock={"ntp_server": srv.address}, network={"timeout_s": 0.4}),
                               "--only", "clock")
    clock = next(p for p in report["probes"] if p["name"] == "clock")
    assert [f["code"] for f in clock["findings"] if f["severity"] != "info"] == ["clock.ntp_unreachable"], clock
    assert srv.requests == 2


def test_kernel_sync_state_is_read_without_starting_a_process():
    """adjtimex through the C library this interpreter already runs on: a sync state on Linux, and no
    child process (ldconfig, to find the library by name) on every diagnosis."""
    code = ("import sys\nstarted = []\n"
            "sys.addaudithook(lambda event, args: started.append(event) if event in "
            "('subprocess.Popen', 'os.posix_spawn', 'os.fork', 'os.exec') else None)\n"
            "from posdiag.probes.clock import kernel_synchronized\nprint(kernel_synchronized(), started)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] in ("True", "False"), out
    assert out[1].strip() == "[]", out


def test_memory_threshold_above_this_machine_blames_memory(config_file):
    rc, report = diagnose_json(config_file(memory={"min_available_mb": 1_000_000}))
    assert rc == 2
    assert report["diagnosis"]["causes"][0]["id"] == "memory.exhausted"
    mem = next(p for p in report["probes"] if p["name"] == "memory")
    assert mem["metrics"]["available_mb"] > 0


def test_available_memory_counts_reclaimable_cache_not_only_free_pages(config_file, tmp_path):
    """A minimum between the free and the available memory is met: the probe judges what is available
    (free pages and cache the kernel reclaims), not free pages alone. Just above what is available, it is not."""
    import psutil

    cached = tmp_path / "cache"
    try:
        vm = psutil.virtual_memory()
        if vm.available - vm.free < 512 * MB:  # too little cache to stand between the two: make some
            with open(cached, "wb") as out:
                for _ in range(768):
                    out.write(b"\1" * MB)
            vm = psutil.virtual_memory()
        between = (vm.free + vm.available) // 2 // MB
        met = MemoryProbe(cfg.load(str(config_file(memory={"min_available_mb": between})))).run()
    finally:
        cached.unlink(missing_ok=True)  # pytest keeps the last runs' folders: no 768 MB left behind
    assert "memory.available_low" not in found(met), (vm, met)
    above = int(met.metrics["available_mb"]) + 256
    short = MemoryProbe(cfg.load(str(config_file(memory={"min_available_mb": above})))).run()
    assert "memory.available_low" in found(short), (vm, short)


def meminfo_with_swap(folder: Path, total_kb: int, free_kb: int) -> Path:
    """This machine's /proc/meminfo as it would read with a swap of ``total_kb``, ``free_kb`` of it free
    (this machine has none, and a swap file switched on here would be every other process's too)."""
    text = Path("/proc/meminfo").read_text()
    for name, kb in (("SwapTotal", total_kb), ("SwapFree", free_kb)):
        text = re.sub(rf"^{name}:.*$", f"{name}: {kb:>14} kB", text, flags=re.M)
    path = folder / "meminfo"
    path.write_text(text)
    return path


@pytest.mark.root
@pytest.mark.parametrize(("total_kb", "free_kb", "limit", "high"), [
    (1_000_000, 500_000, 50, False),  # 50.0 % in use: at the limit, not over it
    (1_000_000, 499_000, 50, True),  # 50.1 %: over
    (1_000_000, 1_000_000, 0, False),  # none in use: not over even a limit of 0
    (0, 0, 0, False)],  # no swap at all: nothing to judge
    ids=["at-the-limit", "just-over", "unused", "no-swap"])
def test_swap_in_use_is_a_warning_only_over_its_limit(config_file, tmp_path, total_kb, free_kb, limit, high):
    """The kernel's meminfo, with swap lines of the test's own, bound over /proc/meminfo in a mount
    namespace that only this diagnosis sees."""
    fake = meminfo_with_swap(tmp_path, total_kb, free_kb)
    config = config_file(memory={"max_swap_percent": limit, "min_available_mb": 1})
    report = diagnose_in_namespace('mount --bind "$1" /proc/meminfo', str(fake), config=config, only="memory")
    memory = probe_of(report, "memory")
    assert memory["metrics"]["swap_percent"] == (round((total_kb - free_kb) * 100 / total_kb, 1) if total_kb else 0)
    assert ("memory.swap_high" in codes(report, "memory")) is high, memory
    if high:
        finding = next(f for f in memory["findings"] if f["code"] == "memory.swap_high")
        assert finding["severity"] == "warn" and finding["data"]["max_swap_percent"] == limit


@pytest.mark.root
@pytest.mark.parametrize(("some", "full", "code", "severity"), [
    (19.99, 9.99, None, None),  # just under both: no pressure
    (20.00, 0.00, "memory.pressure_high", "warn"),  # some task waited a fifth of the time
    (20.00, 10.00, "memory.pressure_high", "fail")],  # every task waited a tenth of the time
    ids=["under-both", "some-at-20", "full-at-10"])
def test_memory_pressure_is_a_warning_from_a_fifth_and_a_fault_from_a_tenth_all_stalled(config_file, tmp_path, some,
                                                                                        full, code, severity):
    """The kernel's memory pressure file, with averages of the test's own, bound over /proc/pressure/memory in a
    mount namespace that only this diagnosis sees."""
    fake = tmp_path / "memory"
    fake.write_text(f"some avg10={some:.2f} avg60=1.00 avg300=0.50 total=123456\n"
                    f"full avg10={full:.2f} avg60=0.50 avg300=0.10 total=65432\n")
    config = config_file(memory={"min_available_mb": 1})
    report = diagnose_in_namespace('mount --bind "$1" /proc/pressure/memory', str(fake), config=config, only="memory")
    memory = probe_of(report, "memory")
    assert memory["metrics"]["psi_some_avg10"] == some and memory["metrics"]["psi_full_avg10"] == full
    found_now = [f for f in memory["findings"] if f["code"] == "memory.pressure_high"]
    assert [(f["code"], f["severity"]) for f in found_now] == ([(code, severity)] if code else []), memory


@pytest.mark.root
@pytest.mark.parametrize("kills", [0, 1, 2])
def test_the_kernel_s_oom_kills_since_boot_are_stated(config_file, tmp_path, kills):
    """This machine's /proc/vmstat with an ``oom_kill`` count of the test's own, bound over the real one in a
    mount namespace that only this diagnosis sees: a count above none is said (one and several)."""
    text = re.sub(r"^oom_kill .*$", f"oom_kill {kills}", Path("/proc/vmstat").read_text(), flags=re.M)
    (tmp_path / "vmstat").write_text(text)
    report = diagnose_in_namespace('mount --bind "$1" /proc/vmstat', str(tmp_path / "vmstat"),
                                   config=config_file(memory={"min_available_mb": 1}), only="memory")
    memory = probe_of(report, "memory")
    assert memory["metrics"]["oom_kills_since_boot"] == kills
    said = [f for f in memory["findings"] if f["code"] == "memory.oom_kills"]
    assert [(f["severity"], f["data"]["oom_kills"]) for f in said] == ([("info", kills)] if kills else []), memory
    if kills:
        assert said[0]["message"] == f"the kernel killed {kills} {'process' if kills == 1 else 'processes'} for lack of " \
                                     "memory since boot"


def meminfo_of_total(folder: Path, total_kb: int) -> Path:
    """This machine's /proc/meminfo as a terminal of ``total_kb`` of RAM, half of it available, would read."""
    text = Path("/proc/meminfo").read_text()
    for name, kb in (("MemTotal", total_kb), ("MemFree", total_kb // 2), ("MemAvailable", total_kb // 2)):
        text = re.sub(rf"^{name}:.*$", f"{name}: {kb:>14} kB", text, flags=re.M)
    path = folder / "meminfo"
    path.write_text(text)
    return path


@pytest.mark.root
@pytest.mark.parametrize(("minimum_mb", "low"), [(200, False), (201, True)], ids=["at-the-minimum", "one-mb-short"])
def test_available_memory_exactly_at_its_minimum_is_not_low(config_file, tmp_path, minimum_mb, low):
    """A terminal of 400 MB with 200 MB available (this machine's meminfo with totals of the test's own)."""
    fake = meminfo_of_total(tmp_path, 400 * 1024)
    report = diagnose_in_namespace('mount --bind "$1" /proc/meminfo', str(fake), config=config_file(
        memory={"min_available_mb": minimum_mb}), only="memory")
    memory = probe_of(report, "memory")
    assert (memory["metrics"]["available_mb"], memory["metrics"]["total_mb"]) == (200.0, 400.0)
    assert ("memory.available_low" in codes(report, "memory")) is low, memory


@pytest.mark.root
@pytest.mark.parametrize(("ram_per_rss", "large"), [(1.5, True), (3.0, False)], ids=["two-thirds-of-ram", "a-third"])
def test_a_pos_process_is_large_only_over_half_of_the_ram(config_file, tmp_path, ram_per_rss, large):
    """A POS process of some 40 MB on a terminal of 1.5 and of 3 times that much RAM (this machine's meminfo with
    a total of the test's own, bound over /proc/meminfo in a namespace only the diagnosis sees)."""
    name = f"bigpos{os.getpid()}.py"
    script = tmp_path / name
    script.write_text("import sys, time\nballast = bytearray(30 * 1024 * 1024)\nprint('up', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        rss_kb = psutil.Process(proc.pid).memory_info().rss // 1024
        fake = meminfo_of_total(tmp_path, int(rss_kb * ram_per_rss))
        report = diagnose_in_namespace('mount --bind "$1" /proc/meminfo', str(fake), config=config_file(
            terminal={"pos_process": name}, memory={"min_available_mb": 1}), only="memory")
    finally:
        proc.kill()
        proc.wait()
    memory = probe_of(report, "memory")
    assert memory["metrics"]["pos_rss_percent"] == pytest.approx(100 / ram_per_rss, abs=5), memory["metrics"]
    assert ("memory.pos_process_large" in codes(report, "memory")) is large, memory


def test_missing_pos_process_blames_system_overload(config_file):
    rc, report = diagnose_json(config_file(terminal={"pos_process": "no-such-pos-app-xyz"}))
    assert report["diagnosis"]["causes"][0]["id"] == "system.overload"
    assert "system.pos_process_missing" in codes(report, "system")


def test_running_pos_process_is_found_with_its_memory(config_file, tmp_path):
    name = f"fakepos{os.getpid()}.py"  # its own name: another run on this machine may have a fakepos too
    script = tmp_path / name
    script.write_text("import time\nballast = bytearray(30 * 1024 * 1024)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        time.sleep(0.5)
        path = config_file(terminal={"pos_process": name}, system={"min_uptime_s": 0})
        rc, report = diagnose_json(path)
        mem = next(p for p in report["probes"] if p["name"] == "memory")
        system = next(p for p in report["probes"] if p["name"] == "system")
        assert mem["metrics"]["pos_rss_mb"] >= 30
        assert system["metrics"]["pos_process_count"] == 1
        assert "system.pos_process_missing" not in codes(report, "system")
        assert "system.pos_process_restarted" not in codes(report, "system")  # no minimum uptime: not a restart
        # Just started: with the default minimum uptime that is a restart warning.
        rc, report = diagnose_json(config_file(terminal={"pos_process": name}))
        assert "system.pos_process_restarted" in codes(report, "system")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.root
@pytest.mark.parametrize(("share", "large"), [(55, True), (45, False)], ids=["55-percent", "45-percent"])
def test_a_pos_process_holding_over_half_the_ram_is_a_warning(config_file, tmp_path, share, large):
    """A real POS process of ~30 MB, and a /proc/meminfo (bound over the real one in a mount namespace only
    this diagnosis sees) whose RAM makes that ``share`` % of it."""
    name = f"bigpos{os.getpid()}.py"
    script = tmp_path / name
    script.write_text("import time\nballast = b'x' * (30 * 1024 * 1024)\nprint('ready', flush=True)\ntime.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"  # its memory written: its size no longer grows
        rss_kb = psutil.Process(proc.pid).memory_info().rss // 1024
        text = re.sub(r"^MemTotal:.*$", f"MemTotal: {rss_kb * 100 // share:>14} kB", Path("/proc/meminfo").read_text(),
                      flags=re.M)
        (tmp_path / "meminfo").write_text(text)
        config = config_file(terminal={"pos_process": name}, memory={"min_available_mb": 1})
        report = diagnose_in_namespace('mount --bind "$1" /proc/meminfo', str(tmp_path / "meminfo"), config=config,
                                       only="memory")
    finally:
        proc.kill()
        proc.wait()
    memory = probe_of(report, "memory")
    assert memory["metrics"]["pos_rss_percent"] == pytest.approx(share, abs=2), memory
    assert ("memory.pos_process_large" in codes(report, "memory")) is large, memory


def test_one_restarted_process_of_the_pos_application_is_a_restart(config_file, tmp_path):
    """Two processes of the POS application, one up for a while and one just (re)started: the youngest decides."""
    from posdiag.probes.system import SystemProbe

    script = tmp_path / "fakepos.py"
    script.write_text("import time\ntime.sleep(60)\n")
    procs = [subprocess.Popen([sys.executable, str(script)])]
    try:
        time.sleep(1.5)
        procs.append(subprocess.Popen([sys.executable, str(script)]))
        time.sleep(0.2)
        result = SystemProbe(cfg.load(str(config_file(terminal={"pos_process": "fakepos.py"},
                                                      system={"min_uptime_s": 1})))).run()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    assert result.metrics["pos_process_count"] == 2 and result.metrics["pos_uptime_s"] < 1
    assert "system.pos_process_restarted" in found(result)


def test_a_busy_cpu_with_the_load_under_its_limit_is_not_saturation(config_file):
    """Saturation needs both: a load over its limit and a busy CPU. Every core spinning, the load limit not reached."""
    import os

    from posdiag.probes.system import SystemProbe

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)
        result = SystemProbe(cfg.load(str(config_file(system={"max_load_per_cpu": 1000})))).run()
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert result.metrics.get("cpu_psi_some_avg10", result.metrics.get("cpu_percent")) is not None, result
    assert "system.cpu_saturated" not in found(result) and "system.load_high" not in found(result)


@pytest.mark.parametrize(("some_avg10", "saturated"), [("49.99", False), ("50.00", True)])
def test_cpu_pressure_is_saturation_from_half_the_time_waiting(tmp_path, some_avg10, saturated):
    """Where the kernel keeps CPU pressure, tasks that waited for a CPU half of the last 10 s are saturation."""
    from posdiag.probes.system import CpuReading

    psi = tmp_path / "cpu"
    psi.write_text(f"some avg10={some_avg10} avg60=1.00 avg300=0.50 total=123456\n"
                   "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    reading = CpuReading(str(psi))
    assert reading.metric == "cpu_psi_some_avg10" and reading.percent == float(some_avg10)
    assert reading.saturated is saturated


def test_healthy_terminal_gives_none(config_file, ntp_server):
    srv = ntp_server(offset_s=0.05)
    rc, report = diagnose_json(config_file(clock={"ntp_server": srv.address}))
    assert rc == 0, report["diagnosis"]
    assert report["diagnosis"]["verdict"] == "healthy"
    assert report["diagnosis"]["causes"][0]["id"] == "none"


def cpu_counters() -> tuple[float, float, float]:
    """(all CPU time, idle time, this process's CPU time) now, counted as CpuWindow counts them."""
    import psutil
    from posdiag.probes.system import _own_cpu_s, _totals

    return (*_totals(psutil.cpu_times()), _own_cpu_s())


def busy_between(start: tuple[float, float, float], end: tuple[float, float, float], own: bool = False) -> float:
    """The machine's busy share between two readings of :func:`cpu_counters`: a reference taken in the
    same run as the reading under test, so that whatever else the machine runs moves both alike."""
    spent = end[0] - start[0]
    busy = spent - (end[1] - start[1]) - (0 if own else end[2] - start[2])
    return 0.0 if spent <= 0 else min(100.0, max(0.0, busy / spent * 100))


def test_cpu_busy_share_sees_every_core_spinning():
    """The busy share against real load: one spinning process per CPU reads as a busy CPU; the next
    sweep, a minute later, reads a fresh window, not the average since the last one (which holds the
    spinning)."""
    import os

    from posdiag.probes.system import CPU_WINDOW_S, CpuWindow, _totals

    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)  # let them get going
        window = CpuWindow()
        opened = window.opened_at  # the window runs from its opening, however late the next line runs
        busy = window.busy_percent()
        assert time.monotonic() - opened >= CPU_WINDOW_S * 0.99, "a window shorter than CPU_WINDOW_S"
        assert busy > 80, busy
        time.sleep(0.3)  # every core still spinning after the window's new baseline
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    last = (*_totals(window.baseline), window.own)
    window.opened_at -= 60  # the daemon's next sweep, a minute later
    start, started = cpu_counters(), time.monotonic()
    busy = window.busy_percent()
    end = cpu_counters()
    assert time.monotonic() - started >= CPU_WINDOW_S * 0.99, "averaged over the stale baseline"
    fresh, since_last = busy_between(start, end), busy_between(last, end)
    # On a quiet machine the two differ widely; on one that others keep busy they are alike, and so is the reading.
    assert abs(busy - fresh) <= abs(busy - since_last) + 5, (busy, fresh, since_last)


def test_cpu_busy_share_leaves_out_posdiags_own_work():
    """posdiag's own start-up falls inside the first window: spinning here must not read as a busy terminal
    (on a one-core till it would read as saturated). The reading is judged against the same window's
    counters, read here with and without this process's CPU time: other work on the machine moves all three."""
    from posdiag.probes.system import CPU_BASELINE_MAX_AGE_S, CpuWindow, _own_cpu_s

    start = cpu_counters()
    window = CpuWindow()
    until = time.monotonic() + CPU_BASELINE_MAX_AGE_S / 2  # well inside the window, however slow the machine
    while _own_cpu_s() - start[2] < 0.1 and time.monotonic() < until:  # a tenth of a second of CPU of its own
        pass
    busy = window.busy_percent()
    end = cpu_counters()
    others, everyone = busy_between(start, end), busy_between(start, end, own=True)
    assert everyone - others >= 3, f"the spinning here did not show in the machine's counters: {everyone} vs {others}"
    assert abs(busy - others) < abs(busy - everyone), (busy, others, everyone)
