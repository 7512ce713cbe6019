//! The v5 REST surface: routes, shared state and small helpers. One module per resource.

pub mod auth;
pub mod decode;
pub mod device_code;
pub mod error;
pub mod organizations;
pub mod restore_sessions;

use crate::clock::SharedClock;
use crate::crypto::Sealer;
use crate::domain::organization::TenantName;
use crate::domain::parse_guid;
use crate::domain::region::Region;
use crate::identity::IdentityClient;
use crate::signin::FollowerHandle;
use crate::store::Store;
use axum::http::{Method, Uri};
use axum::routing::{get, post};
use axum::Router;
use error::{ApiError, ApiResult};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use url::Url;

/// Authority and Graph base URL of every region, after configuration.
#[derive(Debug, Clone)]
pub struct Authorities {
    pub by_region: BTreeMap<Region, (Url, Url)>,
}

impl Authorities {
    pub fn authority(&self, region: Region) -> &Url {
        &self.by_region[&region].0
    }
    pub fn graph(&self, region: Region) -> &Url {
        &self.by_region[&region].1
    }
}

/// What the API tells the rest of the system when organizations change. The application wires
/// it (to the sandbox provider, when one runs); the API does not know who listens.
#[async_trait::async_trait]
pub trait Hooks: Send + Sync {
    async fn organization_added(&self, region: Region, tenant: &TenantName, application_id: &uuid::Uuid);
}

pub struct NoHooks;

#[async_trait::async_trait]
impl Hooks for NoHooks {
    async fn organization_added(&self, _: Region, _: &TenantName, _: &uuid::Uuid) {}
}

pub struct AppState {
    pub store: Store,
    pub sealer: Sealer,
    pub clock: SharedClock,
    pub identity: Arc<IdentityClient>,
    pub follower: FollowerHandle,
    pub authorities: Authorities,
    pub hooks: Arc<dyn Hooks>,
    /// An Argon2 hash of nothing anyone knows: verified against when a user name is unknown.
    pub dummy_hash: String,
}

/// Routes in lowercase: `normalize_path` lowercases every request path before routing, since
/// clients spell paths in any case (`/v5/token`, `/Organization/`).
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v5/token", post(auth::token))
        .route("/v5/organizations", get(organizations::list).post(organizations::add))
        .route("/v5/organizations/{id}", get(organizations::get).delete(organizations::delete))
        .route("/v5/organizations/{id}/action", post(restore_sessions::explore))
        .route("/v5/restoresessions", get(restore_sessions::list))
        .route("/v5/restoresessions/{id}", get(restore_sessions::get))
        .route("/v5/restoresessions/{id}/action", post(restore_sessions::action))
        .route("/v5/restoresessions/{id}/events", get(restore_sessions::events))
        .route(
            "/v5/restoresessions/{id}/organization/restoredevicecode",
            post(device_code::restore_device_code),
        )
        .route("/v5/devicecode/check", post(device_code::check))
        .route("/health", get(|| async { axum::Json(json!({"status": "ok"})) }))
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed(format!("{} {} is not supported", method, uri.path()))
        })
        .with_state(state)
}

/// 404 in the API's error shape for any path no router knows.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("There is no resource at {}", uri.path()))
}

/// Lowercases the path and drops a trailing slash; the query is left as it is.
pub fn normalize_path<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = request.uri();
    let path = uri.path();
    let mut normalized = path.to_ascii_lowercase();
    while normalized.len() > 1 && normalized.ends_with('/') {
        normalized.pop();
    }
    if normalized != path {
        let path_and_query = match uri.query() {
            Some(q) => format!("{normalized}?{q}"),
            None => normalized,
        };
        let mut parts = uri.clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(new_uri) = Uri::from_parts(parts) {
                *request.uri_mut() = new_uri;
            }
        }
    }
    request
}

/// A GUID from the path, or a 400 naming the parameter.
pub fn path_guid(name: &str, raw: &str) -> ApiResult<uuid::Uuid> {
    parse_guid(raw).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "{name} '{}' is not a GUID (e.g. 00000000-0000-0000-0000-000000000000)",
            raw.chars().take(64).collect::<String>()
        ))
    })
}

/// `offset` and `limit` query parameters (any case): limit 30 by default, at most 10000.
pub fn page(query: Option<&str>) -> ApiResult<(i64, i64)> {
    let q: HashMap<String, String> = decode::query_map(query);
    let number = |name: &str, default: i64, max: i64| -> ApiResult<i64> {
        match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(default),
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (0..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::BadRequest(format!("{name} must be a whole number from 0 to {max}, not '{}'", s.chars().take(32).collect::<String>()))),
            },
        }
    };
    let offset = number("offset", 0, i64::from(i32::MAX))?;
    let limit = number("limit", 30, 10_000)?;
    Ok((offset, limit))
}

/// HAL links: `{"self": {"href": …}, …}`.
pub fn links(items: &[(&str, String)]) -> Value {
    Value::Object(items.iter().map(|(k, v)| (k.to_string(), json!({ "href": v }))).collect())
}
