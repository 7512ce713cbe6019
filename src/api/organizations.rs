//! `/v5/Organizations`: add, list, get, delete Microsoft 365 organizations added with modern
//! app-only authentication. Certificates and passwords are sealed and never returned.

use super::auth::Caller;
use super::decode::{lenient_bool, lenient_string, object, Tolerant};
use super::error::{ApiError, ApiResult};
use super::dto::{self, links, AddOrganizationRequest, ExceptionInfo, Organization};
use super::{path_guid, AppState, Version};
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
use serde_json::json;
use std::sync::Arc;

pub const SECRETS_PURPOSE: &str = "organization_secrets";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub struct AddOrganization {
    #[serde(default, deserialize_with = "lenient_string")]
    pub r#type: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub region: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub exchangeonlinesettings: Option<ConnectionSettings>,
    #[serde(default, deserialize_with = "object")]
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
        // Standard base64 as PFX exports write it: padded or not, line breaks ignored, any
        // trailing bits (as the documented pattern says).
        const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let compact: String = cert.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        LENIENT
            .decode(compact)
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

fn public_settings(s: &ConnectionSettings, tenant: &TenantName) -> dto::ConnectionSettings {
    dto::ConnectionSettings {
        use_application_only_auth: true,
        office_organization_name: tenant.to_string(),
        application_id: s.applicationid.as_deref().and_then(parse_guid).map(|g| g.to_string()),
        application_certificate_thumbprint: s.applicationcertificatethumbprint.clone(),
    }
}

/// Add an organization with modern app-only authentication. Certificates and passwords are
/// stored sealed and never returned.
#[utoipa::path(post, path = "/v5/Organizations", tag = "Organization", operation_id = "Organization_Add", security(("Bearer" = [])),
    request_body = AddOrganizationRequest,
    responses(
        (status = 201, description = "The organization", body = Organization, links(
            ("GetOrganization" = (operation_id = "Organization_GetById", parameters(("organizationId" = "$response.body#/id")),
                description = "The organization just added")),
            ("ExploreOrganization" = (operation_id = "Organization_Explore", parameters(("organizationId" = "$response.body#/id")),
                description = "Start a restore session for it")),
            ("RemoveOrganization" = (operation_id = "Organization_Remove", parameters(("organizationId" = "$response.body#/id")),
                description = "Remove it")),
        )),
        (status = 400, description = "Invalid settings", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 409, description = "Already added", body = ExceptionInfo),
        (status = 413, description = "Body too large", body = ExceptionInfo),
    ))]
pub async fn add(
    State(state): State<Arc<AppState>>,
    _caller: Caller,
    version: Version,
    Tolerant(body): Tolerant<AddOrganization>,
) -> ApiResult<impl IntoResponse> {
    let v = validate(&body)?;
    if state.store.organizations().await?.iter().any(|o| o.tenant == v.tenant.as_str()) {
        return Err(ApiError::Conflict(format!("Organization {} has already been added", v.tenant)));
    }
    let id = uuid::Uuid::new_v4();
    let exchange = body.exchangeonlinesettings.as_ref();
    let sharepoint = body.sharepointonlinesettings.as_ref();
    let public = Organization {
        id: id.to_string(),
        name: v.tenant.to_string(),
        office_name: v.tenant.to_string(),
        description: body.description.clone(),
        organization_type: dto::OrganizationType::Office365,
        region: dto::wire_enum(v.region.as_str())?,
        is_exchange_online: body.isexchangeonline.unwrap_or(exchange.is_some()),
        is_share_point_online: body.issharepointonline.unwrap_or(sharepoint.is_some()),
        is_teams_online: body.isteamsonline.unwrap_or(false),
        is_teams_chats_online: body.isteamschatsonline.unwrap_or(false),
        exchange_online_settings: exchange.map(|s| public_settings(s, &v.tenant)),
        share_point_online_settings: sharepoint.map(|s| public_settings(s, &v.tenant)),
        is_backedup: false,
        links: Default::default(),
    };
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
        public_json: serde_json::to_string(&public).map_err(|e| ApiError::Internal(e.into()))?,
        secrets_sealed: state.sealer.seal(SECRETS_PURPOSE, secrets.to_string().as_bytes()),
        created_at: state.clock.now(),
    };
    state.store.insert_organization(&row).await?;
    state.hooks.organization_added(v.region, &v.tenant, &v.application_id).await;
    Ok((StatusCode::CREATED, Json(render(&row, version)?)))
}

pub fn render(row: &OrganizationRow, version: Version) -> ApiResult<Organization> {
    let mut o: Organization = serde_json::from_str(&row.public_json).map_err(|e| ApiError::Internal(e.into()))?;
    o.links = links(&[("self", format!("{}/Organizations/{}", version.prefix(), row.id))]);
    Ok(o)
}

/// List organizations: a bare JSON array in v5.
#[utoipa::path(get, path = "/v5/Organizations", tag = "Organization", operation_id = "Organization_Get", security(("Bearer" = [])),
    responses(
        (status = 200, description = "Every organization", body = [Organization]),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
    ))]
pub async fn list(State(state): State<Arc<AppState>>, _caller: Caller, version: Version) -> ApiResult<Json<Vec<Organization>>> {
    let rows = state.store.organizations().await?;
    Ok(Json(rows.iter().map(|r| render(r, version)).collect::<ApiResult<_>>()?))
}

#[utoipa::path(get, path = "/v5/Organizations/{organizationId}", tag = "Organization", operation_id = "Organization_GetById", security(("Bearer" = [])),
    params(("organizationId" = String, Path, format = Uuid, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = Organization),
        (status = 400, description = "Not a GUID", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 404, description = "Unknown organization", body = ExceptionInfo),
    ))]
pub async fn get(State(state): State<Arc<AppState>>, _caller: Caller, version: Version, Path(id): Path<String>) -> ApiResult<Json<Organization>> {
    let id = path_guid("organizationId", &id)?;
    let row = state
        .store
        .organization(&id.to_string())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Organization {id} was not found")))?;
    Ok(Json(render(&row, version)?))
}

/// Remove an organization (administrators only). Its restore sessions stay.
#[utoipa::path(delete, path = "/v5/Organizations/{organizationId}", tag = "Organization", operation_id = "Organization_Remove", security(("Bearer" = [])),
    params(("organizationId" = String, Path, format = Uuid, description = "Organization id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Not a GUID", body = ExceptionInfo),
        (status = 401, description = "No or bad token", body = ExceptionInfo),
        (status = 403, description = "Not an administrator", body = ExceptionInfo),
        (status = 404, description = "Unknown organization", body = ExceptionInfo),
    ))]
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
