"""``--retain-days``: reports older than the retention are pruned while the collector serves.

In batches of :data:`BATCH`, each its own short transaction, with a pause between them: a report
arriving meanwhile waits for one batch at most, never for the whole backlog. The pause grows with
how long a batch took, so pruning takes at most :data:`DUTY` of the database's writing time however
slow the disk: a backlog (the first start with a retention, or a shorter one) drains over minutes
while intake goes on at its own pace. A terminal's newest report is never pruned, however old (its
state and the page rest on it). Incidents closed before the cutoff go too, with their webhook
messages, support bundles received before it, and expired page sessions.
"""

from __future__ import annotations

import logging
import time

from posdiag.collector.background import Worker
from posdiag.collector.storage import Storage
from posdiag.core.timefmt import utc_iso

log = logging.getLogger("posdiag.collector")
BATCH = 200
#: the share of time pruning may hold the database's write lock while it has a backlog
DUTY = 0.2
#: between two batches at least: room for the intake to write
PAUSE_S = 0.05
#: between two passes once nothing is left to prune
IDLE_S = 300.0


class Pruner(Worker):
    """Prunes in batches until nothing is older than the retention, then rests."""

    def __init__(self, storage: Storage, retain_days: float) -> None:
        super().__init__("pruner")
        self.storage = storage
        self.retain_s = retain_days * 86400
        self.pruned = 0  # reports, by this process

    def step(self) -> float:
        now = time.time()
        cutoff = utc_iso(now - self.retain_s)
        started = time.monotonic()
        removed = self.storage.prune_reports(cutoff, BATCH)
        self.pruned += removed
        if removed or self.storage.prune_records(cutoff, utc_iso(now), BATCH):
            return max(PAUSE_S, (time.monotonic() - started) * (1 / DUTY - 1))
        return IDLE_S
