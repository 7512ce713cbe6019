//! The form decoding of the token endpoint (`POST /v5/Token`, src/api/auth.rs: names lowercased)
//! and of the sandbox sign-in page (src/sandbox/page.rs `form`, private, so its one expression is
//! repeated here), and `restoregate::api::decode::query_map` for query strings.
//!
//! Invariants: nothing panics on any bytes; the token map has a key for every page key,
//! lowercased; `query_map` of UTF-8 text has the token endpoint's names, each with its first value
//! (the token endpoint and the sandbox page keep the last); the decoded pairs encoded
//! again with `form_urlencoded::Serializer` decode to the same pairs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restoregate::api::decode::query_map;
use std::collections::HashMap;
use url::form_urlencoded;

fuzz_target!(|data: &[u8]| {
    // src/api/auth.rs, token endpoint, form body.
    let token: HashMap<String, String> =
        form_urlencoded::parse(data).map(|(k, v)| (k.to_lowercase(), v.into_owned())).collect();
    // src/sandbox/page.rs, `form`.
    let page: HashMap<String, String> =
        form_urlencoded::parse(data).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();

    assert!(token.len() <= page.len());
    for k in page.keys() {
        assert!(token.contains_key(&k.to_lowercase()), "{k:?} lost by the token endpoint's decoding");
    }

    // query_map: names lowercased, a name given more than once counts with its first value.
    if let Ok(text) = std::str::from_utf8(data) {
        let query = query_map(Some(text));
        let mut first: HashMap<String, String> = HashMap::new();
        for (k, v) in form_urlencoded::parse(data) {
            first.entry(k.to_lowercase()).or_insert_with(|| v.into_owned());
        }
        assert_eq!(query, first);
        assert!(query.keys().all(|k| token.contains_key(k)) && query.len() == token.len());
    }

    let pairs: Vec<(String, String)> = form_urlencoded::parse(data).into_owned().collect();
    let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
    let again: Vec<(String, String)> = form_urlencoded::parse(encoded.as_bytes()).into_owned().collect();
    assert_eq!(again, pairs, "re-encoded as {encoded:?}");
});
