"""disk.failing from the hardware: the kernel's I/O and filesystem errors on a real loop-mounted ext4
disk (records written to /dev/kmsg), counted only for the disk that holds a configured path; SMART
health parsed from recorded ``smartctl --json`` outputs of real drives; smartctl's absence said."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from labs import kernel
from labs.commands import diagnose_json
from labs.helpers import codes_of, probe_of, top_cause
from posdiag.core.settings import DiskSettings, Settings, SystemSettings
from posdiag.probes import _smart
from posdiag.probes._blockdev import Holder, holder_of
from posdiag.probes.base import Observation
from posdiag.probes.disk_health import DiskHealthProbe

SMARTCTL = Path(__file__).parent / "data" / "smartctl"


@pytest.fixture
def loop_disk(tmp_path):
    """A real ext4 filesystem on a loop device, mounted: (mount point, the loop device's kernel name)."""
    image, target = tmp_path / "disk.img", tmp_path / "pos"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    target.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(target)], check=True)
    try:
        device = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(target)], capture_output=True, text=True,
                                check=True).stdout.strip()
        yield target, Path(device).name
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.root
def test_a_path_is_traced_to_the_block_device_that_holds_it(loop_disk):
    target, device = loop_disk
    holder = holder_of(str(target / "journal"), "/proc/self/mountinfo", "/sys")
    assert holder.names == (device,)


@pytest.mark.root
def test_kernel_io_errors_on_the_disk_of_a_configured_path_blame_a_failing_disk(config_file, loop_disk):
    target, device = loop_disk
    config = config_file(disk={"paths": [str(target)], "min_free_mb": 1, "smart": False},
                         system={"kernel_log": "/dev/kmsg"})
    with kernel.records(f"blk_update_request: I/O error, dev {device}, sector 2048 op 0x1:(WRITE) flags 0x800 "
                        "phys_seg 1 prio class 0",
                        f"EXT4-fs error (device {device}): ext4_find_entry:1455: inode #2: comm posapp: reading "
                        "directory lblock 0",
                        f"Buffer I/O error on dev {device}, logical block 0, lost async page write"):
        rc, report = diagnose_json(config, "--only", "disk")
    finding = next(f for f in probe_of(report, "disk.health")["findings"] if f["code"] == "disk.kernel_errors")
    assert finding["data"]["device"] == device and finding["data"]["count"] == 3
    assert finding["data"]["paths"] == [str(target)]
    assert rc == 2 and top_cause(report) == "disk.failing"


@pytest.mark.root
def test_errors_on_a_disk_that_holds_no_configured_path_are_not_counted(config_file, loop_disk):
    target, device = loop_disk
    config = config_file(disk={"paths": [str(target)], "min_free_mb": 1, "smart": False},
                         system={"kernel_log": "/dev/kmsg"})
    with kernel.records("blk_update_request: I/O error, dev sdz, sector 2048 op 0x0:(READ)",
                        "EXT4-fs error (device sdz1): ext4_journal_check_start:83: comm usb-storage: Detected aborted "
                        "journal"):
        rc, report = diagnose_json(config, "--only", "disk.health")
    assert "disk.kernel_errors" not in codes_of(report, "disk.health") and rc == 0


@pytest.mark.root
def test_disk_errors_cleared_with_dmesg_are_no_longer_evidence(config_file, loop_disk):
    target, device = loop_disk
    config = config_file(disk={"paths": [str(target)], "min_free_mb": 1, "smart": False},
                         system={"kernel_log": "/dev/kmsg"})
    with kernel.records(f"blk_update_request: I/O error, dev {device}, sector 2048 op 0x1:(WRITE) flags 0x800"):
        pass  # the technician dealt with it: dmesg --clear
    rc, report = diagnose_json(config, "--only", "disk.health")
    assert "disk.kernel_errors" not in codes_of(report, "disk.health") and rc == 0


HELD = {"/": Holder(("sda1", "sda"), ("sda",))}


def kernel_log_of(path: Path, age_s: float, message: str) -> str:
    """A kernel log of one record in /dev/kmsg's format, ``age_s`` old on the monotonic clock."""
    path.write_text(f"3,1,{int((time.monotonic() - age_s) * 1e6)},-;{message}\n")
    return str(path)


@pytest.mark.parametrize(("age_h", "counted"), [(0.5, True), (1.5, False)], ids=["inside-1-h", "outside-1-h"])
def test_a_disk_error_is_evidence_only_within_the_kernel_log_window(tmp_path, age_h, counted):
    log = kernel_log_of(tmp_path / "kmsg", age_h * 3600, "blk_update_request: I/O error, dev sda, sector 2048")
    probe, obs = DiskHealthProbe(Settings(system=SystemSettings(kernel_log=log, kernel_log_window_h=1))), Observation()
    probe.kernel_errors(obs, HELD)
    assert obs.metrics["kernel_disk_errors"] == int(counted)
    assert [f.code for f in obs.findings] == (["disk.kernel_errors"] if counted else [])


def test_a_disk_error_is_quoted_by_160_characters_in_words_and_300_in_data(tmp_path):
    message = "blk_update_request: I/O error, dev sda, sector 2048 " + "x" * 400
    log = kernel_log_of(tmp_path / "kmsg", 60, message)
    probe, obs = DiskHealthProbe(Settings(system=SystemSettings(kernel_log=log))), Observation()
    probe.kernel_errors(obs, HELD)
    [finding] = obs.findings
    assert finding.data["first"] == message[:300] and finding.message.endswith(": " + message[:160])


def test_a_kernel_record_is_read_from_three_fields_and_a_numeric_time(tmp_path):
    from posdiag.probes._kmsg import kernel_records

    (tmp_path / "three").write_text("3,7,5000000;EXT4-fs error (device sda1): " + "y" * 1000 + "\nSUBSYSTEM=block\n")
    [(stamp, message)] = kernel_records(str(tmp_path / "three"))
    assert stamp == 5.0 and message.startswith("EXT4-fs error") and len(message) == len("EXT4-fs error (device sda1): ") + 1000
    (tmp_path / "bad").write_text("3,7,soon,-;EXT4-fs error (device sda1)\n")
    assert kernel_records(str(tmp_path / "bad")) == []
    (tmp_path / "two").write_text("3,5000000;EXT4-fs error (device sda1)\n")
    assert kernel_records(str(tmp_path / "two")) == []


def test_smart_is_asked_only_when_switched_on_and_a_disk_holds_a_path(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no smartctl: asking is what shows
    for smart, holders, asked in ((True, HELD, True), (False, HELD, False),
                                  (True, {"/": Holder(("overlay",), ())}, False)):
        obs = Observation()
        DiskHealthProbe(Settings(disk=DiskSettings(smart=smart))).smart(obs, holders)
        assert [f.code for f in obs.findings] == (["disk.smart_unavailable"] if asked else []), (smart, holders)


def test_smartctl_shares_six_tenths_of_the_time_left_between_the_disks(monkeypatch):
    budgets: dict[str, float] = {}

    def read_health(tool: str, device: str, timeout_s: float) -> _smart.Health:
        budgets[device] = timeout_s
        return _smart.Health(device, passed=True)

    monkeypatch.setattr(_smart, "smartctl", lambda: "/usr/sbin/smartctl")
    monkeypatch.setattr(_smart, "read_health", read_health)
    probe = DiskHealthProbe(Settings())
    probe.deadline_at = time.monotonic() + 10
    probe.smart(Observation(), {"/": Holder(("sda1", "sda"), ("sda",)), "/srv": Holder(("sdb1", "sdb"), ("sdb",))})
    assert set(budgets) == {"/dev/sda", "/dev/sdb"}
    assert all(2.4 < budget <= 3.0 for budget in budgets.values()), budgets  # a little time passes meanwhile


def recorded(name: str) -> str:
    return (SMARTCTL / name).read_text(encoding="utf-8")


def test_a_healthy_drive_reads_as_passed():
    health = _smart.parse("/dev/nvme0n1", recorded("healthy-nvme.json"))
    assert health.passed is True and not health.sectors and health.model == "INTEL SSDPEKNW010T8"


def test_a_failing_drive_reads_as_failed_with_its_damaged_sectors():
    health = _smart.parse("/dev/sdc", recorded("failing-ata.json"))
    assert health.passed is False and health.sectors == {"reallocated": 1975, "pending": 8}


def test_a_drive_that_fails_its_own_check_is_a_failing_disk_finding():
    probe = DiskHealthProbe(Settings())
    obs = Observation()
    probe.judge(obs, _smart.parse("/dev/sdc", recorded("failing-ata.json")), {"/": Holder(("sdc1", "sdc"), ("sdc",))})
    [finding] = obs.findings
    assert finding.code == "disk.smart_failing" and finding.severity.value == "fail"
    assert finding.data["reallocated"] == 1975 and finding.data["paths"] == ["/"]
    assert "1975" in finding.message and "FAILING" in finding.message


def test_damaged_sectors_on_a_drive_that_still_passes_are_a_warning():
    doc = json.loads(recorded("failing-ata.json"))
    doc["smart_status"]["passed"] = True
    doc["smartctl"]["exit_status"] = 64
    probe, obs = DiskHealthProbe(Settings()), Observation()
    probe.judge(obs, _smart.parse("/dev/sdc", json.dumps(doc)), {"/": Holder(("sdc",), ("sdc",))})
    assert [(f.code, f.severity.value) for f in obs.findings] == [("disk.smart_sectors", "warn")]


def test_smartctl_that_cannot_read_a_device_says_why():
    said = json.dumps({"smartctl": {"exit_status": 2, "messages": [
        {"string": "/dev/vda: Unable to detect device type", "severity": "error"}]}})
    health = _smart.parse("/dev/vda", said)
    assert health.passed is None and health.why == "/dev/vda: Unable to detect device type"


def test_smartctls_reason_is_quoted_by_its_first_200_characters():
    """A device's reason is one line of a finding: smartctl's message is quoted, but not a page of it."""
    long = "/dev/vda: " + "x" * 500
    health = _smart.parse("/dev/vda", json.dumps({"smartctl": {"exit_status": 2, "messages": [{"string": long}]}}))
    assert health.why == long[:200]
    assert _smart.parse("/dev/vda", json.dumps({"smartctl": {"exit_status": 2}})).why == "no SMART data"


def test_without_smartctl_the_probe_says_the_health_was_not_read(config_file, monkeypatch):
    if _smart.smartctl() is not None:  # a machine with smartmontools: it answers for its disks instead
        monkeypatch.setenv("PATH", "/nonexistent")
    rc, report = diagnose_json(config_file(disk={"paths": ["/"], "min_free_mb": 1}), "--only", "disk.health")
    disk_health = probe_of(report, "disk.health")
    if codes_of(report, "disk.health") == ["disk.no_block_device"]:
        pytest.skip("/ is on no block device here (a container)")
    finding = next(f for f in disk_health["findings"] if f["code"] == "disk.smart_unavailable")
    assert "smartctl is not installed" in finding["message"]


def test_smartctl_has_most_of_the_time_left_to_answer(config_file, monkeypatch, tmp_path):
    """A drive slow to answer (half a second, as a spun-down disk is) is still read within the default
    deadline: smartctl is given most of the time left, not a sliver of it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "smartctl").write_text(f"#!/bin/sh\nsleep 0.5\ncat {SMARTCTL / 'healthy-nvme.json'}\n")
    (bin_dir / "smartctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    rc, report = diagnose_json(config_file(disk={"paths": ["/"], "min_free_mb": 1}), "--only", "disk.health")
    if codes_of(report, "disk.health") == ["disk.no_block_device"]:
        pytest.skip("/ is on no block device here (a container)")
    metrics = probe_of(report, "disk.health")["metrics"]
    assert [v for k, v in metrics.items() if k.startswith("smart_passed[")] == [1], probe_of(report, "disk.health")


@pytest.mark.parametrize(("exit_status", "passed"), [(8, False), (8 | 64, False), (64, None), (0, None)],
                         ids=["disk-failing-bit", "failing-and-error-log", "error-log-only", "nothing"])
def test_smartctl_s_disk_failing_exit_bit_is_a_verdict_when_the_json_gives_none(exit_status, passed):
    """No smart_status in the output (an older or partial report): bit 3 of smartctl's exit status alone
    says "DISK FAILING"; its other bits (64: errors in the device's log) are no verdict."""
    health = _smart.parse("/dev/sda", json.dumps({"smartctl": {"exit_status": exit_status}, "model_name": "X"}))
    assert health.passed is passed


def test_the_json_s_own_verdict_stands_whatever_the_exit_bits_and_a_verdict_needs_no_reason():
    passed = _smart.parse("/dev/sda", json.dumps({"smart_status": {"passed": True}, "smartctl": {"exit_status": 8}}))
    assert passed.passed is True and passed.why == ""
    assert _smart.parse("/dev/nvme0n1", recorded("healthy-nvme.json")).why == ""
    damaged = _smart.parse("/dev/sda", json.dumps({"ata_smart_attributes": {"table": [{"id": 5, "raw": {"value": 4}}]}}))
    assert damaged.passed is None and damaged.sectors == {"reallocated": 4} and damaged.why == ""


@pytest.mark.parametrize("text", ["[1, 2]", "\"PASSED\"", "smartctl 7.3: not JSON"], ids=["a-list", "a-string", "text"])
def test_output_that_is_no_json_object_says_so(text):
    health = _smart.parse("/dev/sda", text)
    assert (health.passed, health.why) == (None, "smartctl printed no JSON")


def test_a_drive_without_a_verdict_or_sectors_is_said_unread_with_smartctls_reason():
    obs = Observation()
    DiskHealthProbe(Settings()).judge(obs, _smart.Health("/dev/sda", why="Unable to detect device type"), HELD)
    [finding] = obs.findings
    assert finding.code == "disk.smart_unavailable" and "Unable to detect device type" in finding.message
    assert "smart_passed[sda]" not in obs.metrics


@pytest.mark.parametrize(("passed", "code"), [(False, "disk.smart_failing"), (None, "disk.smart_sectors")])
def test_a_drive_without_a_model_name_is_named_by_a_question_mark(passed, code):
    obs = Observation()
    DiskHealthProbe(Settings()).judge(obs, _smart.Health("/dev/sda", passed=passed, sectors={"pending": 2}), HELD)
    [finding] = obs.findings
    assert finding.code == code and "/dev/sda (?, holding /)" in finding.message and "2 pending sectors" in finding.message
    assert obs.metrics["smart_passed[sda]"] == (None if passed is None else 0)


def test_every_damaged_sector_counter_of_an_ata_drive_is_read_and_a_zero_is_none():
    table = [{"id": 5, "raw": {"value": 3}}, {"id": 197, "raw": {"value": 0}}, {"id": 198, "raw": {"value": 2}},
             {"id": 9, "raw": {"value": 12000}}]
    doc = {"smart_status": {"passed": True}, "ata_smart_attributes": {"table": table}}
    assert _smart.parse("/dev/sda", json.dumps(doc)).sectors == {"reallocated": 3, "uncorrectable": 2}


@pytest.mark.parametrize(("log", "code", "severity"), [({"critical_warning": 4, "media_errors": 0}, "disk.smart_failing", "fail"),
                                                       ({"critical_warning": 0, "media_errors": 3}, "disk.smart_sectors", "warn"),
                                                       ({"critical_warning": 0, "media_errors": 0}, None, None)],
                         ids=["critical-warning", "media-errors", "clean"])
def test_an_nvme_drive_s_own_health_log_is_judged(log, code, severity):
    """NVMe: a critical warning bit (here: reliability degraded) is a failing drive though it passes overall;
    media errors alone are damage to watch."""
    doc = {"smart_status": {"passed": True}, "model_name": "NVMe X", "nvme_smart_health_information_log": log}
    probe, obs = DiskHealthProbe(Settings()), Observation()
    probe.judge(obs, _smart.parse("/dev/nvme0n1", json.dumps(doc)), {"/": Holder(("nvme0n1p1", "nvme0n1"), ("nvme0n1",))})
    assert [(f.code, f.severity.value) for f in obs.findings] == ([(code, severity)] if code else []), obs.findings
    if code == "disk.smart_sectors":
        assert obs.findings[0].data["media_errors"] == 3 and "3 media errors" in obs.findings[0].message


@pytest.mark.parametrize(("line", "device"), [
    ("blk_update_request: I/O error, dev sda, sector 2048 op 0x1:(WRITE) flags 0x800 phys_seg 1 prio class 0", "sda"),
    ("critical medium error, dev sda, sector 81920 op 0x0:(READ) flags 0x80700 phys_seg 1 prio class 0", "sda"),
    ("Buffer I/O error on device sda1, logical block 12", "sda1"),
    ("EXT4-fs error (device sda1): ext4_lookup:1855: inode #2: comm posapp: deleted inode referenced: 41", "sda1"),
    ("F2FS-fs error (device mmcblk0p2): f2fs_check_nid_range: out-of-range nid=1", "mmcblk0p2"),
    ("BTRFS error (device dm-0): bdev /dev/mapper/root errs: wr 1, rd 0, flush 0, corrupt 0, gen 0", "dm-0"),
    ("XFS (sdb1): Metadata corruption detected at xfs_da3_node_read_verify+0x7c/0x120", "sdb1"),
    ("ata1.00: failed command: READ FPDMA QUEUED", "ata1"),
    ("ata2: exception Emask 0x10 SAct 0x0 SErr 0x4050002 action 0xe frozen", "ata2"),
    ("sd 0:0:0:0: [sda] tag#7 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=3s", "sda"),
    ("mmcblk0: error -110 sending status command, retrying", "mmcblk0")],
    ids=["io-error", "medium-error", "buffer-io", "ext4", "f2fs", "btrfs", "xfs", "ata-failed-command", "ata-exception",
         "scsi-failed-result", "mmc"])
def test_each_kernel_error_form_names_the_device_it_was_on(line, device):
    from posdiag.probes.disk_health import device_in

    assert device_in(line, {device}) == device
    assert device_in(line, {"sdz"}) is None  # the same error on a disk that holds no configured path


def fake_sysfs(root: Path) -> Path:
    """sysfs of a till: sda on ATA port 1 with partition sda2, and dm-0 (an encrypted root) built on sda2."""
    disk = root / "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"
    (disk / "device").mkdir(parents=True)
    (disk / "sda2").mkdir()
    (disk / "sda2/partition").write_text("2\n")
    dm = root / "devices/virtual/block/dm-0"
    (dm / "slaves").mkdir(parents=True)
    (dm / "slaves/sda2").symlink_to(disk / "sda2")
    for folder, name, target in (("dev/block", "254:0", dm), ("dev/block", "8:2", disk / "sda2"),
                                 ("class/block", "sda2", disk / "sda2")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / name).symlink_to(target)
    return root


@pytest.mark.parametrize(("mount", "names"), [
    ("20 1 254:0 / / rw - ext4 /dev/mapper/root rw", ("dm-0", "sda2", "sda", "ata1")),
    ("20 1 8:2 / / rw - ext4 /dev/sda2 rw", ("sda2", "sda", "ata1")),
    ("20 1 0:31 / / rw - btrfs /dev/sda2 rw", ("sda2", "sda", "ata1")),
    ("20 1 0:25 / / rw - overlay overlay rw", ())],
    ids=["dm-on-a-partition", "partition", "btrfs-by-its-source", "overlay"])
def test_a_path_is_held_by_its_device_what_that_is_built_on_its_disk_and_its_port(tmp_path, mount, names):
    """The kernel's names for what holds /: the log may name any of them; only the real disk is asked for SMART."""
    (tmp_path / "mountinfo").write_text(mount + "\n")
    held = holder_of("/", str(tmp_path / "mountinfo"), str(fake_sysfs(tmp_path / "sys")))
    assert held == Holder(names, ("sda",) if names else ())


def test_a_hung_smartctl_is_given_up_within_the_probe_s_deadline_and_said(config_file, monkeypatch, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "smartctl").write_text("#!/bin/sh\nexec sleep 30\n")
    (bin_dir / "smartctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    rc, report = diagnose_json(config_file(disk={"paths": ["/"], "min_free_mb": 1}), "--only", "disk.health")
    if codes_of(report, "disk.health") == ["disk.no_block_device"]:
        pytest.skip("/ is on no block device here (a container)")
    health = probe_of(report, "disk.health")
    assert health["status"] == "ok" and "probe.timeout" not in codes_of(report, "disk.health"), health
    said = [f["message"] for f in health["findings"] if f["code"] == "disk.smart_unavailable"]
    assert said and all("smartctl did not answer within" in m for m in said), health


def test_a_stack_of_volumes_is_followed_four_levels_down_and_no_deeper(tmp_path):
    """dm-0 on dm-1 on dm-2 on dm-3 on sda2: the names the log may use are taken four levels down, so that a
    loop of slaves (a broken sysfs) cannot walk for ever; what lies deeper is not named."""
    root = fake_sysfs(tmp_path / "sys")
    virtual = root / "devices/virtual/block"
    below = root / "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda2"
    for n in (3, 2, 1):
        (virtual / f"dm-{n}" / "slaves").mkdir(parents=True)
        (virtual / f"dm-{n}" / "slaves" / below.name).symlink_to(below)
        below = virtual / f"dm-{n}"
    (virtual / "dm-0/slaves/sda2").unlink()
    (virtual / "dm-0/slaves/dm-1").symlink_to(virtual / "dm-1")
    (tmp_path / "mountinfo").write_text("20 1 254:0 / / rw - ext4 /dev/mapper/root rw\n")
    assert holder_of("/", str(tmp_path / "mountinfo"), str(root)) == Holder(("dm-0", "dm-1", "dm-2", "dm-3"), ())
    (virtual / "dm-2/slaves/dm-3").unlink()
    (virtual / "dm-2/slaves/sda2").symlink_to(root / "class/block/sda2")
    assert holder_of("/", str(tmp_path / "mountinfo"), str(root)) == Holder(("dm-0", "dm-1", "dm-2", "sda2", "sda", "ata1"),
                                                                           ("sda",))
