"""How the system probe tells a saturated CPU from a busy one: CPU pressure where the kernel keeps it
(read at once), the busy share over a window where it does not, and the report says which it measured."""

from __future__ import annotations

import os

import pytest
from labs.commands import diagnose_json
from labs.helpers import probe_of
from posdiag.probes import _psi
from posdiag.probes.system import SATURATED_PRESSURE, CpuReading


def pressure_file(tmp_path, some_avg10: float):
    """A CPU pressure file as the kernel writes it (Linux >= 5.13 adds the always-zero "full" line)."""
    path = tmp_path / "cpu"
    path.write_text(f"some avg10={some_avg10:.2f} avg60=12.50 avg300=3.10 total=123456789\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    return str(path)


@pytest.mark.parametrize("some_avg10,saturated", [(SATURATED_PRESSURE - 0.01, False), (SATURATED_PRESSURE, True),
                                                  (0.0, False), (100.0, True)])
def test_cpu_pressure_decides_saturation_on_both_sides_of_its_threshold(tmp_path, some_avg10, saturated):
    reading = CpuReading(pressure_file(tmp_path, some_avg10))
    assert reading.metric == "cpu_psi_some_avg10"
    assert reading.percent == round(some_avg10, 2)
    assert reading.saturated is saturated


def test_a_saturated_cpu_says_it_measured_tasks_waiting_not_a_busy_share(tmp_path):
    reading = CpuReading(pressure_file(tmp_path, 75.0))
    assert reading.saturated_text(4.2, 2) == "CPU saturated: load 4.2 on 2 CPUs, tasks waited for a CPU 75% of the last 10 s"
    assert reading.summary(0.5) == "load 0.50 per CPU, tasks waited for a CPU 75% of the last 10 s"


@pytest.mark.parametrize("content", [None, "", "some avg10=garbage total=1\n", "\n\n"])
def test_without_cpu_pressure_the_busy_share_is_measured_and_named(tmp_path, content):
    """No pressure file (a kernel booted without PSI), or one that says nothing usable: the busy share
    over a window, named as such."""
    path = tmp_path / "cpu"
    if content is not None:
        path.write_text(content)
    reading = CpuReading(str(path))
    assert reading.metric == "cpu_percent"
    assert 0.0 <= reading.percent <= 100.0
    assert reading.summary(0.5).endswith("% busy")


def test_memory_and_cpu_pressure_files_of_this_kernel_read_as_shares():
    for path in (_psi.MEMORY, _psi.CPU):
        if not os.path.exists(path):
            continue
        psi = _psi.read_psi(path)
        assert psi is not None and 0.0 <= psi["some"] <= 100.0, (path, psi)


def test_report_says_which_cpu_measure_this_host_gave(config_file):
    rc, report = diagnose_json(config_file())
    system = probe_of(report, "system")
    pressure = _psi.read_psi(_psi.CPU) is not None
    measured, other = ("cpu_psi_some_avg10", "cpu_percent") if pressure else ("cpu_percent", "cpu_psi_some_avg10")
    assert measured in system["metrics"] and other not in system["metrics"]
    if system["status"] == "ok":  # a hot or throttled CPU would say that instead
        assert ("tasks waited for a CPU" in system["summary"]) is pressure


@pytest.mark.parametrize(("busy", "saturated"), [(90.0, False), (90.1, True)])
def test_without_cpu_pressure_a_cpu_is_saturated_only_over_ninety_percent_busy(tmp_path, busy, saturated):
    reading = CpuReading(str(tmp_path / "none"))
    reading.percent = busy  # what the window measured: the rule applied to it is what is tested
    assert reading.saturated is saturated


def test_without_cpu_pressure_a_cpu_spinning_in_another_process_reads_as_busy(tmp_path):
    """A process of another program spins on a core while the window is measured: the share is its, not zero
    (posdiag's own time is what is taken out, not everyone's)."""
    import subprocess
    import sys
    import time

    spinner = subprocess.Popen([sys.executable, "-c", "import time\nend = time.monotonic() + 5\n"
                                "while time.monotonic() < end: pass"])
    try:
        time.sleep(0.2)
        reading = CpuReading(str(tmp_path / "none"))
    finally:
        spinner.kill()
        spinner.wait()
    assert reading.metric == "cpu_percent" and reading.percent > 10, reading.percent


def test_the_report_counts_this_machine_s_cpus(config_file):
    import psutil

    rc, report = diagnose_json(config_file(), "--only", "system")
    assert probe_of(report, "system")["metrics"]["cpu_count"] == psutil.cpu_count()
