//! What an operator sees: a request id on every log line, Prometheus metrics, graceful shutdown
//! that finishes in-flight requests and leaves pending sign-ins to resume.

use crate::{add_org, client_for, wait_healthy};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// An authority whose device authorization endpoint answers after `delay`, flagging when a
/// request has arrived.
async fn slow_authority(delay: Duration) -> (String, Arc<AtomicBool>) {
    use axum::extract::Path;
    use axum::routing::{get, post};
    let arrived = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (b, a) = (base.clone(), arrived.clone());
    let router = axum::Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(move |Path(t): Path<String>| {
                let b = b.clone();
                async move {
                    axum::Json(json!({"device_authorization_endpoint": format!("{b}/{t}/devicecode"), "token_endpoint": format!("{b}/{t}/token")}))
                }
            }),
        )
        .route(
            "/{tenant}/devicecode",
            post(move || {
                let a = a.clone();
                async move {
                    a.store(true, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    axum::Json(json!({"device_code": "dc", "user_code": "UC1", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 5}))
                }
            }),
        )
        .route("/{tenant}/token", post(|| async { (axum::http::StatusCode::BAD_REQUEST, r#"{"error":"authorization_pending"}"#) }));
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (base, arrived)
}

/// Waits (20 s at most) for a server sent SIGTERM to exit; its exit status.
async fn exited_after_sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the server did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the server binary on a free port with `env` (and RESTOREGATE_LOG=info), collecting its
/// stderr lines as they come: the child, its base URL and the lines so far.
fn start_logged(data_dir: &std::path::Path, env: &[(&str, &str)]) -> (std::process::Child, String, Arc<Mutex<Vec<String>>>) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_restoregate"));
    command.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(data_dir).env("RESTOREGATE_LOG", "info");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = format!("https://{}", line.split_whitespace().nth(3).unwrap());
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let (l, err) = (log.clone(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (child, base, log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_request_ids_metrics_are_exported_and_shutdown_is_graceful() {
    restoregate::tls::install_crypto_provider();
    let (authority, arrived) = slow_authority(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, base, log) = start_logged(
        dir.path(),
        &[
            ("RESTOREGATE_ADMIN_PASSWORD", "ops-admin"),
            ("RESTOREGATE_SANDBOX", "false"),
            ("RESTOREGATE_REGIONS__WORLDWIDE__AUTHORITY", &authority),
            ("NO_COLOR", "1"),
        ],
    );
    let client = client_for(dir.path());
    wait_healthy(&client, &base).await;

    // A request id given by the caller is echoed and appears on the request's log lines.
    let r = client
        .post(format!("{base}/v5/Token"))
        .header("x-request-id", "trace-me-42")
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", "ops-admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
    let token = r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    let r = client.get(format!("{base}/v5/RestoreSessions")).bearer_auth(&token).send().await.unwrap();
    assert!(!r.headers()["x-request-id"].is_empty(), "a generated request id");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.lock().unwrap().iter().any(|l| l.contains("request_id=trace-me-42")) {
        assert!(Instant::now() < deadline, "no log line with the request id: {:?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!log.lock().unwrap().iter().any(|l| l.contains("ops-admin") || l.contains(&token)), "a secret in the log");

    let org = add_org(&client, &base, &token).await;
    let session: Value = client
        .post(format!("{base}/v5/Organizations/{org}/Action"))
        .bearer_auth(&token)
        .json(&json!({"explore": {}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // SIGTERM while a restoreDeviceCode is waiting for the (slow) authority: it still completes.
    let url = format!("{base}/v5/RestoreSessions/{}/organization/restoreDeviceCode", session["id"].as_str().unwrap());
    let in_flight = tokio::spawn({
        let (client, token) = (client.clone(), token.clone());
        async move { client.post(url).bearer_auth(&token).json(&json!({})).send().await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !arrived.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the authority never saw the request");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics_token = std::fs::read_to_string(dir.path().join("metrics-token")).unwrap();
    let metrics = client.get(format!("{base}/metrics")).bearer_auth(metrics_token.trim()).send().await.unwrap().text().await.unwrap();
    for name in [
        r#"restoregate_http_requests_total{route="/v5/token",method="POST",status="200"}"#,
        "restoregate_http_request_duration_seconds_bucket",
        "restoregate_upstream_request_duration_seconds_bucket{operation=\"discovery\"",
        "restoregate_pending_sign_ins",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics:\n{metrics}");
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let answer = in_flight.await.unwrap().expect("the in-flight request is answered");
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    let status = exited_after_sigterm(&mut child).await;
    assert!(status.success(), "exit status {status:?}");

    // The pending sign-in is left to resume: still pending, its lease released.
    use sqlx::Connection;
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", dir.path().join("restoregate.db").display())).await.unwrap();
    let (state, owner): (String, Option<String>) =
        sqlx::query_as("SELECT state, lease_owner FROM device_authorizations").fetch_one(&mut db).await.unwrap();
    assert_eq!(state, "pending");
    assert_eq!(owner, None);
}

/// With RESTOREGATE_LOG_FORMAT=json every log line is one JSON object, and a request's lines carry
/// its id; a format it does not know stops the server at once with a message that names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_a_line_with_the_request_id() {
    restoregate::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_restoregate"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RESTOREGATE_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("RESTOREGATE_LOG_FORMAT must be text or json"));

    let (mut child, base, log) =
        start_logged(dir.path(), &[("RESTOREGATE_ADMIN_PASSWORD", "json-admin"), ("RESTOREGATE_LOG_FORMAT", "json")]);
    let client = client_for(dir.path());
    wait_healthy(&client, &base).await;
    let r = client
        .post(format!("{base}/v5/Token"))
        .header("x-request-id", "json-42")
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", "json-admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let with_id = |lines: &[String]| {
        lines.iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).any(|v| v["span"]["request_id"] == "json-42")
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !with_id(&log.lock().unwrap()) {
        assert!(Instant::now() < deadline, "no JSON log line with the request id: {:?}", log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    exited_after_sigterm(&mut child).await;
    let lines = log.lock().unwrap().clone();
    assert!(lines.len() >= 3, "start, request and stop are logged: {lines:?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
    }
    assert!(!lines.iter().any(|l| l.contains("json-admin")), "a secret in the log");
}

/// A server whose stdout is closed (started as `restoregate | head -1`, say) loses its start-up
/// lines, not its life: it serves, and SIGTERM stops it cleanly, without a panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_neither_panics_nor_stops_the_server() {
    restoregate::tls::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_restoregate"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("RESTOREGATE_ADMIN_PASSWORD", "closed-admin")
        .env("RESTOREGATE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.path().join("tls-cert.pem").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the server exited: {}", stderr.join().unwrap());
        assert!(Instant::now() < deadline, "no certificate generated");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_healthy(&client_for(dir.path()), &format!("https://127.0.0.1:{port}")).await;
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = exited_after_sigterm(&mut child).await;
    let stderr = stderr.join().unwrap();
    assert!(status.success(), "exit status {status:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
