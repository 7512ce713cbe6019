//! The sandbox identity provider: Microsoft's identity platform surface for the parts restoregate
//! uses, so that the whole device-code flow runs on one machine. Nothing outside this module
//! imports its internals; restoregate reaches it over HTTPS like any authority.

pub mod codes;
pub mod db;
pub mod keys;
pub mod oauth;
pub mod page;

use crate::clock::{Millis, SharedClock};
use axum::routing::{get, post};
use axum::Router;
use db::{Application, Tenant};
use sqlx::SqlitePool;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use url::Url;

/// Wrong codes one client address may enter per window before the page refuses it.
pub const MAX_WRONG_CODES_PER_ADDRESS: u32 = 10;
pub const WRONG_CODE_WINDOW_MS: Millis = 15 * 60 * 1000;
/// Wrong passwords per device code before the code is spent.
pub const MAX_WRONG_PASSWORDS_PER_CODE: i64 = 5;

pub struct SandboxOptions {
    /// Public base of the provider, e.g. `https://localhost:4443/sandbox`.
    pub base: Url,
    pub interval_seconds: u64,
    pub code_lifetime_seconds: u64,
    /// Password of users created for new tenants.
    pub default_password: String,
}

pub struct Sandbox {
    db: SqlitePool,
    key: keys::SigningKey,
    base: Url,
    clock: SharedClock,
    interval_s: u64,
    lifetime_s: u64,
    default_password: String,
    dummy_hash: String,
    wrong_codes: Mutex<HashMap<IpAddr, (Millis, u32)>>,
}

impl Sandbox {
    pub async fn open(data_dir: &Path, options: SandboxOptions, clock: SharedClock) -> anyhow::Result<Arc<Self>> {
        let db = db::open(&data_dir.join("sandbox.db")).await?;
        let key = keys::SigningKey::load_or_create(&data_dir.join("sandbox-signing-key.der"))?;
        let dummy_hash = tokio::task::spawn_blocking(|| crate::crypto::hash_password(&crate::crypto::generate_password())).await??;
        Ok(Arc::new(Sandbox {
            db,
            key,
            base: options.base,
            clock,
            interval_s: options.interval_seconds,
            lifetime_s: options.code_lifetime_seconds,
            default_password: options.default_password,
            dummy_hash,
            wrong_codes: Mutex::new(HashMap::new()),
        }))
    }

    /// Routes under `/sandbox` (paths arrive lowercased).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/sandbox/device", get(page::show).post(page::enter_code))
            .route("/sandbox/device/confirm", post(page::confirm))
            .route("/sandbox/{tenant}/v2.0/.well-known/openid-configuration", get(oauth::discovery))
            .route("/sandbox/{tenant}/discovery/v2.0/keys", get(oauth::keys))
            .route("/sandbox/{tenant}/oauth2/v2.0/devicecode", post(oauth::devicecode))
            .route("/sandbox/{tenant}/oauth2/v2.0/token", post(oauth::token))
            .with_state(self.clone())
    }

    pub fn verification_uri(&self) -> String {
        format!("{}/device", self.base.as_str().trim_end_matches('/'))
    }

    fn tenant_base(&self, tenant: &str) -> String {
        format!("{}/{}", self.base.as_str().trim_end_matches('/'), tenant)
    }

    fn issuer(&self, tenant_id: &str) -> String {
        format!("{}/{}/v2.0", self.base.as_str().trim_end_matches('/'), tenant_id)
    }

    /// A tenant by domain name or GUID.
    pub async fn tenant(&self, name_or_id: &str) -> Option<Tenant> {
        let key = name_or_id.trim().to_ascii_lowercase();
        sqlx::query_as("SELECT id, name FROM tenants WHERE name = $1 OR id = $1")
            .bind(key)
            .fetch_optional(&self.db)
            .await
            .ok()
            .flatten()
    }

    async fn tenant_by_id(&self, id: &str) -> Option<Tenant> {
        self.tenant(id).await
    }

    pub async fn application(&self, tenant_id: &str, client_id: &str) -> Option<Application> {
        sqlx::query_as("SELECT client_id, name, public_client FROM applications WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id)
            .bind(client_id.to_ascii_lowercase())
            .fetch_optional(&self.db)
            .await
            .ok()
            .flatten()
    }

    /// Registers a tenant with an application (public client flows allowed) and its `admin@`
    /// user, as restoregate does when an organization is added. Existing entries are kept.
    pub async fn register(&self, tenant: &str, client_id: &str) -> anyhow::Result<()> {
        let tenant_id = self.add_tenant(tenant).await?;
        self.add_application(&tenant_id, client_id, &format!("restoregate ({tenant})"), true).await?;
        let username = format!("admin@{}", tenant.to_ascii_lowercase());
        let exists: Option<(String,)> = sqlx::query_as("SELECT username FROM users WHERE tenant_id = $1 AND username = $2")
            .bind(&tenant_id)
            .bind(&username)
            .fetch_optional(&self.db)
            .await?;
        if exists.is_none() {
            self.add_user(&tenant_id, &username, &self.default_password.clone()).await?;
        }
        Ok(())
    }

    /// Adds a tenant (or finds it); its id.
    pub async fn add_tenant(&self, name: &str) -> anyhow::Result<String> {
        let name = name.trim().to_ascii_lowercase();
        if let Some(t) = self.tenant(&name).await {
            return Ok(t.id);
        }
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO tenants (id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
            .bind(&id)
            .bind(&name)
            .execute(&self.db)
            .await?;
        Ok(self.tenant(&name).await.map(|t| t.id).unwrap_or(id))
    }

    pub async fn add_application(&self, tenant_id: &str, client_id: &str, name: &str, public_client: bool) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO applications (tenant_id, client_id, name, public_client) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, client_id) DO UPDATE SET public_client = excluded.public_client",
        )
        .bind(tenant_id)
        .bind(client_id.to_ascii_lowercase())
        .bind(name)
        .bind(public_client)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    pub async fn add_user(&self, tenant_id: &str, username: &str, password: &str) -> anyhow::Result<()> {
        let password = password.to_string();
        let hash = tokio::task::spawn_blocking(move || crate::crypto::hash_password(&password)).await??;
        sqlx::query(
            "INSERT INTO users (tenant_id, username, password_hash) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, username) DO UPDATE SET password_hash = excluded.password_hash",
        )
        .bind(tenant_id)
        .bind(username)
        .bind(hash)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Seconds to wait when this address has used up its wrong codes, else None.
    fn code_attempts_exhausted(&self, ip: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let map = self.wrong_codes.lock().expect("limiter lock");
        match map.get(&ip) {
            Some((start, count)) if now - start < WRONG_CODE_WINDOW_MS && *count >= MAX_WRONG_CODES_PER_ADDRESS => {
                Some(((start + WRONG_CODE_WINDOW_MS - now) / 1000).max(1) as u64)
            }
            _ => None,
        }
    }

    fn record_wrong_code(&self, ip: IpAddr) {
        let now = self.clock.now();
        let mut map = self.wrong_codes.lock().expect("limiter lock");
        if map.len() > 100_000 {
            map.retain(|_, (start, _)| now - *start < WRONG_CODE_WINDOW_MS);
        }
        let entry = map.entry(ip).or_insert((now, 0));
        if now - entry.0 >= WRONG_CODE_WINDOW_MS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}
