-- Fleet operations: incidents kept as reports arrive, alerts waiting to be posted, page sessions.
--
-- A terminal's state follows its newest report by state_at: the report's started_at, but never later
-- than the moment the collector received it, so a report from a clock that runs ahead cannot outrank
-- the reports that follow it. Rows stored before this migration are clamped the same way.
ALTER TABLE terminals ADD COLUMN state_at TEXT;
UPDATE terminals SET state_at = CASE WHEN last_started_at IS NULL THEN NULL
    WHEN last_seen_at IS NOT NULL AND last_seen_at < last_started_at THEN last_seen_at ELSE last_started_at END;
-- What a stored report means for the incidents, queued by the intake and applied in batches by one
-- process at a time: intake never waits for the incidents, nor one terminal's report for another's.
CREATE TABLE incident_facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    terminal_id TEXT NOT NULL,
    site TEXT NOT NULL,
    cause TEXT,
    at TEXT NOT NULL,
    newest INTEGER NOT NULL
);
-- An incident is a chain of fault reports of one cause (scope fleet: across sites, site ''; scope site: at
-- one site). A chain becomes an incident (qualified) when it spans enough terminals or sites; it is open
-- while one of its terminals (failing = 1) has reported nothing newer.
CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    cause TEXT NOT NULL,
    site TEXT NOT NULL,
    first_at TEXT NOT NULL,
    last_at TEXT NOT NULL,
    report_count INTEGER NOT NULL,
    terminal_count INTEGER NOT NULL,
    site_count INTEGER NOT NULL,
    failing INTEGER NOT NULL,
    qualified_at TEXT,
    closed_at TEXT,
    covered INTEGER NOT NULL DEFAULT 0,
    announced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX incidents_chain ON incidents (cause, scope, site, last_at);
CREATE INDEX incidents_open ON incidents (id) WHERE closed_at IS NULL AND qualified_at IS NOT NULL;
CREATE INDEX incidents_last ON incidents (last_at) WHERE qualified_at IS NOT NULL;
CREATE TABLE incident_terminals (
    incident_id INTEGER NOT NULL,
    terminal_id TEXT NOT NULL,
    site TEXT NOT NULL,
    last_at TEXT NOT NULL,
    failing INTEGER NOT NULL,
    PRIMARY KEY (incident_id, terminal_id)
);
CREATE INDEX incident_terminals_failing ON incident_terminals (terminal_id) WHERE failing = 1;
CREATE TABLE incident_sites (
    incident_id INTEGER NOT NULL,
    site TEXT NOT NULL,
    PRIMARY KEY (incident_id, site)
);
-- Webhook messages, written in the transaction that opened or closed the incident: once each.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL,
    event TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at TEXT NOT NULL,
    lease_until TEXT,
    sent_at TEXT,
    given_up_at TEXT,
    last_error TEXT,
    UNIQUE (incident_id, event)
);
CREATE INDEX alerts_due ON alerts (next_at) WHERE sent_at IS NULL AND given_up_at IS NULL;
-- A page session: the hash of its cookie; signing out deletes it, removing the operator deletes them all.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    operator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_operator ON sessions (operator);
CREATE INDEX terminals_site ON terminals (site);
