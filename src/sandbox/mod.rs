//! The sandbox identity provider: Microsoft's identity platform surface for the parts restoregate
//! uses, so that the whole device-code flow runs on one machine. Nothing outside this module
//! imports its internals; restoregate reaches it over HTTPS like any authority.

pub mod cli;
pub mod codes;
pub mod db;
pub mod keys;
pub mod oauth;
pub mod page;
pub mod registry;

use crate::clock::{Millis, SharedClock};
use axum::routing::{get, post};
use axum::Router;
use db::{Application, Db, Tenant};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use url::Url;

/// Wrong codes one client address may enter per window before the page refuses it (the default
/// of `sandbox_wrong_codes_per_address`).
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
    /// Wrong codes one client address may enter per `WRONG_CODE_WINDOW_MS`.
    pub wrong_codes_per_address: u64,
}

pub struct Sandbox {
    db: Db,
    key: keys::SigningKey,
    base: Url,
    clock: SharedClock,
    interval_s: u64,
    lifetime_s: u64,
    default_password: String,
    dummy_hash: String,
    /// By client address (`limit::address_key`: IPv6 by /64).
    wrong_codes: Mutex<HashMap<String, (Millis, u64)>>,
    max_wrong_codes: u64,
}

impl Sandbox {
    pub async fn open(data_dir: &Path, options: SandboxOptions, clock: SharedClock) -> anyhow::Result<Arc<Self>> {
        let db = db::open(&data_dir.join("sandbox.db"), clock.now()).await?;
        let key = keys::SigningKey::load_or_create(&data_dir.join("sandbox-signing-key.der"))?;
        let dummy_hash = tokio::task::spawn_blocking(|| crate::crypto::hash_password(&crate::crypto::generate_password())).await??;
        let sandbox = Arc::new(Sandbox {
            db,
            key,
            base: options.base,
            clock,
            interval_s: options.interval_seconds,
            lifetime_s: options.code_lifetime_seconds,
            default_password: options.default_password,
            dummy_hash,
            wrong_codes: Mutex::new(HashMap::new()),
            max_wrong_codes: options.wrong_codes_per_address.max(1),
        });
        // Codes expired long ago are forgotten every ten minutes; the task ends with the sandbox.
        let weak = Arc::downgrade(&sandbox);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            every.tick().await;
            loop {
                every.tick().await;
                let Some(sb) = weak.upgrade() else { break };
                let now = sb.clock.now();
                if let Err(e) = sb.db.call(move |c| db::purge_codes(c, now)).await {
                    tracing::warn!(error = %e, "sandbox: purging expired device codes");
                }
            }
        });
        Ok(sandbox)
    }

    /// Closes its database (checkpointing the WAL) at shutdown, rather than whenever the last
    /// reference is dropped.
    pub async fn close(&self) {
        self.db.close().await;
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
        registry::tenant(&self.db, name_or_id).await.ok().flatten()
    }

    pub async fn application(&self, tenant_id: &str, client_id: &str) -> Option<Application> {
        registry::application(&self.db, tenant_id, client_id).await.ok().flatten()
    }

    /// Registers a tenant with an application (public client flows allowed) and its `admin@`
    /// user, as restoregate does when an organization is added. An existing user keeps its
    /// password; an existing application is switched to allow public client flows.
    pub async fn register(&self, tenant: &str, client_id: &str) -> anyhow::Result<()> {
        let tenant_id = registry::add_tenant(&self.db, tenant).await?;
        registry::add_application(&self.db, &tenant_id, client_id, &format!("restoregate ({tenant})"), true).await?;
        let username = format!("admin@{}", tenant.to_ascii_lowercase());
        if !registry::user_exists(&self.db, &tenant_id, &username).await? {
            registry::add_user(&self.db, &tenant_id, &username, &self.default_password).await?;
        }
        Ok(())
    }

    /// Seconds to wait when this address has used up its wrong codes, else None.
    fn code_attempts_exhausted(&self, ip: IpAddr) -> Option<u64> {
        let now = self.clock.now();
        let map = self.wrong_codes.lock().expect("limiter lock");
        match map.get(&crate::limit::address_key(ip)) {
            Some((start, count)) if now - start < WRONG_CODE_WINDOW_MS && *count >= self.max_wrong_codes => {
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
        let entry = map.entry(crate::limit::address_key(ip)).or_insert((now, 0));
        if now - entry.0 >= WRONG_CODE_WINDOW_MS {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}
