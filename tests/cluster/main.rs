//! Whole processes: three instances on one PostgreSQL follow 300 pending sign-ins while one is
//! killed with SIGKILL; and a crash test per store.

mod crash;
mod operations;

use serde_json::{json, Value};
use sqlx::{Connection, Executor};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SIGN_INS: usize = 300;
const INTERVAL_MS: i64 = 1_000;
const TENANT: &str = "abc.onmicrosoft.com";
const APP_ID: &str = "11111111-2222-3333-4444-555555555555";

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[derive(Default)]
struct Authority {
    issued: u64,
    approve_at: Option<i64>,
    polls: HashMap<String, Vec<i64>>,
    redeemed: HashMap<String, u32>,
}

/// A loopback stand-in for Microsoft's authority: discovery, device codes with a 1 s interval,
/// and a token endpoint that says pending until the approval time, then hands out tokens once.
async fn authority() -> (String, Arc<Mutex<Authority>>) {
    use axum::extract::Path;
    use axum::routing::{get, post};
    let state: Arc<Mutex<Authority>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (b, s1, s2) = (base.clone(), state.clone(), state.clone());
    let router = axum::Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(move |Path(tenant): Path<String>| {
                let b = b.clone();
                async move {
                    axum::Json(json!({
                        "issuer": format!("{b}/{tenant}/v2.0"),
                        "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
                        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
                    }))
                }
            }),
        )
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(move || {
                let s = s1.clone();
                async move {
                    let n = {
                        let mut s = s.lock().unwrap();
                        s.issued += 1;
                        s.issued
                    };
                    axum::Json(json!({
                        "device_code": format!("dc-{n}"), "user_code": format!("UC{n:05}"),
                        "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 300, "interval": 1,
                    }))
                }
            }),
        )
        .route(
            "/{tenant}/oauth2/v2.0/token",
            post(move |body: String| {
                let s = s2.clone();
                async move {
                    let code: String = url::form_urlencoded::parse(body.as_bytes())
                        .find(|(k, _)| k == "device_code")
                        .map(|(_, v)| v.into_owned())
                        .unwrap_or_default();
                    let now = now_ms();
                    let mut s = s.lock().unwrap();
                    s.polls.entry(code.clone()).or_default().push(now);
                    let approved = s.approve_at.is_some_and(|t| now >= t);
                    if !approved {
                        return (axum::http::StatusCode::BAD_REQUEST, r#"{"error":"authorization_pending","error_codes":[70016]}"#);
                    }
                    let redeemed = s.redeemed.entry(code).or_default();
                    *redeemed += 1;
                    if *redeemed == 1 {
                        (axum::http::StatusCode::OK, r#"{"token_type":"Bearer","access_token":"a.eyJ1cG4iOiJhZG1pbkBhYmMub25taWNyb3NvZnQuY29tIn0.s","refresh_token":"r","expires_in":3599}"#)
                    } else {
                        (axum::http::StatusCode::BAD_REQUEST, r#"{"error":"invalid_grant","error_description":"AADSTS54005: already redeemed","error_codes":[54005]}"#)
                    }
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, state)
}

pub struct Instance {
    pub child: Child,
    pub base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_instance(data_dir: &std::path::Path, database_url: &str, authority: &str) -> Instance {
    start(data_dir, &[
        ("RESTOREGATE_DATABASE_URL", database_url),
        ("RESTOREGATE_SANDBOX", "false"),
        ("RESTOREGATE_REGIONS__WORLDWIDE__AUTHORITY", authority),
        ("RESTOREGATE_FOLLOWER_LEASE_SECONDS", "2"),
        // One operator starts all 300 sign-ins: the per-user limits would refuse most of them.
        ("RESTOREGATE_DEVICE_CODES_PER_USER_PER_MINUTE", "0"),
        ("RESTOREGATE_PENDING_SIGN_INS_PER_USER", "0"),
    ])
}

/// Starts the server binary on a free loopback port.
pub fn start(data_dir: &std::path::Path, env: &[(&str, &str)]) -> Instance {
    let mut command = Command::new(env!("CARGO_BIN_EXE_restoregate"));
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("RESTOREGATE_ADMIN_PASSWORD", "cluster-admin")
        .env("RESTOREGATE_LOG", "warn");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // The first line says where it listens; the rest is drained so that the server never writes
    // into a closed pipe.
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = line.split_whitespace().nth(3).unwrap_or_else(|| panic!("unexpected first line: {line}"));
    Instance { child, base: format!("https://{addr}") }
}

/// A fresh PostgreSQL database: (administrator connection, its name, its URL).
pub async fn new_database() -> (sqlx::PgConnection, String, String) {
    let admin = std::env::var("RESTOREGATE_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("rg_cluster_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("PostgreSQL on 127.0.0.1:5432 (or RESTOREGATE_TEST_POSTGRES)");
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    let mut db_url = url::Url::parse(&admin).unwrap();
    db_url.set_path(&format!("/{name}"));
    (conn, name, db_url.to_string())
}

pub fn client_for(data_dir: &std::path::Path) -> reqwest::Client {
    let cert = restoregate::tls::read_certs(&data_dir.join("tls-cert.pem")).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(restoregate::tls::client_config(&cert).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(format!("{base}/health")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "{base} did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The admin's access token from `/v5/Token`.
pub async fn admin_token(client: &reqwest::Client, base: &str, password: &str) -> String {
    let r = client
        .post(format!("{base}/v5/Token"))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", password)])
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
}

/// Adds the organization abc.onmicrosoft.com; its id.
pub async fn add_org(client: &reqwest::Client, base: &str, token: &str) -> String {
    let r = client
        .post(format!("{base}/v5/Organizations"))
        .bearer_auth(token)
        .json(&json!({"exchangeOnlineSettings": {"useApplicationOnlyAuth": true, "officeOrganizationName": TENANT, "applicationId": APP_ID}}))
        .send()
        .await
        .unwrap();
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_every_sign_in_completes_once() {
    restoregate::tls::install_crypto_provider();
    let (mut conn, name, db_url) = new_database().await;

    let (authority_url, authority) = authority().await;
    // One data directory: the instances share the sealing key and the TLS certificate.
    let dir = tempfile::tempdir().unwrap();
    let first = start_instance(dir.path(), &db_url, &authority_url);
    let client = client_for(dir.path());
    wait_healthy(&client, &first.base).await;
    let mut instances = vec![first, start_instance(dir.path(), &db_url, &authority_url), start_instance(dir.path(), &db_url, &authority_url)];
    for i in &instances[1..] {
        wait_healthy(&client, &i.base).await;
    }

    // Any instance answers any request: a token from one works on the others.
    let token = admin_token(&client, &instances[1].base, "cluster-admin").await;
    let org = add_org(&client, &instances[2].base, &token).await;
    for i in 0..SIGN_INS {
        let base = &instances[i % 3].base;
        let session: Value = client
            .post(format!("{base}/v5/Organizations/{org}/Action"))
            .bearer_auth(&token)
            .json(&json!({"explore": {"type": "vex"}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r = client
            .post(format!("{base}/v5/RestoreSessions/{}/organization/restoreDeviceCode", session["id"].as_str().unwrap()))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }

    // Mid-way: one instance dies without a chance to hand anything over; the sign-ins are approved
    // shortly after, so that its 100 are completed by the others once its leases lapse.
    let victim = instances.remove(0);
    let pid = victim.child.id();
    Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap();
    drop(victim);
    authority.lock().unwrap().approve_at = Some(now_ms() + 1_500);

    let mut db = sqlx::PgConnection::connect(&db_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (done,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM device_authorizations WHERE state = 'signed_in'").fetch_one(&mut db).await.unwrap();
        if done as usize == SIGN_INS {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of {SIGN_INS} sign-ins completed within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM session_events WHERE title = 'Sign-in'").fetch_one(&mut db).await.unwrap();
    assert_eq!(events as usize, SIGN_INS, "one Sign-in event per session");
    let (doubles,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT session_id FROM session_events WHERE title = 'Sign-in' GROUP BY session_id HAVING COUNT(*) > 1) d",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(doubles, 0);
    let a = authority.lock().unwrap();
    assert_eq!(a.redeemed.len(), SIGN_INS, "every code was redeemed");
    assert!(a.redeemed.values().all(|n| *n == 1), "a code was redeemed twice");
    for (code, times) in &a.polls {
        for pair in times.windows(2) {
            assert!(pair[1] - pair[0] >= INTERVAL_MS, "{code} polled {} ms after its previous poll", pair[1] - pair[0]);
        }
    }
    drop(a);
    drop(instances);
    drop(db);
    let _ = conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str()).await;
}
