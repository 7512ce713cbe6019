//! Builds the application (store, clients, follower, sandbox, router), binds, serves, shuts down.

use crate::api::{self, AppState, Authorities, Hooks};
use crate::clock::{SharedClock, SystemClock};
use crate::config::Settings;
use crate::crypto::{generate_password, hash_password, write_private_file, Sealer};
use crate::domain::organization::TenantName;
use crate::domain::region::Region;
use crate::domain::session::EventStatus;
use crate::identity::IdentityClient;
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::signin::Follower;
use crate::store::{NewEvent, Store, User};
use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::ServiceExt;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::request_id::{PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use url::Url;

/// Things a person starting the server must be told once.
#[derive(Debug, Default, Clone)]
pub struct StartNotes {
    pub admin_password_file: Option<PathBuf>,
    pub sandbox_password_file: Option<PathBuf>,
    pub metrics_token_file: Option<PathBuf>,
    pub generated_certificate: Option<PathBuf>,
}

pub struct Application {
    addr: SocketAddr,
    public_url: Url,
    server: axum_server::Server<SocketAddr, axum_server::tls_rustls::RustlsAcceptor>,
    router: axum::Router,
    handle: axum_server::Handle<SocketAddr>,
    shutdown: watch::Sender<bool>,
    background: Vec<tokio::task::JoinHandle<()>>,
    store: Store,
    pub notes: StartNotes,
    /// The sandbox provider, when on: its database is closed at shutdown.
    sandbox: Option<Arc<Sandbox>>,
}

/// Registers new organizations' tenants and applications with the sandbox provider, for the
/// regions whose authority is the sandbox.
struct SandboxHooks {
    sandbox: Arc<Sandbox>,
    regions: HashSet<Region>,
}

#[async_trait::async_trait]
impl Hooks for SandboxHooks {
    async fn organization_added(&self, region: Region, tenant: &TenantName, application_id: &uuid::Uuid) {
        if self.regions.contains(&region) {
            if let Err(e) = self.sandbox.register(tenant.as_str(), &application_id.to_string()).await {
                tracing::error!(error = %e, "cannot register the organization with the sandbox provider");
            }
        }
    }
}

/// The configured database, or SQLite in the data directory.
pub fn database_url(settings: &Settings) -> String {
    settings
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}", settings.data_dir.join("restoregate.db").display()))
}

fn default_public_url(addr: SocketAddr) -> Url {
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    Url::parse(&format!("https://{host}:{}", addr.port())).expect("valid URL")
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    pub async fn build_with_clock(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        crate::tls::install_crypto_provider();
        crate::metrics::handle();
        let data_dir = settings.data_dir.clone();
        std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let mut notes = StartNotes::default();

        let sealer = Sealer::load_or_create(&data_dir.join("sealing.key"))?;
        let cert_files = crate::tls::certificate_files(&data_dir, settings.tls_cert.as_deref(), settings.tls_key.as_deref())?;
        if cert_files.generated {
            notes.generated_certificate = Some(cert_files.cert.clone());
        }
        let server_tls = crate::tls::server_config(&cert_files)?;

        let listener = std::net::TcpListener::bind(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let public_url = settings.public_url.clone().unwrap_or_else(|| default_public_url(addr));

        let database_url = database_url(&settings);
        if settings.database_url.is_none() {
            crate::crypto::create_private_file_if_missing(&data_dir.join("restoregate.db"))?;
        }
        let store = Store::open(&database_url).await.context("cannot open the database")?;
        notes.admin_password_file = bootstrap_admin(&store, &settings, clock.as_ref()).await?;

        // Outbound trust: public roots, the operator's extra roots, and our own certificate.
        let mut extra_roots = Vec::new();
        if let Some(ca) = &settings.authority_ca_file {
            extra_roots.extend(crate::tls::read_certs(ca)?);
        }
        if settings.sandbox {
            extra_roots.extend(crate::tls::read_certs(&cert_files.cert)?);
        }
        let identity = Arc::new(IdentityClient::new(
            crate::tls::client_config(&extra_roots)?,
            Duration::from_millis(settings.outbound_timeout_ms),
            clock.clone(),
        )?);

        let sandbox_base = public_url.join("sandbox").expect("valid URL");
        let mut by_region = BTreeMap::new();
        let mut sandbox_regions = HashSet::new();
        for region in Region::ALL {
            let configured = settings.regions.get(&region).cloned().unwrap_or_default();
            let authority = match configured.authority {
                Some(a) => a,
                None if settings.sandbox => {
                    sandbox_regions.insert(region);
                    sandbox_base.clone()
                }
                None => Url::parse(region.default_authority()).expect("valid URL"),
            };
            let graph = configured.graph.unwrap_or_else(|| Url::parse(region.default_graph()).expect("valid URL"));
            by_region.insert(region, (authority, graph));
        }

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut background = Vec::new();
        let (follower, follower_task) = Follower::start(
            store.clone(),
            identity.clone(),
            sealer.clone(),
            clock.clone(),
            crate::signin::FollowerOptions {
                polls_per_second_per_authority: settings.authority_polls_per_second,
                lease_ms: (settings.follower_lease_seconds as i64) * 1000,
            },
            shutdown_rx.clone(),
        );
        background.push(follower_task);

        let mut router = axum::Router::new();
        let mut sandbox_provider = None;
        let hooks: Arc<dyn Hooks> = if settings.sandbox {
            let (password, file) = given_or_generated(&settings, &settings.sandbox_password, "sandbox-password")?;
            notes.sandbox_password_file = file;
            let sandbox = Sandbox::open(
                &data_dir,
                SandboxOptions {
                    base: sandbox_base.clone(),
                    interval_seconds: settings.sandbox_poll_interval_seconds,
                    code_lifetime_seconds: settings.sandbox_code_lifetime_seconds,
                    default_password: password,
                    wrong_codes_per_address: settings.sandbox_wrong_codes_per_address,
                },
                clock.clone(),
            )
            .await?;
            router = router.merge(sandbox.router());
            sandbox_provider = Some(sandbox.clone());
            Arc::new(SandboxHooks { sandbox, regions: sandbox_regions })
        } else {
            Arc::new(api::NoHooks)
        };

        let dummy_hash = tokio::task::spawn_blocking(|| hash_password(&generate_password())).await??;
        let (metrics_token, file) = given_or_generated(&settings, &settings.metrics_token, "metrics-token")?;
        notes.metrics_token_file = file;
        let state = Arc::new(AppState {
            store: store.clone(),
            sealer,
            clock: clock.clone(),
            identity,
            follower,
            authorities: Authorities { by_region },
            hooks,
            dummy_hash,
            metrics_token_hash: crate::crypto::sha256_hex(&metrics_token),
            login: api::throttle::LoginGuard::new(
                &api::throttle::LoginLimits {
                    failures_per_address: settings.login_failures_per_address,
                    failures_per_account: settings.login_failures_per_account,
                    window_ms: (settings.login_failure_window_seconds as i64) * 1000,
                    concurrent_hashes: settings.login_concurrent_hashes,
                },
                clock.clone(),
            ),
            device_codes: api::throttle::DeviceCodeGuard::new(
                settings.device_codes_per_user_per_minute,
                settings.pending_sign_ins_per_user,
                clock.clone(),
            ),
        });
        background.push(tokio::spawn(stop_idle_sessions(
            store.clone(),
            state.follower.clone(),
            clock.clone(),
            settings.session_idle_timeout_seconds,
            shutdown_rx.clone(),
        )));

        // Layers wrap what is above them, so the last listed runs first: a request gets its id,
        // then a span carrying that id (on every log line of the request), then a panic guard,
        // JSON for errors not the API's own, a deadline for the whole exchange, metrics by route,
        // and its body read (bounded) before any handler can refuse it.
        let router = router
            .merge(api::router(state))
            .merge(api::openapi::router())
            .fallback(api::not_found)
            .layer(DefaultBodyLimit::max(api::decode::MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(Duration::from_secs(settings.body_read_timeout_seconds), api::read_body_first))
            .layer(axum::middleware::from_fn(crate::metrics::track))
            .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::GATEWAY_TIMEOUT, Duration::from_secs(60)))
            .layer(axum::middleware::from_fn(api::error::json_errors))
            .layer(CatchPanicLayer::custom(|_| {
                axum::response::IntoResponse::into_response(api::error::ApiError::Internal(anyhow::anyhow!("a handler panicked")))
            }))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<axum::body::Body>| {
                let id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
            }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO)))
            .layer(SetRequestIdLayer::x_request_id(RandomRequestId));

        let handle = axum_server::Handle::new();
        let mut server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(server_tls)),
        )?
        .handle(handle.clone());
        server.http_builder().http1().header_read_timeout(Duration::from_secs(settings.header_read_timeout_seconds));

        Ok(Application {
            addr,
            public_url,
            server,
            router,
            handle,
            shutdown,
            background,
            store,
            notes,
            sandbox: sandbox_provider,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn public_url(&self) -> &Url {
        &self.public_url
    }

    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox.is_some()
    }

    pub fn handle(&self) -> axum_server::Handle<SocketAddr> {
        self.handle.clone()
    }

    /// Serves until the handle is told to shut down; then stops the background tasks, letting
    /// in-flight requests finish (up to 10 s).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let service = tower::util::MapRequestLayer::new(api::normalize_path).layer(self.router);
        let result = self
            .server
            .serve(ServiceExt::<axum::http::Request<hyper::body::Incoming>>::into_make_service_with_connect_info::<SocketAddr>(service))
            .await;
        let _ = self.shutdown.send(true);
        for task in self.background {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        self.store.close().await;
        // Before returning, so that its WAL is checkpointed and closed when the caller goes on
        // (the last handle's drop would close it later, on its own thread).
        if let Some(sandbox) = &self.sandbox {
            sandbox.close().await;
        }
        result.map_err(Into::into)
    }
}

/// Creates the `admin` account on first start. Its password is `RESTOREGATE_ADMIN_PASSWORD`, or
/// a generated one written to `admin-password` (0600) in the data directory.
async fn bootstrap_admin(store: &Store, settings: &Settings, clock: &dyn crate::clock::Clock) -> anyhow::Result<Option<PathBuf>> {
    if store.user_by_name("admin").await?.is_some() {
        return Ok(None);
    }
    let (password, file) = match &settings.admin_password {
        Some(p) => (p.clone(), None),
        None => {
            let p = generate_password();
            let path = settings.data_dir.join("admin-password");
            write_private_file(&path, format!("{p}\n").as_bytes())?;
            (p, Some(path))
        }
    };
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let admin = User { id: uuid::Uuid::new_v4().to_string(), name: "admin".into(), password_hash: hash, is_admin: true };
    store.insert_user(&admin, clock.now()).await?;
    Ok(file)
}

/// A secret the operator gives in the environment (`given`), or else one generated once into
/// `file` (0600) in the data directory and read from there at later starts; with the file's path
/// when it comes from one. Used for the sandbox users' password and the metrics token.
fn given_or_generated(settings: &Settings, given: &Option<String>, file: &str) -> anyhow::Result<(String, Option<PathBuf>)> {
    if let Some(p) = given {
        return Ok((p.clone(), None));
    }
    let path = settings.data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if !existing.trim().is_empty() {
            return Ok((existing.trim().to_string(), Some(path)));
        }
    }
    let p = generate_password();
    write_private_file(&path, format!("{p}\n").as_bytes())?;
    Ok((p, Some(path)))
}

/// Stops restore sessions nobody has touched for the idle timeout.
async fn stop_idle_sessions(store: Store, follower: crate::signin::FollowerHandle, clock: SharedClock, idle_seconds: u64, mut shutdown: watch::Receiver<bool>) {
    let period = Duration::from_secs(idle_seconds.clamp(1, 60));
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let now = clock.now();
        let ids = match store.idle_sessions(now - (idle_seconds as i64) * 1000).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot look for idle restore sessions");
                continue;
            }
        };
        for id in ids {
            let event = NewEvent {
                status: EventStatus::Warning,
                title: "Restore session stopped".into(),
                message: format!("Stopped by the server after {idle_seconds} s without activity"),
                start_time: now,
                end_time: Some(now),
            };
            match store.stop_session(&id, now, &event).await {
                Ok(true) => follower.cancel_session(&id),
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "cannot stop an idle restore session"),
            }
        }
        let _ = store.delete_expired_tokens(now).await;
    }
}

/// Request ids: a UUIDv4 from the thread's CSPRNG. (tower-http's `MakeRequestUuid` asks the OS
/// for every id: a system call per request.)
#[derive(Clone, Copy)]
struct RandomRequestId;

impl tower_http::request_id::MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        axum::http::HeaderValue::from_str(&id.to_string()).ok().map(RequestId::new)
    }
}
