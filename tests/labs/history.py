"""Past sweeps put in a terminal's history, as the daemon would have stored them: the evidence of
trends, forecasts and counts across sweeps, without waiting hours for real sweeps."""

from __future__ import annotations

import uuid
from pathlib import Path

from posdiag.agent.store import Store
from posdiag.core.timefmt import utc_iso


def past_report(started: float, probes: dict[str, dict]) -> dict:
    """A healthy scheduled report that started at ``started``, its probes' metrics as given."""
    return {"schema": "posdiag.report/1", "report_id": str(uuid.uuid4()), "trigger": "schedule",
            "started_at": utc_iso(started), "duration_s": 0.1, "terminal": {"id": "t", "site": "", "hostname": "h"},
            "agent_version": "0.1.0",
            "probes": [{"name": name, "status": "ok", "duration_s": 0.01, "summary": "", "findings": [],
                        "metrics": metrics} for name, metrics in probes.items()],
            "diagnosis": {"verdict": "healthy", "causes": [{"id": "none", "title": "", "confidence": 0.95,
                                                            "evidence": [], "remediation": ["x"]}]}}


def stored(tmp_path: Path, reports: list[dict]) -> None:
    """The reports in the history of the state folder the test configuration uses (``tmp_path/state``)."""
    with Store(tmp_path / "state") as store:
        for report in reports:
            store.add(report)
