//! Restore sessions: explore (start), list, get, stop, events.

use super::auth::Caller;
use super::decode::{self, lenient_bool, lenient_date, lenient_string, Tolerant};
use super::error::{ApiError, ApiResult};
use super::dto::{self, links, ExceptionInfo, Page, RestoreSession, RestoreSessionEvent};
use super::{page, path_guid, AppState, Version};
use crate::clock::iso;
use crate::domain::session::{duration_hms, EventStatus, SessionType};
use crate::store::{NewEvent, SessionRow};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct OrganizationAction {
    #[serde(default, deserialize_with = "decode::object")]
    pub explore: Option<ExploreOptions>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct ExploreOptions {
    #[serde(default, deserialize_with = "lenient_date")]
    pub datetime: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub r#type: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub showdeleted: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub showallversions: Option<bool>,
}

/// Start a restore session: `{"explore": {"datetime", "type", "showDeleted", "showAllVersions"}}`.
#[utoipa::path(post, path = "/v5/Organizations/{organizationId}/Action", tag = "Organization", operation_id = "Organization_Explore",
    security(("Bearer" = [])),
    params(("organizationId" = String, Path, format = Uuid, description = "Organization id")),
    request_body = dto::OrganizationAction,
    responses(
        (status = 201, description = "The new restore session", body = RestoreSession, links(
            ("GetRestoreSession" = (operation_id = "RestoreSession_GetByRestoreSessionId", parameters(("restoreSessionId" = "$response.body#/id")),
                description = "The session just started")),
            ("GetRestoreSessionEvents" = (operation_id = "RestoreSessionEvent_Get", parameters(("restoreSessionId" = "$response.body#/id")),
                description = "Its events")),
            ("GetRestoreDeviceCode" = (operation_id = "RestoreSession_DeviceCodeAction", parameters(("restoreSessionId" = "$response.body#/id")),
                request_body = json!({}), description = "A device code for a restore from it, into the session's organization")),
            ("StopRestoreSession" = (operation_id = "RestoreSession_Action", parameters(("restoreSessionId" = "$response.body#/id")),
                description = "Stop it")),
        )),
        (status = 400, description = "Invalid options", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown organization", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
    ))]
pub async fn explore(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    Tolerant(body): Tolerant<OrganizationAction>,
) -> ApiResult<impl IntoResponse> {
    let Some(options) = body.explore else {
        return Err(ApiError::BadRequest(
            "The body must name an action: {\"explore\": {\"datetime\": \"…\", \"type\": \"vex\"}}".into(),
        ));
    };
    start_session(&state, &caller, version, &id, options).await
}

/// Start a restore session (v8: the options are the body).
#[utoipa::path(post, path = "/v8/Organizations/{organizationId}/explore", tag = "Organization", operation_id = "Organization_Explore",
    security(("Bearer" = [])),
    params(("organizationId" = String, Path, format = Uuid, description = "Organization id")),
    request_body = Option<dto::ExploreOptions>,
    responses(
        (status = 201, description = "The new restore session", body = RestoreSession, links(
            ("GetRestoreSession" = (operation_id = "RestoreSession_GetByRestoreSessionId", parameters(("restoreSessionId" = "$response.body#/id")),
                description = "The session just started")),
            ("GetRestoreSessionEvents" = (operation_id = "RestoreSessionEvent_Get", parameters(("restoreSessionId" = "$response.body#/id")),
                description = "Its events")),
            ("GetRestoreDeviceCode" = (operation_id = "RestoreSession_DeviceCodeAction", parameters(("restoreSessionId" = "$response.body#/id")),
                request_body = json!({}), description = "A device code for a restore from it, into the session's organization")),
            ("StopRestoreSession" = (operation_id = "RestoreSession_StopAction", parameters(("restoreSessionId" = "$response.body#/id")),
                description = "Stop it")),
        )),
        (status = 400, description = "Invalid options", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown organization", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
    ))]
pub async fn explore_v8(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    Tolerant(options): Tolerant<ExploreOptions>,
) -> ApiResult<impl IntoResponse> {
    start_session(&state, &caller, version, &id, options).await
}

async fn start_session(
    state: &AppState,
    caller: &Caller,
    version: Version,
    raw_org_id: &str,
    options: ExploreOptions,
) -> ApiResult<(StatusCode, Json<RestoreSession>)> {
    let org_id = path_guid("organizationId", raw_org_id)?;
    let org = state
        .store
        .organization(&org_id.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Organization {org_id} was not found")))?;
    let session_type = match &options.r#type {
        None => SessionType::Vex,
        Some(t) => t.parse::<SessionType>().map_err(|e| ApiError::BadRequest(format!("explore.type: {e}")))?,
    };
    let now = state.clock.now();
    let point_in_time = options.datetime.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let details = format!(
        "Point in time: {}; show deleted items: {}; show all versions: {}",
        point_in_time.as_deref().unwrap_or("latest"),
        options.showdeleted.unwrap_or(false),
        options.showallversions.unwrap_or(false)
    );
    let row = SessionRow {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("{} - {}", org.name, session_type.describe()),
        organization_id: org.id.clone(),
        organization_name: org.name.clone(),
        session_type: session_type.as_str().to_string(),
        creation_time: now,
        end_time: None,
        state: "Working".into(),
        result: "Success".into(),
        initiated_by: caller.0.name.clone(),
        initiated_by_id: caller.0.id.clone(),
        details,
    };
    let event = NewEvent {
        status: EventStatus::Success,
        title: "Restore session started".into(),
        message: format!("{} restore session for {} started by {}", session_type.describe(), org.name, caller.0.name),
        start_time: now,
        end_time: Some(now),
    };
    state.store.insert_session(&row, &event).await?;
    Ok((StatusCode::CREATED, Json(render(&row, version)?)))
}

pub fn render(s: &SessionRow, version: Version) -> ApiResult<RestoreSession> {
    let base = format!("{}/RestoreSessions/{}", version.prefix(), s.id);
    Ok(RestoreSession {
        id: s.id.clone(),
        name: s.name.clone(),
        organization: s.organization_name.clone(),
        session_type: dto::wire_enum(&s.session_type)?,
        creation_time: iso(s.creation_time),
        end_time: s.end_time.map(iso),
        state: dto::wire_enum(&s.state)?,
        result: dto::wire_enum(&s.result)?,
        initiated_by: s.initiated_by.clone(),
        details: s.details.clone(),
        links: links(&[
            ("self", base.clone()),
            ("organization", format!("{}/Organizations/{}", version.prefix(), s.organization_id)),
            ("events", format!("{base}/Events")),
        ]),
    })
}

/// A session the caller may see, or 404 (sessions of others are not disclosed).
pub async fn visible_session(state: &AppState, caller: &Caller, raw_id: &str) -> ApiResult<SessionRow> {
    let id = path_guid("restoreSessionId", raw_id)?;
    match state.store.session(&id.to_string()).await? {
        Some(s) if caller.may_see(&s.initiated_by_id) => Ok(s),
        _ => Err(ApiError::NotFound(format!("Restore session {id} was not found"))),
    }
}

/// List restore sessions the caller may see, oldest first.
#[utoipa::path(get, path = "/v5/RestoreSessions", tag = "RestoreSession", operation_id = "RestoreSession_GetPage", security(("Bearer" = [])),
    params(
        ("offset" = inline(Option<dto::OffsetQuery>), Query, description = "Sessions to skip"),
        ("limit" = inline(Option<dto::LimitQuery>), Query, description = "Page size, 30 by default, at most 10000"),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = Page<RestoreSession>),
        (status = 400, description = "Bad offset or limit", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
    ))]
pub async fn list(State(state): State<Arc<AppState>>, caller: Caller, version: Version, RawQuery(query): RawQuery) -> ApiResult<Json<Page<RestoreSession>>> {
    let (offset, limit) = page(query.as_deref())?;
    let rows = state.store.sessions(caller.owner_filter(), offset, limit).await?;
    let results = rows.iter().map(|r| render(r, version)).collect::<ApiResult<_>>()?;
    Ok(Json(Page { offset, limit, results }))
}

#[utoipa::path(get, path = "/v5/RestoreSessions/{restoreSessionId}", tag = "RestoreSession", operation_id = "RestoreSession_GetByRestoreSessionId", security(("Bearer" = [])),
    params(("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id")),
    responses(
        (status = 200, description = "The session", body = RestoreSession),
        (status = 400, description = "Not a GUID", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
    ))]
pub async fn get(State(state): State<Arc<AppState>>, caller: Caller, version: Version, Path(id): Path<String>) -> ApiResult<Json<RestoreSession>> {
    Ok(Json(render(&visible_session(&state, &caller, &id).await?, version)?))
}

/// Stop a restore session: `{"stop": null}`. Answers 200 with an empty body.
#[utoipa::path(post, path = "/v5/RestoreSessions/{restoreSessionId}/Action", tag = "RestoreSession", operation_id = "RestoreSession_Action", security(("Bearer" = [])),
    params(("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id")),
    request_body = dto::RestoreSessionAction,
    responses(
        (status = 200, description = "Stopped (empty body)"),
        (status = 400, description = "Not a GUID, or no action", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
        (status = 409, description = "Already stopped", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
    ))]
pub async fn action(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let session = visible_session(&state, &caller, &id).await?;
    let value = decode::parse_value(&body)?;
    let is_stop = value.as_object().is_some_and(|m| m.contains_key("stop"));
    if !is_stop {
        return Err(ApiError::BadRequest("The body must name an action: {\"stop\": null}".into()));
    }
    stop(&state, &caller, &session).await?;
    Ok(StatusCode::OK)
}

/// Stop a restore session (v8). Answers 204.
#[utoipa::path(post, path = "/v8/RestoreSessions/{restoreSessionId}/Stop", tag = "RestoreSession", operation_id = "RestoreSession_StopAction", security(("Bearer" = [])),
    params(("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id")),
    responses(
        (status = 204, description = "Stopped"),
        (status = 400, description = "Not a GUID", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
        (status = 409, description = "Already stopped", body = ExceptionInfo),
    ))]
pub async fn stop_v8(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let session = visible_session(&state, &caller, &id).await?;
    stop(&state, &caller, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stop(state: &AppState, caller: &Caller, session: &SessionRow) -> ApiResult<()> {
    let now = state.clock.now();
    let event = NewEvent {
        status: EventStatus::Success,
        title: "Restore session stopped".into(),
        message: format!("Stopped by {}", caller.0.name),
        start_time: now,
        end_time: Some(now),
    };
    if state.store.stop_session(&session.id, now, &event).await? {
        state.follower.cancel_session(&session.id);
        Ok(())
    } else {
        Err(ApiError::Conflict(format!("Restore session {} has already stopped", session.id)))
    }
}

#[utoipa::path(get, path = "/v5/RestoreSessions/{restoreSessionId}/Events", tag = "RestoreSession", operation_id = "RestoreSessionEvent_Get", security(("Bearer" = [])),
    params(
        ("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id"),
        ("offset" = inline(Option<dto::OffsetQuery>), Query, description = "Events to skip"),
        ("limit" = inline(Option<dto::LimitQuery>), Query, description = "Page size, 30 by default, at most 10000"),
    ),
    responses(
        (status = 200, description = "A page of events, in order", body = Page<RestoreSessionEvent>),
        (status = 400, description = "Not a GUID, or bad offset or limit", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
    ))]
pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    version: Version,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Page<RestoreSessionEvent>>> {
    let session = visible_session(&state, &caller, &id).await?;
    let (offset, limit) = page(query.as_deref())?;
    let rows = state.store.events(&session.id, offset, limit).await?;
    let results = rows
        .iter()
        .map(|e| {
            Ok(RestoreSessionEvent {
                id: e.id.clone(),
                event_type: dto::EventTypeName::None,
                status: dto::wire_enum(&e.status)?,
                title: e.title.clone(),
                message: e.message.clone(),
                start_time: iso(e.start_time),
                end_time: e.end_time.map(iso),
                duration: duration_hms(e.end_time.unwrap_or(e.start_time) - e.start_time),
                order: e.ord as i32,
                links: links(&[("restoreSession", format!("{}/RestoreSessions/{}", version.prefix(), session.id))]),
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(Page { offset, limit, results }))
}

// The same operations on the v8 paths (routed to the handlers above), so that the v8 document
// describes every v8 route.

/// List restore sessions the caller may see, oldest first (v8 path).
#[utoipa::path(get, path = "/v8/RestoreSessions", tag = "RestoreSession", operation_id = "RestoreSession_GetPage", security(("Bearer" = [])),
    params(
        ("offset" = inline(Option<dto::OffsetQuery>), Query, description = "Sessions to skip"),
        ("limit" = inline(Option<dto::LimitQuery>), Query, description = "Page size, 30 by default, at most 10000"),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = Page<RestoreSession>),
        (status = 400, description = "Bad offset or limit", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
    ))]
pub async fn list_v8(state: State<Arc<AppState>>, caller: Caller, version: Version, query: RawQuery) -> ApiResult<Json<Page<RestoreSession>>> {
    list(state, caller, version, query).await
}

/// A restore session (v8 path).
#[utoipa::path(get, path = "/v8/RestoreSessions/{restoreSessionId}", tag = "RestoreSession", operation_id = "RestoreSession_GetByRestoreSessionId",
    security(("Bearer" = [])),
    params(("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id")),
    responses(
        (status = 200, description = "The session", body = RestoreSession),
        (status = 400, description = "Not a GUID", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
    ))]
pub async fn get_v8(state: State<Arc<AppState>>, caller: Caller, version: Version, id: Path<String>) -> ApiResult<Json<RestoreSession>> {
    get(state, caller, version, id).await
}

/// The events of a restore session (v8 path).
#[utoipa::path(get, path = "/v8/RestoreSessions/{restoreSessionId}/Events", tag = "RestoreSession", operation_id = "RestoreSessionEvent_Get",
    security(("Bearer" = [])),
    params(
        ("restoreSessionId" = String, Path, format = Uuid, description = "Restore session id"),
        ("offset" = inline(Option<dto::OffsetQuery>), Query, description = "Events to skip"),
        ("limit" = inline(Option<dto::LimitQuery>), Query, description = "Page size, 30 by default, at most 10000"),
    ),
    responses(
        (status = 200, description = "A page of events, in order", body = Page<RestoreSessionEvent>),
        (status = 400, description = "Not a GUID, or bad offset or limit", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown session, or another user's", body = ExceptionInfo),
    ))]
pub async fn events_v8(
    state: State<Arc<AppState>>,
    caller: Caller,
    version: Version,
    id: Path<String>,
    query: RawQuery,
) -> ApiResult<Json<Page<RestoreSessionEvent>>> {
    events(state, caller, version, id, query).await
}
