//! What goes over the wire, as the vendor names it. Responses are built from these types, and the
//! OpenAPI document is generated from them, so that the two cannot drift. Requests are decoded
//! tolerantly (see `decode`) into the lowercase-named structs next to each handler; the request
//! types here describe the canonical form for the document.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A request body type for the OpenAPI document: its schema is written by hand in `schemas`,
/// because requests are decoded tolerantly and the document must say what is accepted. The
/// handlers decode into their own lowercase-named structs.
macro_rules! documented_request {
    ($(#[$doc:meta])* $name:ident => $schema:ident $(, $dep:ident)*) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                super::schemas::schema(super::schemas::$schema())
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
            #[allow(unused_variables)]
            fn schemas(out: &mut Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>) {
                $(
                    out.push((stringify!($dep).to_string(), <$dep as utoipa::PartialSchema>::schema()));
                    <$dep as utoipa::ToSchema>::schemas(out);
                )*
            }
        }
    };
}

/// A link to a related resource.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Link {
    pub href: String,
}

/// Related resources by relation name (HAL).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Links(pub BTreeMap<String, Link>);

pub fn links(items: &[(&str, String)]) -> Links {
    Links(items.iter().map(|(k, v)| (k.to_string(), Link { href: v.clone() })).collect())
}

/// A stored enum spelling as its wire type (the store writes the vendor's spellings).
pub fn wire_enum<T: serde::de::DeserializeOwned>(stored: &str) -> Result<T, super::error::ApiError> {
    serde_json::from_value(serde_json::Value::String(stored.to_string()))
        .map_err(|_| super::error::ApiError::Internal(anyhow::anyhow!("stored value '{stored}' has no wire spelling")))
}

/// The error body of every failing call but `/Token`'s.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExceptionInfo {
    /// What went wrong and what to do.
    pub message: String,
    #[schema(schema_with = error_code_schema)]
    pub error_code: &'static str,
}

/// The vendor's error codes (`errorCode` of `RESTExceptionInfo`).
fn error_code_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    super::schemas::schema(serde_json::json!({
        "type": "string",
        "enum": ["ProxyOffline", "OutdatedChangeToken", "ResourceAccessDenied", "ResourceNotFound", "ParameterValidationFailure",
                 "OrganizationTransfer", "RepositoryOwnerChangeTooManyLinks", "Timeout", "OperationConflict", "HttpError"],
        "example": "ParameterValidationFailure"
    }))
}

/// `/Token` errors, as OAuth 2.0 writes them (RFC 6749 section 5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthError {
    /// `invalid_request`, `invalid_grant` or `unsupported_grant_type`.
    pub error: String,
    pub error_description: String,
    pub message: String,
}

documented_request!(
    /// Form fields of `/Token` (JSON is accepted too).
    TokenRequest => token_request_json
);

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    #[serde(rename = "userName")]
    pub user_name: String,
    #[serde(rename = ".issued")]
    pub issued: String,
    #[serde(rename = ".expires")]
    pub expires: String,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum OrganizationType {
    Office365,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum RegionName {
    Worldwide,
    Germany,
    China,
    USDefence,
    USGovernment,
}

/// Connection settings of an organization added with modern app-only authentication, as shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSettings {
    pub use_application_only_auth: bool,
    pub office_organization_name: String,
    #[schema(format = Uuid)]
    pub application_id: Option<String>,
    pub application_certificate_thumbprint: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub office_name: String,
    pub description: Option<String>,
    #[serde(rename = "type")]
    pub organization_type: OrganizationType,
    pub region: RegionName,
    pub is_exchange_online: bool,
    pub is_share_point_online: bool,
    pub is_teams_online: bool,
    pub is_teams_chats_online: bool,
    pub exchange_online_settings: Option<ConnectionSettings>,
    pub share_point_online_settings: Option<ConnectionSettings>,
    pub is_backedup: bool,
    #[serde(rename = "_links", default)]
    pub links: Links,
}

documented_request!(
    /// Connection settings as given when adding an organization.
    ConnectionSettingsInput => connection_settings_input_json
);

documented_request!(
    /// The body of `POST /v5/Organizations`.
    AddOrganizationRequest => add_organization_json,
    ConnectionSettingsInput
);

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum SessionTypeName {
    Vex,
    Veod,
    Vesp,
    Vet,
}

documented_request!(
    /// How to start a restore session (the body of v8's explore).
    ExploreOptions => explore_options_json
);

documented_request!(
    /// `{"explore": {…}}`
    OrganizationAction => organization_action_json,
    ExploreOptions
);

documented_request!(
    /// `{"stop": null}`
    RestoreSessionAction => restore_session_action_json
);

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum SessionStateName {
    Working,
    Stopped,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum SessionResultName {
    Success,
    Warning,
    Failed,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSession {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// Name of the Microsoft 365 organization.
    pub organization: String,
    #[serde(rename = "type")]
    pub session_type: SessionTypeName,
    #[schema(format = DateTime)]
    pub creation_time: String,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    pub state: SessionStateName,
    pub result: SessionResultName,
    pub initiated_by: String,
    pub details: String,
    #[serde(rename = "_links")]
    pub links: Links,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum EventTypeName {
    None,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum EventStatusName {
    Running,
    Success,
    Warning,
    Failed,
    Cancelled,
    Skipped,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSessionEvent {
    #[schema(format = Uuid)]
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: EventTypeName,
    pub status: EventStatusName,
    pub title: String,
    pub message: String,
    #[schema(format = DateTime)]
    pub start_time: String,
    #[schema(format = DateTime)]
    pub end_time: Option<String>,
    /// `HH:MM:SS`
    pub duration: String,
    pub order: i32,
    #[serde(rename = "_links")]
    pub links: Links,
}

documented_request!(
    /// The `offset` query parameter of a page.
    OffsetQuery => offset_json
);

documented_request!(
    /// The `limit` query parameter of a page.
    LimitQuery => limit_json
);

#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub offset: i64,
    pub limit: i64,
    pub results: Vec<T>,
}

documented_request!(
    /// Every property optional: without them the session's organization, its region and its
    /// application are used.
    DeviceCodeRequest => device_code_request_json
);

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCodeResponse {
    /// The code the person types at the verification page.
    pub user_code: String,
    pub verification_url: String,
    /// Seconds before the code expires.
    pub expires_in: i64,
    pub message: String,
}

documented_request!(
    /// `{"userCode": "…"}`
    CheckDeviceCode => check_device_code_json
);

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceCodeCheckResponse {
    pub authenticated: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}
