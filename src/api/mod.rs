//! The v5 REST surface: routes, shared state and small helpers. One module per resource.

pub mod auth;
pub mod decode;
pub mod device_code;
pub mod dto;
pub mod error;
pub mod openapi;
pub mod organizations;
pub mod restore_sessions;
pub mod schemas;
pub mod throttle;

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
    /// SHA-256 of the token that opens `/metrics` besides an administrator's access token.
    pub metrics_token_hash: String,
    pub login: throttle::LoginGuard,
    pub device_codes: throttle::DeviceCodeGuard,
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
        // The later versions' shapes of the same operations.
        .route("/v8/token", post(auth::token_v8))
        .route("/v8/organizations/{id}/explore", post(restore_sessions::explore_v8))
        .route("/v8/restoresessions", get(restore_sessions::list_v8))
        .route("/v8/restoresessions/{id}", get(restore_sessions::get_v8))
        .route("/v8/restoresessions/{id}/stop", post(restore_sessions::stop_v8))
        .route("/v8/restoresessions/{id}/events", get(restore_sessions::events_v8))
        .route(
            "/v8/restoresessions/{id}/organization/restoredevicecode",
            post(device_code::restore_device_code_v8),
        )
        .route("/v8/devicecode/check", post(device_code::check_v8))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError::MethodNotAllowed(format!("{} {} is not supported", method, uri.path()))
        })
        .with_state(state)
}

/// Reads the whole request body (bodies are small: at most `MAX_BODY_BYTES`) before the handler
/// runs. A request refused before its body is read (401 without a token, 404, 405) would otherwise
/// end its connection while the client is still sending, and the client would see a broken
/// connection instead of the answer.
///
/// The body must arrive within `deadline`, or the answer is a 408 (a client that stalls mid-body
/// would otherwise hold its connection and a task until the whole-request deadline).
pub async fn read_body_first(
    axum::extract::State(deadline): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (parts, body) = request.into_parts();
    let read = match tokio::time::timeout(deadline, read_bounded(body)).await {
        Ok(read) => read,
        Err(_) => {
            let mut r = ApiError::RequestTimeout(format!(
                "The request body did not arrive within {} s: send it whole, and promptly",
                deadline.as_secs()
            ))
            .into_response();
            // The rest of the body may still be on its way: this connection cannot carry another request.
            r.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            return r;
        }
    };
    match read {
        Ok(Body::Whole(bytes)) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Body::TooLarge { drained }) => {
            let mut r =
                ApiError::PayloadTooLarge(format!("The request body is larger than {} bytes", decode::MAX_BODY_BYTES)).into_response();
            if !drained {
                r.headers_mut().insert(axum::http::header::CONNECTION, axum::http::HeaderValue::from_static("close"));
            }
            r
        }
        Err(e) => ApiError::BadRequest(format!("Cannot read the request body: {e}")).into_response(),
    }
}

/// How much of a body over the limit is still read (and dropped) before the 413, so that the
/// client, done sending, reads the answer: an answer that arrives mid-upload ends the HTTP/2
/// stream, which clients report as a framing error instead of the 413. Beyond it, the answer
/// goes out at once.
const DRAIN_BYTES: usize = 16 * 1024 * 1024;

enum Body {
    Whole(axum::body::Bytes),
    /// Over `MAX_BODY_BYTES`; `drained` when the client sent it to its end.
    TooLarge { drained: bool },
}

async fn read_bounded(mut body: axum::body::Body) -> Result<Body, axum::Error> {
    use http_body_util::BodyExt;
    // A declared length beyond what would be drained: no point reading any of it.
    if axum::body::HttpBody::size_hint(&body).lower() as usize > DRAIN_BYTES {
        return Ok(Body::TooLarge { drained: false });
    }
    let mut whole = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        total += data.len();
        if total <= decode::MAX_BODY_BYTES {
            whole.extend_from_slice(&data);
        } else if total > DRAIN_BYTES {
            return Ok(Body::TooLarge { drained: false });
        } else {
            whole = Vec::new();
        }
    }
    Ok(if total > decode::MAX_BODY_BYTES { Body::TooLarge { drained: true } } else { Body::Whole(whole.into()) })
}

/// `/metrics`: for Prometheus with the metrics token (`bearer_token_file` pointing at
/// `<data dir>/metrics-token`), or for an administrator with an access token. The counts name no
/// user, but they tell how the server is used, so they are not public.
pub async fn metrics(axum::extract::State(state): axum::extract::State<Arc<AppState>>, headers: axum::http::HeaderMap) -> Result<axum::response::Response, ApiError> {
    let denied = || {
        ApiError::Unauthorized(
            "Authorization has been denied for this request: send 'Authorization: Bearer <token>' with the metrics token \
             (<data dir>/metrics-token, or RESTOREGATE_METRICS_TOKEN) or an administrator's access token"
                .into(),
        )
    };
    let token = auth::bearer_token(&headers).map_err(|_| denied())?;
    let hash = crate::crypto::sha256_hex(token);
    if !crate::crypto::constant_time_eq(hash.as_bytes(), state.metrics_token_hash.as_bytes()) {
        let user = state.store.token_user(&hash, crate::store::TokenKind::Access, state.clock.now()).await?.ok_or_else(denied)?;
        if !user.is_admin {
            return Err(ApiError::Forbidden(format!("/metrics is for administrators and Prometheus; {} is not an administrator", user.name)));
        }
    }
    Ok(crate::metrics::render().await)
}

/// For load balancers: answers while the server serves.
#[utoipa::path(get, path = "/health", tag = "Health", operation_id = "Health_Get", responses((status = 200, description = "Serving", body = dto::Health)))]
pub async fn health() -> axum::Json<dto::Health> {
    axum::Json(dto::Health { status: "ok".into() })
}

/// 404 in the API's error shape for any path no router knows.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("There is no resource at {}", uri.path()))
}

/// Lowercases the path and drops a trailing slash, for the API's and the sandbox's paths (the
/// Swagger UI's are served as they are); the query is left as it is.
pub fn normalize_path<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let uri = request.uri();
    let path = uri.path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("").to_ascii_lowercase();
    if !matches!(first.as_str(), "v5" | "v8" | "sandbox" | "health") {
        return request;
    }
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

/// The API version a request came in on, for the links it answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V5,
    V8,
}

impl Version {
    pub fn prefix(self) -> &'static str {
        match self {
            Version::V5 => "/v5",
            Version::V8 => "/v8",
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Version {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(if parts.uri.path().starts_with("/v8/") { Version::V8 } else { Version::V5 })
    }
}
