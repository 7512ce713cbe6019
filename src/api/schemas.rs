//! The documented schemas of request bodies. Requests are decoded tolerantly (`decode`): booleans
//! as strings, `null` or `""` for absent optional values, portal date formats, values in any case.
//! A client (or a property-based tester) reading the OpenAPI document must find there what the
//! server accepts, so these schemas state the tolerated spellings next to the canonical ones, and
//! the constraints the handlers check (tenant names, GUIDs, base64, "both or neither").
//!
//! They are written as JSON Schema (OpenAPI 3.1) and read into utoipa's model; a unit test checks
//! that the model keeps every keyword (nothing silently dropped).

use serde_json::{json, Value};
use utoipa::openapi::{RefOr, Schema};

/// A tenant: a domain such as `abc.onmicrosoft.com` (labels of letters, digits and inner hyphens,
/// at least two) or the tenant's GUID. Same rule as `TenantName::parse`.
pub const TENANT_PATTERN: &str = r"^(?:(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})$";

/// Standard base64, padded or not.
pub const BASE64_PATTERN: &str = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}(?:==)?|[A-Za-z0-9+/]{3}=?)?$";

/// Portals' dates: `2021.03.15 14:30`, `2021.03.15 14:30:00`, `2021-03-15 14:30:00.000`.
pub const PORTAL_DATE_PATTERN: &str = r"^[0-9]{4}(?:\.(?:0[1-9]|1[0-2])\.(?:0[1-9]|1[0-9]|2[0-8])|-(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])) (?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,9})?)?$";

pub const REGIONS: [&str; 5] = ["Worldwide", "Germany", "China", "USDefence", "USGovernment"];

/// Reads a JSON Schema into utoipa's model.
pub fn schema(value: Value) -> RefOr<Schema> {
    serde_json::from_value(value).expect("a schema utoipa can represent")
}

/// `true` or `false`; also `"true"` / `"false"` (any case), `1` / `0`, and `null` or `""` (absent).
pub fn lenient_bool_json(description: &str) -> Value {
    json!({
        "description": format!("{description} A boolean; \"true\"/\"false\" as strings (any case), 1/0, null and \"\" (absent) are accepted too."),
        "anyOf": [
            {"type": "boolean"},
            {"type": "string", "enum": ["true", "false", "True", "False", "TRUE", "FALSE", ""]},
            {"type": "integer", "enum": [0, 1]},
            {"type": "null"}
        ]
    })
}

/// A string; a number or boolean given instead is read as its text.
pub fn lenient_string_json(description: &str) -> Value {
    json!({"type": ["string", "number", "boolean", "null"], "description": description})
}

/// An optional value given as `null` or `""`: the same as leaving it out.
fn absent_json() -> Value {
    json!({"type": ["string", "null"], "enum": ["", null]})
}

fn region_json(description: &str) -> Value {
    json!({"type": "string", "enum": REGIONS, "description": format!("{description} Matched without regard to case.")})
}

fn tenant_json(description: &str) -> Value {
    json!({"type": "string", "maxLength": 253, "pattern": TENANT_PATTERN, "example": "abc.onmicrosoft.com", "description": description})
}

pub fn token_request_json() -> Value {
    json!({
        "type": "object",
        "required": ["grant_type"],
        "description": "Form fields (or a JSON object). Unknown fields are ignored.",
        "properties": {
            "grant_type": {"type": "string", "enum": ["password", "refresh_token"], "example": "password"},
            "username": {"type": "string", "description": "Required with the password grant.", "example": "admin"},
            "password": {"type": "string", "format": "password", "description": "Required with the password grant."},
            "refresh_token": {"type": "string", "description": "Required with the refresh_token grant; each works once."}
        }
    })
}

pub fn connection_settings_input_json() -> Value {
    json!({
        "type": "object",
        "required": ["officeOrganizationName", "applicationId"],
        "description": "Connection settings of an organization added with modern app-only authentication. Property names are matched without regard to case.",
        "properties": {
            "useApplicationOnlyAuth": {
                "description": "Must be true (or left out): only modern app-only authentication is supported. \"true\" as a string and 1 are accepted too.",
                "anyOf": [
                    {"type": "boolean", "enum": [true]},
                    {"type": "string", "enum": ["true", "True", "TRUE", ""]},
                    {"type": "integer", "enum": [1]},
                    {"type": "null"}
                ]
            },
            "officeOrganizationName": tenant_json("The organization: its domain (e.g. abc.onmicrosoft.com) or its tenant GUID. With both exchangeOnlineSettings and sharePointOnlineSettings, both must name the same organization."),
            "applicationId": {"type": "string", "format": "uuid", "description": "The Entra ID application's id."},
            "applicationCertificate": {
                "type": ["string", "null"], "pattern": BASE64_PATTERN, "writeOnly": true,
                "description": "Base64-encoded PFX file. Stored sealed, never returned."
            },
            "applicationCertificatePassword": {
                "type": ["string", "number", "boolean", "null"], "writeOnly": true,
                "description": "Password of the PFX file. Stored sealed, never returned."
            },
            "applicationCertificateThumbprint": lenient_string_json("Thumbprint of the certificate.")
        }
    })
}

pub fn add_organization_json() -> Value {
    let settings = json!({"anyOf": [{"$ref": "#/components/schemas/ConnectionSettingsInput"}, {"type": "null"}]});
    json!({
        "description": "An Office 365 organization added with modern app-only authentication: exchangeOnlineSettings or sharePointOnlineSettings (or both) is required. Property names are matched without regard to case; unknown properties are ignored.",
        "allOf": [
            {
                "type": "object",
                "properties": {
                    "type": {"type": ["string", "null"], "enum": ["Office365", null], "description": "Office365 (any case) or left out."},
                    "region": {"type": ["string", "null"], "enum": [REGIONS[0], REGIONS[1], REGIONS[2], REGIONS[3], REGIONS[4], null],
                               "description": "Worldwide when left out. Matched without regard to case."},
                    "description": lenient_string_json("Free text."),
                    "exchangeOnlineSettings": settings.clone(),
                    "sharePointOnlineSettings": settings,
                    "isExchangeOnline": lenient_bool_json("Whether Exchange Online data is processed; true when exchangeOnlineSettings is given."),
                    "isSharePointOnline": lenient_bool_json("Whether SharePoint Online data is processed; true when sharePointOnlineSettings is given."),
                    "isTeamsOnline": lenient_bool_json("Whether Teams data is processed."),
                    "isTeamsChatsOnline": lenient_bool_json("Whether Teams chats are processed.")
                }
            },
            {
                "anyOf": [
                    {"type": "object", "required": ["exchangeOnlineSettings"], "properties": {"exchangeOnlineSettings": {"type": "object"}}},
                    {"type": "object", "required": ["sharePointOnlineSettings"], "properties": {"sharePointOnlineSettings": {"type": "object"}}}
                ]
            }
        ]
    })
}

pub fn explore_options_json() -> Value {
    json!({
        "type": "object",
        "description": "How to start a restore session. Property names are matched without regard to case; unknown properties are ignored.",
        "properties": {
            "dateTime": {
                "description": "Point in time to explore; the latest when left out. ISO 8601 (2021-03-15T14:30:00Z; without a zone: UTC) or as portals write it: 2021.03.15 14:30, 2021.03.15 14:30:00, 2021-03-15 14:30:00.000.",
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {"type": "string", "pattern": PORTAL_DATE_PATTERN},
                    absent_json()
                ]
            },
            "type": {
                "type": ["string", "null"],
                "enum": ["Vex", "Veod", "Vesp", "Vet", "vex", "veod", "vesp", "vet", null],
                "description": "Exchange (vex, the default), OneDrive (veod), SharePoint (vesp) or Teams (vet), in any case."
            },
            "showDeleted": lenient_bool_json("Whether items deleted before the point in time are shown."),
            "showAllVersions": lenient_bool_json("Whether every version of items is shown.")
        }
    })
}

pub fn organization_action_json() -> Value {
    json!({
        "type": "object",
        "required": ["explore"],
        "description": "`{\"explore\": {…}}` starts a restore session.",
        "properties": {"explore": {"$ref": "#/components/schemas/ExploreOptions"}}
    })
}

pub fn restore_session_action_json() -> Value {
    json!({
        "type": "object",
        "required": ["stop"],
        "description": "`{\"stop\": null}` stops the session (the value of stop is not read).",
        "properties": {"stop": {"type": ["null", "object", "boolean", "string", "number", "array"], "description": "Usually null."}}
    })
}

pub fn device_code_request_json() -> Value {
    let application = json!({
        "description": "The Entra ID application used for the restore; the organization's when left out.",
        "anyOf": [{"type": "string", "format": "uuid"}, absent_json()]
    });
    json!({
        "description": "Every property is optional. targetOrganizationName and targetRegion are needed only to restore to a custom location, and then both are; without them the session's organization and its region are used. Property names are matched without regard to case.",
        "anyOf": [
            {
                "type": "object",
                "title": "The session's organization",
                "properties": {
                    "targetApplicationId": application.clone(),
                    "targetOrganizationName": absent_json(),
                    "targetRegion": absent_json()
                }
            },
            {
                "type": "object",
                "title": "A custom location",
                "required": ["targetOrganizationName", "targetRegion"],
                "properties": {
                    "targetApplicationId": application,
                    "targetOrganizationName": tenant_json("The organization to restore to: its domain or tenant GUID."),
                    "targetRegion": region_json("The region of that organization.")
                }
            }
        ]
    })
}

pub fn check_device_code_json() -> Value {
    json!({
        "type": "object",
        "required": ["userCode"],
        "properties": {
            "userCode": {"type": "string", "pattern": r"\S", "description": "The userCode that restoreDeviceCode answered.", "example": "QXBT-MHLR"}
        }
    })
}

/// A whole number from 0 to `maximum` as a query parameter; empty means the default.
fn page_number_json(maximum: i64, description: &str) -> Value {
    json!({
        "description": format!("{description} An empty value means the default."),
        "anyOf": [
            {"type": "integer", "minimum": 0, "maximum": maximum},
            {"type": "string", "enum": [""]}
        ]
    })
}

pub fn offset_json() -> Value {
    page_number_json(i64::from(i32::MAX), "Items to skip, 0 by default.")
}

pub fn limit_json() -> Value {
    page_number_json(10_000, "Page size, 30 by default, at most 10000.")
}

/// Every hand-written schema, by component name (for the round-trip test).
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("TokenRequest", token_request_json()),
        ("ConnectionSettingsInput", connection_settings_input_json()),
        ("AddOrganizationRequest", add_organization_json()),
        ("ExploreOptions", explore_options_json()),
        ("OrganizationAction", organization_action_json()),
        ("RestoreSessionAction", restore_session_action_json()),
        ("DeviceCodeRequest", device_code_request_json()),
        ("CheckDeviceCode", check_device_code_json()),
        ("offset", offset_json()),
        ("limit", limit_json()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utoipa_keeps_every_keyword() {
        for (name, value) in all() {
            let read = schema(value.clone());
            let back = serde_json::to_value(&read).unwrap();
            assert_eq!(back, value, "{name} lost keywords in utoipa's model");
        }
    }

    #[test]
    fn documented_examples_are_accepted_by_the_handlers() {
        // The patterns are exercised against the server by tests/interop/schemathesis.sh; here,
        // the spellings the descriptions name.
        for ok in ["abc.onmicrosoft.com", "ABC.onmicrosoft.com.", "a-b.c", "6f1a2b3c-0000-4000-8000-000000000001"] {
            assert!(crate::domain::organization::TenantName::parse(ok).is_ok(), "{ok}");
        }
        for ok in ["2021.03.15 14:30", "2021.03.15 14:30:00", "2021-03-15 14:30:00.000", "2021-03-15T14:30:00Z"] {
            assert!(super::super::decode::parse_date(ok).is_some(), "{ok}");
        }
    }
}
