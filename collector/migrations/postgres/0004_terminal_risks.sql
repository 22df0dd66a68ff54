-- Risks ahead: each terminal keeps the risks of its newest report (JSON, soonest first) and when the
-- soonest is due, so that the fleet's "at risk" list is one indexed query, soonest first. A terminal whose
-- newest report has no risks (or was written by an agent that knows none) has NULL in both.
ALTER TABLE terminals ADD COLUMN risks TEXT;
ALTER TABLE terminals ADD COLUMN risk_due_at TEXT;
CREATE INDEX terminals_risk_due ON terminals (risk_due_at);
