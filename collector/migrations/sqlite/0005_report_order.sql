-- Reports in the order that sets their terminal's state: by state_at (the report's started_at, but never
-- later than the moment the collector received it), then by seq (the order they arrived in), so that a
-- report dated ahead is listed where it counts, not at the top until its time passes. A terminal
-- names the report that set its state (last_report_id). Rows stored before this migration are
-- clamped the same way, and numbered in the order SQLite stored them.
ALTER TABLE reports ADD COLUMN state_at TEXT;
ALTER TABLE reports ADD COLUMN seq INTEGER;
UPDATE reports SET state_at = CASE WHEN received_at < started_at THEN received_at ELSE started_at END, seq = rowid;
CREATE INDEX reports_seq ON reports (seq);
CREATE INDEX reports_state ON reports (state_at, seq);
DROP INDEX reports_terminal_started;
CREATE INDEX reports_terminal_state ON reports (terminal_id, state_at, seq);
ALTER TABLE terminals ADD COLUMN last_report_id TEXT;
UPDATE terminals SET last_report_id = (SELECT r.report_id FROM reports r WHERE r.terminal_id = terminals.id
    AND r.started_at = terminals.last_started_at ORDER BY r.seq DESC LIMIT 1);
