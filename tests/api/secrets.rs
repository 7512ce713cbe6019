//! Secrets at rest and in logs: the real binary, logging at debug level, follows a sign-in at a
//! loopback authority that hands out known secrets; then the database (SQLite file with its -wal
//! and -shm, or every row of the PostgreSQL database) and everything the process printed are
//! searched for each secret in clear.

use crate::helpers::*;
use base64::Engine;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEVICE_CODE: &str = "DC_secret_device_code_5f1e9b7c2a0d";
const REFRESH_TOKEN: &str = "RT_secret_refresh_token_41ab77e0";
const SIGNATURE: &str = "AT_secret_signature_8c3d19f2";
const CERTIFICATE: &str = "MIIKcAIBAzCCCiwGCSqGSIb3DQEHAaCCCh0Eggo=";
const CERTIFICATE_PASSWORD: &str = "pfx-secret-42";

fn access_token() -> String {
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"upn":"admin@abc.onmicrosoft.com"}"#);
    format!("eyJhbGciOiJub25lIn0.{claims}.{SIGNATURE}")
}

/// An authority that issues DEVICE_CODE and, once `approved`, redeems it (and only it) for the
/// known access and refresh tokens.
async fn authority(approved: Arc<AtomicBool>) -> String {
    use axum::extract::Path;
    use axum::routing::{get, post};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let b = base.clone();
    let router = axum::Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(move |Path(t): Path<String>| {
                let b = b.clone();
                async move { axum::Json(json!({"device_authorization_endpoint": format!("{b}/{t}/devicecode"), "token_endpoint": format!("{b}/{t}/token")})) }
            }),
        )
        .route(
            "/{tenant}/devicecode",
            post(|| async {
                axum::Json(json!({"device_code": DEVICE_CODE, "user_code": "QWRT-ZXCV", "verification_uri": "https://microsoft.com/devicelogin", "expires_in": 900, "interval": 1}))
            }),
        )
        .route(
            "/{tenant}/token",
            post(move |body: String| {
                let approved = approved.clone();
                async move {
                    let code = url::form_urlencoded::parse(body.as_bytes()).find(|(k, _)| k == "device_code").map(|(_, v)| v.into_owned());
                    if code.as_deref() != Some(DEVICE_CODE) {
                        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_grant", "error_description": "unknown device code"})));
                    }
                    if !approved.load(Ordering::SeqCst) {
                        return (axum::http::StatusCode::BAD_REQUEST, axum::Json(json!({"error": "authorization_pending"})));
                    }
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"token_type": "Bearer", "access_token": access_token(), "refresh_token": REFRESH_TOKEN, "expires_in": 3599})),
                    )
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What the store holds, as bytes: the SQLite files, or every row of the PostgreSQL database.
async fn database_contents(data_dir: &std::path::Path, postgres: Option<&str>) -> Vec<(String, Vec<u8>)> {
    match postgres {
        None => ["restoregate.db", "restoregate.db-wal", "restoregate.db-shm"]
            .iter()
            .filter_map(|name| std::fs::read(data_dir.join(name)).ok().map(|b| (name.to_string(), b)))
            .collect(),
        Some(url) => {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
            let tables: Vec<(String,)> = sqlx::query_as("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'")
                .fetch_all(&mut conn)
                .await
                .unwrap();
            let mut out = Vec::new();
            for (table,) in tables {
                let (rows,): (String,) = sqlx::query_as(&format!(r#"SELECT COALESCE(string_agg(row_to_json(t)::text, E'\n'), '') FROM "{table}" t"#))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                out.push((format!("table {table}"), rows.into_bytes()));
            }
            out
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_is_in_the_database_or_the_logs_in_clear() {
    restoregate::tls::install_crypto_provider();
    let approved = Arc::new(AtomicBool::new(false));
    let authority = authority(approved.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let postgres = postgres_database_for(dir.path()).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_restoregate"));
    command
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("RESTOREGATE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RESTOREGATE_SANDBOX", "false")
        .env("RESTOREGATE_REGIONS__WORLDWIDE__AUTHORITY", &authority)
        .env("RESTOREGATE_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(url) = &postgres {
        command.env("RESTOREGATE_DATABASE_URL", url);
    }
    let mut child = command.spawn().unwrap();
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    log.lock().unwrap().push(first.clone());
    let base = format!("https://{}", first.split_whitespace().nth(3).expect("the listening line"));
    for stream in [Box::new(out) as Box<dyn BufRead + Send>, Box::new(BufReader::new(child.stderr.take().unwrap()))] {
        let l = log.clone();
        std::thread::spawn(move || {
            for line in stream.lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
    }
    let client = client_builder(dir.path()).build().unwrap();

    let tokens: Value = client
        .post(format!("{base}/v5/Token"))
        .form(&[("grant_type", "password"), ("username", "admin"), ("password", ADMIN_PASSWORD)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tokens["access_token"].as_str().unwrap().to_string();
    let api_refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let post = |path: String, body: Value| {
        let (client, token) = (client.clone(), token.clone());
        async move { client.post(path).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    let r = post(
        format!("{base}/v5/Organizations"),
        json!({"type": "Office365", "region": "Worldwide", "exchangeOnlineSettings": {
            "useApplicationOnlyAuth": true, "officeOrganizationName": TENANT, "applicationId": APP_ID,
            "applicationCertificate": CERTIFICATE, "applicationCertificatePassword": CERTIFICATE_PASSWORD}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let org = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = post(format!("{base}/v5/Organizations/{org}/Action"), json!({"explore": {}})).await;
    let session = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let r = post(format!("{base}/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), json!({})).await;
    assert_eq!(r.status(), 200);
    let answer = r.text().await.unwrap();
    assert!(!answer.contains(DEVICE_CODE), "the device code is handed out: {answer}");

    // Approve, and wait for the server to redeem the code.
    approved.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events: Value = client.get(format!("{base}/v5/RestoreSessions/{session}/Events")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        let signed_in = events["results"].as_array().unwrap().iter().find(|e| e["title"] == "Sign-in");
        if let Some(e) = signed_in {
            assert_eq!(e["message"], "Signed in as admin@abc.onmicrosoft.com", "{e}");
            break;
        }
        assert!(Instant::now() < deadline, "no sign-in within 30 s: {events}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = post(format!("{base}/v5/DeviceCode/check"), json!({"userCode": "QWRT-ZXCV"})).await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"authenticated": true}));

    let certificate_bytes = base64::engine::general_purpose::STANDARD.decode(CERTIFICATE).unwrap();
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("device code", DEVICE_CODE.into()),
        ("access token", access_token().into_bytes()),
        ("access token signature", SIGNATURE.into()),
        ("refresh token", REFRESH_TOKEN.into()),
        ("certificate password", CERTIFICATE_PASSWORD.into()),
        ("certificate (base64)", CERTIFICATE.into()),
        ("certificate (bytes)", certificate_bytes),
        ("API access token", token.clone().into_bytes()),
        ("API refresh token", api_refresh.into_bytes()),
    ];
    let scan = |what: &str, contents: &[(String, Vec<u8>)]| {
        assert!(!contents.is_empty(), "nothing to scan in {what}");
        for (name, bytes) in contents {
            for (secret, value) in &secrets {
                assert!(!contains(bytes, value), "{what}: {name} holds the {secret} in clear");
            }
        }
    };
    // While the server runs (the SQLite -wal and -shm files exist), and after it has stopped.
    scan("while running", &database_contents(dir.path(), postgres.as_deref()).await);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the server did not stop after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    scan("after stopping", &database_contents(dir.path(), postgres.as_deref()).await);

    // Give the reader threads a moment to drain the pipes: they end at the process's exit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log.lock().unwrap().iter().any(|l| l.contains("shutting down")) {
        assert!(Instant::now() < deadline, "the log misses the shutdown line");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = log.lock().unwrap().join("\n");
    assert!(log.contains("DEBUG"), "the log is at debug level");
    assert!(log.contains("/v5/restoresessions/") || log.contains("/v5/RestoreSessions/"), "the log covers the requests");
    let mut with_password = secrets.clone();
    with_password.push(("admin password", ADMIN_PASSWORD.into()));
    for (secret, value) in &with_password {
        assert!(!contains(log.as_bytes(), value), "the log holds the {secret} in clear");
    }
}
