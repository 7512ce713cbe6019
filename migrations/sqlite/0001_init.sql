-- restoregate's own data. Times are Unix milliseconds (UTC). Secrets are sealed (see crypto.rs) or
-- hashed; none is stored in clear.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,  -- stored lowercase
    password_hash TEXT NOT NULL,
    is_admin      INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Bearer tokens of /v5/Token, by SHA-256 of the token.
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX api_tokens_expiry ON api_tokens(expires_at);

CREATE TABLE organizations (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    region         TEXT NOT NULL,
    tenant         TEXT NOT NULL,
    application_id TEXT NOT NULL,
    -- The organization as the API shows it (no secrets), JSON.
    public_json    TEXT NOT NULL,
    -- Certificates and passwords, sealed JSON.
    secrets_sealed TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE restore_sessions (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    name              TEXT NOT NULL,
    organization_id   TEXT NOT NULL,
    organization_name TEXT NOT NULL,
    type              TEXT NOT NULL,
    creation_time     INTEGER NOT NULL,
    end_time          INTEGER,
    state             TEXT NOT NULL,
    result            TEXT NOT NULL,
    initiated_by      TEXT NOT NULL,
    initiated_by_id   TEXT NOT NULL,
    details           TEXT NOT NULL,
    last_activity     INTEGER NOT NULL,
    -- Dense ordinals (sessions are never deleted), so that a page at any offset is an index
    -- range scan: the n-th session overall, and the n-th of the user who started it.
    list_ord          INTEGER NOT NULL UNIQUE,
    owner_ord         INTEGER NOT NULL,
    UNIQUE (initiated_by_id, owner_ord)
);

-- Named counters handing out the ordinals above (one row per counter, locked while a session is
-- added).
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE INDEX restore_sessions_idle ON restore_sessions(state, last_activity);

CREATE TABLE session_events (
    id         TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES restore_sessions(id) ON DELETE CASCADE,
    ord        INTEGER NOT NULL,
    status     TEXT NOT NULL,
    title      TEXT NOT NULL,
    message    TEXT NOT NULL,
    start_time INTEGER NOT NULL,
    end_time   INTEGER,
    UNIQUE (session_id, ord)
);

-- Device authorizations obtained for restore sessions and followed until they end.
CREATE TABLE device_authorizations (
    id                 TEXT PRIMARY KEY,
    session_id         TEXT NOT NULL REFERENCES restore_sessions(id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL,
    user_code          TEXT NOT NULL,
    authority          TEXT NOT NULL,
    tenant             TEXT NOT NULL,
    client_id          TEXT NOT NULL,
    token_endpoint     TEXT NOT NULL,
    device_code_sealed TEXT NOT NULL,
    interval_ms        INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    next_poll_at       INTEGER NOT NULL,
    transient_failures INTEGER NOT NULL DEFAULT 0,
    polls              INTEGER NOT NULL DEFAULT 0,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'signed_in', 'declined', 'expired', 'failed')),
    outcome            TEXT,
    account            TEXT,
    tokens_sealed      TEXT,
    created_at         INTEGER NOT NULL,
    finished_at        INTEGER,
    -- The instance following it, and until when (see signin): taken over when the lease lapses.
    lease_owner        TEXT,
    lease_until        INTEGER
);
CREATE INDEX device_authorizations_due ON device_authorizations(state, next_poll_at);
CREATE INDEX device_authorizations_user_code ON device_authorizations(user_code);
