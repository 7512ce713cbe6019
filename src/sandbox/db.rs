//! The sandbox provider's own database (`sandbox.db` in the data directory): tenants,
//! applications, users, device codes and refresh tokens. Separate from restoregate's store: the
//! sandbox is another system that happens to share the binary.

use crate::clock::Millis;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use std::path::Path;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tenants (
    id   TEXT PRIMARY KEY,           -- GUID
    name TEXT NOT NULL UNIQUE         -- verified domain, lowercase
);
CREATE TABLE IF NOT EXISTS applications (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    public_client INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, client_id)
);
CREATE TABLE IF NOT EXISTS users (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    username      TEXT NOT NULL COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    PRIMARY KEY (tenant_id, username)
);
CREATE TABLE IF NOT EXISTS device_codes (
    device_code_hash TEXT PRIMARY KEY,
    user_code        TEXT NOT NULL,  -- canonical form, no dash
    tenant_id        TEXT NOT NULL,
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    interval_ms      INTEGER NOT NULL,
    last_poll_at     INTEGER,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'redeemed')),
    username         TEXT,
    wrong_passwords  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS device_codes_user_code ON device_codes(user_code);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    username   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// The writer pool (one connection: SQLite has one writer) with the schema in place.
pub async fn open(path: &Path) -> anyhow::Result<SqlitePool> {
    crate::crypto::create_private_file_if_missing(path)?;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new().max_connections(1).test_before_acquire(false).connect_with(options).await?;
    sqlx::raw_sql(SCHEMA).execute(&pool).await?;
    Ok(pool)
}

/// Read-only connections for the lookups every request makes (tenant, application), so that they
/// do not queue behind the writer.
pub async fn open_readers(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .busy_timeout(Duration::from_secs(5));
    Ok(SqlitePoolOptions::new().max_connections(4).test_before_acquire(false).connect_with(options).await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Tenant {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Application {
    pub client_id: String,
    pub name: String,
    pub public_client: bool,
}

#[derive(Clone, sqlx::FromRow)]
pub struct DeviceCode {
    pub device_code_hash: String,
    pub user_code: String,
    pub tenant_id: String,
    pub client_id: String,
    pub scope: String,
    pub expires_at: Millis,
    pub interval_ms: i64,
    pub last_poll_at: Option<Millis>,
    pub status: String,
    pub username: Option<String>,
    pub wrong_passwords: i64,
}

pub const DEVICE_CODE_COLUMNS: &str = "device_code_hash, user_code, tenant_id, client_id, scope, expires_at, interval_ms,
    last_poll_at, status, username, wrong_passwords";
