"""``/metrics`` in the Prometheus text format, written by hand (the format is small and stable).

Counters of received reports are this process's own, as Prometheus expects from each scraped
process (scrape every ``serve`` process and sum). Terminals by verdict and open incidents are read
from the database, so every process tells the same.
"""

from __future__ import annotations

import threading
from collections import Counter

from posdiag.core.vocabulary import Verdict

RESULTS = {201: "stored", 200: "duplicate"}


class ReceivedCounter:
    """Reports received, by result and HTTP status."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, int]] = Counter()
        self._lock = threading.Lock()

    def count(self, status: int) -> None:
        with self._lock:
            self._counts[(RESULTS.get(status, "refused"), status)] += 1

    def snapshot(self) -> dict[tuple[str, int], int]:
        with self._lock:
            return dict(self._counts)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(received: dict[tuple[str, int], int], verdicts: dict[str, int], incidents: list[dict]) -> str:
    """The exposition text: counters, then gauges; every family has HELP and TYPE."""
    lines = ["# HELP posdiag_collector_reports_received_total Reports received by this process, by result and HTTP status.",
             "# TYPE posdiag_collector_reports_received_total counter"]
    for result in ("stored", "duplicate"):  # always present, so a dashboard has a zero to plot
        received.setdefault((result, 201 if result == "stored" else 200), 0)
    for (result, status), n in sorted(received.items()):
        lines.append(f'posdiag_collector_reports_received_total{{result="{result}",code="{status}"}} {n}')
    lines += ["# HELP posdiag_collector_terminals Registered terminals by the verdict of their latest report; "
              "silent: not heard from recently.", "# TYPE posdiag_collector_terminals gauge"]
    for verdict in (*(v.value for v in Verdict), "unknown", "silent"):
        lines.append(f'posdiag_collector_terminals{{verdict="{verdict}"}} {verdicts.get(verdict, 0)}')
    lines += ["# HELP posdiag_collector_open_incidents Open incidents by scope.",
              "# TYPE posdiag_collector_open_incidents gauge"]
    open_counts = Counter((i["scope"], i["cause"]) for i in incidents if i["open"])
    for scope in ("site", "fleet"):
        total = sum(n for (s, _), n in open_counts.items() if s == scope)
        lines.append(f'posdiag_collector_open_incidents{{scope="{scope}"}} {total}')
    lines += ["# HELP posdiag_collector_open_incidents_by_cause Open incidents by scope and cause.",
              "# TYPE posdiag_collector_open_incidents_by_cause gauge"]
    for (scope, cause), n in sorted(open_counts.items()):
        lines.append(f'posdiag_collector_open_incidents_by_cause{{scope="{scope}",cause="{_label(cause)}"}} {n}')
    return "\n".join(lines) + "\n"
