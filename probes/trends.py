"""Trends across sweeps, read from the stored history: what one sweep alone cannot see.

* a POS process whose RSS grows steadily sweep after sweep, long before memory runs out;
* a network layer that fails in some recent sweeps and not in others, which a single
  healthy-looking sweep would hide;
* risks ahead, each at the rate the sweeps measured: a filesystem that will be full, POS memory
  growth that will exhaust what is available, a clock that will drift beyond its tolerance. Each
  finding carries ``hours_left``, ``due_at``, ``rate`` and ``rate_unit``.

What a trend means (a leak, an intermittent fault) is the engine's to say (causes.toml [reads_as]).
"""

from __future__ import annotations

import time

from posdiag.core.i18n import N_, tr
from posdiag.core.timefmt import utc_iso
from posdiag.probes.base import Observation, PastSweep, Probe, ProbeSkipped, Status, declare

WINDOW = 12  # sweeps looked at
MIN_POINTS = 4
LEAK_MIN_MB_PER_H = 5.0
LEAK_MIN_GROWTH = 0.2  # at least 20 % growth over the window
LEAK_MIN_R2 = 0.8
LAYERS = ("network.link", "network.gateway", "network.dns", "network.tcp", "network.tls", "network.path")
#: a rate is only extrapolated from a straight enough line (R² of the least-squares fit)
FORECAST_MIN_R2 = 0.8
#: and no further ahead than this many times the span it was measured over: four technician runs a
#: minute apart measure a rate for the next hour or so, not for the next two days
FORECAST_REACH = 72


def linear_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and R² of ys over xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
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
                           "trend.pos_rss_growing", "trend.disk_filling", "trend.memory_exhaustion",
                           "trend.clock_drifting"))
    after = ("memory", "disk", "clock") + LAYERS

    def check(self, obs: Observation) -> None:
        history = list(self.context.history(WINDOW - 1))
        if not history:
            raise ProbeSkipped(tr("no history yet"))
        obs.metric("sweeps", len(history) + 1)
        self.leak(obs, history)
        self.intermittent(obs, history)
        self.disk_filling(obs, history)
        self.clock_drifting(obs, history)
        if obs.status() is Status.OK:
            obs.summary = tr("{sweeps} sweeps: no growing POS memory, no intermittent network layer",
                             sweeps=len(history) + 1)

    def leak(self, obs: Observation, history: list[PastSweep]) -> None:
        points = [p for p in self.series(history, "memory", "pos_rss_mb") if p[1]]
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
        self.memory_exhaustion(obs, per_hour, r2, _span_s(points))

    def series(self, history: list[PastSweep], probe: str, metric: str) -> list[tuple[float, float]]:
        """(time, value) of one probe's metric, sweep after sweep, this sweep's last."""
        points = []
        for sweep in history:
            value = sweep.probes.get(probe, ("", {}))[1].get(metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                points.append((sweep.started_at, float(value)))
        now = self.context.results.get(probe)
        value = now.metrics.get(metric) if now else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            points.append((time.time(), float(value)))
        return points

    def memory_exhaustion(self, obs: Observation, mb_per_hour: float, r2: float, span_s: float) -> None:
        """POS memory growing steadily enough to use up what is available within ``exhaust_warn_hours``."""
        memory = self.context.results.get("memory")
        available = memory.metrics.get("available_mb") if memory else None
        if not isinstance(available, (int, float)) or mb_per_hour <= 0 or r2 < FORECAST_MIN_R2:
            return
        hours = available / mb_per_hour
        if hours <= self.settings.memory.exhaust_warn_hours and _within_reach(hours, span_s):
            proc = self.settings.terminal.pos_process or tr("the POS process")
            obs.warn("trend.memory_exhaustion", tr("{process} grows {rate:.1f} MB/h: the {available:.0f} MB still "
                                                   "available are used up in {hours:.1f} h", process=proc,
                                                   rate=mb_per_hour, available=available, hours=hours),
                     **_forecast(hours, mb_per_hour, "MB/h"), subject=proc, available_mb=round(available, 1))

    def disk_filling(self, obs: Observation, history: list[PastSweep]) -> None:
        """Each configured path's free space falling at a steady rate: full within ``full_warn_hours``."""
        for path in self.settings.disk.paths:
            points = self.series(history, "disk", f"free_mb[{path}]")
            if len(points) < MIN_POINTS:
                continue
            slope_s, r2 = linear_fit([p[0] for p in points], [p[1] for p in points])
            per_hour, free = -slope_s * 3600, points[-1][1]
            if per_hour <= 0 or r2 < FORECAST_MIN_R2:
                continue
            hours = free / per_hour
            obs.metric(f"fill_mb_per_hour[{path}]", round(per_hour, 2))
            if hours <= self.settings.disk.full_warn_hours and _within_reach(hours, _span_s(points)):
                obs.warn("trend.disk_filling", tr("{path} fills at {rate:.1f} MB/h over {sweeps} sweeps: its {free:.0f} MB "
                                                  "free are gone in {hours:.1f} h", path=path, rate=per_hour,
                                                  sweeps=len(points), free=free, hours=hours),
                         **_forecast(hours, per_hour, "MB/h"), subject=path, free_mb=round(free, 1), sweeps=len(points))

    def clock_drifting(self, obs: Observation, history: list[PastSweep]) -> None:
        """The clock's offset moving steadily towards ``max_offset_s``: beyond it within ``drift_warn_hours``."""
        points = self.series(history, "clock", "offset_s")
        if len(points) < MIN_POINTS:
            return
        slope_s, r2 = linear_fit([p[0] for p in points], [p[1] for p in points])
        offset, limit = points[-1][1], self.settings.clock.max_offset_s
        if not slope_s or r2 < FORECAST_MIN_R2 or abs(offset) >= limit:
            return
        hours = ((limit if slope_s > 0 else -limit) - offset) / slope_s / 3600
        per_day = slope_s * 86400
        if 0 < hours <= self.settings.clock.drift_warn_hours and _within_reach(hours, _span_s(points)):
            obs.warn("trend.clock_drifting", tr("the clock drifts {rate:+.2f} s a day (now {offset:+.2f} s off): beyond "
                                                "the {limit:g} s tolerance in {hours:.1f} h", rate=per_day, offset=offset,
                                                limit=limit, hours=hours),
                     **_forecast(hours, per_day, "s/day"), subject="clock", offset_s=round(offset, 3))

    def intermittent(self, obs: Observation, history: list[PastSweep]) -> None:
        for layer in LAYERS:
            statuses = [sweep.probes[layer][0] for sweep in history if layer in sweep.probes]
            current = self.context.results.get(layer)
            if current:
                statuses.append(current.status.value)
            judged = [s for s in statuses if s in (Status.OK, Status.WARN, Status.FAIL)]
            fails = judged.count(Status.FAIL)
            if len(judged) >= MIN_POINTS and 0 < fails < len(judged) and fails / len(judged) >= 0.2:
                short = layer.split(".", 1)[1]
                obs.warn(f"trend.intermittent_{short}", tr("{layer} failed in {failed} of the last {sweeps} sweeps and "
                                                            "worked in the others", layer=layer,
                                                            failed=fails, sweeps=len(judged)), layer=layer, failed=fails,
                         sweeps=len(judged))


def _span_s(points: list[tuple[float, float]]) -> float:
    return points[-1][0] - points[0][0]


def _within_reach(hours: float, span_s: float) -> bool:
    """Whether a forecast ``hours`` ahead stays within the reach of a rate measured over ``span_s``."""
    return hours * 3600 <= FORECAST_REACH * span_s


def _forecast(hours: float, rate: float, unit: str) -> dict[str, object]:
    """What every risk finding carries: hours left, when that is (UTC), the rate used and its unit."""
    return {"hours_left": round(hours, 2), "due_at": utc_iso(time.time() + hours * 3600), "rate": round(rate, 3),
            "rate_unit": unit}
