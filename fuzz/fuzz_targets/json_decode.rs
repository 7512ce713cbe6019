//! The tolerant JSON decoder (`restoregate::api::decode`) on arbitrary bytes.
//!
//! Invariants:
//! - `parse_value`, `strip_trailing_commas` and `decode` into the real request bodies never panic;
//! - `strip_trailing_commas` only ever removes commas;
//! - on valid JSON (which has no trailing commas) `strip_trailing_commas` leaves the value as it
//!   was, and `parse_value` gives that value with its property names lowercased;
//! - that value's compact text with a comma before every `}` and `]` strips back to the compact
//!   text and decodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restoregate::api::decode::{decode, parse_value, strip_trailing_commas};
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_value(data);

    // The bodies the API decodes with `Tolerant<T>` (lenient bools, strings and dates).
    let _ = decode::<restoregate::api::restore_sessions::OrganizationAction>(data);
    let _ = decode::<restoregate::api::restore_sessions::ExploreOptions>(data);
    let _ = decode::<restoregate::api::organizations::AddOrganization>(data);
    let _ = decode::<restoregate::api::device_code::DeviceCodeRequest>(data);
    let _ = decode::<restoregate::api::device_code::CheckRequest>(data);

    let Ok(text) = std::str::from_utf8(data) else {
        assert!(parsed.is_err(), "a body that is not UTF-8 was accepted");
        return;
    };

    let stripped = strip_trailing_commas(text);
    assert!(stripped.len() <= text.len());
    let no_commas = |s: &str| s.chars().filter(|&c| c != ',').collect::<String>();
    assert_eq!(no_commas(&stripped), no_commas(text), "strip_trailing_commas changed more than commas");

    if let Ok(value) = serde_json::from_str::<Value>(text) {
        let after: Value = serde_json::from_str(&stripped)
            .unwrap_or_else(|e| panic!("valid JSON {text:?} became invalid {stripped:?}: {e}"));
        assert_eq!(after, value, "strip_trailing_commas changed valid JSON {text:?}");

        let expected = lowercase_keys(value.clone());
        let got = parsed.unwrap_or_else(|e| panic!("parse_value rejected valid JSON {text:?}: {e}"));
        assert_eq!(got, expected);

        // The value's compact text with a comma before every closing bracket: stripping gives
        // back the compact text, and parse_value reads the value of the compact text. (That one,
        // not `value`: serde_json without `float_roundtrip` may read a float it wrote 1 ULP off.)
        let compact = serde_json::to_string(&value).unwrap();
        let mut with_commas = String::new();
        write_with_trailing_commas(&value, &mut with_commas);
        assert_eq!(strip_trailing_commas(&with_commas), compact, "from {with_commas:?}");
        let of_compact = lowercase_keys(serde_json::from_str(&compact).unwrap());
        let again = parse_value(with_commas.as_bytes())
            .unwrap_or_else(|e| panic!("parse_value rejected {with_commas:?}: {e}"));
        assert_eq!(again, of_compact, "trailing commas changed the value: {with_commas:?}");
    }
});

/// What `parse_value` is documented to do to property names.
fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k.to_lowercase(), lowercase_keys(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

/// Compact JSON with a comma before every closing `}` and `]` (`[1,2,]`, `{"a":1,}`, `[,]`).
fn write_with_trailing_commas(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_with_trailing_commas(item, out);
                out.push(',');
            }
            if items.is_empty() {
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (k, v) in map {
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_with_trailing_commas(v, out);
                out.push(',');
            }
            if map.is_empty() {
                out.push(',');
            }
            out.push('}');
        }
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap()),
    }
}
