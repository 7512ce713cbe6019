//! Starts the real server on a free loopback port with a temporary data directory, and talks to
//! it over HTTPS, trusting only its generated certificate.

use restoregate::app::Application;
use restoregate::config::Settings;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const ADMIN_PASSWORD: &str = "admin-test-password";
pub const SANDBOX_PASSWORD: &str = "sandbox-test-password";
pub const APP_ID: &str = "11111111-2222-3333-4444-555555555555";
pub const TENANT: &str = "abc.onmicrosoft.com";

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: PathBuf,
    /// The store the server uses (SQLite in the data directory, or its PostgreSQL database).
    pub database_url: String,
    handle: axum_server::Handle<SocketAddr>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _tmp: Option<tempfile::TempDir>,
}

pub fn settings(data_dir: &Path) -> Settings {
    let mut s = Settings::defaults();
    s.listen = "127.0.0.1:0".parse().unwrap();
    s.data_dir = data_dir.to_path_buf();
    s.admin_password = Some(ADMIN_PASSWORD.into());
    s.sandbox_password = Some(SANDBOX_PASSWORD.into());
    s.sandbox_poll_interval_seconds = 1;
    s
}

pub async fn spawn_app() -> TestApp {
    let tmp = tempfile::tempdir().unwrap();
    let s = settings(tmp.path());
    let mut app = spawn_with(s).await;
    app._tmp = Some(tmp);
    app
}

pub async fn spawn_with(settings: Settings) -> TestApp {
    spawn_with_clock(settings, std::sync::Arc::new(restoregate::clock::SystemClock)).await
}

/// A server whose time is `clock` (a `ManualClock` to drive expiry without waiting).
pub async fn spawn_with_clock(mut settings: Settings, clock: restoregate::clock::SharedClock) -> TestApp {
    let data_dir = settings.data_dir.clone();
    if settings.database_url.is_none() {
        settings.database_url = postgres_database_for(&data_dir).await;
    }
    let database_url = restoregate::app::database_url(&settings);
    let app = Application::build_with_clock(settings, clock).await.expect("the server starts");
    let addr = app.local_addr();
    let handle = app.handle();
    let task = tokio::spawn(app.run_until_stopped());
    let client = client_builder(&data_dir).build().unwrap();
    TestApp { addr, base: format!("https://127.0.0.1:{}", addr.port()), client, data_dir, database_url, handle, task: Some(task), _tmp: None }
}

/// A client that trusts only the server's generated certificate in `data_dir`.
pub fn client_builder(data_dir: &Path) -> reqwest::ClientBuilder {
    let cert = restoregate::tls::read_certs(&data_dir.join("tls-cert.pem")).unwrap();
    reqwest::Client::builder()
        .tls_backend_preconfigured(restoregate::tls::client_config(&cert).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
}

/// With `RESTOREGATE_TEST_POSTGRES` set (an administrator's URL, e.g.
/// `postgres://postgres@127.0.0.1:5432/postgres`), every test server stores its data in its own
/// PostgreSQL database, named after its data directory so that a restart finds it again: the
/// whole suite is then the conformance suite of the PostgreSQL store. Unset: SQLite.
pub async fn postgres_database_for(data_dir: &Path) -> Option<String> {
    use sqlx::{Connection, Executor};
    let admin = std::env::var("RESTOREGATE_TEST_POSTGRES").ok().filter(|u| !u.is_empty())?;
    let name = format!("rg_test_{}", &restoregate::crypto::sha256_hex(&data_dir.to_string_lossy())[..16]);
    let mut conn = sqlx::PgConnection::connect(&admin).await.expect("RESTOREGATE_TEST_POSTGRES is reachable");
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1").bind(&name).fetch_optional(&mut conn).await.unwrap();
    if exists.is_none() {
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
    }
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Stops the server and waits until it has, keeping the data directory.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task).await.expect("the server stops").unwrap().unwrap();
        }
        self._tmp.take()
    }

    /// A client whose connections come from `ip` (any 127.0.0.0/8 address works on Linux
    /// loopback): another client address as the server sees it.
    pub fn client_from(&self, ip: &str) -> reqwest::Client {
        client_builder(&self.data_dir).local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
    }

    /// Adds an account through the library, as `restoregate user add` does.
    pub async fn add_user(&self, name: &str, password: &str, admin: bool) {
        let store = restoregate::store::Store::open(&self.database_url).await.unwrap();
        restoregate::users::add(&store, name, password, admin).await.unwrap();
        store.close().await;
    }

    /// An access token for `name`.
    pub async fn login(&self, name: &str, password: &str) -> String {
        let r = self
            .client
            .post(self.url("/v5/Token"))
            .form(&[("grant_type", "password"), ("username", name), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "login of {name}");
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
    }

    pub async fn token(&self) -> String {
        let r = self
            .client
            .post(self.url("/v5/Token"))
            .form(&[("grant_type", "password"), ("username", "admin"), ("password", ADMIN_PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string()
    }

    pub async fn post_json(&self, token: &str, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(token).json(&body).send().await.unwrap()
    }

    pub async fn post_raw(&self, token: &str, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    pub async fn get_json(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn add_org(&self, token: &str, tenant: &str, app_id: &str) -> String {
        let r = self
            .post_json(
                token,
                "/v5/Organizations",
                json!({"type": "Office365", "region": "Worldwide", "exchangeOnlineSettings": {
                    "useApplicationOnlyAuth": true, "officeOrganizationName": tenant, "applicationId": app_id,
                    "applicationCertificate": "MIIKcAIBAzCCCiwGCSqGSIb3DQEHAaCCCh0Eggo=", "applicationCertificatePassword": "pfx-secret-42"}}),
            )
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    pub async fn explore(&self, token: &str, org_id: &str) -> String {
        let r = self
            .post_json(token, &format!("/v5/Organizations/{org_id}/Action"), json!({"explore": {"datetime": "2021.03.15 14:30", "type": "vex"}}))
            .await;
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
    }

    /// An organization, a session on it, and a device code: (session id, answer).
    pub async fn device_code(&self, token: &str) -> (String, Value) {
        let org = self.add_org(token, TENANT, APP_ID).await;
        let session = self.explore(token, &org).await;
        let r = self
            .post_json(token, &format!("/v5/RestoreSessions/{session}/organization/restoreDeviceCode"), json!({}))
            .await;
        assert_eq!(r.status(), 200);
        (session, r.json().await.unwrap())
    }

    pub async fn events(&self, token: &str, session: &str) -> Vec<Value> {
        let (status, body) = self.get_json(token, &format!("/v5/RestoreSessions/{session}/Events")).await;
        assert_eq!(status, 200);
        body["results"].as_array().unwrap().clone()
    }

    /// Polls the session's events until one titled `title` appears, within `deadline`.
    pub async fn wait_for_event(&self, token: &str, session: &str, title: &str, deadline: Duration) -> Value {
        let start = Instant::now();
        loop {
            if let Some(e) = self.events(token, session).await.into_iter().find(|e| e["title"] == title) {
                return e;
            }
            assert!(start.elapsed() < deadline, "no event '{title}' within {deadline:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A person at the verification page: a browser session with its cookie.
pub struct Browser<'a> {
    pub app: &'a TestApp,
    pub cookie: String,
    pub csrf: String,
}

pub fn extract(html: &str, before: &str) -> Option<String> {
    let start = html.find(before)? + before.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_string())
}

impl<'a> Browser<'a> {
    pub async fn open(app: &'a TestApp, page: &str) -> Browser<'a> {
        let r = app.client.get(page).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let cookie = r
            .headers()
            .get("set-cookie")
            .expect("the page sets its CSRF cookie")
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = r.text().await.unwrap();
        let csrf = extract(&html, r#"name="csrf" value=""#).expect("a CSRF field");
        Browser { app, cookie, csrf }
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        let r = self.app.client.post(self.app.url(path)).header("cookie", &self.cookie).form(&all).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Enters the code, signs in and approves (or denies).
    pub async fn sign_in(&self, user_code: &str, password: &str, decision: &str) -> (u16, String) {
        let (status, html) = self.post("/sandbox/device", &[("code", user_code)]).await;
        assert_eq!(status, 200, "{html}");
        let code = extract(&html, r#"name="code" value=""#).unwrap();
        let user = format!("admin@{TENANT}");
        self.post("/sandbox/device/confirm", &[("code", &code), ("username", &user), ("password", password), ("decision", decision)])
            .await
    }
}
