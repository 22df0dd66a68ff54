"""Crashes: the kernel's own (oops, BUG, panic, hung tasks), the POS application killed by the
kernel or restarting again and again, and a previous boot that ended without a shutdown.

Sources, newest first: the kernel log of this boot (records of the last ``[system]
kernel_log_window_h``, after the last ``dmesg --clear``: a technician clears what was dealt with);
the POS's start times (sweep after sweep, and those the daemon saw between sweeps) and systemd's
restart count of its unit; the previous boot's end and kernel messages in the journal, the kernel's
crash records kept in pstore, and kdump's dumps. Another program's crash is said, never weighed:
it is not the system's (see :mod:`posdiag.probes._crashlog`).
"""

from __future__ import annotations

import time

from posdiag.core.i18n import N_, N_plural, ntr, tr
from posdiag.core.timefmt import utc_iso
from posdiag.probes import _crashlog, _lastboot, _restarts
from posdiag.probes.base import Observation, PastSweep, Probe, Status, declare

#: a command-line tool is given at most this share of the probe's time left
TOOL_SHARE = 0.4


class CrashProbe(Probe):
    name = "system.crash"
    description = N_("kernel oops, panics and hung tasks; the POS killed by the kernel or restarting repeatedly; "
                     "a previous boot that did not shut down cleanly (journal, pstore, kdump)")
    findings = declare(fail=("crash.kernel_oops", "crash.pos_oom_killed", "crash.pos_restarting", "crash.pos_segfault",
                             "crash.pstore"),
                       warn=("crash.hung_task", "crash.kdump", "crash.unclean_shutdown"),
                       info=("crash.kernel_log_unreadable", "crash.pos_restarts", "crash.previous_boot_unknown",
                             "crash.program_crashed", "crash.unit_unreadable"))
    after = ("system",)

    def check(self, obs: Observation) -> None:
        self.kernel(obs)
        if self.settings.terminal.pos_process or self.settings.terminal.pos_unit:
            history = list(self.context.history(_HISTORY))
            self.restarts(obs, history)
            self.unit(obs, history)
        self.previous_boot(obs)
        self.saved_crashes(obs)
        if obs.status() is Status.OK:
            obs.summary = tr("no crash in the kernel log, the POS is stable, the previous boot ended cleanly or is unknown")

    # -- this boot's kernel log -------------------------------------------------------------------

    def kernel(self, obs: Observation) -> None:
        cfg = self.settings.system
        try:
            records = self.context.kernel_log(cfg.kernel_log, since_clear=True)
        except OSError as exc:
            obs.info("crash.kernel_log_unreadable", tr("the kernel log {path} cannot be read ({error}): kernel crashes "
                                                       "not checked", path=cfg.kernel_log, error=exc.strerror or exc),
                     path=cfg.kernel_log)
            return
        since = time.monotonic() - cfg.kernel_log_window_h * 3600
        found = _crashlog.read((m for t, m in records if t >= since), self.settings.terminal.pos_process)
        obs.metric("kernel_oopses", len(found.oopses))
        if found.oopses:
            obs.fail("crash.kernel_oops", ntr("the kernel failed {n} time in the last {hours:g} h: {first}",
                                              "the kernel failed {n} times in the last {hours:g} h: {first}",
                                              len(found.oopses), hours=cfg.kernel_log_window_h,
                                              first=found.oopses[0][:160]),
                     count=len(found.oopses), first=found.oopses[0][:300], window_h=cfg.kernel_log_window_h)
        if found.hung_tasks:
            tasks = sorted(set(found.hung_tasks))
            obs.warn("crash.hung_task", ntr("{n} task hung in the kernel for minutes ({tasks})",
                                            "{n} tasks hung in the kernel for minutes ({tasks})", len(found.hung_tasks),
                                            tasks=", ".join(tasks)), count=len(found.hung_tasks), tasks=tasks)
        self.pos_killed(obs, found)
        self.other_programs(obs, found)

    def pos_killed(self, obs: Observation, found: _crashlog.KernelCrashes, boot: str = "this") -> None:
        name = self.settings.terminal.pos_process
        for kind, pids in found.pos_deaths.items():
            if pids:
                words = _KILL_WORDS[kind] if boot == "this" else _KILL_WORDS_BEFORE[kind]
                obs.fail(f"crash.pos_{_KILL_CODES[kind]}", ntr(*words, len(pids), process=name),
                         process=name, count=len(pids), pids=pids, boot=boot)

    def other_programs(self, obs: Observation, found: _crashlog.KernelCrashes) -> None:
        """Another program's crash is its own business: said, never weighed against the terminal."""
        if found.programs:
            programs = dict(found.programs.most_common(10))
            obs.info("crash.program_crashed", ntr("{n} crash of another program in the last {hours:g} h ({programs})",
                                                  "{n} crashes of other programs in the last {hours:g} h ({programs})",
                                                  sum(found.programs.values()), hours=self.settings.system.kernel_log_window_h,
                                                  programs=", ".join(f"{p} ×{n}" for p, n in programs.items())),
                     programs=programs)

    # -- the POS restarting -----------------------------------------------------------------------

    def restarts(self, obs: Observation, history: list[PastSweep]) -> None:
        name = self.settings.terminal.pos_process
        if not name:
            return
        cfg = self.settings.system
        starts = [_start(sweep) for sweep in history] + list(self.context.pos_starts())
        current = self.context.results.get("system")
        starts.append(current.metrics.get(_restarts.START_METRIC) if current else None)  # type: ignore[arg-type]
        seen = _restarts.restarts_seen(starts, time.time() - cfg.restart_window_min * 60)
        obs.metric("pos_restarts_seen", len(seen))
        if len(seen) >= cfg.restart_limit:
            obs.fail("crash.pos_restarting", tr("the POS application '{process}' restarted {n} times in {window:g} min "
                                                "(limit {limit})", process=name, n=len(seen),
                                                window=cfg.restart_window_min, limit=cfg.restart_limit),
                     process=name, restarts=len(seen), window_min=cfg.restart_window_min, source="start_times",
                     at=[utc_iso(t) for t in seen])
        elif seen:
            obs.info("crash.pos_restarts", ntr("the POS application '{process}' restarted {n} time in {window:g} min",
                                               "the POS application '{process}' restarted {n} times in {window:g} min",
                                               len(seen), process=name, window=cfg.restart_window_min),
                     process=name, restarts=len(seen))

    def unit(self, obs: Observation, history: list[PastSweep]) -> None:
        unit = self.settings.terminal.pos_unit
        if not unit:
            return
        cfg = self.settings.system
        state = _restarts.unit_state(unit, self.remaining_s() * TOOL_SHARE)
        if state.restarts is None:
            obs.info("crash.unit_unreadable", tr("systemd's restart count of {unit} cannot be read ({why})", unit=unit,
                                                 why=state.detail or tr(_TOOL_MISSING)), unit=unit)
            return
        obs.metric("pos_unit_restarts", state.restarts)
        recent = self.unit_restarts_in_window(state, history)
        if recent is not None and recent >= cfg.restart_limit:
            obs.fail("crash.pos_restarting", tr("systemd restarted {unit} {n} times in {window:g} min (limit {limit})",
                                                unit=unit, n=recent, window=cfg.restart_window_min,
                                                limit=cfg.restart_limit),
                     unit=unit, restarts=recent, window_min=cfg.restart_window_min, source="systemd")

    def unit_restarts_in_window(self, state: _restarts.UnitState, history: list[PastSweep]) -> int | None:
        """systemd's restarts within the window: the count now less the count the last sweep before
        the window saw; with no such sweep, the whole count if the last restart is within the window."""
        assert state.restarts is not None
        window_s = self.settings.system.restart_window_min * 60
        before = [s for s in history if s.started_at <= time.time() - window_s]
        counted = [s.probes.get(self.name, ("", {}))[1].get("pos_unit_restarts") for s in before]
        known = [c for c in counted if isinstance(c, int)]
        if known:
            return max(0, state.restarts - known[-1])
        started_s_ago = time.monotonic() - state.started_monotonic_us / 1e6
        return state.restarts if state.started_monotonic_us and started_s_ago <= window_s else None

    # -- the previous boot ------------------------------------------------------------------------

    def previous_boot(self, obs: Observation) -> None:
        end = _lastboot.journal_end(self.remaining_s() * TOOL_SHARE, self.host_path(_lastboot.BOOT_ID))
        if not end.known:
            obs.info("crash.previous_boot_unknown", tr("the previous boot (how it ended, its kernel messages) was not "
                                                       "checked: {why}",
                                                       why=tr(_BOOT_WHY.get(end.why, _BOOT_WHY["error"]),
                                                              detail=end.detail)), why=end.why, detail=end.detail)
            return
        assert end.ended_at is not None
        obs.metric("previous_boot_clean", int(end.clean))
        window_h = self.settings.system.kernel_log_window_h
        if not end.clean and end.ended_at >= time.time() - window_h * 3600:
            obs.warn("crash.unclean_shutdown", tr("the previous boot ended at {at} without a shutdown",
                                                  at=utc_iso(end.ended_at)), ended_at=utc_iso(end.ended_at))
        self.previous_kernel(obs)

    def previous_kernel(self, obs: Observation) -> None:
        """The previous boot's kernel messages through the same patterns as this boot's: an oops or the
        POS killed before a reboot is not lost with the ring buffer."""
        told = _lastboot.kernel_messages(self.remaining_s() * TOOL_SHARE, _crashlog.relevant,
                                         self.host_path(_lastboot.BOOT_ID))
        if not told.known:
            obs.info("crash.previous_boot_unknown", tr("the previous boot's kernel messages were not checked: {why}",
                                                       why=tr(_BOOT_WHY.get(told.why, _BOOT_WHY["error"]),
                                                              detail=told.detail)), why=told.why, detail=told.detail)
            return
        since = time.time() - self.settings.system.kernel_log_window_h * 3600
        found = _crashlog.read((m for t, m in told.records if t >= since), self.settings.terminal.pos_process)
        if found.oopses:
            obs.fail("crash.kernel_oops", ntr("before the last reboot, the kernel failed {n} time: {first}",
                                              "before the last reboot, the kernel failed {n} times: {first}",
                                              len(found.oopses), first=found.oopses[0][:160]),
                     count=len(found.oopses), first=found.oopses[0][:300], boot="previous")
        if found.hung_tasks:
            tasks = sorted(set(found.hung_tasks))
            obs.warn("crash.hung_task", ntr("before the last reboot, {n} task hung in the kernel for minutes ({tasks})",
                                            "before the last reboot, {n} tasks hung in the kernel for minutes ({tasks})",
                                            len(found.hung_tasks), tasks=", ".join(tasks)),
                     count=len(found.hung_tasks), tasks=tasks, boot="previous")
        self.pos_killed(obs, found, boot="previous")

    def saved_crashes(self, obs: Observation) -> None:
        since = time.time() - self.settings.system.kernel_log_window_h * 3600
        saved = _lastboot.pstore_records([self.host_path("/sys/fs/pstore"), self.host_path("/var/lib/systemd/pstore")])
        saved = [c for c in saved if c.at >= since]
        if saved:
            reasons = sorted({c.reason for c in saved})
            obs.fail("crash.pstore", ntr("the kernel saved {n} crash record before a reboot ({reasons}), the last at {at}",
                                         "the kernel saved {n} crash records before a reboot ({reasons}), the last at {at}",
                                         len(saved), reasons=", ".join(reasons), at=utc_iso(max(c.at for c in saved))),
                     count=len(saved), reasons=reasons, paths=sorted(c.path for c in saved)[:10])
        dumps = [c for c in _lastboot.kdump_dumps(self.host_path("/var/crash")) if c.at >= since]
        if dumps:
            obs.warn("crash.kdump", ntr("kdump saved {n} kernel crash dump, the last at {at} ({path})",
                                        "kdump saved {n} kernel crash dumps, the last at {at} ({path})", len(dumps),
                                        at=utc_iso(max(c.at for c in dumps)), path=max(dumps, key=lambda c: c.at).path),
                     count=len(dumps), paths=sorted(c.path for c in dumps)[:10])


#: how the kernel killed a process: the finding's code and its words (one time, several times)
_KILL_CODES = {"oom": "oom_killed", "segfault": "segfault"}
_KILL_WORDS = {"oom": N_plural("the kernel's OOM killer killed the POS application '{process}' {n} time",
                                "the kernel's OOM killer killed the POS application '{process}' {n} times"),
               "segfault": N_plural("the POS application '{process}' crashed {n} time on an invalid memory access in its "
                                    "own code (segfault)", "the POS application '{process}' crashed {n} times on an invalid "
                                    "memory access in its own code (segfault)")}
_KILL_WORDS_BEFORE = {
    "oom": N_plural("before the last reboot, the kernel's OOM killer killed the POS application '{process}' {n} time",
                    "before the last reboot, the kernel's OOM killer killed the POS application '{process}' {n} times"),
    "segfault": N_plural("before the last reboot, the POS application '{process}' crashed {n} time on an invalid memory "
                         "access in its own code (segfault)", "before the last reboot, the POS application '{process}' "
                         "crashed {n} times on an invalid memory access in its own code (segfault)")}
_TOOL_MISSING = N_("systemctl is not installed")
_BOOT_WHY = {"no-journalctl": N_("no systemd journal here (journalctl is not installed)"),
             "no-previous-boot": N_("the journal keeps no previous boot (it is kept only when persistent): {detail}"),
             "timeout": N_("journalctl did not answer in time"),
             "error": N_("journalctl failed: {detail}")}
#: sweeps looked back at for the POS's restarts (the window is minutes; sweeps come every few)
_HISTORY = 30


def _start(sweep: PastSweep) -> float | None:
    _, metrics = sweep.probes.get("system", ("", {}))
    value = metrics.get(_restarts.START_METRIC)
    return float(value) if isinstance(value, (int, float)) else None
