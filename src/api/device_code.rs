//! `POST /v5/RestoreSessions/{id}/organization/restoreDeviceCode` (contract section 1) and
//! `POST /v5/DeviceCode/check`.

use super::auth::Caller;
use super::decode::{lenient_string, Tolerant};
use super::error::{ApiError, ApiResult};
use super::restore_sessions::visible_session;
use super::AppState;
use crate::domain::organization::TenantName;
use crate::domain::parse_guid;
use crate::domain::region::Region;
use crate::domain::schedule::Schedule;
use crate::domain::session::EventStatus;
use crate::identity::AuthorityError;
use crate::signin::DEVICE_CODE_PURPOSE;
use crate::store::{DeviceAuthorizationRow, NewEvent};
use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use super::dto::{self, DeviceCodeCheckResponse, DeviceCodeResponse, ExceptionInfo};
use std::sync::Arc;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct DeviceCodeRequest {
    #[serde(default, deserialize_with = "lenient_string")]
    pub targetapplicationid: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub targetorganizationname: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub targetregion: Option<String>,
}

/// Where the device code is asked for: tenant, region and application.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub tenant: TenantName,
    pub region: Region,
    pub application_id: uuid::Uuid,
}

/// Resolves the body against the session's organization (its tenant, region and application).
pub fn resolve(body: &DeviceCodeRequest, org_tenant: &str, org_region: &str, org_app: &str) -> ApiResult<Target> {
    let non_empty = |o: &Option<String>| o.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
    let application_id = match non_empty(&body.targetapplicationid) {
        Some(raw) => parse_guid(&raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "targetApplicationId '{}' is not a GUID: give the Entra ID application's id, e.g. 00000000-0000-0000-0000-000000000000",
                raw.chars().take(64).collect::<String>()
            ))
        })?,
        None => parse_guid(org_app).ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored application id is not a GUID")))?,
    };
    let (tenant, region) = match (non_empty(&body.targetorganizationname), non_empty(&body.targetregion)) {
        (None, None) => (
            TenantName::parse(org_tenant).map_err(|e| ApiError::Internal(anyhow::anyhow!(e)))?,
            org_region.parse::<Region>().map_err(|e| ApiError::Internal(anyhow::anyhow!(e.to_string())))?,
        ),
        (Some(name), Some(region)) => {
            let region = region.parse::<Region>().map_err(|e| ApiError::BadRequest(format!("targetRegion: {e}")))?;
            let tenant = TenantName::parse(&name).map_err(|e| ApiError::BadRequest(format!("targetOrganizationName: {e}")))?;
            (tenant, region)
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "targetOrganizationName and targetRegion are both needed to restore to a custom location; give both, or neither to use the session's organization".into(),
            ))
        }
    };
    Ok(Target { tenant, region, application_id })
}

/// Get a device code for a restore into an organization added with modern app-only
/// authentication. The server keeps the device code, follows the sign-in, and records the outcome
/// as an event of the session.
#[utoipa::path(post, path = "/v5/RestoreSessions/{restoreSessionId}/organization/restoreDeviceCode", tag = "RestoreSession",
    operation_id = "RestoreSession_DeviceCodeAction", security(("Bearer" = [])),
    params(("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id")),
    request_body = Option<dto::DeviceCodeRequest>,
    responses(
        (status = 200, description = "The code to enter at the verification page", body = DeviceCodeResponse, links(
            ("CheckDeviceCode" = (operation_id = "Organization_CheckDeviceCode", request_body = json!({"userCode": "$response.body#/userCode"}),
                description = "Whether someone signed in with the code")),
        )),
        (status = 400, description = "Not a GUID; targetOrganizationName without targetRegion or the reverse; unknown region", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
        (status = 409, description = "The session has stopped, or its organization was removed and no custom location is given", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
        (status = 429, description = "Too many device code requests this minute, or too many sign-ins pending (Retry-After in seconds)", body = ExceptionInfo),
        (status = 502, description = "The identity authority refused (its AADSTS code in the message)", body = ExceptionInfo),
        (status = 504, description = "The identity authority is unreachable or too slow", body = ExceptionInfo),
    ))]
pub async fn restore_device_code(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Tolerant(body): Tolerant<DeviceCodeRequest>,
) -> ApiResult<Json<DeviceCodeResponse>> {
    let session = visible_session(&state, &caller, &id).await?;
    if session.state != "Working" {
        return Err(ApiError::Conflict(format!(
            "Restore session {} has stopped: start a new restore session to get a device code",
            session.id
        )));
    }
    limit_device_codes(&state, &caller).await?;
    let org = state.store.organization(&session.organization_id).await?;
    let target = match &org {
        Some(o) => resolve(&body, &o.tenant, &o.region, &o.application_id)?,
        None => {
            // The organization was removed: only a custom location (with its application) can
            // work. One of targetOrganizationName and targetRegion without the other is the 400
            // that `resolve` answers.
            let given = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.trim().is_empty());
            if !given(&body.targetapplicationid) || (!given(&body.targetorganizationname) && !given(&body.targetregion)) {
                return Err(ApiError::Conflict(format!(
                    "The organization of restore session {} was removed: give targetApplicationId, targetOrganizationName and targetRegion",
                    session.id
                )));
            }
            resolve(&body, "", "", "")?
        }
    };

    let authority = state.authorities.authority(target.region);
    let scope = format!("{}/.default offline_access", state.authorities.graph(target.region).as_str().trim_end_matches('/'));
    let client_id = target.application_id.to_string();
    let endpoints = state.identity.endpoints(authority, target.tenant.as_str()).await.map_err(upstream)?;
    let grant = state
        .identity
        .request_device_code(&endpoints, &client_id, &scope)
        .await
        .map_err(upstream)?;

    let now = state.clock.now();
    let schedule = Schedule::new(now, grant.interval, grant.expires_in);
    let row = DeviceAuthorizationRow {
        id: uuid::Uuid::new_v4().to_string(),
        session_id: session.id.clone(),
        user_id: caller.0.id.clone(),
        user_code: grant.user_code.clone(),
        authority: authority.to_string(),
        tenant: target.tenant.to_string(),
        client_id: client_id.clone(),
        token_endpoint: endpoints.token_endpoint.to_string(),
        device_code_sealed: state.sealer.seal(DEVICE_CODE_PURPOSE, grant.device_code.as_bytes()),
        interval_ms: schedule.interval_ms,
        expires_at: schedule.expires_at,
        next_poll_at: schedule.next_poll_at,
        transient_failures: 0,
        created_at: now,
    };
    let event = NewEvent {
        status: EventStatus::Success,
        title: "Device code requested".into(),
        message: format!(
            "Waiting for a sign-in to {} ({}) with application {} at {}; the code expires in {} s",
            target.tenant, target.region, client_id, grant.verification_uri, grant.expires_in
        ),
        start_time: now,
        end_time: Some(now),
    };
    state.store.insert_device_authorization(&row, &event, &state.follower.lease(now)).await?;
    state.follower.follow(row);

    let message = grant.message.clone().unwrap_or_else(|| {
        format!(
            "To sign in, use a web browser to open the page {} and enter the code {} to authenticate.",
            grant.verification_uri, grant.user_code
        )
    });
    Ok(Json(DeviceCodeResponse {
        user_code: grant.user_code,
        verification_url: grant.verification_uri,
        expires_in: grant.expires_in.min(i64::MAX as u64) as i64,
        message,
    }))
}

/// Requests per user per minute, then the cap on sign-ins pending at once: each pending one costs
/// polls of the authority until it ends. (Two requests at the same instant can both pass the cap
/// by one: it bounds load, it is not an invariant.)
async fn limit_device_codes(state: &AppState, caller: &Caller) -> ApiResult<()> {
    state.device_codes.take(&caller.0.id)?;
    let max = state.device_codes.max_pending;
    if max == 0 {
        return Ok(());
    }
    let (pending, first_expiry) = state.store.pending_device_authorizations_of(&caller.0.id).await?;
    if pending as u64 >= max {
        let retry = first_expiry.map(|t| ((t - state.clock.now()) / 1000).max(1) as u64).unwrap_or(1);
        return Err(ApiError::TooManyRequests(
            format!(
                "You have {pending} sign-ins pending (at most {max}): stop restore sessions you no longer need, or wait until their codes are used or expire (the first in {retry} s)"
            ),
            retry,
        ));
    }
    Ok(())
}

fn upstream(e: AuthorityError) -> ApiError {
    match e {
        AuthorityError::Refused(t) => ApiError::BadGateway(format!("The identity authority refused the device code request: {}", t.summary())),
        AuthorityError::Invalid(why) => ApiError::BadGateway(format!("The identity authority sent an invalid answer: {why}")),
        AuthorityError::Unreachable(why) => ApiError::GatewayTimeout(format!("The identity authority is unreachable: {why}")),
        AuthorityError::TimedOut => ApiError::GatewayTimeout("The identity authority did not answer in time".into()),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct CheckRequest {
    #[serde(default, deserialize_with = "lenient_string")]
    pub usercode: Option<String>,
}

/// Has someone signed in with this code? Only for codes the caller requested (all for an
/// administrator).
#[utoipa::path(post, path = "/v5/DeviceCode/check", tag = "DeviceCode", operation_id = "Organization_CheckDeviceCode", security(("Bearer" = [])),
    request_body = dto::CheckDeviceCode,
    responses(
        (status = 200, description = "Whether the sign-in happened", body = DeviceCodeCheckResponse),
        (status = 400, description = "No userCode", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "No such code requested by the caller", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
    ))]
pub async fn check(State(state): State<Arc<AppState>>, caller: Caller, Tolerant(body): Tolerant<CheckRequest>) -> ApiResult<Json<DeviceCodeCheckResponse>> {
    let code = body
        .usercode
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::BadRequest("userCode is required: the code restoreDeviceCode answered".into()))?;
    let states = state.store.device_states_by_user_code(&code, caller.owner_filter()).await?;
    if states.is_empty() {
        return Err(ApiError::NotFound(format!("No device code '{}' was requested by you", code.chars().take(32).collect::<String>())));
    }
    Ok(Json(DeviceCodeCheckResponse { authenticated: states.iter().any(|s| s == "signed_in") }))
}

/// Has someone signed in with this code? (v8 path; the same operation as `/v5/DeviceCode/check`.)
#[utoipa::path(post, path = "/v8/DeviceCode/check", tag = "Organization", operation_id = "Organization_CheckDeviceCode", security(("Bearer" = [])),
    request_body = dto::CheckDeviceCode,
    responses(
        (status = 200, description = "Whether the sign-in happened", body = DeviceCodeCheckResponse),
        (status = 400, description = "No userCode", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "No such code requested by the caller", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
    ))]
pub async fn check_v8(state: State<Arc<AppState>>, caller: Caller, body: Tolerant<CheckRequest>) -> ApiResult<Json<DeviceCodeCheckResponse>> {
    check(state, caller, body).await
}

/// Get a device code for a restore (v8 path; the same operation as v5's).
#[utoipa::path(post, path = "/v8/RestoreSessions/{restoreSessionId}/organization/restoreDeviceCode", tag = "RestoreSession",
    operation_id = "RestoreSession_DeviceCodeAction", security(("Bearer" = [])),
    params(("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id")),
    request_body = Option<dto::DeviceCodeRequest>,
    responses(
        (status = 200, description = "The code to enter at the verification page", body = DeviceCodeResponse, links(
            ("CheckDeviceCode" = (operation_id = "Organization_CheckDeviceCode", request_body = json!({"userCode": "$response.body#/userCode"}),
                description = "Whether someone signed in with the code")),
        )),
        (status = 400, description = "Not a GUID; targetOrganizationName without targetRegion or the reverse; unknown region", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
        (status = 409, description = "The session has stopped, or its organization was removed and no custom location is given", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
        (status = 429, description = "Too many device code requests this minute, or too many sign-ins pending (Retry-After in seconds)", body = ExceptionInfo),
        (status = 502, description = "The identity authority refused (its AADSTS code in the message)", body = ExceptionInfo),
        (status = 504, description = "The identity authority is unreachable or too slow", body = ExceptionInfo),
    ))]
pub async fn restore_device_code_v8(
    state: State<Arc<AppState>>,
    caller: Caller,
    id: Path<String>,
    body: Tolerant<DeviceCodeRequest>,
) -> ApiResult<Json<DeviceCodeResponse>> {
    restore_device_code(state, caller, id, body).await
}
