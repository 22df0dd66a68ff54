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
