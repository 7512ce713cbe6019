//! Storage: one set of queries over two databases (sqlx's `Any` driver), each with its own
//! migrations: embedded SQLite by default, PostgreSQL when several instances share one.
//!
//! The queries keep to what both dialects accept (`$1` placeholders, `ON CONFLICT`, `RETURNING`,
//! integers for times and flags). Every acknowledged write has been committed before the API
//! answers. SQLite runs in WAL mode with `synchronous=NORMAL` and one writer connection: a commit
//! survives the process being killed (`kill -9`); only an operating-system crash or power loss can
//! lose the last transactions. PostgreSQL commits are durable as its own settings say.

mod rows;

pub use rows::*;

use crate::clock::Millis;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Executor;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// Migrations, in order, compiled into the binary. Each runs once, in a transaction, and is
/// recorded in `schema_migrations`.
fn migrations(dialect: Dialect) -> &'static [(i64, &'static str)] {
    match dialect {
        Dialect::Sqlite => &[(1, include_str!("../../migrations/sqlite/0001_init.sql"))],
        Dialect::Postgres => &[(1, include_str!("../../migrations/postgres/0001_init.sql"))],
    }
}

/// Applies the migrations not yet applied. Safe to run from several instances at once on
/// PostgreSQL: an advisory lock serializes them.
pub async fn migrate(pool: &AnyPool, dialect: Dialect) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    if dialect == Dialect::Postgres {
        conn.execute("SELECT pg_advisory_lock(7215001)").await?;
    }
    let result = async {
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)")
            .await?;
        for (version, sql) in migrations(dialect) {
            let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM schema_migrations WHERE version = $1")
                .bind(version)
                .fetch_optional(&mut *conn)
                .await?;
            if done.is_none() {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::raw_sql(sql).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(chrono::Utc::now().timestamp_millis())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        anyhow::Ok(())
    }
    .await;
    if dialect == Dialect::Postgres {
        conn.execute("SELECT pg_advisory_unlock(7215001)").await?;
    }
    result
}

#[derive(Clone)]
pub struct Store {
    /// Writes go here. For SQLite it is one connection: SQLite has one writer at a time anyway,
    /// and one connection avoids SQLITE_BUSY between our own writers.
    writer: AnyPool,
    readers: AnyPool,
    pub dialect: Dialect,
}

pub type StoreResult<T> = Result<T, sqlx::Error>;

impl Store {
    /// Opens `sqlite://FILE` or `postgres://…`, and migrates the schema.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await?;
            migrate(&pool, Dialect::Postgres).await?;
            return Ok(Store { writer: pool.clone(), readers: pool, dialect: Dialect::Postgres });
        }
        let path_url = url.split_once('?').map(|(p, _)| p).unwrap_or(url);
        let pragmas = |pool: AnyPoolOptions| {
            pool.after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;")
                        .await?;
                    Ok(())
                })
            })
        };
        // No ping before each use: a local file does not drop connections, and the ping is a round
        // trip to the connection's thread per statement.
        let writer = pragmas(AnyPoolOptions::new().max_connections(1).test_before_acquire(false).acquire_timeout(Duration::from_secs(10)))
            .connect(&format!("{path_url}?mode=rwc"))
            .await?;
        migrate(&writer, Dialect::Sqlite).await?;
        let readers = pragmas(AnyPoolOptions::new().max_connections(4).test_before_acquire(false).acquire_timeout(Duration::from_secs(10)))
            .connect(&format!("{path_url}?mode=ro"))
            .await?;
        Ok(Store { writer, readers, dialect: Dialect::Sqlite })
    }

    pub async fn close(&self) {
        self.readers.close().await;
        self.writer.close().await;
    }

    // ---- users and API tokens ----

    /// User names are matched without regard to case (they are stored lowercase).
    pub async fn user_by_name(&self, name: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as("SELECT id, name, password_hash, is_admin FROM users WHERE name = $1")
            .bind(name.to_lowercase())
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(User::from))
    }

    pub async fn insert_user(&self, user: &User, now: Millis) -> StoreResult<bool> {
        let r = sqlx::query(
            "INSERT INTO users (id, name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&user.id)
        .bind(user.name.to_lowercase())
        .bind(&user.password_hash)
        .bind(user.is_admin as i64)
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Every account, by name.
    pub async fn users(&self) -> StoreResult<Vec<User>> {
        let rows: Vec<UserRow> = sqlx::query_as("SELECT id, name, password_hash, is_admin FROM users ORDER BY name")
            .fetch_all(&self.readers)
            .await?;
        Ok(rows.into_iter().map(User::from).collect())
    }

    /// Removes an account and its tokens (sessions keep naming who started them).
    pub async fn delete_user(&self, id: &str) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM api_tokens WHERE user_id = $1").bind(id).execute(&mut *tx).await?;
        let r = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn insert_token(&self, hash: &str, kind: TokenKind, user_id: &str, expires_at: Millis) -> StoreResult<()> {
        sqlx::query("INSERT INTO api_tokens (token_hash, kind, user_id, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(hash)
            .bind(kind.as_str())
            .bind(user_id)
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The user a live token of `kind` belongs to.
    pub async fn token_user(&self, hash: &str, kind: TokenKind, now: Millis) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.name, u.password_hash, u.is_admin FROM api_tokens t JOIN users u ON u.id = t.user_id
             WHERE t.token_hash = $1 AND t.kind = $2 AND t.expires_at > $3",
        )
        .bind(hash)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(User::from))
    }

    /// Removes a refresh token so it cannot be used twice; true when it was live.
    pub async fn take_refresh_token(&self, hash: &str, now: Millis) -> StoreResult<Option<String>> {
        let row: Option<(String,)> = sqlx::query_as(
            "DELETE FROM api_tokens WHERE token_hash = $1 AND kind = 'refresh' AND expires_at > $2 RETURNING user_id",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|r| r.0))
    }

    pub async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        let row: Option<UserRow> = sqlx::query_as("SELECT id, name, password_hash, is_admin FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.map(User::from))
    }

    pub async fn delete_expired_tokens(&self, now: Millis) -> StoreResult<u64> {
        let r = sqlx::query("DELETE FROM api_tokens WHERE expires_at <= $1").bind(now).execute(&self.writer).await?;
        Ok(r.rows_affected())
    }

    // ---- organizations ----

    pub async fn insert_organization(&self, o: &OrganizationRow) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO organizations (id, name, region, tenant, application_id, public_json, secrets_sealed, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&o.id)
        .bind(&o.name)
        .bind(&o.region)
        .bind(&o.tenant)
        .bind(&o.application_id)
        .bind(&o.public_json)
        .bind(&o.secrets_sealed)
        .bind(o.created_at)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn organizations(&self) -> StoreResult<Vec<OrganizationRow>> {
        sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY created_at, id"))
            .fetch_all(&self.readers)
            .await
    }

    pub async fn organization(&self, id: &str) -> StoreResult<Option<OrganizationRow>> {
        sqlx::query_as(&format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.readers)
            .await
    }

    pub async fn delete_organization(&self, id: &str) -> StoreResult<bool> {
        let r = sqlx::query("DELETE FROM organizations WHERE id = $1").bind(id).execute(&self.writer).await?;
        Ok(r.rows_affected() == 1)
    }

    // ---- restore sessions and events ----

    /// Inserts a session with its first event, in one transaction.
    pub async fn insert_session(&self, s: &SessionRow, first_event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        let list_ord = next_counter(&mut tx, "sessions").await?;
        let owner_ord = next_counter(&mut tx, &format!("sessions:{}", s.initiated_by_id)).await?;
        sqlx::query(
            "INSERT INTO restore_sessions (id, name, organization_id, organization_name, type, creation_time, end_time,
               state, result, initiated_by, initiated_by_id, details, last_activity, list_ord, owner_ord)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&s.id)
        .bind(&s.name)
        .bind(&s.organization_id)
        .bind(&s.organization_name)
        .bind(&s.session_type)
        .bind(s.creation_time)
        .bind(s.end_time)
        .bind(&s.state)
        .bind(&s.result)
        .bind(&s.initiated_by)
        .bind(&s.initiated_by_id)
        .bind(&s.details)
        .bind(s.creation_time)
        .bind(list_ord)
        .bind(owner_ord)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, &s.id, first_event).await?;
        tx.commit().await
    }

    pub async fn session(&self, id: &str) -> StoreResult<Option<SessionRow>> {
        sqlx::query_as(&format!("SELECT {SESSION_COLUMNS} FROM restore_sessions WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.readers)
            .await
    }

    /// A page of sessions, oldest first, optionally only those a user started. The dense
    /// ordinals turn any offset into an index range scan: the last page of 100,000 costs what the
    /// first does.
    pub async fn sessions(&self, owner: Option<&str>, offset: i64, limit: i64) -> StoreResult<Vec<SessionRow>> {
        match owner {
            None => {
                sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM restore_sessions WHERE list_ord > $1 ORDER BY list_ord LIMIT $2"
                ))
                .bind(offset)
                .bind(limit)
                .fetch_all(&self.readers)
                .await
            }
            Some(owner) => {
                sqlx::query_as(&format!(
                    "SELECT {SESSION_COLUMNS} FROM restore_sessions WHERE initiated_by_id = $1 AND owner_ord > $2
                     ORDER BY owner_ord LIMIT $3"
                ))
                .bind(owner)
                .bind(offset)
                .bind(limit)
                .fetch_all(&self.readers)
                .await
            }
        }
    }

    /// Stops a working session and records why; false when it was not working.
    pub async fn stop_session(&self, id: &str, now: Millis, event: &NewEvent) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query(
            "UPDATE restore_sessions SET state = 'Stopped', end_time = $2, last_activity = $2
             WHERE id = $1 AND state = 'Working'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, id, event).await?;
        // A stopped session authorizes nothing: its pending sign-ins end with it.
        sqlx::query(
            "UPDATE device_authorizations SET state = 'failed', outcome = 'The restore session was stopped', finished_at = $2
             WHERE session_id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn idle_sessions(&self, last_activity_before: Millis) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT id FROM restore_sessions WHERE state = 'Working' AND last_activity < $1 LIMIT 1000",
        )
        .bind(last_activity_before)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn add_event(&self, session_id: &str, event: &NewEvent) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        insert_event(&mut tx, session_id, event).await?;
        sqlx::query("UPDATE restore_sessions SET last_activity = CASE WHEN last_activity > $2 THEN last_activity ELSE $2 END WHERE id = $1")
            .bind(session_id)
            .bind(event.start_time)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    pub async fn events(&self, session_id: &str, offset: i64, limit: i64) -> StoreResult<Vec<EventRow>> {
        sqlx::query_as(
            "SELECT id, ord, status, title, message, start_time, end_time FROM session_events
             WHERE session_id = $1 ORDER BY ord LIMIT $2 OFFSET $3",
        )
        .bind(session_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.readers)
        .await
    }

    // ---- device authorizations ----

    /// Records a new authorization, leased to the instance that will follow it, with its event.
    pub async fn insert_device_authorization(&self, d: &DeviceAuthorizationRow, event: &NewEvent, lease: &Lease) -> StoreResult<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO device_authorizations (id, session_id, user_id, user_code, authority, tenant, client_id,
               token_endpoint, device_code_sealed, interval_ms, expires_at, next_poll_at, transient_failures, polls,
               state, created_at, lease_owner, lease_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 0, 0, 'pending', $13, $14, $15)",
        )
        .bind(&d.id)
        .bind(&d.session_id)
        .bind(&d.user_id)
        .bind(&d.user_code)
        .bind(&d.authority)
        .bind(&d.tenant)
        .bind(&d.client_id)
        .bind(&d.token_endpoint)
        .bind(&d.device_code_sealed)
        .bind(d.interval_ms)
        .bind(d.expires_at)
        .bind(d.next_poll_at)
        .bind(d.created_at)
        .bind(&lease.owner)
        .bind(lease.until)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, &d.session_id, event).await?;
        sqlx::query("UPDATE restore_sessions SET last_activity = $2 WHERE id = $1")
            .bind(&d.session_id)
            .bind(d.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Takes up to `limit` pending authorizations nobody holds (never leased, or the lease has
    /// lapsed: its instance died). On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets instances claim
    /// side by side without taking the same rows; SQLite has a single writer anyway.
    pub async fn claim_device_authorizations(&self, lease: &Lease, now: Millis, limit: i64) -> StoreResult<Vec<DeviceAuthorizationRow>> {
        let lock = match self.dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        sqlx::query_as(&format!(
            "UPDATE device_authorizations SET lease_owner = $1, lease_until = $2
             WHERE id IN (SELECT id FROM device_authorizations
                          WHERE state = 'pending' AND (lease_until IS NULL OR lease_until < $3)
                          ORDER BY next_poll_at LIMIT $4 {lock})
             RETURNING {DEVICE_COLUMNS}"
        ))
        .bind(&lease.owner)
        .bind(lease.until)
        .bind(now)
        .bind(limit)
        .fetch_all(&self.writer)
        .await
    }

    /// Extends this instance's leases; the ids it still holds (a lease that lapsed meanwhile may
    /// have been claimed by another instance: those are not renewed).
    pub async fn renew_leases(&self, lease: &Lease, now: Millis) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "UPDATE device_authorizations SET lease_until = $2
             WHERE lease_owner = $1 AND state = 'pending' AND lease_until >= $3 RETURNING id",
        )
        .bind(&lease.owner)
        .bind(lease.until)
        .bind(now)
        .fetch_all(&self.writer)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Lets other instances take this one's pending authorizations at once (graceful shutdown).
    pub async fn release_leases(&self, owner: &str) -> StoreResult<()> {
        sqlx::query("UPDATE device_authorizations SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = $1 AND state = 'pending'")
            .bind(owner)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn count_pending_device_authorizations(&self) -> StoreResult<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM device_authorizations WHERE state = 'pending'")
            .fetch_one(&self.readers)
            .await?;
        Ok(n)
    }

    /// How many sign-ins `user_id` has pending, and when the first of them expires.
    pub async fn pending_device_authorizations_of(&self, user_id: &str) -> StoreResult<(i64, Option<Millis>)> {
        let (n, first): (i64, Option<i64>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(expires_at) FROM device_authorizations WHERE user_id = $1 AND state = 'pending'",
        )
        .bind(user_id)
        .fetch_one(&self.readers)
        .await?;
        Ok((n, first))
    }

    /// Records a changed schedule (after `slow_down` or a transient failure). Plain pending polls
    /// are not written: on resume the next poll is put at least one interval after the restart.
    /// No-op when the authorization is no longer pending.
    pub async fn reschedule_device_authorization(
        &self,
        id: &str,
        interval_ms: i64,
        next_poll_at: Millis,
        transient_failures: u32,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE device_authorizations SET interval_ms = $2, next_poll_at = $3, transient_failures = $4
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(interval_ms)
        .bind(next_poll_at)
        .bind(transient_failures as i64)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Ends a pending sign-in with its outcome and records the event, once: false when it had
    /// already ended.
    pub async fn finish_device_authorization(&self, f: &Finish<'_>, event: &NewEvent) -> StoreResult<bool> {
        let mut tx = self.writer.begin().await?;
        let r = sqlx::query(
            "UPDATE device_authorizations SET state = $2, outcome = $3, account = $4, tokens_sealed = $5,
               finished_at = $6, polls = $7
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(f.id)
        .bind(f.state.as_str())
        .bind(&event.message)
        .bind(f.account)
        .bind(f.tokens_sealed)
        .bind(event.start_time)
        .bind(f.polls as i64)
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        insert_event(&mut tx, f.session_id, event).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The state of the authorizations with this user code that `user_id` may see (all for None).
    /// Codes are matched as people type them: without regard to case, spaces and dashes.
    pub async fn device_states_by_user_code(&self, user_code: &str, user_id: Option<&str>) -> StoreResult<Vec<String>> {
        let typed: String = user_code.chars().filter(|c| !c.is_whitespace() && *c != '-').collect::<String>().to_uppercase();
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT state FROM device_authorizations
             WHERE REPLACE(REPLACE(UPPER(user_code), '-', ''), ' ', '') = $1 AND (CAST($2 AS TEXT) IS NULL OR user_id = $2)",
        )
        .bind(typed)
        .bind(user_id)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

/// The next value of a named counter (1 for a new one), inside the caller's transaction.
async fn next_counter(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> StoreResult<i64> {
    let (value,): (i64,) = sqlx::query_as(
        "INSERT INTO counters (name, value) VALUES ($1, 1)
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 RETURNING value",
    )
    .bind(name)
    .fetch_one(&mut **tx)
    .await?;
    Ok(value)
}

async fn insert_event(tx: &mut sqlx::Transaction<'_, sqlx::Any>, session_id: &str, e: &NewEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO session_events (id, session_id, ord, status, title, message, start_time, end_time)
         VALUES ($1, $2, (SELECT COALESCE(MAX(ord), 0) + 1 FROM session_events WHERE session_id = $2), $3, $4, $5, $6, $7)",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(session_id)
    .bind(e.status.as_str())
    .bind(&e.title)
    .bind(&e.message)
    .bind(e.start_time)
    .bind(e.end_time)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
