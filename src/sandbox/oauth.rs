//! Microsoft's identity platform surface, sandbox edition: discovery, keys, device authorization
//! and token endpoints, with Microsoft's error shape (`error`, `error_description` starting with
//! an AADSTS code, `error_codes`).

use super::codes::new_user_code;
use super::db::{code_by_hash, insert_code, NewCode};
use super::{registry, Sandbox};
use crate::crypto::{random_token, sha256_hex};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const ACCESS_TOKEN_SECONDS: i64 = 3599;
const REFRESH_TOKEN_SECONDS: i64 = 90 * 24 * 3600;

/// An error as Microsoft's token and device code endpoints write it.
pub fn ms_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ");
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp.to_string(),
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

fn tenant_not_found(tenant: &str) -> Response {
    ms_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        90002,
        &format!("Tenant '{}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", truncate(tenant)),
    )
}

fn truncate(s: &str) -> String {
    s.chars().take(100).collect()
}

fn form(body: &Bytes) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

pub async fn discovery(State(sb): State<Arc<Sandbox>>, Path(tenant): Path<String>) -> Response {
    let Some(t) = sb.tenant(&tenant).await else {
        return tenant_not_found(&tenant);
    };
    let base = sb.tenant_base(&tenant);
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": sb.issuer(&t.id),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid", "preferred_username", "upn", "ver"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "restoregate.sandbox",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }))
    .into_response()
}

pub async fn keys(State(sb): State<Arc<Sandbox>>, Path(tenant): Path<String>) -> Response {
    if sb.tenant(&tenant).await.is_none() {
        return tenant_not_found(&tenant);
    }
    Json(sb.key.jwks()).into_response()
}

/// What the database said to a device authorization request.
enum Issued {
    /// Stored, under this user code (canonical form).
    Stored(String),
    NoTenant,
    NoApplication(String),
}

fn unknown_application(client_id: &str, tenant_name: &str) -> Response {
    ms_error(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        &format!(
            "Application with identifier '{}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.",
            truncate(client_id),
            tenant_name
        ),
    )
}

fn transient() -> Response {
    ms_error(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
}

/// `POST /{tenant}/oauth2/v2.0/devicecode` (RFC 8628 section 3.1).
pub async fn devicecode(State(sb): State<Arc<Sandbox>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let f = form(&body);
    let Some(client_id) = f.get("client_id").map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()) else {
        // Microsoft checks the tenant first.
        return match sb.tenant(&tenant).await {
            None => tenant_not_found(&tenant),
            Some(_) => ms_error(StatusCode::BAD_REQUEST, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."),
        };
    };
    let scope = f.get("scope").cloned().unwrap_or_default();
    let now = sb.clock.now();
    let device_code = random_token(32);
    let hash = sha256_hex(&device_code);
    let (expires_at, interval_ms) = (now + (sb.lifetime_s as i64) * 1000, (sb.interval_s as i64) * 1000);
    let key = tenant.trim().to_ascii_lowercase();
    let cid = client_id.clone();
    // The lookups and the insert in one job: one trip to the database thread per request.
    let issued = sb
        .db
        .call(move |c| {
            let Some(t) = registry::find_tenant(c, &key)? else {
                return Ok(Issued::NoTenant);
            };
            if registry::find_application(c, &t.id, &cid)?.is_none() {
                return Ok(Issued::NoApplication(t.name));
            }
            let code = NewCode { hash: &hash, tenant_id: &t.id, client_id: &cid, scope: &scope, now, expires_at, interval_ms };
            let canonical = insert_code(c, &code, || new_user_code().replace('-', ""))?;
            Ok(Issued::Stored(canonical))
        })
        .await;
    let user_code = match issued {
        Ok(Issued::Stored(canonical)) => format!("{}-{}", &canonical[..4], &canonical[4..]),
        Ok(Issued::NoTenant) => return tenant_not_found(&tenant),
        Ok(Issued::NoApplication(tenant_name)) => return unknown_application(&client_id, &tenant_name),
        Err(e) => {
            tracing::error!(error = %e, "sandbox: cannot store a device code");
            return transient();
        }
    };
    let verification_uri = sb.verification_uri();
    Json(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": sb.lifetime_s,
        "interval": sb.interval_s,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`: device_code and refresh_token grants.
pub async fn token(State(sb): State<Arc<Sandbox>>, Path(tenant): Path<String>, body: Bytes) -> Response {
    let f = form(&body);
    let client_id = f.get("client_id").map(|c| c.trim().to_ascii_lowercase()).unwrap_or_default();
    let (key, cid) = (tenant.trim().to_ascii_lowercase(), client_id.clone());
    let found = sb
        .db
        .call(move |c| {
            let Some(t) = registry::find_tenant(c, &key)? else {
                return Ok(None);
            };
            let app = registry::find_application(c, &t.id, &cid)?;
            Ok(Some((t, app)))
        })
        .await;
    let (t, app) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return tenant_not_found(&tenant),
        Err(e) => {
            tracing::error!(error = %e, "sandbox: cannot read a tenant");
            return transient();
        }
    };
    let Some(app) = app else {
        return ms_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{}' was not found in the directory '{}'.", truncate(&client_id), t.name),
        );
    };
    if !app.public_client {
        // What Microsoft answers when "Allow public client flows" is off: the request is then
        // treated as a confidential client's, which lacks its credential.
        return ms_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    }
    match f.get("grant_type").map(String::as_str) {
        Some(DEVICE_CODE_GRANT) | Some("device_code") => device_code_grant(&sb, &t, &client_id, &f).await,
        Some("refresh_token") => refresh_grant(&sb, &t, &client_id, &f).await,
        _ => ms_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; use urn:ietf:params:oauth:grant-type:device_code or refresh_token.",
        ),
    }
}

/// Where a device code stands when its client polls.
enum Poll {
    Invalid,
    Redeemed,
    Expired,
    Denied,
    SlowDown,
    Pending,
    /// The sign-in was approved and this poll redeemed it.
    Approved { username: String, scope: String },
}

async fn device_code_grant(sb: &Sandbox, t: &super::db::Tenant, client_id: &str, f: &HashMap<String, String>) -> Response {
    let invalid = || {
        ms_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70000,
            "The provided value for the input parameter 'device_code' is not valid.",
        )
    };
    let Some(device_code) = f.get("device_code").filter(|c| !c.is_empty() && c.len() <= 200) else {
        return invalid();
    };
    let hash = sha256_hex(device_code);
    let now = sb.clock.now();
    let (tenant_id, cid) = (t.id.clone(), client_id.to_string());
    // Read, decide and write in one job: the decision cannot race another poll of the same code.
    let polled = sb
        .db
        .call(move |c| {
            let code = code_by_hash(c, &hash)?;
            // A code is bound to the client and tenant it was issued to.
            let Some(code) = code.filter(|code| code.tenant_id == tenant_id && code.client_id == cid) else {
                return Ok(Poll::Invalid);
            };
            if code.status == "redeemed" {
                return Ok(Poll::Redeemed);
            }
            if now > code.expires_at {
                return Ok(Poll::Expired);
            }
            if code.status == "denied" {
                return Ok(Poll::Denied);
            }
            if code.status == "pending" {
                // RFC 8628 section 3.5: a client polling faster than the interval is told to slow
                // down and must add 5 s for good. A client on time with some network jitter is
                // not punished.
                let tolerance = (code.interval_ms / 5).min(1000);
                let too_fast = code.last_poll_at.is_some_and(|last| now - last < code.interval_ms - tolerance);
                let interval = if too_fast { code.interval_ms + 5000 } else { code.interval_ms };
                c.prepare_cached("UPDATE device_codes SET last_poll_at = ?2, interval_ms = ?3 WHERE id = ?1")?
                    .execute(params![code.id, now, interval])?;
                return Ok(if too_fast { Poll::SlowDown } else { Poll::Pending });
            }
            // Approved: redeem once.
            let taken = c
                .prepare_cached("UPDATE device_codes SET status = 'redeemed' WHERE id = ?1 AND status = 'approved'")?
                .execute([code.id])?;
            Ok(if taken == 1 { Poll::Approved { username: code.username.unwrap_or_default(), scope: code.scope } } else { Poll::Invalid })
        })
        .await;
    let approved = match polled {
        Ok(Poll::Approved { username, scope }) => (username, scope),
        Ok(Poll::Invalid) => return invalid(),
        Ok(Poll::Redeemed) => {
            return ms_error(StatusCode::BAD_REQUEST, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
        }
        Ok(Poll::Expired) => {
            return ms_error(StatusCode::BAD_REQUEST, "expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This device code has expired.")
        }
        Ok(Poll::Denied) => return ms_error(StatusCode::BAD_REQUEST, "authorization_declined", 70000, "The user has declined the authorization request."),
        Ok(Poll::SlowDown) => return ms_error(StatusCode::BAD_REQUEST, "slow_down", 70016, "The client is polling too fast: wait 5 more seconds between requests."),
        Ok(Poll::Pending) => {
            return ms_error(StatusCode::BAD_REQUEST, "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
        }
        Err(e) => {
            tracing::error!(error = %e, "sandbox: cannot read a device code");
            return transient();
        }
    };
    let (username, scope) = approved;
    issue_tokens(sb, t, client_id, &username, &scope).await
}

async fn refresh_grant(sb: &Sandbox, t: &super::db::Tenant, client_id: &str, f: &HashMap<String, String>) -> Response {
    let invalid = || {
        ms_error(StatusCode::BAD_REQUEST, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid: the refresh token is unknown, used or expired.")
    };
    let Some(refresh) = f.get("refresh_token").filter(|c| !c.is_empty() && c.len() <= 200) else {
        return invalid();
    };
    // Rotation: a refresh token is deleted as it is used, and only by the client and tenant it
    // was issued to (presented elsewhere, it is refused and stays its holder's).
    let (hash, now) = (sha256_hex(refresh), sb.clock.now());
    let (tenant_id, cid) = (t.id.clone(), client_id.to_string());
    let row: Option<(String, String)> = sb
        .db
        .call(move |c| {
            c.prepare_cached(
                "DELETE FROM refresh_tokens WHERE token_hash = ?1 AND expires_at > ?2 AND tenant_id = ?3 AND client_id = ?4
                 RETURNING username, scope",
            )?
            .query_row(params![hash, now, tenant_id, cid], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
        })
        .await
        .unwrap_or(None);
    match row {
        Some((username, scope)) => {
            let scope = f.get("scope").cloned().filter(|s| !s.is_empty()).unwrap_or(scope);
            issue_tokens(sb, t, client_id, &username, &scope).await
        }
        _ => invalid(),
    }
}

/// The resource an access token is for: the `…/.default` scope's base, else Microsoft Graph.
fn audience(scope: &str) -> String {
    scope
        .split_whitespace()
        .find_map(|s| s.strip_suffix("/.default"))
        .map(str::to_string)
        .unwrap_or_else(|| "https://graph.microsoft.com".to_string())
}

async fn issue_tokens(sb: &Sandbox, t: &super::db::Tenant, client_id: &str, username: &str, scope: &str) -> Response {
    let now_s = sb.clock.now() / 1000;
    let oid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{}/{}", t.id, username.to_lowercase()).as_bytes());
    let issuer = sb.issuer(&t.id);
    let display = username.split('@').next().unwrap_or(username);
    let access = sb.key.sign(&json!({
        "aud": audience(scope),
        "iss": issuer,
        "iat": now_s, "nbf": now_s, "exp": now_s + ACCESS_TOKEN_SECONDS,
        "appid": client_id, "azp": client_id,
        "name": display,
        "oid": oid, "sub": oid, "tid": t.id,
        "upn": username, "preferred_username": username, "unique_name": username,
        "scp": scope.split_whitespace().filter(|s| !s.ends_with("offline_access")).collect::<Vec<_>>().join(" "),
        "ver": "2.0",
    }));
    let wants_openid = scope.split_whitespace().any(|s| s == "openid");
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope,
        "expires_in": ACCESS_TOKEN_SECONDS,
        "ext_expires_in": ACCESS_TOKEN_SECONDS,
        "access_token": access,
        "client_info": base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            json!({"uid": oid, "utid": t.id}).to_string()
        ),
    });
    if scope.split_whitespace().any(|s| s == "offline_access") {
        let refresh = random_token(48);
        let row = (sha256_hex(&refresh), t.id.clone(), client_id.to_string(), username.to_string(), scope.to_string());
        let expires_at = sb.clock.now() + REFRESH_TOKEN_SECONDS * 1000;
        let stored = sb
            .db
            .call(move |c| {
                c.prepare_cached(
                    "INSERT INTO refresh_tokens (token_hash, tenant_id, client_id, username, scope, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![row.0, row.1, row.2, row.3, row.4, expires_at])
            })
            .await;
        if stored.is_ok() {
            body["refresh_token"] = Value::String(refresh);
        }
    }
    if wants_openid {
        body["id_token"] = Value::String(sb.key.sign(&json!({
            "aud": client_id,
            "iss": issuer,
            "iat": now_s, "nbf": now_s, "exp": now_s + ACCESS_TOKEN_SECONDS,
            "name": display,
            "oid": oid, "sub": oid, "tid": t.id,
            "preferred_username": username,
            "ver": "2.0",
        })));
    }
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
