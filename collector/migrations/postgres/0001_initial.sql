-- Terminals, operators, reports and the key that signs page sessions.
-- Times are UTC text, 2026-11-29T10:15:02Z, on both back ends: they sort as times, and one set of
-- queries serves SQLite and PostgreSQL alike.
CREATE TABLE terminals (
    id TEXT PRIMARY KEY,
    site TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_seen_at TEXT,
    last_started_at TEXT,
    verdict TEXT,
    top_cause TEXT,
    agent_version TEXT
);
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE reports (
    report_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    site TEXT NOT NULL,
    started_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    verdict TEXT NOT NULL,
    top_cause TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX reports_started ON reports (started_at, report_id);
CREATE INDEX reports_terminal_started ON reports (terminal_id, started_at);
CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
