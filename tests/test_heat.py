"""Heat as the kernel reports it: overheating records written to the real /dev/kmsg, thermal zones and
throttle counters in the kernel's sysfs formats under a test root (this machine has neither)."""

from __future__ import annotations

from pathlib import Path

import pytest
from labs import kernel
from labs.commands import diagnose_json
from labs.helpers import probe_of, top_cause


def findings(report: dict) -> dict[str, dict]:
    return {f["code"]: f for f in probe_of(report, "system")["findings"]}


@pytest.mark.root
def test_the_kernel_s_overheating_records_point_at_an_overloaded_terminal(config_file):
    config = config_file(system={"kernel_log": "/dev/kmsg", "max_load_per_cpu": 1000})
    with kernel.records("CPU0: Core temperature above threshold, cpu clock throttled (total events = 1234)",
                        "CPU1: Package temperature above threshold, cpu clock throttled (total events = 1240)",
                        level=4):
        rc, report = diagnose_json(config, "--only", "system")
    found = findings(report)["system.thermal_events"]
    assert found["severity"] == "warn" and found["data"]["count"] == 2
    assert rc == 1 and top_cause(report) == "system.overload"


def sys_root(root: Path, celsius: float, throttled: int) -> Path:
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("x86_pkg_temp\n")
    (zone / "temp").write_text(f"{int(celsius * 1000)}\n")
    for cpu in ("cpu0", "cpu1"):
        counters = root / "sys/devices/system/cpu" / cpu / "thermal_throttle"
        counters.mkdir(parents=True)
        (counters / "core_throttle_count").write_text(f"{throttled}\n")
        (counters / "package_throttle_count").write_text("0\n")
    return root


def test_a_hot_thermal_zone_and_throttle_counters_are_read_from_sysfs(config_file, tmp_path):
    root = sys_root(tmp_path / "root", 97.0, 6)
    rc, report = diagnose_json(config_file(system={"host_root": str(root), "max_temp_c": 85, "max_load_per_cpu": 1000}),
                               "--only", "system")
    found = findings(report)
    assert found["system.overheating"]["data"] == {"temp_c": 97.0, "sensor": "x86_pkg_temp"}
    assert found["system.throttled"]["data"]["throttle_events"] == 12
    assert probe_of(report, "system")["metrics"]["max_temp_c"] >= 97.0
    assert rc == 1 and top_cause(report) == "system.overload"


def test_a_cool_thermal_zone_is_no_finding(config_file, tmp_path):
    root = sys_root(tmp_path / "root", 48.0, 0)
    rc, report = diagnose_json(config_file(system={"host_root": str(root), "max_load_per_cpu": 1000}), "--only", "system")
    assert "system.overheating" not in findings(report) and "system.throttled" not in findings(report)


@pytest.mark.parametrize(("celsius", "hot"), [(85.0, True), (84.999, False)], ids=["at-the-limit", "a-millidegree-under"])
def test_a_thermal_zone_is_overheating_from_its_limit_on(config_file, tmp_path, celsius, hot):
    """The default limit of 85 °C: reaching it is overheating, a thousandth of a degree under it is not."""
    root = sys_root(tmp_path / "root", celsius, 0)
    rc, report = diagnose_json(config_file(system={"host_root": str(root)}), "--only", "system")
    assert ("system.overheating" in findings(report)) is hot, findings(report)
    assert probe_of(report, "system")["metrics"]["max_temp_c"] >= celsius


def kernel_log_of(path: Path, age_s: float, message: str) -> Path:
    """A kernel log holding one record, ``age_s`` old, in /dev/kmsg's format (its time is the monotonic clock's)."""
    import time

    path.write_text(f"4,1,{int((time.monotonic() - age_s) * 1e6)},-;{message}\n")
    return path


@pytest.mark.parametrize(("age_h", "counted"), [(0.9, True), (1.1, False)], ids=["within-the-hour", "older"])
def test_the_kernel_s_overheating_records_count_only_within_the_window(config_file, tmp_path, age_h, counted):
    log = kernel_log_of(tmp_path / "kmsg", age_h * 3600, "CPU0: Core temperature above threshold, cpu clock throttled "
                                                         "(total events = 7)" + " and more" * 40)
    rc, report = diagnose_json(config_file(system={"kernel_log": str(log), "kernel_log_window_h": 1}), "--only", "system")
    found = findings(report).get("system.thermal_events")
    assert (found is not None) is counted, findings(report)
    if counted:
        assert found["data"]["count"] == 1 and len(found["data"]["last"]) == 300
        assert found["message"].endswith("in the last 1 h: " + found["data"]["last"][:160])


def test_two_thermal_zones_of_one_type_are_told_apart_by_their_folder(tmp_path):
    """Two ACPI zones (a common pair): the second, hotter, is named by its folder, not lost under the first's name."""
    from posdiag.probes.system import thermal_zones

    for n, celsius in ((0, 41.0), (1, 88.5)):
        zone = tmp_path / f"thermal_zone{n}"
        zone.mkdir()
        (zone / "type").write_text("acpitz\n")
        (zone / "temp").write_text(f"{int(celsius * 1000)}\n")
    assert thermal_zones(str(tmp_path)) == {"acpitz": 41.0, "thermal_zone1": 88.5}


def test_a_thermal_zone_without_a_type_is_named_by_its_folder_and_one_without_a_reading_is_left_out(tmp_path):
    from posdiag.probes.system import thermal_zones

    for n, kind, temp in ((0, "", "52000"), (1, None, "61500"), (2, "acpitz", "not a number"), (3, "acpitz", None)):
        zone = tmp_path / f"thermal_zone{n}"
        zone.mkdir()
        if kind is not None:
            (zone / "type").write_text(f"{kind}\n")
        if temp is not None:
            (zone / "temp").write_text(f"{temp}\n")
    assert thermal_zones(str(tmp_path)) == {"thermal_zone0": 52.0, "thermal_zone1": 61.5}
