//! Follows 10,000 pending sign-ins against a loopback authority and prints: polls per sign-in
//! against the RFC minimum, schedule lateness p50/p99, CPU (share of one core) and peak RSS.
//!
//! `cargo run --release --example follower_bench [-- PENDING]`
//!
//! The authority runs in a child process (this program, `authority` mode) so that its CPU is not
//! counted. Each device code is approved at a random time within the first minute; until then the
//! authority answers `authorization_pending`. Codes are issued over one interval (5 s), as if
//! requested at a steady rate, so that the steady load is PENDING / 5 polls per second.

use restoregate::clock::{Clock, SharedClock, SystemClock};
use restoregate::crypto::Sealer;
use restoregate::domain::session::EventStatus;
use restoregate::identity::IdentityClient;
use restoregate::signin::{Follower, FollowerOptions, DEVICE_CODE_PURPOSE};
use restoregate::store::{DeviceAuthorizationRow, NewEvent, SessionRow, Store};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const INTERVAL_MS: i64 = 5_000;
const APPROVE_WITHIN_MS: i64 = 60_000;
const LIFETIME_S: i64 = 300;
const POLL_BUDGET_PER_SECOND: f64 = 5_000.0;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Runtime::new()?;
    if args.get(1).map(String::as_str) == Some("authority") {
        return runtime.block_on(authority());
    }
    let pending: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    runtime.block_on(follower(pending))
}

// ---------- the loopback authority (child process) ----------

type Polls = Arc<Mutex<HashMap<u32, Vec<i64>>>>;

async fn authority() -> anyhow::Result<()> {
    use axum::routing::{get, post};
    let polls: Polls = Arc::default();
    let p = polls.clone();
    let router = axum::Router::new()
        .route(
            "/token",
            post(move |body: String| {
                let polls = p.clone();
                async move {
                    let now = SystemClock.now();
                    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    // Device codes are `<index>:<approval time>`.
                    let (index, approve_at) = form
                        .get("device_code")
                        .and_then(|c| c.split_once(':'))
                        .and_then(|(i, a)| Some((i.parse::<u32>().ok()?, a.parse::<i64>().ok()?)))
                        .expect("bench device code");
                    polls.lock().unwrap().entry(index).or_default().push(now);
                    if now >= approve_at {
                        (axum::http::StatusCode::OK, r#"{"token_type":"Bearer","access_token":"a.e30.s","refresh_token":"r","expires_in":3599}"#)
                    } else {
                        (axum::http::StatusCode::BAD_REQUEST, r#"{"error":"authorization_pending","error_description":"AADSTS70016: pending","error_codes":[70016]}"#)
                    }
                }
            }),
        )
        .route("/stats", get(move || async move { axum::Json(polls.lock().unwrap().clone()) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("{}", listener.local_addr()?.port());
    axum::serve(listener, router).await?;
    Ok(())
}

// ---------- the follower under test (this process) ----------

/// User plus system CPU time of this process.
fn cpu_seconds() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l.to_string()))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn follower(pending: usize) -> anyhow::Result<()> {
    restoregate::tls::install_crypto_provider();
    let exe = std::env::current_exe()?;
    let mut child = std::process::Command::new(exe).arg("authority").stdout(std::process::Stdio::piped()).spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let port: u16 = line.trim().parse()?;
    let base = format!("http://127.0.0.1:{port}");

    let dir = tempfile::tempdir()?;
    let store = Store::open(&format!("sqlite://{}", dir.path().join("bench.db").display())).await?;
    let sealer = Sealer::from_key(&[9u8; 32]);
    let clock: SharedClock = Arc::new(SystemClock);
    let identity = Arc::new(IdentityClient::new(restoregate::tls::client_config(&[])?, Duration::from_secs(10), clock.clone())?);
    let (_stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (handle, _task) = Follower::start(store.clone(), identity, sealer.clone(), clock.clone(), FollowerOptions { polls_per_second_per_authority: POLL_BUDGET_PER_SECOND, ..Default::default() }, stop_rx);

    // Sessions to hang the authorizations on.
    let now = clock.now();
    let sessions: Vec<String> = (0..100).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    for id in &sessions {
        let row = SessionRow {
            id: id.clone(),
            name: "bench".into(),
            organization_id: uuid::Uuid::nil().to_string(),
            organization_name: "abc.onmicrosoft.com".into(),
            session_type: "Vex".into(),
            creation_time: now,
            end_time: None,
            state: "Working".into(),
            result: "Success".into(),
            initiated_by: "bench".into(),
            initiated_by_id: "bench".into(),
            details: String::new(),
        };
        let event = NewEvent { status: EventStatus::Success, title: "start".into(), message: String::new(), start_time: now, end_time: None };
        store.insert_session(&row, &event).await?;
    }

    // Codes are issued from t0 over one interval, each approved within the first minute.
    let setup_ms = 30_000 + pending as i64; // room for the inserts below
    let t0 = clock.now() + setup_ms;
    let mut issued: HashMap<u32, (i64, i64)> = HashMap::new();
    let insert_start = Instant::now();
    for i in 0..pending as u32 {
        let created = t0 + (i as i64 * INTERVAL_MS) / pending as i64;
        let approve_at = created + (rand_u64() % APPROVE_WITHIN_MS as u64) as i64;
        issued.insert(i, (created, approve_at));
        let row = DeviceAuthorizationRow {
            id: uuid::Uuid::new_v4().to_string(),
            session_id: sessions[i as usize % sessions.len()].clone(),
            user_id: "bench".into(),
            user_code: format!("U{i}"),
            authority: base.clone(),
            tenant: "abc.onmicrosoft.com".into(),
            client_id: "11111111-2222-3333-4444-555555555555".into(),
            token_endpoint: format!("{base}/token"),
            device_code_sealed: sealer.seal(DEVICE_CODE_PURPOSE, format!("{i}:{approve_at}").as_bytes()),
            interval_ms: INTERVAL_MS,
            expires_at: created + LIFETIME_S * 1000,
            next_poll_at: created + INTERVAL_MS,
            transient_failures: 0,
            created_at: created,
        };
        let event = NewEvent { status: EventStatus::Success, title: "Device code requested".into(), message: String::new(), start_time: now, end_time: Some(now) };
        store.insert_device_authorization(&row, &event, &handle.lease(row.created_at)).await?;
        handle.follow(row);
    }
    let inserted_in = insert_start.elapsed();
    anyhow::ensure!(clock.now() < t0, "inserting took {inserted_in:?}, longer than the set-up window");
    tokio::time::sleep(Duration::from_millis((t0 - clock.now()) as u64)).await;

    let cpu_start = cpu_seconds();
    let wall_start = Instant::now();
    let deadline = Instant::now() + Duration::from_millis((APPROVE_WITHIN_MS + INTERVAL_MS * 6) as u64);
    loop {
        let left = store.count_pending_device_authorizations().await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "{left} sign-ins still pending at the deadline");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let wall = wall_start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;

    let stats: HashMap<u32, Vec<i64>> = reqwest::get(format!("{base}/stats")).await?.json().await?;
    let _ = child.kill();
    let mut total_polls = 0usize;
    let mut minimum_polls = 0usize;
    let mut lateness = Vec::new();
    let mut too_fast = 0usize;
    for (i, (created, approve_at)) in &issued {
        let times = stats.get(i).cloned().unwrap_or_default();
        total_polls += times.len();
        // The fewest polls an RFC-conforming client needs: the first poll at or after approval,
        // on the grid created + k * interval, k >= 1.
        let waited = approve_at - created;
        minimum_polls += ((waited + INTERVAL_MS - 1) / INTERVAL_MS).max(1) as usize;
        let mut previous = *created;
        for t in times {
            let gap = t - previous;
            if previous != *created && gap < INTERVAL_MS {
                too_fast += 1;
            }
            lateness.push((gap - INTERVAL_MS) as f64 / 1000.0);
            previous = t;
        }
    }
    lateness.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("## Sign-in follower: {pending} pending sign-ins against a loopback authority");
    println!();
    println!("| figure | value | target |");
    println!("|---|---|---|");
    println!("| polls per RFC-minimum poll | {:.3} ({total_polls} / {minimum_polls}) | at most 1.05 |", total_polls as f64 / minimum_polls as f64);
    println!("| schedule lateness p50 | {:.3} s | |", percentile(&lateness, 0.5));
    println!("| schedule lateness p99 | {:.3} s | under 1 s |", percentile(&lateness, 0.99));
    println!("| polls faster than the interval | {too_fast} | 0 |");
    println!("| CPU while following | {:.1} % of one core ({cpu:.2} s over {wall:.1} s) | under 25 % |", 100.0 * cpu / wall);
    println!("| peak RSS | {:.1} MB | under 150 MB |", peak_rss_mb());
    println!();
    println!("interval {} s, approvals uniform within {} s, poll budget {} per second per authority, set-up inserts took {:.1} s", INTERVAL_MS / 1000, APPROVE_WITHIN_MS / 1000, POLL_BUDGET_PER_SECOND, inserted_in.as_secs_f64());
    Ok(())
}

fn rand_u64() -> u64 {
    use rand::RngCore;
    rand::thread_rng().next_u64()
}
