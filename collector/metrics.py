"""``/metrics`` in the Prometheus text format, written by hand (the format is small and stable).

Counters of received reports, pruned reports and webhook attempts are this process's own, as
Prometheus expects from each scraped process (scrape every ``serve`` process and sum). Terminals by
verdict and open incidents are read from the database, so every process tells the same (take the
``max`` across processes). Both reads are counts over small tables: the cost does not grow with the
stored reports.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

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


def _family(name: str, kind: str, text: str) -> list[str]:
    return [f"# HELP {name} {text}", f"# TYPE {name} {kind}"]


def render(received: dict[tuple[str, int], int], verdicts: dict[str, int], open_incidents: list[dict[str, Any]],
           workers: dict[str, Any]) -> str:
    """The exposition text: counters, then gauges; every family has HELP and TYPE.

    ``open_incidents``: rows of scope, cause, site ('' for the fleet) and n; ``workers``: ``pruned``
    (reports this process pruned) and ``alerts`` (webhook attempts by result, None without a webhook)."""
    lines = _family("posdiag_collector_reports_received_total", "counter",
                    "Reports received by this process, by result and HTTP status.")
    for result in ("stored", "duplicate"):  # always present, so a dashboard has a zero to plot
        received.setdefault((result, 201 if result == "stored" else 200), 0)
    for (result, status), n in sorted(received.items()):
        lines.append(f'posdiag_collector_reports_received_total{{result="{result}",code="{status}"}} {n}')
    lines += _family("posdiag_collector_reports_pruned_total", "counter",
                     "Reports this process pruned for being older than the retention.")
    lines.append(f"posdiag_collector_reports_pruned_total {workers['pruned']}")
    if workers.get("alerts") is not None:
        lines += _family("posdiag_collector_alert_webhook_attempts_total", "counter",
                         "Webhook posts of incident openings and closings by this process, by result.")
        lines += [f'posdiag_collector_alert_webhook_attempts_total{{result="{result}"}} {n}'
                  for result, n in sorted(workers["alerts"].items())]
    lines += _family("posdiag_collector_terminals", "gauge",
                     "Registered terminals by the verdict of their latest report; silent: not heard from recently.")
    for verdict in (*(v.value for v in Verdict), "unknown", "silent"):
        lines.append(f'posdiag_collector_terminals{{verdict="{verdict}"}} {verdicts.get(verdict, 0)}')
    lines += _incidents(open_incidents)
    return "\n".join(lines) + "\n"


def _incidents(rows: list[dict[str, Any]]) -> list[str]:
    """Open incidents: one series per scope, cause and site (what an Alertmanager rule pages on), and totals."""
    lines = _family("posdiag_incident_open", "gauge",
                    "Open incidents by scope (site or fleet), cause and site (empty for the fleet): 0 series when none.")
    lines += [f'posdiag_incident_open{{scope="{_label(r["scope"])}",cause="{_label(r["cause"])}",site="{_label(r["site"])}"}} '
              f'{int(r["n"])}' for r in rows]
    lines += _family("posdiag_collector_open_incidents", "gauge", "Open incidents by scope.")
    by_cause: Counter[tuple[str, str]] = Counter()
    for r in rows:
        by_cause[(r["scope"], r["cause"])] += int(r["n"])
    for scope in ("site", "fleet"):
        total = sum(n for (s, _), n in by_cause.items() if s == scope)
        lines.append(f'posdiag_collector_open_incidents{{scope="{scope}"}} {total}')
    lines += _family("posdiag_collector_open_incidents_by_cause", "gauge", "Open incidents by scope and cause.")
    for (scope, cause), n in sorted(by_cause.items()):
        lines.append(f'posdiag_collector_open_incidents_by_cause{{scope="{scope}",cause="{_label(cause)}"}} {n}')
    return lines
