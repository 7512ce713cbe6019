//! `restoregate::api::decode::parse_date` on arbitrary text.
//!
//! Invariants: it never panics; every date it accepts is written by `to_rfc3339` as text that
//! RFC 3339 parsing reads back as the same instant, and that `parse_date` itself accepts again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restoregate::api::decode::parse_date;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    if let Some(date) = parse_date(&raw) {
        let text = date.to_rfc3339();
        let back = chrono::DateTime::parse_from_rfc3339(&text)
            .unwrap_or_else(|e| panic!("parse_date({raw:?}) = {text}, which is not RFC 3339: {e}"));
        assert_eq!(back, date, "parse_date({raw:?}) = {text} reads back as {back}");
        assert_eq!(parse_date(&text), Some(date), "parse_date({raw:?}) = {text}, which parse_date rejects");
    }
});
