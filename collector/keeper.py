"""The incident keeper: applies the facts the intake queues for the incidents, as they come.

Each ``serve`` process runs one; the database lets one of them at a time apply a batch (see
:mod:`posdiag.collector.storage.chains`). It looks for facts every :data:`POLL_S` and takes what
has gathered in one batch, rather than waking for each report: under load a batch then holds many
facts of the same chains, which it reads and writes once, and the process spends its time on intake.
A read of the incidents catches up first, so what was stored before the read is in what it reads.
"""

from __future__ import annotations

from collections.abc import Callable

from posdiag.collector.background import Worker
from posdiag.collector.storage import Storage
from posdiag.collector.storage.chains import Rules

#: facts per batch, and the time after which a batch takes no more (a batch is one transaction)
BATCH, BUDGET_S = 500, 0.05
#: between two batches, unless the last one was full (a backlog)
POLL_S = 0.25
#: a read catches up at most this many batches (the keeper takes the rest)
CATCH_UP = 20


class Keeper(Worker):
    """Applies queued incident facts; ``on_message`` is called when a webhook message was written."""

    def __init__(self, storage: Storage, rules: Rules, on_message: Callable[[], None] | None = None) -> None:
        super().__init__("incidents")
        self.storage = storage
        self.rules = rules
        self.on_message = on_message

    def _batch(self, wait: bool) -> int:
        applied, written = self.storage.apply_incident_facts(self.rules, BATCH, BUDGET_S, wait=wait)
        if written and self.on_message:
            self.on_message()
        return applied

    def step(self) -> float:
        return 0.0 if self._batch(wait=False) >= BATCH else POLL_S

    def catch_up(self) -> None:
        """Before a read of the incidents: apply what is queued (waiting for another process's batch)."""
        for _ in range(CATCH_UP):
            if not self._batch(wait=True):
                return
