"""System: CPU saturation, heat and throttling, and whether the POS application is up and stable."""

from __future__ import annotations

import glob
import os
import re
import time
from typing import Any

import psutil
from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes import _psi
from posdiag.probes._procs import find_processes
from posdiag.probes.base import Observation, Probe, Status, declare

#: With the load over its limit, runnable tasks that waited for a CPU at least this share of the last
#: 10 s (CPU pressure) mean a saturated CPU: the POS application queues for it too.
SATURATED_PRESSURE = 50.0
#: Where the kernel keeps no CPU pressure: with the load over its limit, a CPU busier than this is saturated.
SATURATED_BUSY = 90.0
#: The CPU's busy share is measured over at least this long: shorter, and a 100 Hz tick count says little.
CPU_WINDOW_S = 0.1
#: A baseline older than this is not a sample of "now" (in the daemon, it is the previous sweep's).
CPU_BASELINE_MAX_AGE_S = 1.0


def _totals(times: Any) -> tuple[float, float]:
    """(all CPU time, idle time) as psutil counts them: guest time is already inside user/nice time."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total, times.idle + getattr(times, "iowait", 0.0)


class CpuWindow:
    """How busy the terminal's CPUs are, apart from posdiag itself, over a window of at least
    :data:`CPU_WINDOW_S` that ends now.

    The first window opens when this module is imported, so in a one-shot ``posdiag diagnose`` it
    elapses while the rest of posdiag loads instead of being slept through afterwards; the CPU time
    posdiag spends meanwhile is taken out, so its own start-up never reads as a busy terminal (on a
    single-core till it would read as saturated). A baseline older than
    :data:`CPU_BASELINE_MAX_AGE_S` (the daemon's previous sweep) is taken again, so a window always
    ends now and never averages over minutes.
    """

    def __init__(self) -> None:
        self._open()

    def _open(self) -> None:
        self.opened_at, self.baseline, self.own = time.monotonic(), psutil.cpu_times(), _own_cpu_s()

    def busy_percent(self) -> float:
        if time.monotonic() - self.opened_at > CPU_BASELINE_MAX_AGE_S:
            self._open()
        wait = self.opened_at + CPU_WINDOW_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        (total0, idle0), own0 = _totals(self.baseline), self.own
        self._open()
        (total1, idle1), own1 = _totals(self.baseline), self.own
        spent = total1 - total0
        busy = spent - (idle1 - idle0) - (own1 - own0)
        return 0.0 if spent <= 0 else round(min(100.0, max(0.0, busy / spent * 100)), 1)


def _own_cpu_s() -> float:
    """CPU seconds this process (all its threads) has used, to the microsecond: ``os.times`` counts
    10 ms ticks, as much as a whole tenth of the window."""
    return time.process_time()


_cpu = CpuWindow()


class CpuReading:
    """How hard the CPUs are pressed, by the best measure this kernel offers, and which one it was.

    CPU pressure (PSI ``some avg10``) where the kernel keeps it: the share of the last 10 s in which
    runnable tasks waited for a CPU, read at once, with posdiag's own start-up a negligible part of
    it. Elsewhere the busy share over :class:`CpuWindow`, which has to be waited for.
    """

    def __init__(self, pressure_path: str = _psi.CPU) -> None:
        psi = _psi.read_psi(pressure_path)
        self.pressure = psi.get("some") if psi else None
        self.metric = "cpu_psi_some_avg10" if self.pressure is not None else "cpu_percent"
        self.percent = self.pressure if self.pressure is not None else _cpu.busy_percent()

    @property
    def saturated(self) -> bool:
        return self.percent >= SATURATED_PRESSURE if self.pressure is not None else self.percent > SATURATED_BUSY

    def saturated_text(self, load: float, cpus: int) -> str:
        if self.pressure is not None:
            return tr("CPU saturated: load {load:.1f} on {cpus} CPUs, tasks waited for a CPU {percent:.0f}% of the "
                      "last 10 s", load=load, cpus=cpus, percent=self.percent)
        return tr("CPU saturated: load {load:.1f} on {cpus} CPUs, {busy:.0f}% busy", load=load, cpus=cpus,
                  busy=self.percent)

    def summary(self, per_cpu: float) -> str:
        if self.pressure is not None:
            return tr("load {load:.2f} per CPU, tasks waited for a CPU {percent:.0f}% of the last 10 s", load=per_cpu,
                      percent=self.percent)
        return tr("load {load:.2f} per CPU, {busy:.0f}% busy", load=per_cpu, busy=self.percent)


def throttle_count(root: str = "/sys/devices/system/cpu") -> int | None:
    """Times the CPUs were thermally throttled since boot (Intel's thermal_throttle counters)."""
    total, seen = 0, False
    for path in glob.glob(os.path.join(root, "cpu[0-9]*", "thermal_throttle", "*_throttle_count")):
        try:
            with open(path) as fh:
                total += int(fh.read().strip())
                seen = True
        except (OSError, ValueError):
            continue
    return total if seen else None


def thermal_zones(root: str = "/sys/class/thermal") -> dict[str, float]:
    """The kernel's thermal zones: ``type`` (x86_pkg_temp, cpu-thermal, acpitz …) → °C now."""
    zones: dict[str, float] = {}
    for folder in sorted(glob.glob(os.path.join(root, "thermal_zone[0-9]*"))):
        try:
            with open(os.path.join(folder, "temp")) as fh:
                celsius = int(fh.read().strip()) / 1000
        except (OSError, ValueError):
            continue
        try:
            with open(os.path.join(folder, "type")) as fh:
                kind = fh.read().strip() or os.path.basename(folder)
        except OSError:
            kind = os.path.basename(folder)
        zones[kind if kind not in zones else os.path.basename(folder)] = celsius
    return zones


#: the kernel's words when a CPU overheats (x86 thermal interrupts, the thermal core)
HEAT = re.compile(r"temperature above threshold|cpu clock throttled|critical temperature reached|overheat", re.I)


class SystemProbe(Probe):
    name = "system"
    description = N_("load per CPU, temperatures and thermal throttling, POS process running and how long since it (re)started")
    findings = declare(fail=("system.cpu_saturated", "system.pos_process_missing"), warn=("system.load_high",
                           "system.overheating", "system.pos_process_restarted", "system.thermal_events",
                           "system.throttled"))

    def check(self, obs: Observation) -> None:
        cfg = self.settings.system
        cpus = psutil.cpu_count() or 1
        load1, load5, _ = psutil.getloadavg()
        per_cpu = load1 / cpus
        obs.metric("load1_per_cpu", round(per_cpu, 2))
        obs.metric("cpu_count", cpus)
        cpu = CpuReading()
        obs.metric(cpu.metric, cpu.percent)
        if per_cpu > cfg.max_load_per_cpu and cpu.saturated:
            obs.fail("system.cpu_saturated", cpu.saturated_text(load1, cpus), load1=load1, cpus=cpus,
                     **{cpu.metric: cpu.percent})
        elif per_cpu > cfg.max_load_per_cpu:
            obs.warn("system.load_high", tr("load {load:.1f} on {cpus} CPUs (limit {limit:g} per CPU)", load=load1,
                                            cpus=cpus, limit=cfg.max_load_per_cpu),
                     load1=load1, cpus=cpus)

        self._temperatures(obs)
        self._pos_process(obs)
        if obs.status() is Status.OK:
            obs.summary = cpu.summary(per_cpu)

    def _temperatures(self, obs: Observation) -> None:
        sensors = getattr(psutil, "sensors_temperatures", None)
        temps = {f"{chip}/{t.label or i}": t.current for chip, entries in (sensors() if sensors else {}).items()
                 for i, t in enumerate(entries) if t.current}
        temps.update(thermal_zones(self.host_path("/sys/class/thermal")))
        if temps:
            where, hottest = max(temps.items(), key=lambda item: item[1])
            obs.metric("max_temp_c", hottest)
            if hottest >= self.settings.system.max_temp_c:
                obs.warn("system.overheating", tr("{sensor} at {temp:.0f} °C (limit {limit:g} °C)", sensor=where,
                                                  temp=hottest, limit=self.settings.system.max_temp_c),
                         temp_c=hottest, sensor=where)
        throttled = throttle_count(self.host_path("/sys/devices/system/cpu"))
        if throttled is not None:
            obs.metric("throttle_events_since_boot", throttled)
            if throttled:
                obs.warn("system.throttled", ntr("CPU thermally throttled {n} time since boot",
                                                 "CPU thermally throttled {n} times since boot", throttled),
                         throttle_events=throttled)
        self._heat_in_kernel_log(obs)

    def _heat_in_kernel_log(self, obs: Observation) -> None:
        """The kernel's own overheating reports of the last hours (unreadable: the crash probe says so)."""
        cfg = self.settings.system
        try:
            records = self.context.kernel_log(cfg.kernel_log, since_clear=True)
        except OSError:
            return
        since = time.monotonic() - cfg.kernel_log_window_h * 3600
        heat = [m for t, m in records if t >= since and HEAT.search(m)]
        if heat:
            obs.warn("system.thermal_events", ntr("the kernel reported overheating {n} time in the last {hours:g} h: {last}",
                                                  "the kernel reported overheating {n} times in the last {hours:g} h: {last}",
                                                  len(heat), hours=cfg.kernel_log_window_h, last=heat[-1][:160]),
                     count=len(heat), last=heat[-1][:300])

    def _pos_process(self, obs: Observation) -> None:
        name = self.settings.terminal.pos_process
        if not name:
            return
        procs = find_processes(name)
        if not procs:
            obs.fail("system.pos_process_missing", tr("the POS application '{process}' is not running", process=name),
                     process=name)
            return
        youngest = max(p.create_time() for p in procs)
        age_s = time.time() - youngest
        obs.metric("pos_uptime_s", round(age_s, 1))
        obs.metric("pos_start_time_s", round(youngest, 2))
        obs.metric("pos_process_count", len(procs))
        if age_s < self.settings.system.min_uptime_s:
            obs.warn("system.pos_process_restarted", tr("'{process}' (re)started only {age_s:.0f} s ago (minimum "
                                                        "{min_s:g} s)", process=name, age_s=age_s,
                                                        min_s=self.settings.system.min_uptime_s),
                     process=name, uptime_s=round(age_s, 1), min_uptime_s=self.settings.system.min_uptime_s)
