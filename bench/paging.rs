//! p50 of the first and the last page of 100,000 restore sessions (`GET /v5/RestoreSessions`'s
//! query), as a ratio, on SQLite and on PostgreSQL (RESTOREGATE_TEST_POSTGRES, default
//! postgres://postgres@127.0.0.1:5432/postgres). Target: at most 2.
//!
//! `cargo run --release --example paging_bench [-- SESSIONS]`

use restoregate::store::Store;
use sqlx::{Connection, Executor};
use std::time::Instant;

const LIMIT: i64 = 30;
const RUNS: usize = 300;

/// Inserts `n` sessions by the same user in multi-row statements, with their ordinals.
async fn fill(url: &str, n: i64) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    let now = chrono::Utc::now().timestamp_millis();
    for start in (0..n).step_by(500) {
        let end = (start + 500).min(n);
        let values: Vec<String> = (start..end)
            .map(|i| {
                format!(
                    "('{}', 'abc.onmicrosoft.com - Exchange', 'org', 'abc.onmicrosoft.com', 'Vex', {t}, NULL, 'Working', 'Success',
                      'admin', 'admin-id', '', {t}, {ord}, {ord})",
                    uuid::Uuid::new_v4(),
                    t = now + i,
                    ord = i + 1
                )
            })
            .collect();
        tx.execute(
            format!(
                "INSERT INTO restore_sessions (id, name, organization_id, organization_name, type, creation_time, end_time,
                   state, result, initiated_by, initiated_by_id, details, last_activity, list_ord, owner_ord) VALUES {}",
                values.join(",")
            )
            .as_str(),
        )
        .await?;
    }
    tx.execute(format!("INSERT INTO counters (name, value) VALUES ('sessions', {n}), ('sessions:admin-id', {n})").as_str()).await?;
    tx.commit().await?;
    Ok(())
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

async fn measure(label: &str, url: &str, n: i64) -> anyhow::Result<()> {
    let store = Store::open(url).await?;
    let filled = Instant::now();
    fill(url, n).await?;
    let fill_s = filled.elapsed().as_secs_f64();
    let mut first = Vec::new();
    let mut last = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let page = store.sessions(None, 0, LIMIT).await?;
        first.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.len() as i64, LIMIT);
        let t = Instant::now();
        let page = store.sessions(None, n - LIMIT, LIMIT).await?;
        last.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(page.len() as i64, LIMIT);
    }
    let (f, l) = (p50(first), p50(last));
    println!("| {label} | {n} | {f:.3} ms | {l:.3} ms | {:.2} | (filled in {fill_s:.1} s) |", l / f);
    store.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    println!("## Paging: first vs last page of {n} restore sessions (limit {LIMIT}, p50 of {RUNS} runs)\n");
    println!("| store | sessions | first page p50 | last page p50 | last / first (target at most 2) | |");
    println!("|---|---|---|---|---|---|");
    let dir = tempfile::tempdir()?;
    measure("SQLite", &format!("sqlite://{}", dir.path().join("paging.db").display()), n).await?;

    let admin = std::env::var("RESTOREGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("rg_bench_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await?;
    let mut url = url::Url::parse(&admin)?;
    url.set_path(&format!("/{name}"));
    let result = measure("PostgreSQL", url.as_str(), n).await;
    conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await?;
    result
}
