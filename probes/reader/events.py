"""Flapping: the reader's disconnect/reconnect events in the kernel log over a recent window.

Reads the kernel's record log through the reader every kernel-log probe shares (:mod:`._kmsg`).
"""

from __future__ import annotations

import os
import re
import time

from posdiag.core.i18n import N_, ntr, tr
from posdiag.probes.base import Observation, Probe, Status, declare
from posdiag.probes.gates import unconfigured
from posdiag.probes.reader.usb import enumerate_sysfs


class EventsProbe(Probe):
    name = "reader.events"
    description = N_("reader disconnect/reconnect events in the kernel log over a recent window (flapping)")
    findings = declare(warn=("reader.flapping",), info=("reader.kernel_log_denied", "reader.kernel_log_missing"))

    def skip_reason(self) -> str | None:
        return unconfigured(self.name, self.settings)

    def identities(self) -> list[str]:
        """Names the kernel uses for the reader: its USB path and its tty."""
        cfg = self.settings.reader
        names = []
        if cfg.port:
            names.append(os.path.basename(os.path.realpath(cfg.port)))
        devices = enumerate_sysfs(cfg.sysfs_root) or []
        if cfg.usb:
            names += [d.path for d in devices if d.ident == cfg.usb.lower()]
        if cfg.port:
            tty = os.path.basename(cfg.port)
            names += [d.path for d in devices if d.tty == tty]
        return list(dict.fromkeys(n for n in names if n))

    def check(self, obs: Observation) -> None:
        cfg = self.settings.reader
        try:
            records = self.context.kernel_log(cfg.kernel_log)
        except PermissionError:
            obs.info("reader.kernel_log_denied", tr("the kernel log {path} is not readable by the agent", path=cfg.kernel_log))
            obs.summary = tr("kernel log not readable")
            return
        except FileNotFoundError:
            obs.info("reader.kernel_log_missing", tr("no kernel log at {path}", path=cfg.kernel_log))
            obs.summary = tr("no kernel log")
            return
        names = self.identities()
        if not names:
            obs.summary = tr("reader has no kernel identity to follow")
            return
        since = time.monotonic() - cfg.flap_window_min * 60
        who = "|".join(re.escape(n) for n in names)
        disconnect = re.compile(rf"(?:usb (?:{who}): USB disconnect|\b(?:{who})\b.*disconnected)")
        connect = re.compile(rf"(?:usb (?:{who}): new .*USB device|\b(?:{who})\b.*(?:now attached|USB ACM device))")
        lost = [t for t, m in records if t >= since and disconnect.search(m)]
        back = [t for t, m in records if t >= since and connect.search(m)]
        obs.metric("disconnects", len(lost))
        obs.metric("reconnects", len(back))
        obs.metric("window_min", cfg.flap_window_min)
        if len(lost) >= cfg.flap_threshold:
            ago = time.monotonic() - max(lost)
            obs.warn("reader.flapping", ntr("the reader ({names}) disconnected {n} time in the last {window:g} min, last "
                                            "{ago:.0f} min ago",
                                            "the reader ({names}) disconnected {n} times in the last {window:g} min, last "
                                            "{ago:.0f} min ago", len(lost),
                                            names=", ".join(names), window=cfg.flap_window_min, ago=ago / 60),
                     disconnects=len(lost), reconnects=len(back), names=names)
        if obs.status() is Status.OK:
            obs.summary = ntr("{n} disconnect of {names} in {window:g} min", "{n} disconnects of {names} in {window:g} min",
                              len(lost), names=", ".join(names), window=cfg.flap_window_min)
