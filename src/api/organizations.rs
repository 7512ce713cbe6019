//! `/v5/Organizations`: add, list, get, delete Microsoft 365 organizations added with modern
//! app-only authentication. Certificates and passwords are sealed and never returned.

use super::auth::Caller;
use super::decode::{lenient_bool, lenient_string, Tolerant};
use super::error::{ApiError, ApiResult};
use super::{links, path_guid, AppState};
use crate::domain::organization::TenantName;
use crate::domain::region::Region;
use crate::domain::parse_guid;
use crate::store::OrganizationRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub const SECRETS_PURPOSE: &str = "organization_secrets";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct AddOrganization {
    #[serde(default, deserialize_with = "lenient_string")]
    pub r#type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub region: Option<String>,
    #[serde(default)]
    pub exchangeonlinesettings: Option<ConnectionSettings>,
    #[serde(default)]
    pub sharepointonlinesettings: Option<ConnectionSettings>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub isexchangeonline: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub issharepointonline: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub isteamsonline: Option<bool>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub isteamschatsonline: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "lowercase")]
pub struct ConnectionSettings {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub useapplicationonlyauth: Option<bool>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub officeorganizationname: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub applicationid: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub applicationcertificate: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub applicationcertificatepassword: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub applicationcertificatethumbprint: Option<String>,
}

#[derive(Debug)]
struct Validated {
    tenant: TenantName,
    application_id: uuid::Uuid,
    region: Region,
}

fn validate_settings(name: &str, s: &ConnectionSettings) -> ApiResult<(TenantName, uuid::Uuid)> {
    if s.useapplicationonlyauth == Some(false) {
        return Err(ApiError::BadRequest(format!(
            "{name}.useApplicationOnlyAuth is false: restoregate supports organizations added with modern app-only authentication only"
        )));
    }
    let tenant = s
        .officeorganizationname
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest(format!("{name}.officeOrganizationName is required, e.g. abc.onmicrosoft.com")))
        .and_then(|n| TenantName::parse(n).map_err(|e| ApiError::BadRequest(format!("{name}.officeOrganizationName: {e}"))))?;
    let app = s
        .applicationid
        .as_deref()
        .ok_or_else(|| ApiError::BadRequest(format!("{name}.applicationId is required: the Entra ID application's id (a GUID)")))?;
    let application_id = parse_guid(app)
        .ok_or_else(|| ApiError::BadRequest(format!("{name}.applicationId '{}' is not a GUID", app.chars().take(64).collect::<String>())))?;
    if let Some(cert) = &s.applicationcertificate {
        base64::engine::general_purpose::STANDARD
            .decode(cert.trim())
            .map_err(|_| ApiError::BadRequest(format!("{name}.applicationCertificate must be a base64-encoded PFX file")))?;
    }
    Ok((tenant, application_id))
}

fn validate(body: &AddOrganization) -> ApiResult<Validated> {
    if let Some(t) = &body.r#type {
        if !t.eq_ignore_ascii_case("Office365") {
            return Err(ApiError::BadRequest(format!(
                "type '{t}' is not supported: restoregate adds Office365 organizations with modern app-only authentication"
            )));
        }
    }
    let region = match &body.region {
        None => Region::Worldwide,
        Some(r) => r.parse::<Region>().map_err(|e| ApiError::BadRequest(format!("region: {e}")))?,
    };
    let mut found: Vec<(TenantName, uuid::Uuid)> = Vec::new();
    for (name, s) in [
        ("exchangeOnlineSettings", &body.exchangeonlinesettings),
        ("sharePointOnlineSettings", &body.sharepointonlinesettings),
    ] {
        if let Some(s) = s {
            found.push(validate_settings(name, s)?);
        }
    }
    let Some((tenant, application_id)) = found.first().cloned() else {
        return Err(ApiError::BadRequest(
            "exchangeOnlineSettings or sharePointOnlineSettings is required, with useApplicationOnlyAuth, officeOrganizationName and applicationId".into(),
        ));
    };
    if found.iter().any(|(t, _)| *t != tenant) {
        return Err(ApiError::BadRequest(
            "exchangeOnlineSettings and sharePointOnlineSettings name different organizations: use the same officeOrganizationName".into(),
        ));
    }
    Ok(Validated { tenant, application_id, region })
}

fn public_settings(s: &ConnectionSettings, tenant: &TenantName) -> Value {
    json!({
        "useApplicationOnlyAuth": true,
        "officeOrganizationName": tenant.as_str(),
        "applicationId": s.applicationid.as_deref().and_then(parse_guid).map(|g| g.to_string()),
        "applicationCertificateThumbprint": s.applicationcertificatethumbprint,
    })
}

/// `POST /v5/Organizations`
pub async fn add(State(state): State<Arc<AppState>>, _caller: Caller, Tolerant(body): Tolerant<AddOrganization>) -> ApiResult<impl IntoResponse> {
    let v = validate(&body)?;
    if state.store.organizations().await?.iter().any(|o| o.tenant == v.tenant.as_str()) {
        return Err(ApiError::Conflict(format!("Organization {} has already been added", v.tenant)));
    }
    let id = uuid::Uuid::new_v4();
    let exchange = body.exchangeonlinesettings.as_ref();
    let sharepoint = body.sharepointonlinesettings.as_ref();
    let public = json!({
        "type": "Office365",
        "region": v.region.as_str(),
        "name": v.tenant.as_str(),
        "officeName": v.tenant.as_str(),
        "description": body.description,
        "isExchangeOnline": body.isexchangeonline.unwrap_or(exchange.is_some()),
        "isSharePointOnline": body.issharepointonline.unwrap_or(sharepoint.is_some()),
        "isTeamsOnline": body.isteamsonline.unwrap_or(false),
        "isTeamsChatsOnline": body.isteamschatsonline.unwrap_or(false),
        "exchangeOnlineSettings": exchange.map(|s| public_settings(s, &v.tenant)),
        "sharePointOnlineSettings": sharepoint.map(|s| public_settings(s, &v.tenant)),
        "isBackedup": false,
    });
    let secrets = json!({
        "exchange": exchange.map(|s| json!({"certificate": s.applicationcertificate, "password": s.applicationcertificatepassword})),
        "sharepoint": sharepoint.map(|s| json!({"certificate": s.applicationcertificate, "password": s.applicationcertificatepassword})),
    });
    let row = OrganizationRow {
        id: id.to_string(),
        name: v.tenant.to_string(),
        region: v.region.as_str().to_string(),
        tenant: v.tenant.to_string(),
        application_id: v.application_id.to_string(),
        public_json: public.to_string(),
        secrets_sealed: state.sealer.seal(SECRETS_PURPOSE, secrets.to_string().as_bytes()),
        created_at: state.clock.now(),
    };
    state.store.insert_organization(&row).await?;
    state.hooks.organization_added(v.region, &v.tenant, &v.application_id).await;
    Ok((StatusCode::CREATED, Json(render(&row))))
}

pub fn render(row: &OrganizationRow) -> Value {
    let mut v: Value = serde_json::from_str(&row.public_json).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        map.insert("id".into(), json!(row.id));
        map.insert("_links".into(), links(&[("self", format!("/v5/Organizations/{}", row.id))]));
    }
    v
}

/// `GET /v5/Organizations`: a bare JSON array in v5.
pub async fn list(State(state): State<Arc<AppState>>, _caller: Caller) -> ApiResult<Json<Vec<Value>>> {
    Ok(Json(state.store.organizations().await?.iter().map(render).collect()))
}

pub async fn get(State(state): State<Arc<AppState>>, _caller: Caller, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let id = path_guid("organizationId", &id)?;
    let row = state
        .store
        .organization(&id.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Organization {id} was not found")))?;
    Ok(Json(render(&row)))
}

pub async fn delete(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = path_guid("organizationId", &id)?;
    if !caller.0.is_admin {
        return Err(ApiError::Forbidden("Only an administrator can remove organizations".into()));
    }
    if state.store.delete_organization(&id.to_string()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("Organization {id} was not found")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_needs_tenant_and_application() {
        let body: AddOrganization = super::super::decode::decode(
            br#"{"Type":"Office365","Region":"worldwide","ExchangeOnlineSettings":{"UseApplicationOnlyAuth":"true",
                "OfficeOrganizationName":"ABC.onmicrosoft.com","ApplicationId":"{11111111-2222-3333-4444-555555555555}"},}"#,
        )
        .unwrap();
        let v = validate(&body).unwrap();
        assert_eq!(v.tenant.as_str(), "abc.onmicrosoft.com");
        assert_eq!(v.region, Region::Worldwide);
        let missing: AddOrganization = super::super::decode::decode(br#"{"exchangeOnlineSettings":{"officeOrganizationName":"a.b"}}"#).unwrap();
        assert!(validate(&missing).unwrap_err().to_string().contains("applicationId"));
    }
}
