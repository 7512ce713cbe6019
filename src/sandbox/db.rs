//! The sandbox provider's own database (`sandbox.db` in the data directory): tenants,
//! applications, users, device codes and refresh tokens. Separate from restoregate's store: the
//! sandbox is another system that happens to share the binary.

use crate::clock::Millis;
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;
use tokio::sync::oneshot;

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
-- Device codes by a sequential id: appending rows touches the last page only. Their lookups by
-- device code hash and by user code go through in-memory indexes (see Lookups): on-disk indexes
-- of random keys cost a random page per index and per insert in the WAL, about 10 KB a code, and
-- the checkpoints that copy them back stalled the writer.
CREATE TABLE IF NOT EXISTS device_codes (
    id               INTEGER PRIMARY KEY,
    device_code_hash TEXT NOT NULL,
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
CREATE INDEX IF NOT EXISTS device_codes_expiry ON device_codes(expires_at);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    username   TEXT NOT NULL,
    scope      TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// Before version 1, device codes were keyed by their hash with an on-disk user-code index.
const UPGRADE_TO_1: &str = "
ALTER TABLE device_codes RENAME TO device_codes_0;
DROP INDEX IF EXISTS device_codes_user_code;
";
const COPY_FROM_0: &str = "
INSERT INTO device_codes (device_code_hash, user_code, tenant_id, client_id, scope, created_at, expires_at, interval_ms,
                          last_poll_at, status, username, wrong_passwords)
    SELECT device_code_hash, user_code, tenant_id, client_id, scope, created_at, expires_at, interval_ms,
           last_poll_at, status, username, wrong_passwords FROM device_codes_0 ORDER BY created_at;
DROP TABLE device_codes_0;
";

/// How long after its expiry a device code can still be found (to answer `expired_token`, or
/// "already used" at the page); older ones are unknown, as at Microsoft, and purged.
pub const KEEP_AFTER_EXPIRY_MS: Millis = 3600 * 1000;

/// The in-memory indexes of device codes: the hash of each findable code, and each user code
/// (to its newest code), to the row's id. Filled at open from the codes still findable, kept in
/// step by [`insert_code`], trimmed by [`purge_codes`].
///
/// They are Rust maps on the database thread, not SQLite tables: TEMP tables of a million codes
/// made every commit scan their page cache (a quarter of the thread's time). An entry is only a
/// pointer to a row: lookups check the row's own hash or user code, so an entry left by a rolled
/// back insert (whose id a later code may take) finds nothing it should not.
struct Lookups {
    by_hash: Sharded<[u8; 32]>,
    by_user_code: Sharded<[u8; 8]>,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups { by_hash: Sharded::new(), by_user_code: Sharded::new() }
    }
}

const SHARDS: usize = 256;

/// A map split into 256 by key, so that growing one rehashes a 256th of the entries: one map of
/// a million codes took tens of milliseconds to grow, and every request queued behind it (p99
/// went from 13 ms to 97 ms as the codes passed a million).
struct Sharded<K> {
    shards: Vec<HashMap<K, i64>>,
}

trait ShardKey: Eq + std::hash::Hash {
    fn shard(&self) -> usize;
}

impl ShardKey for [u8; 32] {
    /// A SHA-256 hash: its first byte is uniform already.
    fn shard(&self) -> usize {
        self[0] as usize % SHARDS
    }
}

impl ShardKey for [u8; 8] {
    fn shard(&self) -> usize {
        self.iter().fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize)) % SHARDS
    }
}

impl<K: ShardKey> Sharded<K> {
    fn new() -> Self {
        Sharded { shards: (0..SHARDS).map(|_| HashMap::new()).collect() }
    }

    fn get(&self, key: &K) -> Option<i64> {
        self.shards[key.shard()].get(key).copied()
    }

    fn insert(&mut self, key: K, id: i64) {
        self.shards[key.shard()].insert(key, id);
    }

    /// Removes the entry if it points at `id` (a newer code may have taken the key since).
    fn remove_if(&mut self, key: &K, id: i64) {
        let shard = &mut self.shards[key.shard()];
        if shard.get(key) == Some(&id) {
            shard.remove(key);
        }
    }
}

thread_local! {
    /// Only the database thread has any: the functions below run there (they take its
    /// connection), and `open` installs its maps when the thread starts.
    static LOOKUPS: RefCell<Lookups> = RefCell::new(Lookups::default());
}

/// A device code hash (64 hex digits) as map key; None for anything else.
fn hash_key(hash: &str) -> Option<[u8; 32]> {
    let bytes = hash.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        key[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(key)
}

/// A canonical user code (8 ASCII letters) as map key.
fn user_code_key(user_code: &str) -> Option<[u8; 8]> {
    user_code.as_bytes().try_into().ok()
}

/// The sandbox database: one connection, owned by one thread, that runs every statement.
///
/// Why not a pool: SQLite has one writer, and a device authorization request is a tenant lookup,
/// an application lookup and an insert. Sent to the database thread as one job, that is one
/// hand-off between threads per request instead of one per statement; and the thread commits
/// every job that queued up while it was busy in one transaction (group commit), so that under
/// load a commit costs one WAL append for many codes. A job's reply is sent only after its
/// transaction commits.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Message>,
}

enum Message {
    Run(Box<dyn Job>),
    /// Close the connection (checkpointing the WAL) and stop; answered once closed.
    Close(oneshot::Sender<()>),
}

/// Jobs committed together at most (bounds a transaction's size and a reply's delay).
const MAX_BATCH: usize = 256;

trait Job: Send {
    /// Runs the job's statements; false when they failed (the job's savepoint is rolled back).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Sends the outcome, once the transaction's fate is known.
    fn finish(self: Box<Self>, committed: bool);
}

struct Call<T, F> {
    work: Option<F>,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<anyhow::Result<T>>,
}

impl<T: Send, F: FnOnce(&Connection) -> rusqlite::Result<T> + Send> Job for Call<T, F> {
    fn run(&mut self, conn: &Connection) -> bool {
        let result = (self.work.take().expect("a job runs once"))(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: bool) {
        let outcome = match self.result {
            Some(Ok(_)) if !committed => Err(anyhow::anyhow!("the sandbox database could not commit")),
            Some(result) => result.map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!("the sandbox database job did not run")),
        };
        let _ = self.reply.send(outcome);
    }
}

impl Db {
    /// Runs `work` on the database thread, inside a transaction; its result once committed.
    pub async fn call<T, F>(&self, work: F) -> anyhow::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Call { work: Some(work), result: None, reply });
        self.jobs.send(Message::Run(job)).map_err(|_| anyhow::anyhow!("the sandbox database thread has stopped"))?;
        answer.await.map_err(|_| anyhow::anyhow!("the sandbox database thread has stopped"))?
    }

    /// Closes the database at shutdown, rather than whenever the last handle is dropped; calls
    /// after this fail.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Message::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// Opens (creating it 0600 if needed) the database with its schema, and starts its thread. The
/// thread ends when the last handle is dropped.
pub async fn open(path: &Path, now: Millis) -> anyhow::Result<Db> {
    crate::crypto::create_private_file_if_missing(path)?;
    let path = path.to_path_buf();
    let (conn, lookups) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Connection, Lookups)> {
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL with synchronous=NORMAL: a commit appends to the log without waiting for the disk;
        // a power cut may lose the last codes, never corrupt the file.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        let old_codes: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'device_codes'",
            [],
            |r| r.get(0),
        )?;
        if version < 1 && old_codes {
            conn.execute_batch(&format!("BEGIN; {UPGRADE_TO_1} {SCHEMA} {COPY_FROM_0} PRAGMA user_version = 1; COMMIT;"))?;
        } else {
            conn.execute_batch(&format!("BEGIN; {SCHEMA} PRAGMA user_version = 1; COMMIT;"))?;
        }
        // Oldest first, so that a user code issued twice maps to the newer code.
        let mut lookups = Lookups::default();
        {
            let mut findable = conn.prepare("SELECT id, device_code_hash, user_code FROM device_codes WHERE expires_at > ?1 ORDER BY id")?;
            let mut rows = findable.query([now - KEEP_AFTER_EXPIRY_MS])?;
            while let Some(row) = rows.next()? {
                let (id, hash, user_code): (i64, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
                if let Some(key) = hash_key(&hash) {
                    lookups.by_hash.insert(key, id);
                }
                if let Some(key) = user_code_key(&user_code) {
                    lookups.by_user_code.insert(key, id);
                }
            }
        }
        Ok((conn, lookups))
    })
    .await??;
    let (jobs, queue) = mpsc::channel::<Message>();
    std::thread::Builder::new().name("sandbox-db".into()).spawn(move || {
        LOOKUPS.with(|l| *l.borrow_mut() = lookups);
        serve(conn, queue)
    })?;
    Ok(Db { jobs })
}

fn serve(conn: Connection, queue: mpsc::Receiver<Message>) {
    let mut closing = None;
    while closing.is_none() {
        let Ok(first) = queue.recv() else { break };
        let mut batch = Vec::new();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Run(job) => batch.push(job),
                Message::Close(done) => {
                    closing = Some(done);
                    break;
                }
            }
            if batch.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            let committed = run_batch(&conn, &mut batch);
            for job in batch {
                job.finish(committed);
            }
        }
    }
    if let Err((_, e)) = conn.close() {
        tracing::warn!(error = %e, "sandbox: closing the database");
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// One transaction for the batch, with a savepoint per job (when there are several) so that a
/// failing job leaves the others' writes in.
fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>]) -> bool {
    // Prepared once: parsing even `COMMIT` shows in a profile at thousands of batches a second.
    let control = |sql: &str| conn.prepare_cached(sql).and_then(|mut statement| statement.execute([]).map(|_| ()));
    if let Err(e) = control("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "sandbox: cannot begin a transaction");
        return false;
    }
    if let [job] = batch {
        if !job.run(conn) {
            let _ = control("ROLLBACK");
            return true; // nothing to commit; the job reports its own error
        }
    } else {
        for job in batch.iter_mut() {
            let saved = control("SAVEPOINT job").is_ok();
            let ok = job.run(conn);
            if saved {
                if !ok {
                    let _ = control("ROLLBACK TO job");
                }
                let _ = control("RELEASE job");
            }
        }
    }
    match control("COMMIT") {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(error = %e, "sandbox: cannot commit");
            let _ = control("ROLLBACK");
            false
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub client_id: String,
    pub name: String,
    pub public_client: bool,
}

#[derive(Clone)]
pub struct DeviceCode {
    pub id: i64,
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

/// The columns of a [`DeviceCode`], of the table `d` (`device_codes d`).
pub const DEVICE_CODE_COLUMNS: &str = "d.id, d.user_code, d.tenant_id, d.client_id, d.scope, d.expires_at, d.interval_ms,
    d.last_poll_at, d.status, d.username, d.wrong_passwords";

/// A device code by the hash of its value.
pub fn code_by_hash(c: &Connection, hash: &str) -> rusqlite::Result<Option<DeviceCode>> {
    let Some(id) = hash_key(hash).and_then(|key| LOOKUPS.with(|l| l.borrow().by_hash.get(&key))) else {
        return Ok(None);
    };
    c.prepare_cached(&format!("SELECT {DEVICE_CODE_COLUMNS} FROM device_codes d WHERE d.id = ?1 AND d.device_code_hash = ?2"))?
        .query_row(params![id, hash], DeviceCode::from_row)
        .optional()
}

/// The newest device code with this user code (canonical form).
pub fn code_by_user_code(c: &Connection, user_code: &str) -> rusqlite::Result<Option<DeviceCode>> {
    let Some(id) = user_code_key(user_code).and_then(|key| LOOKUPS.with(|l| l.borrow().by_user_code.get(&key))) else {
        return Ok(None);
    };
    c.prepare_cached(&format!("SELECT {DEVICE_CODE_COLUMNS} FROM device_codes d WHERE d.id = ?1 AND d.user_code = ?2"))?
        .query_row(params![id, user_code], DeviceCode::from_row)
        .optional()
}

/// What a new device code is stored with.
pub struct NewCode<'a> {
    pub hash: &'a str,
    pub tenant_id: &'a str,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub now: Millis,
    pub expires_at: Millis,
    pub interval_ms: i64,
}

/// Stores a new device code under a user code that no findable code has (drawing again on a
/// collision); the user code, canonical form.
pub fn insert_code(c: &Connection, code: &NewCode, mut user_code: impl FnMut() -> String) -> rusqlite::Result<String> {
    let taken = |canonical: &str| user_code_key(canonical).is_some_and(|key| LOOKUPS.with(|l| l.borrow().by_user_code.get(&key).is_some()));
    let mut canonical = user_code();
    for _ in 0..8 {
        if !taken(&canonical) {
            break;
        }
        canonical = user_code();
    }
    c.prepare_cached(
        "INSERT INTO device_codes (device_code_hash, user_code, tenant_id, client_id, scope, created_at, expires_at, interval_ms, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'pending')",
    )?
    .execute(params![code.hash, canonical, code.tenant_id, code.client_id, code.scope, code.now, code.expires_at, code.interval_ms])?;
    let id = c.last_insert_rowid();
    LOOKUPS.with(|l| {
        let mut l = l.borrow_mut();
        if let Some(key) = hash_key(code.hash) {
            l.by_hash.insert(key, id);
        }
        if let Some(key) = user_code_key(&canonical) {
            l.by_user_code.insert(key, id);
        }
    });
    Ok(canonical)
}

/// Forgets device codes expired more than [`KEEP_AFTER_EXPIRY_MS`] ago, on disk and in the
/// in-memory indexes; how many.
pub fn purge_codes(c: &Connection, now: Millis) -> rusqlite::Result<usize> {
    let before = now - KEEP_AFTER_EXPIRY_MS;
    let mut gone = c.prepare("SELECT id, device_code_hash, user_code FROM device_codes WHERE expires_at <= ?1")?;
    let gone: Vec<(i64, String, String)> = gone.query_map([before], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
    LOOKUPS.with(|l| {
        let mut l = l.borrow_mut();
        for (id, hash, user_code) in &gone {
            // Only the entries that point at the purged row: a newer code may have the user code.
            if let Some(key) = hash_key(hash) {
                l.by_hash.remove_if(&key, *id);
            }
            if let Some(key) = user_code_key(user_code) {
                l.by_user_code.remove_if(&key, *id);
            }
        }
    });
    c.execute("DELETE FROM device_codes WHERE expires_at <= ?1", [before])
}

impl DeviceCode {
    /// From a row selected with [`DEVICE_CODE_COLUMNS`].
    pub fn from_row(r: &Row) -> rusqlite::Result<Self> {
        Ok(DeviceCode {
            id: r.get(0)?,
            user_code: r.get(1)?,
            tenant_id: r.get(2)?,
            client_id: r.get(3)?,
            scope: r.get(4)?,
            expires_at: r.get(5)?,
            interval_ms: r.get(6)?,
            last_poll_at: r.get(7)?,
            status: r.get(8)?,
            username: r.get(9)?,
            wrong_passwords: r.get(10)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_code<'a>(hash: &'a str, now: Millis) -> NewCode<'a> {
        NewCode { hash, tenant_id: "t", client_id: "c", scope: "s", now, expires_at: now + 900_000, interval_ms: 5000 }
    }

    #[tokio::test]
    async fn codes_are_found_by_hash_and_user_code_after_a_reopen_and_forgotten_after_the_purge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandbox.db");
        let now = 1_700_000_000_000;
        let (h1, h2) = (crate::crypto::sha256_hex("one"), crate::crypto::sha256_hex("two"));
        let db = open(&path, now).await.unwrap();
        // The second code draws the first one's user code first: it must get another one.
        let mut draws = vec!["BBBBBBBB", "CCCCCCCC", "BBBBBBBB"].into_iter().map(String::from);
        let first = db.call({ let h1 = h1.clone(); move |c| insert_code(c, &new_code(&h1, now), || "BBBBBBBB".into()) }).await.unwrap();
        let second = db.call({ let h2 = h2.clone(); move |c| insert_code(c, &new_code(&h2, now), move || draws.next().unwrap()) }).await.unwrap();
        assert_eq!((first.as_str(), second.as_str()), ("BBBBBBBB", "CCCCCCCC"));
        db.close().await;

        let db = open(&path, now + 1000).await.unwrap();
        let (by_hash, by_user_code) = db
            .call({ let h2 = h2.clone(); move |c| Ok((code_by_hash(c, &h2)?.map(|d| d.user_code), code_by_user_code(c, "BBBBBBBB")?.map(|d| d.id))) })
            .await
            .unwrap();
        assert_eq!(by_hash.as_deref(), Some("CCCCCCCC"));
        assert!(by_user_code.is_some());

        let later = now + 900_000 + KEEP_AFTER_EXPIRY_MS + 1;
        let purged = db.call(move |c| purge_codes(c, later)).await.unwrap();
        assert_eq!(purged, 2);
        let gone = db.call(move |c| Ok((code_by_hash(c, &h1)?.is_none(), code_by_user_code(c, "CCCCCCCC")?.is_none()))).await.unwrap();
        assert_eq!(gone, (true, true));
    }
    /// A job that inserts a code and then fails is rolled back, and the next code may take its
    /// id: the map entry the rolled-back code left must not find the new one.
    #[tokio::test]
    async fn an_entry_left_by_a_rolled_back_insert_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_700_000_000_000;
        let db = open(&dir.path().join("sandbox.db"), now).await.unwrap();
        let (lost, kept) = (crate::crypto::sha256_hex("lost"), crate::crypto::sha256_hex("kept"));
        let failed = db
            .call({
                let lost = lost.clone();
                move |c| {
                    insert_code(c, &new_code(&lost, now), || "DDDDDDDD".into())?;
                    Err::<(), _>(rusqlite::Error::InvalidQuery)
                }
            })
            .await;
        assert!(failed.is_err());
        let kept_id = db.call({ let kept = kept.clone(); move |c| { insert_code(c, &new_code(&kept, now), || "FFFFFFFF".into())?; Ok(c.last_insert_rowid()) } }).await.unwrap();
        let found = db
            .call(move |c| Ok((code_by_hash(c, &lost)?.is_none(), code_by_user_code(c, "DDDDDDDD")?.is_none(), code_by_hash(c, &kept)?.map(|d| d.id))))
            .await
            .unwrap();
        assert_eq!(found, (true, true, Some(kept_id)));
    }

}
