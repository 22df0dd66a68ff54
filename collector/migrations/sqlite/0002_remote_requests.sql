-- Remote requests: an operator asks a terminal for a diagnosis or a support bundle; the terminal,
-- behind NAT, asks for its open requests and answers them. States: pending (asked), delivered (the
-- terminal has fetched it), done, failed; a pending or delivered request past expires_at reads as
-- expired. open_key is "terminal_id kind" while the request is open and NULL once it is answered, so
-- the unique constraint makes one open request per terminal and kind (a second ask returns the first).
CREATE TABLE requests (
    request_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    delivered_at TEXT,
    finished_at TEXT,
    report_id TEXT,
    error TEXT,
    open_key TEXT UNIQUE
);
CREATE INDEX requests_terminal_created ON requests (terminal_id, created_at, request_id);
-- The audit trail: who asked (again), when the terminal fetched and answered, who downloaded a bundle.
CREATE TABLE request_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX request_events_request ON request_events (request_id, seq);
-- A terminal's support bundle (gzip tar, secrets masked on the till), kept in the database so that
-- any serve process can hand it out.
CREATE TABLE bundles (
    request_id TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    body BLOB NOT NULL
);
