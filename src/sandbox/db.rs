//! The sandbox provider's own database (`sandbox.db` in the data directory): tenants,
//! applications, users, device codes and refresh tokens. Separate from restoregate's store: the
//! sandbox is another system that happens to share the binary.

use crate::clock::Millis;
use rusqlite::{Connection, Row};
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
pub async fn open(path: &Path) -> anyhow::Result<Db> {
    crate::crypto::create_private_file_if_missing(path)?;
    let path = path.to_path_buf();
    let conn = tokio::task::spawn_blocking(move || -> anyhow::Result<Connection> {
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL with synchronous=NORMAL: a commit appends to the log without waiting for the disk;
        // a power cut may lose the last codes, never corrupt the file.
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(conn)
    })
    .await??;
    let (jobs, queue) = mpsc::channel::<Message>();
    std::thread::Builder::new().name("sandbox-db".into()).spawn(move || serve(conn, queue))?;
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

impl DeviceCode {
    /// From a row selected with [`DEVICE_CODE_COLUMNS`].
    pub fn from_row(r: &Row) -> rusqlite::Result<Self> {
        Ok(DeviceCode {
            device_code_hash: r.get(0)?,
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
