//! User codes (RFC 8628 section 6.1): 8 characters from an alphabet without vowels or look-alikes,
//! shown as `XXXX-XXXX`, matched ignoring case, spaces and dashes.

use rand::RngCore;

pub const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const USER_CODE_LEN: usize = 8;

/// A fresh user code in its display form, `XXXX-XXXX`.
pub fn new_user_code() -> String {
    // The thread's CSPRNG, as for device codes (crate::crypto::random_token).
    let mut rng = rand::thread_rng();
    let chars: String = (0..USER_CODE_LEN)
        .map(|_| {
            // Rejection sampling keeps every letter equally likely (256 is not a multiple of 20).
            loop {
                let b = (rng.next_u32() & 0xff) as usize;
                if b < 240 {
                    break USER_CODE_ALPHABET[b % 20] as char;
                }
            }
        })
        .collect();
    format!("{}-{}", &chars[..4], &chars[4..])
}

/// The canonical form a typed code is matched by: uppercase, without spaces or dashes. None when
/// it cannot be a user code at all (wrong length or characters), so that it is not looked up.
pub fn normalize_user_code(typed: &str) -> Option<String> {
    let cleaned: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-' && *c != '\u{2010}' && *c != '\u{2013}')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (cleaned.len() == USER_CODE_LEN && cleaned.bytes().all(|b| USER_CODE_ALPHABET.contains(&b))).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_shown_grouped_and_matched_loosely() {
        for _ in 0..200 {
            let code = new_user_code();
            assert_eq!(code.len(), 9);
            assert_eq!(&code[4..5], "-");
            let canonical = normalize_user_code(&code).unwrap();
            assert_eq!(normalize_user_code(&code.to_lowercase()), Some(canonical.clone()));
            let spaced = format!(" {} {} ", &canonical[..4].to_lowercase(), &canonical[4..]);
            assert_eq!(normalize_user_code(&spaced), Some(canonical));
        }
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(normalize_user_code("BCDF-GHJA"), None, "vowels are not in the alphabet");
        assert_eq!(normalize_user_code("<script>"), None);
    }
}
