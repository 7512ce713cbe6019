//! Restore sessions: explore (start), list, get, stop, events.

use super::auth::Caller;
use super::decode::{self, lenient_bool, lenient_date, lenient_string, Tolerant};
use super::error::{ApiError, ApiResult};
use super::{links, page, path_guid, AppState};
use crate::clock::iso;
use crate::domain::session::{duration_hms, EventStatus, SessionType};
use crate::store::{NewEvent, SessionRow};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct OrganizationAction {
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

/// `POST /v5/Organizations/{id}/Action` with `{"explore": {…}}`: 201 with the new session.
pub async fn explore(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    Tolerant(body): Tolerant<OrganizationAction>,
) -> ApiResult<impl IntoResponse> {
    let org_id = path_guid("organizationId", &id)?;
    let Some(options) = body.explore else {
        return Err(ApiError::BadRequest(
            "The body must name an action: {\"explore\": {\"datetime\": \"…\", \"type\": \"vex\"}}".into(),
        ));
    };
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
    Ok((StatusCode::CREATED, Json(render(&row))))
}

pub fn render(s: &SessionRow) -> Value {
    let base = format!("/v5/RestoreSessions/{}", s.id);
    json!({
        "id": s.id,
        "name": s.name,
        "organization": s.organization_name,
        "type": s.session_type,
        "creationTime": iso(s.creation_time),
        "endTime": s.end_time.map(iso),
        "state": s.state,
        "result": s.result,
        "initiatedBy": s.initiated_by,
        "details": s.details,
        "_links": links(&[
            ("self", base.clone()),
            ("organization", format!("/v5/Organizations/{}", s.organization_id)),
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

pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let (offset, limit) = page(query.as_deref())?;
    let rows = state.store.sessions(caller.owner_filter(), offset, limit).await?;
    Ok(Json(json!({
        "offset": offset,
        "limit": limit,
        "results": rows.iter().map(render).collect::<Vec<_>>(),
    })))
}

pub async fn get(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(render(&visible_session(&state, &caller, &id).await?)))
}

/// `POST /v5/RestoreSessions/{id}/Action` with `{"stop": null}`: 200 with an empty body.
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
        Ok(StatusCode::OK)
    } else {
        Err(ApiError::Conflict(format!("Restore session {} has already stopped", session.id)))
    }
}

pub async fn events(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let session = visible_session(&state, &caller, &id).await?;
    let (offset, limit) = page(query.as_deref())?;
    let rows = state.store.events(&session.id, offset, limit).await?;
    let results: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "type": "None",
                "status": e.status,
                "title": e.title,
                "message": e.message,
                "startTime": iso(e.start_time),
                "endTime": e.end_time.map(iso),
                "duration": duration_hms(e.end_time.unwrap_or(e.start_time) - e.start_time),
                "order": e.ord,
                "_links": links(&[("restoreSession", format!("/v5/RestoreSessions/{}", session.id))]),
            })
        })
        .collect();
    Ok(Json(json!({ "offset": offset, "limit": limit, "results": results })))
}
