//! The follower's scheduler in real time: per-authority poll budget, no overlapping polls of one
//! code, never faster than the interval, every sign-in finished once.

use restoregate::clock::{Clock, SharedClock, SystemClock};
use restoregate::crypto::Sealer;
use restoregate::domain::session::EventStatus;
use restoregate::identity::IdentityClient;
use restoregate::signin::{Follower, FollowerOptions, DEVICE_CODE_PURPOSE};
use restoregate::store::{DeviceAuthorizationRow, NewEvent, SessionRow, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Log {
    polls: HashMap<String, Vec<i64>>,
    in_flight: HashSet<String>,
    overlaps: usize,
}

async fn authority(approve_at: i64) -> (String, Arc<Mutex<Log>>) {
    use axum::routing::post;
    let log: Arc<Mutex<Log>> = Arc::default();
    let l = log.clone();
    let router = axum::Router::new().route(
        "/token",
        post(move |body: String| {
            let log = l.clone();
            async move {
                let code: String = url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "device_code")
                    .map(|(_, v)| v.into_owned())
                    .unwrap();
                let now = SystemClock.now();
                {
                    let mut log = log.lock().unwrap();
                    if !log.in_flight.insert(code.clone()) {
                        log.overlaps += 1;
                    }
                    log.polls.entry(code.clone()).or_default().push(now);
                }
                // Slow answers make overlapping polls possible, were the scheduler to allow them.
                tokio::time::sleep(Duration::from_millis(150)).await;
                log.lock().unwrap().in_flight.remove(&code);
                if now >= approve_at {
                    (axum::http::StatusCode::OK, r#"{"token_type":"Bearer","access_token":"a.e30.s","expires_in":3599}"#)
                } else {
                    (axum::http::StatusCode::BAD_REQUEST, r#"{"error":"authorization_pending"}"#)
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_spreads_polls_without_overlap_or_early_polls() {
    restoregate::tls::install_crypto_provider();
    const CODES: usize = 40;
    const BUDGET: f64 = 10.0;
    let clock: SharedClock = Arc::new(SystemClock);
    let start = clock.now();
    let (base, log) = authority(start + 3_000).await;
    let dir = tempfile::tempdir().unwrap();
    let url = match crate::helpers::postgres_database_for(dir.path()).await {
        Some(pg) => pg,
        None => format!("sqlite://{}", dir.path().join("t.db").display()),
    };
    let store = Store::open(&url).await.unwrap();
    let sealer = Sealer::from_key(&[1u8; 32]);
    let identity = Arc::new(IdentityClient::new(restoregate::tls::client_config(&[]).unwrap(), Duration::from_secs(5), clock.clone()).unwrap());
    let (_stop, stop_rx) = tokio::sync::watch::channel(false);
    let (handle, _task) = Follower::start(store.clone(), identity, sealer.clone(), clock.clone(), FollowerOptions { polls_per_second_per_authority: BUDGET, ..Default::default() }, stop_rx);

    let session = uuid::Uuid::new_v4().to_string();
    let event = NewEvent { status: EventStatus::Success, title: "t".into(), message: String::new(), start_time: start, end_time: None };
    store
        .insert_session(
            &SessionRow {
                id: session.clone(),
                name: "s".into(),
                organization_id: "o".into(),
                organization_name: "abc.onmicrosoft.com".into(),
                session_type: "Vex".into(),
                creation_time: start,
                end_time: None,
                state: "Working".into(),
                result: "Success".into(),
                initiated_by: "admin".into(),
                initiated_by_id: "u".into(),
                details: String::new(),
            },
            &event,
        )
        .await
        .unwrap();
    for i in 0..CODES {
        let row = DeviceAuthorizationRow {
            id: format!("auth-{i}"),
            session_id: session.clone(),
            user_id: "u".into(),
            user_code: format!("C{i}"),
            authority: base.clone(),
            tenant: "abc.onmicrosoft.com".into(),
            client_id: "app".into(),
            token_endpoint: format!("{base}/token"),
            device_code_sealed: sealer.seal(DEVICE_CODE_PURPOSE, format!("code-{i}").as_bytes()),
            interval_ms: 1_000,
            expires_at: start + 60_000,
            next_poll_at: start + 1_000,
            transient_failures: 0,
            created_at: start,
        };
        store.insert_device_authorization(&row, &event, &handle.lease(row.created_at)).await.unwrap();
        handle.follow(row.clone());
        handle.follow(row); // handed over twice: still followed once
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    while store.count_pending_device_authorizations().await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "sign-ins still pending after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = store.events(&session, 0, 1000).await.unwrap();
    let log = log.lock().unwrap();
    assert_eq!(log.overlaps, 0, "two polls of one code overlapped");
    assert_eq!(log.polls.len(), CODES, "every code was polled");
    let mut all: Vec<i64> = Vec::new();
    for times in log.polls.values() {
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= 1_000, "a poll came {} ms after the previous one", pair[1] - pair[0]);
        }
        assert!(times[0] >= start + 1_000, "a first poll came before the interval");
        all.extend(times);
    }
    // The budget: no window of one second holds more than BUDGET polls (+1 for the edge).
    all.sort();
    for (i, t) in all.iter().enumerate() {
        let in_window = all[i..].iter().take_while(|u| **u < t + 1_000).count();
        assert!(in_window as f64 <= BUDGET + 1.0, "{in_window} polls within one second, budget {BUDGET}");
    }
    // 40 codes at 10 polls/s: polling was stretched, yet every sign-in finished exactly once.
    assert_eq!(events.iter().filter(|e| e.title == "Sign-in").count(), CODES);
}
