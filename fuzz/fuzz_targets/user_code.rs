//! `restoregate::sandbox::codes::normalize_user_code` on arbitrary text (as typed into the sign-in
//! page, which decodes its form lossily).
//!
//! Invariants: it never panics; `Some(x)` means `x` is 8 characters of `BCDFGHJKLMNPQRSTVWXZ`;
//! normalizing `x` again, its display form `XXXX-XXXX`, or that form in lowercase gives `x`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use restoregate::sandbox::codes::{normalize_user_code, USER_CODE_ALPHABET, USER_CODE_LEN};

fuzz_target!(|data: &[u8]| {
    let typed = String::from_utf8_lossy(data);
    if let Some(code) = normalize_user_code(&typed) {
        assert_eq!(code.chars().count(), 8, "{typed:?} -> {code:?}");
        assert_eq!(code.len(), USER_CODE_LEN);
        assert!(code.bytes().all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b) && USER_CODE_ALPHABET.contains(&b)), "{typed:?} -> {code:?}");
        assert_eq!(normalize_user_code(&code).as_deref(), Some(code.as_str()), "not idempotent: {typed:?}");
        let display = format!("{}-{}", &code[..4], &code[4..]);
        assert_eq!(normalize_user_code(&display).as_deref(), Some(code.as_str()));
        assert_eq!(normalize_user_code(&display.to_lowercase()).as_deref(), Some(code.as_str()));
    }
});
