//! Parsers for what real authorities send: numbers as strings, `verification_url` for
//! `verification_uri`, a missing or null `interval`, and error bodies on HTTP 200.

use serde_json::Value;

/// The device authorization response (RFC 8628 section 3.2), as it was understood.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCodeGrant {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: u64,
    pub interval: Option<u64>,
    pub message: Option<String>,
}

impl std::fmt::Debug for DeviceCodeGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The device code is a bearer secret: never in a log line, not even through Debug.
        f.debug_struct("DeviceCodeGrant")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

/// The authority's own words for a refusal: OAuth `error`, `error_description` and Microsoft's
/// `error_codes` (AADSTS numbers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthorityText {
    pub error: String,
    pub description: String,
    pub codes: Vec<i64>,
}

impl AuthorityText {
    /// `error: description` with the description cut to its first line, which for Microsoft holds
    /// the AADSTS code and sentence; the rest is trace and correlation ids.
    pub fn summary(&self) -> String {
        let first = self.description.lines().next().unwrap_or("").trim();
        let first: String = first.chars().take(400).collect();
        if first.is_empty() {
            self.error.clone()
        } else {
            format!("{}: {}", self.error, first)
        }
    }

    pub fn has_code(&self, code: i64) -> bool {
        self.codes.contains(&code) || self.description.contains(&format!("AADSTS{code}"))
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct TokenSet {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A JSON number, or a string holding one, or null / absent.
pub fn flexible_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The OAuth error in a body, if it carries one (whatever the HTTP status).
pub fn error_of(body: &Value) -> Option<AuthorityText> {
    let error = string(body.get("error"))?;
    let description = string(body.get("error_description")).unwrap_or_default();
    let codes = match body.get("error_codes") {
        Some(Value::Array(items)) => items.iter().filter_map(|c| flexible_u64(Some(c)).map(|n| n as i64)).collect(),
        _ => Vec::new(),
    };
    Some(AuthorityText { error, description, codes })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantParse {
    Grant(DeviceCodeGrant),
    Refused(AuthorityText),
    Malformed(String),
}

pub fn device_code_response(status: u16, body: &[u8]) -> GrantParse {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return GrantParse::Malformed(format!("HTTP {status} with a body that is not JSON"));
    };
    if let Some(err) = error_of(&value) {
        return GrantParse::Refused(err);
    }
    if !(200..300).contains(&status) {
        return GrantParse::Malformed(format!("HTTP {status} without an OAuth error"));
    }
    let device_code = string(value.get("device_code"));
    let user_code = string(value.get("user_code"));
    let verification_uri = string(value.get("verification_uri")).or_else(|| string(value.get("verification_url")));
    let expires_in = flexible_u64(value.get("expires_in"));
    match (device_code, user_code, verification_uri, expires_in) {
        (Some(device_code), Some(user_code), Some(verification_uri), Some(expires_in)) => {
            GrantParse::Grant(DeviceCodeGrant {
                device_code,
                user_code,
                verification_uri,
                expires_in,
                interval: flexible_u64(value.get("interval")),
                message: string(value.get("message")),
            })
        }
        _ => GrantParse::Malformed(
            "the device authorization response lacks device_code, user_code, verification_uri or expires_in".into(),
        ),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenParse {
    Tokens(TokenSet),
    Error(AuthorityText),
    Malformed(String),
}

pub fn token_response(status: u16, body: &[u8]) -> TokenParse {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return TokenParse::Malformed(format!("HTTP {status} with a body that is not JSON"));
    };
    if let Some(err) = error_of(&value) {
        return TokenParse::Error(err);
    }
    match string(value.get("access_token")) {
        Some(access_token) if (200..300).contains(&status) => TokenParse::Tokens(TokenSet {
            access_token,
            refresh_token: string(value.get("refresh_token")),
            id_token: string(value.get("id_token")),
            expires_in: flexible_u64(value.get("expires_in")),
            scope: string(value.get("scope")),
        }),
        _ => TokenParse::Malformed(format!("HTTP {status} without access_token or OAuth error")),
    }
}

/// The signed-in account's name from a JWT's payload (`preferred_username`, `upn`, `unique_name`,
/// `email`). Only for display in an event: the signature is the authority's business, not ours.
pub fn account_name(jwt: &str) -> Option<String> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    ["preferred_username", "upn", "unique_name", "email"]
        .iter()
        .find_map(|k| string(claims.get(*k)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_strings_for_numbers_and_verification_url() {
        let body = br#"{"device_code":"d","user_code":"U","verification_url":"https://x/device","expires_in":"900","interval":"5"}"#;
        match device_code_response(200, body) {
            GrantParse::Grant(g) => {
                assert_eq!(g.expires_in, 900);
                assert_eq!(g.interval, Some(5));
                assert_eq!(g.verification_uri, "https://x/device");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn null_or_missing_interval_is_none() {
        let body = br#"{"device_code":"d","user_code":"U","verification_uri":"v","expires_in":600,"interval":null}"#;
        assert!(matches!(device_code_response(200, body), GrantParse::Grant(g) if g.interval.is_none()));
    }

    #[test]
    fn error_on_200_is_an_error() {
        let body = br#"{"error":"authorization_pending","error_description":"AADSTS70016: pending","error_codes":[70016]}"#;
        match token_response(200, body) {
            TokenParse::Error(e) => {
                assert_eq!(e.error, "authorization_pending");
                assert!(e.has_code(70016));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn debug_never_shows_secrets() {
        let g = DeviceCodeGrant {
            device_code: "SECRET-DC".into(),
            user_code: "U".into(),
            verification_uri: "v".into(),
            expires_in: 1,
            interval: None,
            message: None,
        };
        assert!(!format!("{g:?}").contains("SECRET-DC"));
    }
}
