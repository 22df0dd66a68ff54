"""Memory: is the terminal short of RAM, thrashing swap, killing processes, or leaking in the POS app?"""

from __future__ import annotations

import psutil
from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes._procs import find_processes
from posdiag.probes._psi import MEMORY, read_psi
from posdiag.probes.base import Observation, Probe, Status, declare

MB = 1024 * 1024


def read_oom_kills(path: str = "/proc/vmstat") -> int | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def total_rss(processes: list[psutil.Process]) -> int:
    """Resident memory of ``processes`` in bytes. A POS process that exits between being found and
    being measured (a restart, a crash) is simply not counted: it must not turn the probe into an error."""
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return total


class MemoryProbe(Probe):
    name = "memory"
    description = N_("available memory, swap use, memory pressure (PSI), OOM kills, RSS of the POS process")
    # memory.oom_kills is a count since boot: what it says of *now* is the engine's to weigh beside the
    # other findings (causes.toml [corroborated]), so the probe only states it.
    findings = declare(fail=("memory.available_low", "memory.pressure_high"),
                       warn=("memory.pos_process_large", "memory.swap_high"), info=("memory.oom_kills", "memory.pos_rss"))

    def check(self, obs: Observation) -> None:
        cfg = self.settings.memory
        vm = psutil.virtual_memory()
        available_mb = vm.available / MB
        obs.metric("available_mb", round(available_mb, 1))
        obs.metric("total_mb", round(vm.total / MB, 1))
        if available_mb < cfg.min_available_mb:
            obs.fail("memory.available_low",
                     tr("only {available_mb:.0f} MB of memory available (minimum {min_mb} MB)",
                        available_mb=available_mb, min_mb=cfg.min_available_mb),
                     available_mb=round(available_mb, 1), min_available_mb=cfg.min_available_mb)

        swap = psutil.swap_memory()
        obs.metric("swap_percent", swap.percent)
        if swap.total and swap.percent > cfg.max_swap_percent:
            obs.warn("memory.swap_high", tr("swap {percent:.0f}% used (limit {limit:g}%)", percent=swap.percent,
                                            limit=cfg.max_swap_percent),
                     swap_percent=swap.percent, max_swap_percent=cfg.max_swap_percent)

        psi = read_psi(MEMORY)
        if psi is not None:
            obs.metric("psi_some_avg10", psi.get("some"))
            obs.metric("psi_full_avg10", psi.get("full"))
            full = psi.get("full", 0.0)
            if full >= 10:
                obs.fail("memory.pressure_high",
                         tr("all tasks stalled on memory {percent:.0f}% of the last 10 s", percent=full),
                         psi_full_avg10=full)
            elif psi.get("some", 0.0) >= 20:
                obs.warn("memory.pressure_high",
                         tr("tasks stalled on memory {percent:.0f}% of the last 10 s", percent=psi["some"]),
                         psi_some_avg10=psi["some"])

        ooms = read_oom_kills()
        if ooms is not None:
            obs.metric("oom_kills_since_boot", ooms)
            if ooms:
                obs.info("memory.oom_kills",
                         ntr("the kernel killed {n} process for lack of memory since boot",
                             "the kernel killed {n} processes for lack of memory since boot", ooms), oom_kills=ooms)

        if self.settings.terminal.pos_process:
            rss = total_rss(find_processes(self.settings.terminal.pos_process))
            obs.metric("pos_rss_mb", round(rss / MB, 1) if rss else None)
            if rss:
                share = rss / vm.total * 100
                obs.metric("pos_rss_percent", round(share, 1))
                obs.info("memory.pos_rss", tr("{process} uses {rss_mb:.0f} MB ({share:.0f}% of RAM)",
                                              process=self.settings.terminal.pos_process, rss_mb=rss / MB, share=share),
                         rss_mb=round(rss / MB, 1))
                if share > 50:
                    obs.warn("memory.pos_process_large",
                             tr("{process} holds {share:.0f}% of RAM",
                                process=self.settings.terminal.pos_process, share=share),
                             rss_mb=round(rss / MB, 1), rss_percent=round(share, 1))
        if obs.status() is Status.OK:
            obs.summary = tr("{available_mb:.0f} MB available, swap {swap_percent:.0f}%", available_mb=available_mb,
                             swap_percent=swap.percent)
