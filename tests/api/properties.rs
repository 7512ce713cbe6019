//! Properties of the input decoders, over generated inputs (proptest): user codes match ignoring
//! case, spaces and dashes; trailing commas change no JSON value; every documented date format is
//! read as the instant written; the tolerant decoder never panics; query strings are read back as
//! encoded, names lowercased, first value kept. The fuzz targets in fuzz/ test
//! the same functions on arbitrary bytes.

use chrono::{DateTime, FixedOffset, NaiveDate, SecondsFormat, TimeZone, Timelike, Utc};
use proptest::prelude::*;
use restoregate::api::decode::{decode, parse_date, parse_value, strip_trailing_commas};
use restoregate::sandbox::codes::{normalize_user_code, USER_CODE_ALPHABET, USER_CODE_LEN};
use serde_json::Value;

// ---------- user codes ----------

/// A valid canonical code: 8 characters of the alphabet.
fn canonical_code() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(USER_CODE_ALPHABET.to_vec()), USER_CODE_LEN)
        .prop_map(|bytes| String::from_utf8(bytes).unwrap())
}

/// What a person may type between (or around) the characters of a code: spaces, tabs, no-break
/// spaces, ASCII dashes, the Unicode hyphen and en dash.
fn separators() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec![" ", "  ", "\t", "\u{a0}", "-", "\u{2010}", "\u{2013}", "\n"]), 0..3)
        .prop_map(|parts| parts.concat())
}

/// The code as typed: each character in either case, with separators anywhere.
fn typed(code: &str, lower: &[bool], seps: &[String]) -> String {
    let mut out = seps[0].clone();
    for (i, c) in code.chars().enumerate() {
        out.push(if lower[i] { c.to_ascii_lowercase() } else { c });
        out.push_str(&seps[i + 1]);
    }
    out
}

proptest! {
    #[test]
    fn user_code_matching_ignores_case_spaces_and_dashes(
        code in canonical_code(),
        lower in prop::collection::vec(any::<bool>(), USER_CODE_LEN),
        seps in prop::collection::vec(separators(), USER_CODE_LEN + 1),
    ) {
        let display = format!("{}-{}", &code[..4], &code[4..]);
        prop_assert_eq!(normalize_user_code(&code), Some(code.clone()));
        prop_assert_eq!(normalize_user_code(&display), Some(code.clone()));
        let typed = typed(&code, &lower, &seps);
        prop_assert_eq!(normalize_user_code(&typed), Some(code.clone()), "typed as {:?}", typed);
    }

    #[test]
    fn user_code_with_a_foreign_character_is_no_code(
        code in canonical_code(),
        at in 0..USER_CODE_LEN,
        foreign in prop::sample::select("AEIOUYaeiouy0123456789!_<>é".chars().collect::<Vec<_>>()),
    ) {
        let mut chars: Vec<char> = code.chars().collect();
        chars[at] = foreign;
        let bad: String = chars.into_iter().collect();
        prop_assert_eq!(normalize_user_code(&bad), None, "{:?}", bad);
    }

    #[test]
    fn user_code_normalization_is_canonical(typed in any::<String>()) {
        if let Some(code) = normalize_user_code(&typed) {
            prop_assert_eq!(code.len(), USER_CODE_LEN);
            prop_assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
            prop_assert_eq!(normalize_user_code(&code), Some(code.clone()));
        }
    }
}

// ---------- trailing commas ----------

/// Any string, with a good share of the characters that matter to the comma stripper.
fn json_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9 ,:\\[\\]{}\"\\\\/]{0,10}",
        1 => any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        json_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(json_string(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Compact JSON text of `value`, as serde_json writes it, except that before each closing `}` or
/// `]` there may be a comma (`decor[i].0`) followed by whitespace (`decor[i].1`), the i-th closing
/// bracket taking `decor[i % decor.len()]`.
fn write_decorated(value: &Value, decor: &[(bool, String)], closing: &mut usize, out: &mut String) {
    let close = |out: &mut String, bracket: char, closing: &mut usize| {
        let (comma, space) = &decor[*closing % decor.len()];
        *closing += 1;
        if *comma {
            out.push(',');
            out.push_str(space);
        }
        out.push(bracket);
    };
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_decorated(item, decor, closing, out);
            }
            close(out, ']', closing);
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                write_decorated(v, decor, closing, out);
            }
            close(out, '}', closing);
        }
        scalar => out.push_str(&serde_json::to_string(scalar).unwrap()),
    }
}

fn lowercase_keys(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k.to_lowercase(), lowercase_keys(v))).collect()),
        Value::Array(items) => Value::Array(items.into_iter().map(lowercase_keys).collect()),
        other => other,
    }
}

proptest! {
    #[test]
    fn trailing_commas_change_no_value(
        value in json_value(),
        decor in prop::collection::vec((any::<bool>(), "[ \t\r\n]{0,3}"), 1..8),
    ) {
        let compact = serde_json::to_string(&value).unwrap();
        let mut plain = String::new();
        write_decorated(&value, &[(false, String::new())], &mut 0, &mut plain);
        prop_assert_eq!(&plain, &compact, "the decorating writer must write serde_json's compact text");

        // Parsed by the same parser from the same number text, so floats compare exactly.
        let expected: Value = serde_json::from_str(&compact).unwrap();

        // Commas right before the brackets: stripping gives back the compact text itself.
        let mut with_commas = String::new();
        write_decorated(&value, &[(true, String::new())], &mut 0, &mut with_commas);
        prop_assert_eq!(strip_trailing_commas(&with_commas), compact.clone(), "from {:?}", with_commas);

        // Commas and whitespace before some of the brackets: the same value.
        let mut decorated = String::new();
        write_decorated(&value, &decor, &mut 0, &mut decorated);
        let stripped = strip_trailing_commas(&decorated);
        let reparsed: Value = serde_json::from_str(&stripped)
            .map_err(|e| TestCaseError::fail(format!("{decorated:?} stripped to invalid {stripped:?}: {e}")))?;
        prop_assert_eq!(&reparsed, &expected);
        prop_assert_eq!(parse_value(decorated.as_bytes()).unwrap(), lowercase_keys(expected.clone()));

        // Valid JSON is left as it is.
        prop_assert_eq!(strip_trailing_commas(&compact), compact.clone());
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        prop_assert_eq!(strip_trailing_commas(&pretty), pretty);
    }
}

// ---------- dates ----------

fn datetime() -> impl Strategy<Value = DateTime<Utc>> {
    (1i32..=9999, 1u32..=12, 1u32..=31, 0u32..24, 0u32..60, 0u32..60, 0u32..1_000_000_000).prop_map(
        |(y, mo, d, h, mi, s, ns)| {
            // Days past the month's end fall back to its last day.
            let date = (0..4).find_map(|back| NaiveDate::from_ymd_opt(y, mo, d - back)).unwrap();
            Utc.from_utc_datetime(&date.and_hms_nano_opt(h, mi, s, ns).unwrap())
        },
    )
}

fn padding() -> impl Strategy<Value = String> {
    "[ \t]{0,2}"
}

proptest! {
    #[test]
    fn parse_date_reads_every_documented_format(
        dt in datetime(),
        offset_minutes in -(23 * 60 + 59)..=(23 * 60 + 59),
        before in padding(),
        after in padding(),
    ) {
        let minutes = dt.with_second(0).unwrap().with_nanosecond(0).unwrap();
        let seconds = dt.with_nanosecond(0).unwrap();
        let millis = dt.with_nanosecond(dt.nanosecond() / 1_000_000 * 1_000_000).unwrap();
        let cases = [
            (dt.format("%Y.%m.%d %H:%M").to_string(), minutes),
            (dt.format("%Y.%m.%d %H:%M:%S").to_string(), seconds),
            (dt.format("%Y-%m-%d %H:%M:%S%.3f").to_string(), millis),
            (dt.to_rfc3339(), dt),
            (dt.to_rfc3339_opts(SecondsFormat::Secs, true), seconds),
            (dt.to_rfc3339_opts(SecondsFormat::Millis, true), millis),
            (dt.with_timezone(&FixedOffset::east_opt(offset_minutes * 60).unwrap()).to_rfc3339(), dt),
        ];
        for (text, instant) in cases {
            let padded = format!("{before}{text}{after}");
            prop_assert_eq!(parse_date(&padded), Some(instant), "{:?}", padded);
        }
    }
}

// ---------- the tolerant decoder never panics ----------

fn body_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\[\\]{},:\" \\\\a-zA-Z0-9.eE+-]{0,64}",
        (json_value(), prop::collection::vec((any::<bool>(), "[ ]{0,1}"), 1..4)).prop_map(|(v, decor)| {
            let mut out = String::new();
            write_decorated(&v, &decor, &mut 0, &mut out);
            out
        }),
        json_value().prop_map(|v| serde_json::json!({"explore": v, "DateTime": v, "userCode": v}).to_string()),
    ]
}

proptest! {
    #[test]
    fn decode_never_panics(text in body_text()) {
        let bytes = text.as_bytes();
        let _ = decode::<Value>(bytes);
        let _ = decode::<restoregate::api::restore_sessions::OrganizationAction>(bytes);
        let _ = decode::<restoregate::api::restore_sessions::ExploreOptions>(bytes);
        let _ = decode::<restoregate::api::organizations::AddOrganization>(bytes);
        let _ = decode::<restoregate::api::device_code::DeviceCodeRequest>(bytes);
        let _ = decode::<restoregate::api::device_code::CheckRequest>(bytes);
    }

    #[test]
    fn decode_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128)) {
        let _ = decode::<Value>(&bytes);
        let _ = decode::<restoregate::api::restore_sessions::OrganizationAction>(&bytes);
    }
}

// ---------- forms and query strings ----------

fn form_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    // Names and values with the characters forms escape: spaces, &, =, +, %, non-ASCII.
    let text = "[a-zA-Z0-9 &=+%/?é€_.-]{0,12}";
    prop::collection::vec((text, text), 0..8)
}

proptest! {
    /// A form a client encodes is read back as written: query_map gives each name (any case, read
    /// lowercase) its first value, as the API reads query strings.
    #[test]
    fn query_map_reads_each_name_lowercased_with_its_first_value(pairs in form_pairs()) {
        let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        let read = restoregate::api::decode::query_map(Some(&encoded));
        let mut first = std::collections::HashMap::new();
        for (k, v) in &pairs {
            first.entry(k.to_lowercase()).or_insert_with(|| v.clone());
        }
        prop_assert_eq!(read, first);
    }

    /// Query strings never make the decoder panic, whatever their bytes, and what it reads has
    /// lowercase names only.
    #[test]
    fn query_map_never_panics_and_lowercases(text in "\\PC{0,64}") {
        let read = restoregate::api::decode::query_map(Some(&text));
        prop_assert!(read.keys().all(|k| *k == k.to_lowercase()));
    }
}
