//! Limits: wrong passwords at /v5/Token, restoreDeviceCode per user, the request deadlines. Each
//! refusal is a 429 with Retry-After (seconds) or a 408, with a body that says what to do.

use crate::helpers::*;
use restoregate::clock::{Clock, ManualClock, SystemClock};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn try_login(client: &reqwest::Client, app: &TestApp, user: &str, password: &str) -> (u16, Option<u64>, Value) {
    let r = client
        .post(app.url("/v5/Token"))
        .form(&[("grant_type", "password"), ("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry, r.json().await.unwrap())
}

fn assert_login_limited(status: u16, retry: Option<u64>, body: &Value) {
    assert_eq!(status, 429, "{body}");
    assert!(retry.is_some_and(|s| s >= 1), "Retry-After in seconds: {retry:?}");
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert!(body["message"].as_str().unwrap().contains("try again in"), "{body}");
}

/// A flood of wrong passwords from 127.0.0.2, at the legitimate user's own account and at others,
/// while that user signs in again and again from 127.0.0.1: every one of their sign-ins succeeds
/// within the deadline, and the flood gets at most the configured number of password checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_flood_from_another_address_leaves_token_answering_for_legitimate_users() {
    let app = spawn_app().await;
    app.add_user("alice", "alice-password-1", false).await;
    let legit = app.client_from("127.0.0.1");
    let attacker = app.client_from("127.0.0.2");
    let defaults = restoregate::config::Settings::defaults();

    const FLOOD: usize = 300;
    let flood = {
        let attacker = attacker.clone();
        let url = app.url("/v5/Token");
        tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..FLOOD {
                let (attacker, url) = (attacker.clone(), url.clone());
                let user = ["admin", "alice", "nobody"][i % 3];
                tasks.spawn(async move {
                    let r = attacker.post(url).form(&[("grant_type", "password"), ("username", user), ("password", "guess")]).send().await.unwrap();
                    let status = r.status().as_u16();
                    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
                    (status, retry, r.json::<Value>().await.unwrap())
                });
            }
            let mut answers = Vec::new();
            while let Some(a) = tasks.join_next().await {
                answers.push(a.unwrap());
            }
            answers
        })
    };

    let start = Instant::now();
    let mut logins = 0;
    while !flood.is_finished() || logins < 5 {
        let (status, _, body) = tokio::time::timeout(Duration::from_secs(20), try_login(&legit, &app, "admin", ADMIN_PASSWORD))
            .await
            .expect("a legitimate sign-in answered within 20 s during the flood");
        assert_eq!(status, 200, "legitimate sign-in {logins}: {body}");
        logins += 1;
        assert!(start.elapsed() < Duration::from_secs(120), "the flood did not end");
    }
    // Another user, from yet another address, is not held up either.
    let (status, _, body) = try_login(&app.client_from("127.0.0.3"), &app, "alice", "alice-password-1").await;
    assert_eq!(status, 200, "{body}");

    let answers = flood.await.unwrap();
    let checked = answers.iter().filter(|(s, _, _)| *s == 400).count();
    assert!(
        checked as u64 <= defaults.login_failures_per_address,
        "{checked} wrong passwords were checked from one address; at most {} may be",
        defaults.login_failures_per_address
    );
    for (status, retry, body) in answers.iter().filter(|(s, _, _)| *s != 400) {
        assert_login_limited(*status, *retry, body);
    }
    assert!(logins >= 5);
}

/// Wrong passwords for one account from many addresses use up the account's allowance: then an
/// address that has signed in to the account before still gets in; a new one waits for the window.
#[tokio::test]
async fn a_guessing_spree_on_one_account_spares_the_addresses_it_signed_in_from() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut s = settings(tmp.path());
    s.login_failures_per_address = 3;
    s.login_failures_per_account = 5;
    s.login_failure_window_seconds = 60;
    let app = spawn_with_clock(s, clock.clone()).await;
    let owner = app.client_from("127.0.0.1");
    assert_eq!(try_login(&owner, &app, "admin", ADMIN_PASSWORD).await.0, 200);

    let mut checked = 0;
    for i in 2..6 {
        let attacker = app.client_from(&format!("127.0.0.{i}"));
        for _ in 0..4 {
            let (status, retry, body) = try_login(&attacker, &app, "ADMIN", "guess").await;
            if status == 400 {
                assert_eq!(body["error"], "invalid_grant");
                checked += 1;
            } else {
                assert_login_limited(status, retry, &body);
            }
        }
    }
    assert_eq!(checked, 5, "the account's allowance, not 4 addresses × 3");

    // The right password from a new address is refused too (before it is checked) ...
    let newcomer = app.client_from("127.0.0.9");
    let (status, retry, body) = try_login(&newcomer, &app, "admin", ADMIN_PASSWORD).await;
    assert_login_limited(status, retry, &body);
    assert!(body["message"].as_str().unwrap().contains("user name"), "{body}");
    // ... while the owner's address gets in, and its successes do not count against anyone.
    for _ in 0..5 {
        assert_eq!(try_login(&owner, &app, "admin", ADMIN_PASSWORD).await.0, 200);
    }
    // Wrong passwords for other accounts from the new address are still its own to spend.
    assert_eq!(try_login(&newcomer, &app, "someone", "guess").await.0, 400);
    // Once the allowance has refilled, the new address gets in.
    clock.advance(retry.unwrap() as i64 * 1000);
    assert_eq!(try_login(&newcomer, &app, "admin", ADMIN_PASSWORD).await.0, 200);
    drop(tmp);
}

async fn device_code(app: &TestApp, token: &str, session: &str) -> (u16, Option<u64>, Value) {
    let r = app.post_json(token, &format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), json!({})).await;
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    (status, retry, r.json().await.unwrap())
}

#[tokio::test]
async fn device_codes_are_limited_per_user_per_minute() {
    let tmp = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut s = settings(tmp.path());
    s.device_codes_per_user_per_minute = 3;
    let app = spawn_with_clock(s, clock.clone()).await;
    app.add_user("alice", "alice-password-1", false).await;
    let admin = app.token().await;
    let alice = app.login("alice", "alice-password-1").await;
    let org = app.add_org(&admin, TENANT, APP_ID).await;
    let (mine, hers) = (app.explore(&admin, &org).await, app.explore(&alice, &org).await);
    for _ in 0..3 {
        assert_eq!(device_code(&app, &admin, &mine).await.0, 200);
    }
    let (status, retry, body) = device_code(&app, &admin, &mine).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(retry, Some(20), "a token every 20 s at 3 a minute");
    assert_eq!(body["errorCode"], "HttpError");
    assert!(body["message"].as_str().unwrap().contains("try again in 20 s"), "{body}");
    assert_eq!(device_code(&app, &alice, &hers).await.0, 200, "another user has their own allowance");
    clock.advance(20_000);
    assert_eq!(device_code(&app, &admin, &mine).await.0, 200);
    drop(tmp);
}

#[tokio::test]
async fn pending_sign_ins_per_user_are_capped_until_sessions_are_stopped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.pending_sign_ins_per_user = 2;
    let app = spawn_with(s).await;
    app.add_user("alice", "alice-password-1", false).await;
    let admin = app.token().await;
    let alice = app.login("alice", "alice-password-1").await;
    let org = app.add_org(&admin, TENANT, APP_ID).await;
    let first = app.explore(&admin, &org).await;
    let second = app.explore(&admin, &org).await;
    assert_eq!(device_code(&app, &admin, &first).await.0, 200);
    assert_eq!(device_code(&app, &admin, &first).await.0, 200);
    let (status, retry, body) = device_code(&app, &admin, &second).await;
    assert_eq!(status, 429, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("2 sign-ins pending") && message.contains("stop restore sessions"), "{message}");
    assert!(retry.is_some_and(|r| (1..=900).contains(&r)), "until the first code expires: {retry:?}");
    let hers = app.explore(&alice, &org).await;
    assert_eq!(device_code(&app, &alice, &hers).await.0, 200, "the cap is per user");
    // Stopping the session ends its pending sign-ins.
    let r = app.post_json(&admin, &format!("/v5/RestoreSessions/{first}/Action"), json!({"stop": null})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(device_code(&app, &admin, &second).await.0, 200);
    drop(tmp);
}

/// A TLS connection to the server that speaks HTTP by hand (for requests that stall).
fn raw_tls(app: &TestApp) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
    let cert = restoregate::tls::read_certs(&app.data_dir.join("tls-cert.pem")).unwrap();
    let config = Arc::new(restoregate::tls::client_config(&cert).unwrap());
    let tcp = std::net::TcpStream::connect(app.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(config, "127.0.0.1".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Reads until the server closes the connection (or the 10 s read timeout, an error).
fn read_all(stream: &mut impl std::io::Read) -> std::io::Result<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A close without TLS close_notify still ends the answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof || e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn a_stalled_body_gets_a_json_408_and_stalled_headers_lose_the_connection() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let mut s = settings(tmp.path());
    s.body_read_timeout_seconds = 1;
    s.header_read_timeout_seconds = 1;
    let app = spawn_with(s).await;

    let mut stream = raw_tls(&app);
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        stream
            .write_all(b"POST /v5/Token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ngrant_type=")
            .unwrap();
        stream.flush().unwrap();
        read_all(&mut stream)
    })
    .await
    .unwrap()
    .expect("the server answers and closes within its deadline");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""errorCode":"Timeout""#) && answer.contains("did not arrive within 1 s"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Headers that never end: the connection is dropped at the header deadline.
    let mut stream = raw_tls(&app);
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").unwrap();
        stream.flush().unwrap();
        read_all(&mut stream)
    })
    .await
    .unwrap()
    .expect("the server closes the connection within its deadline");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(tmp);
}
