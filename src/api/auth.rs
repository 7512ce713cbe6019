//! `/v5/Token` (password and refresh_token grants) and the bearer check every other route uses.

use super::error::ApiError;
use super::AppState;
use crate::clock::iso;
use crate::crypto::{random_token, sha256_hex, verify_password};
use crate::store::{TokenKind, User};
use super::throttle::Refusal;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use super::dto::{ExceptionInfo, OAuthError, TokenRequest, TokenResponse};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub const ACCESS_TOKEN_SECONDS: i64 = 3600;
pub const REFRESH_TOKEN_SECONDS: i64 = 14 * 24 * 3600;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub User);

impl Caller {
    /// Sessions and codes of others are invisible to non-administrators.
    pub fn owner_filter(&self) -> Option<&str> {
        if self.0.is_admin {
            None
        } else {
            Some(&self.0.id)
        }
    }

    pub fn may_see(&self, owner_id: &str) -> bool {
        self.0.is_admin || self.0.id == owner_id
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let denied = |why: &str| ApiError::Unauthorized(format!("Authorization has been denied for this request: {why}"));
        let token = bearer_token(&parts.headers).map_err(|e| {
            denied(match e {
                Bearer::Missing => "send 'Authorization: Bearer <access_token>' from /v5/Token",
                Bearer::Malformed => "the Authorization header must be 'Bearer <access_token>'",
                Bearer::TooLong => "the bearer token is longer than any access token from /v5/Token",
            })
        })?;
        let user = state
            .store
            .token_user(&sha256_hex(token), TokenKind::Access, state.clock.now())
            .await?
            .ok_or_else(|| denied("the access token is unknown or expired; get a new one from /v5/Token"))?;
        Ok(Caller(user))
    }
}

/// Why a request has no usable bearer token.
pub enum Bearer {
    Missing,
    Malformed,
    /// Longer than any token this server issues (checked before hashing or looking it up).
    TooLong,
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Result<&str, Bearer> {
    let header = headers.get(header::AUTHORIZATION).ok_or(Bearer::Missing)?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(Bearer::Malformed)?;
    if token.len() > 512 {
        return Err(Bearer::TooLong);
    }
    Ok(token)
}

/// An OAuth-style error from the token endpoint (RFC 6749 section 5.2), with `message` too.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = OAuthError { error: error.into(), error_description: description.into(), message: description.into() };
    (status, Json(body)).into_response()
}

/// Get a bearer token (password or refresh_token grant). Form-encoded or JSON fields; unknown
/// fields are ignored.
#[utoipa::path(post, path = "/v5/Token", tag = "Token", operation_id = "token",
    request_body(content((TokenRequest = "application/x-www-form-urlencoded"), (TokenRequest = "application/json"))),
    responses(
        (status = 200, description = "The tokens", body = TokenResponse),
        (status = 400, description = "OAuth error: invalid_request, invalid_grant or unsupported_grant_type", body = OAuthError),
        (status = 413, description = "Body too large", body = ExceptionInfo),
        (status = 429, description = "Too many failed sign-ins from this address or for this user name (temporarily_unavailable; Retry-After in seconds)", body = OAuthError),
    ))]
pub async fn token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("json"));
    let bytes = match super::decode::read_body(request, &()).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let fields: std::collections::HashMap<String, String> = if is_json {
        match super::decode::parse_value(&bytes) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    Value::Null => None,
                    other => Some((k, other.to_string())),
                })
                .collect(),
            _ => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "The body must be a JSON object or form fields: grant_type, username, password or refresh_token"),
        }
    } else {
        url::form_urlencoded::parse(&bytes).map(|(k, v)| (k.to_lowercase(), v.into_owned())).collect()
    };
    match grant(&state, peer, &fields).await {
        Ok(body) => (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response(),
        Err(TokenError::OAuth(error, description)) => oauth_error(StatusCode::BAD_REQUEST, error, &description),
        Err(TokenError::Limited(refusal)) => {
            // RFC 6749 names no error for this; temporarily_unavailable is its nearest ("temporary
            // overloading"), and Retry-After says when.
            let mut r = oauth_error(StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable", &refusal.message());
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(refusal.retry_after()));
            r
        }
        Err(TokenError::Api(e)) => e.into_response(),
    }
}

/// Get a bearer token (v8 path; the same operation as `/v5/Token`).
#[utoipa::path(post, path = "/v8/token", tag = "Auth", operation_id = "token",
    request_body(content((TokenRequest = "application/x-www-form-urlencoded"), (TokenRequest = "application/json"))),
    responses(
        (status = 200, description = "The tokens", body = TokenResponse),
        (status = 400, description = "OAuth error: invalid_request, invalid_grant or unsupported_grant_type", body = OAuthError),
        (status = 413, description = "Body too large", body = ExceptionInfo),
        (status = 429, description = "Too many failed sign-ins from this address or for this user name (temporarily_unavailable; Retry-After in seconds)", body = OAuthError),
    ))]
pub async fn token_v8(state: State<Arc<AppState>>, request: Request) -> Response {
    token(state, request).await
}

enum TokenError {
    OAuth(&'static str, String),
    Limited(Refusal),
    Api(ApiError),
}

impl<E: Into<ApiError>> From<E> for TokenError {
    fn from(e: E) -> Self {
        TokenError::Api(e.into())
    }
}

async fn grant(state: &AppState, peer: IpAddr, fields: &std::collections::HashMap<String, String>) -> Result<TokenResponse, TokenError> {
    let field = |name: &str| fields.get(name).map(|s| s.as_str()).filter(|s| !s.is_empty());
    let user = match field("grant_type") {
        Some(g) if g.eq_ignore_ascii_case("password") => {
            let (Some(username), Some(password)) = (field("username"), field("password")) else {
                return Err(TokenError::OAuth("invalid_request", "The password grant needs username and password".into()));
            };
            // Refused before the costly hash when this address or account has failed too often.
            let admitted = state.login.admit(peer, username).await.map_err(TokenError::Limited)?;
            let user = state.store.user_by_name(username).await?;
            // Verify against a fixed hash when the user is unknown, so that timing does not tell
            // which user names exist.
            let hash = user.as_ref().map(|u| u.password_hash.clone()).unwrap_or_else(|| state.dummy_hash.clone());
            let password = password.to_string();
            let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            match user {
                Some(u) if ok => {
                    admitted.succeeded();
                    u
                }
                _ => return Err(TokenError::OAuth("invalid_grant", "The user name or password is incorrect".into())),
            }
        }
        Some(g) if g.eq_ignore_ascii_case("refresh_token") => {
            let Some(refresh) = field("refresh_token") else {
                return Err(TokenError::OAuth("invalid_request", "The refresh_token grant needs refresh_token".into()));
            };
            let now = state.clock.now();
            let user_id = state.store.take_refresh_token(&sha256_hex(refresh), now).await?;
            match user_id {
                Some(id) => match state.store.user_by_id(&id).await? {
                    Some(u) => u,
                    None => return Err(TokenError::OAuth("invalid_grant", "The refresh token's user no longer exists".into())),
                },
                None => {
                    return Err(TokenError::OAuth("invalid_grant", "The refresh token is unknown, used or expired: sign in again with the password grant".into()))
                }
            }
        }
        Some(_) => {
            return Err(TokenError::OAuth("unsupported_grant_type", "grant_type must be password or refresh_token".into()))
        }
        None => return Err(TokenError::OAuth("invalid_request", "grant_type is missing: use password or refresh_token".into())),
    };
    let now = state.clock.now();
    let access = random_token(32);
    let refresh = random_token(32);
    let expires = now + ACCESS_TOKEN_SECONDS * 1000;
    state.store.insert_token(&sha256_hex(&access), TokenKind::Access, &user.id, expires).await?;
    state
        .store
        .insert_token(&sha256_hex(&refresh), TokenKind::Refresh, &user.id, now + REFRESH_TOKEN_SECONDS * 1000)
        .await?;
    Ok(TokenResponse {
        access_token: access,
        refresh_token: refresh,
        token_type: "bearer".into(),
        expires_in: ACCESS_TOKEN_SECONDS,
        user_name: user.name,
        issued: iso(now),
        expires: iso(expires),
    })
}
