//! One tolerant request decoder for every JSON body, as lenient as the original server: trailing
//! commas, property names in any case, booleans and numbers as strings, `null` for optional
//! values, several date formats, unknown properties ignored. Strict where it matters: a wrong
//! type for a value is a 400 that names the property.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Largest request body we read (organizations carry base64 certificates).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A JSON body decoded tolerantly into `T`, whose fields must be named in lowercase
/// (`#[serde(rename_all = "lowercase")]`): property names arrive in any case.
pub struct Tolerant<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Tolerant<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = read_body(req, state).await?;
        decode(&bytes).map(Tolerant)
    }
}

pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("The request body is larger than {MAX_BODY_BYTES} bytes"))
        } else {
            ApiError::BadRequest(format!("Cannot read the request body: {rejection}"))
        }
    })
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value = match parse_value(bytes)? {
        // A body of `null` says as little as an empty one.
        Value::Null => Value::Object(Default::default()),
        value => value,
    };
    // serde fills a struct from an array too (positionally): every body is an object.
    if !value.is_object() {
        return Err(ApiError::BadRequest(format!("The request body must be a JSON object, not {}", kind(&value))));
    }
    from_value(value)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Marks an error from a nested object (`object`): NESTED path NESTED message.
const NESTED: &str = "\u{1}";

fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut path = e.path().to_string();
        let mut inner = e.into_inner().to_string();
        if let Some(rest) = inner.strip_prefix(NESTED) {
            if let Some((nested, message)) = rest.split_once(NESTED) {
                if nested != "." {
                    path = if path == "." { nested.to_string() } else { format!("{path}.{nested}") };
                }
                inner = message.to_string();
            }
        }
        if path == "." {
            ApiError::BadRequest(format!("The request body is not valid: {inner}"))
        } else {
            ApiError::BadRequest(format!("Property '{path}' is not valid: {inner}"))
        }
    })
}

/// Parses a body into JSON with property names lowercased. An empty body is `{}`.
pub fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| ApiError::BadRequest("The request body is not UTF-8 text".into()))?;
    let text = text.trim_start_matches('\u{feff}');
    if text.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let cleaned = strip_trailing_commas(text);
    let value: Value = serde_json::from_str(&cleaned).map_err(|e| {
        ApiError::BadRequest(format!("The request body is not valid JSON (line {}, column {}): {}", e.line(), e.column(), e))
    })?;
    Ok(lowercase_keys(value))
}

/// Removes commas that stand before a closing `}` or `]`, outside strings.
pub fn strip_trailing_commas(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for (i, &c) in chars.iter().enumerate() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c == '"' {
            in_string = true;
        } else if c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some('}') | Some(']')) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k.to_lowercase(), lowercase_keys(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// A nested object (null is None). Not an array: serde would fill a struct from one by position.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => serde_path_to_error::deserialize(v).map(Some).map_err(|e| {
            // Carries the inner path out, for `from_value` to join with the outer one.
            let path = e.path().to_string();
            D::Error::custom(format!("{NESTED}{path}{NESTED}{}", e.into_inner()))
        }),
        Some(other) => Err(D::Error::custom(format!("expected an object, found {}", kind(&other)))),
    }
}

/// `true`, `false`, `"true"`, `"False"`, `1`, `0` or null.
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::Number(n)) if n.as_i64() == Some(1) => Ok(Some(true)),
        Some(Value::Number(n)) if n.as_i64() == Some(0) => Ok(Some(false)),
        Some(other) => Err(D::Error::custom(format!("expected true or false, found {other}"))),
    }
}

/// A string, or a number or boolean written where a string is expected; null is None.
pub fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(D::Error::custom(format!("expected a string, found {other}"))),
    }
}

/// Dates as portals send them: ISO 8601 (with or without zone), `2021.03.15 14:30`,
/// `2021.03.15 14:30:00`, `2021-03-15 14:30:00.000`, or a bare date. Without a zone: UTC.
pub fn parse_date(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::Datelike;
    // Years 0000–9999 only: RFC 3339, which the answers are written in, has no others (chrono
    // would read "-1-1-1" as 2 BC).
    parse_any_date(raw).filter(|d| (0..=9999).contains(&d.year()))
}

fn parse_any_date(raw: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
    let s = raw.trim();
    if s.len() > 64 {
        return None;
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc));
    }
    const FORMATS: [&str; 8] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y.%m.%d %H:%M:%S%.f",
        "%Y.%m.%d %H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
    ];
    for f in FORMATS {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&n));
        }
    }
    for f in ["%Y-%m-%d", "%Y.%m.%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Some(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?));
        }
    }
    None
}

pub fn lenient_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<chrono::DateTime<chrono::Utc>>, D::Error> {
    use serde::de::Error;
    match lenient_string(d)? {
        None => Ok(None),
        Some(s) if s.trim().is_empty() => Ok(None),
        Some(s) => parse_date(&s).map(Some).ok_or_else(|| {
            D::Error::custom(format!(
                "'{}' is not a date: use ISO 8601 (2021-03-15T14:30:00Z) or 2021.03.15 14:30",
                s.chars().take(64).collect::<String>()
            ))
        }),
    }
}

/// Query parameters by lowercase name (clients spell them as they please). A parameter given more
/// than once counts with its first value, as ASP.NET binds it.
pub fn query_map(query: Option<&str>) -> std::collections::HashMap<String, String> {
    let mut map = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        map.entry(k.to_lowercase()).or_insert_with(|| v.into_owned());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "lowercase")]
    struct Probe {
        #[serde(default, deserialize_with = "lenient_bool")]
        showallversions: Option<bool>,
        #[serde(default, deserialize_with = "lenient_date")]
        datetime: Option<chrono::DateTime<chrono::Utc>>,
        #[serde(default)]
        items: Vec<i64>,
    }

    #[test]
    fn tolerates_trailing_commas_case_and_strings() {
        let p: Probe = decode(br#"{"ShowAllVersions": "true", "DateTime": "2021.03.15 14:30", "Items": [1,2,],}"#).unwrap();
        assert_eq!(p.showallversions, Some(true));
        assert_eq!(p.datetime.unwrap().to_rfc3339(), "2021-03-15T14:30:00+00:00");
        assert_eq!(p.items, vec![1, 2]);
    }

    #[test]
    fn arrays_are_not_objects() {
        #[derive(Deserialize, Debug)]
        #[serde(rename_all = "lowercase")]
        struct Outer {
            #[serde(default, deserialize_with = "object")]
            inner: Option<Probe>,
        }
        assert!(decode::<Probe>(b"[null, null]").is_err());
        assert!(decode::<Probe>(b"null").unwrap().showallversions.is_none());
        assert!(decode::<Outer>(br#"{"inner": [null, null]}"#).is_err());
        let err = decode::<Outer>(br#"{"inner": {"showAllVersions": "maybe"}}"#).unwrap_err().to_string();
        assert!(err.starts_with("Property 'inner.showallversions' is not valid: expected true or false"), "{err}");
        assert!(decode::<Outer>(br#"{"inner": null}"#).unwrap().inner.is_none());
        assert!(decode::<Outer>(br#"{"Inner": {"showAllVersions": "true"}}"#).unwrap().inner.unwrap().showallversions.unwrap());
    }

    #[test]
    fn commas_inside_strings_stay() {
        assert_eq!(strip_trailing_commas(r#"{"a": "x,}", }"#), r#"{"a": "x,}" }"#);
        assert_eq!(strip_trailing_commas(r#"{"a": "\",]",}"#), r#"{"a": "\",]"}"#);
    }

    #[test]
    fn wrong_type_names_the_property() {
        let err = decode::<Probe>(br#"{"showAllVersions": "maybe"}"#).unwrap_err().to_string();
        assert!(err.contains("showallversions"), "{err}");
    }

    #[test]
    fn dates_in_every_documented_format() {
        for s in ["2021.03.15 14:30", "2021.03.15 14:30:00", "2021-03-15 14:30:00.000", "2021-03-15T14:30:00Z", "2021-03-15T14:30:00"] {
            assert_eq!(parse_date(s).unwrap().to_rfc3339(), "2021-03-15T14:30:00+00:00", "{s}");
        }
        assert!(parse_date("yesterday").is_none());
        for outside in ["-1-1-1", "+10000-01-01 00:00", "9999-12-31T23:59:59-00:01", "0000-01-01T00:00:00+00:01"] {
            assert!(parse_date(outside).is_none(), "{outside}");
        }
    }
}
