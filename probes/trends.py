"""Trends across sweeps, read from the stored history: what one sweep alone cannot see.

* a POS process whose RSS grows steadily sweep after sweep, long before memory runs out;
* a network layer that fails in some recent sweeps and not in others, which a single
  healthy-looking sweep would hide.

What a trend means (a leak, an intermittent fault) is the engine's to say (causes.toml [reads_as]).
"""

from __future__ import annotations

import time

from posdiag.core.i18n import N_, tr
from posdiag.probes.base import Observation, PastSweep, Probe, ProbeSkipped, Status, declare

WINDOW = 12  # sweeps looked at
MIN_POINTS = 4
LEAK_MIN_MB_PER_H = 5.0
LEAK_MIN_GROWTH = 0.2  # at least 20 % growth over the window
LEAK_MIN_R2 = 0.8
LAYERS = ("network.link", "network.gateway", "network.dns", "network.tcp", "network.tls", "network.path")


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and R² of ys over xs."""
    import statistics  # here, not at the top: a terminal without history never needs it

    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    if not sxx:
        return 0.0, 0.0
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    slope = sxy / sxx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (my + slope * (x - mx))) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, (1 - ss_res / ss_tot) if ss_tot else 0.0




class TrendsProbe(Probe):
    name = "trends"
    description = N_("history across sweeps: POS process memory growing steadily, network layers that fail in some sweeps "
                     "and not in others")
    findings = declare(warn=("trend.intermittent_dns", "trend.intermittent_gateway", "trend.intermittent_link",
                           "trend.intermittent_path", "trend.intermittent_tcp", "trend.intermittent_tls",
                           "trend.pos_rss_growing"))
    after = ("memory",) + LAYERS

    def check(self, obs: Observation) -> None:
        history = list(self.context.history(WINDOW - 1))
        if not history:
            raise ProbeSkipped(tr("no history yet"))
        obs.metric("sweeps", len(history) + 1)
        self.leak(obs, history)
        self.intermittent(obs, history)
        if obs.status() is Status.OK:
            obs.summary = tr("{sweeps} sweeps: no growing POS memory, no intermittent network layer",
                             sweeps=len(history) + 1)

    def leak(self, obs: Observation, history: list[PastSweep]) -> None:
        points = []
        for sweep in history:
            _, metrics = sweep.probes.get("memory", ("", {}))
            if metrics.get("pos_rss_mb"):
                points.append((sweep.started_at, float(metrics["pos_rss_mb"])))
        now = self.context.results.get("memory")
        if now and now.metrics.get("pos_rss_mb"):
            points.append((time.time(), float(now.metrics["pos_rss_mb"])))  # type: ignore[arg-type]
        if len(points) < MIN_POINTS:
            return
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        slope_s, r2 = linear_fit(xs, ys)
        per_hour = slope_s * 3600
        growth = (ys[-1] - ys[0]) / ys[0] if ys[0] else 0.0
        obs.metric("pos_rss_mb_per_hour", round(per_hour, 2))
        obs.metric("pos_rss_fit_r2", round(r2, 3))
        if per_hour >= LEAK_MIN_MB_PER_H and growth >= LEAK_MIN_GROWTH and r2 >= LEAK_MIN_R2:
            proc = self.settings.terminal.pos_process or tr("the POS process")
            obs.warn("trend.pos_rss_growing", tr("{process} grew from {first_mb:.0f} to {last_mb:.0f} MB over {sweeps} "
                                                 "sweeps ({mb_per_hour:+.1f} MB/h, steady)", process=proc,
                                                 first_mb=ys[0], last_mb=ys[-1], sweeps=len(points), mb_per_hour=per_hour),
                     mb_per_hour=round(per_hour, 2),
                     first_mb=ys[0], last_mb=ys[-1], sweeps=len(points), r2=round(r2, 3))

    def intermittent(self, obs: Observation, history: list[PastSweep]) -> None:
        for layer in LAYERS:
            statuses = [sweep.probes[layer][0] for sweep in history if layer in sweep.probes]
            current = self.context.results.get(layer)
            if current:
                statuses.append(current.status.value)
            judged = [s for s in statuses if s in ("ok", "warn", "fail")]
            fails = judged.count("fail")
            if len(judged) >= MIN_POINTS and 0 < fails < len(judged) and fails / len(judged) >= 0.2:
                short = layer.split(".", 1)[1]
                obs.warn(f"trend.intermittent_{short}", tr("{layer} failed in {failed} of the last {sweeps} sweeps and "
                                                            "worked in the others", layer=layer,
                                                            failed=fails, sweeps=len(judged)), layer=layer, failed=fails,
                         sweeps=len(judged))
